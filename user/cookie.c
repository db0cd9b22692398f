// SPDX-License-Identifier: MIT
/*
 * Cookie replies and mac2 (WireGuard paper §5.4.7): see include/cookie.h.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "cookie.h"
#include "jitwg.h"
#include "noise_crypto.h"

static const char LABEL_COOKIE[] = "cookie--";

#define SECRET_LIFE_NS ((uint64_t)COOKIE_SECRET_LIFE_S * 1000000000ull)

/* Secrets only: in locked memory with guard pages, wiped by sodium_free(). */
struct cookie_secrets {
	uint8_t cur[32], prev[32];
	uint8_t reply_key[32]; /* HASH("cookie--" ‖ S_pub): public, but kept beside */
};

struct cookie_checker {
	pthread_mutex_t lock; /* the secrets and their times */
	struct cookie_secrets *s;
	uint64_t cur_at;      /* CLOCK_MONOTONIC ns cur was drawn */
	bool has_cur, has_prev;
};

int cookie_checker_new(struct cookie_checker **out,
		       const uint8_t responder_public[static 32])
{
	struct cookie_checker *c;

	*out = NULL;
	if (sodium_init() < 0)
		return -EIO;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->s = sodium_malloc(sizeof(*c->s));
	if (!c->s) {
		free(c);
		return -ENOMEM;
	}
	sodium_memzero(c->s, sizeof(*c->s));
	noise_hash2(c->s->reply_key, LABEL_COOKIE, sizeof(LABEL_COOKIE) - 1,
		    responder_public, 32);
	pthread_mutex_init(&c->lock, NULL);
	*out = c;
	return 0;
}

void cookie_checker_free(struct cookie_checker *c)
{
	if (!c)
		return;
	sodium_free(c->s); /* wipes */
	pthread_mutex_destroy(&c->lock);
	free(c);
}

/*
 * With the lock held: a fresh secret when the current one is
 * COOKIE_SECRET_LIFE_S old. The current one becomes the previous one,
 * valid for one more life: the cookies made with it up to now are kept
 * that long by their clients. A secret older than two lives is gone.
 */
static void rotate(struct cookie_checker *c, uint64_t now)
{
	if (c->has_cur && now - c->cur_at < SECRET_LIFE_NS)
		return;
	c->has_prev = c->has_cur && now - c->cur_at < 2 * SECRET_LIFE_NS;
	if (c->has_prev)
		memcpy(c->s->prev, c->s->cur, sizeof(c->s->prev));
	else
		sodium_memzero(c->s->prev, sizeof(c->s->prev));
	randombytes_buf(c->s->cur, sizeof(c->s->cur));
	c->cur_at = now;
	c->has_cur = true;
}

/* cookie = MAC(secret, address ‖ port), port in network order. */
static int make_cookie(uint8_t out[static COOKIE_LEN], const uint8_t secret[static 32],
		       const uint8_t addr[static 16], uint16_t port)
{
	uint8_t in[18];

	memcpy(in, addr, 16);
	in[16] = (uint8_t)(port >> 8);
	in[17] = (uint8_t)port;
	return noise_blake2s(out, COOKIE_LEN, in, sizeof(in), secret, 32);
}

static int mac2_of(uint8_t out[static NOISE_MAC_LEN], const uint8_t *msg,
		   const uint8_t cookie[static COOKIE_LEN])
{
	return noise_blake2s(out, NOISE_MAC_LEN, msg, COOKIE_MAC2_OFF, cookie, COOKIE_LEN);
}

/* With the lock held: whether mac2 was made with secret's cookie for addr:port. */
static bool mac2_matches(const uint8_t *msg, const uint8_t secret[static 32],
			 const uint8_t addr[static 16], uint16_t port)
{
	uint8_t cookie[COOKIE_LEN], mac[NOISE_MAC_LEN];
	bool ok;

	ok = !make_cookie(cookie, secret, addr, port) && !mac2_of(mac, msg, cookie) &&
	     !sodium_memcmp(mac, msg + COOKIE_MAC2_OFF, NOISE_MAC_LEN);
	sodium_memzero(cookie, sizeof(cookie));
	sodium_memzero(mac, sizeof(mac));
	return ok;
}

enum cookie_mac2 cookie_check_mac2(struct cookie_checker *c, const uint8_t *msg,
				   const uint8_t addr[static 16], uint16_t port,
				   uint64_t now_ns)
{
	bool ok;

	if (sodium_is_zero(msg + COOKIE_MAC2_OFF, NOISE_MAC_LEN))
		return COOKIE_MAC2_NONE;
	pthread_mutex_lock(&c->lock);
	rotate(c, now_ns);
	ok = mac2_matches(msg, c->s->cur, addr, port) ||
	     (c->has_prev && mac2_matches(msg, c->s->prev, addr, port));
	pthread_mutex_unlock(&c->lock);
	return ok ? COOKIE_MAC2_VALID : COOKIE_MAC2_INVALID;
}

int cookie_make_reply(struct cookie_checker *c, const uint8_t *msg,
		      const uint8_t addr[static 16], uint16_t port,
		      uint64_t now_ns, uint8_t out[static COOKIE_REPLY_LEN])
{
	uint8_t cookie[COOKIE_LEN];
	unsigned long long clen;
	int ret;

	pthread_mutex_lock(&c->lock);
	rotate(c, now_ns);
	ret = make_cookie(cookie, c->s->cur, addr, port);
	pthread_mutex_unlock(&c->lock);
	if (ret)
		goto out;
	memset(out, 0, 8);
	out[0] = WG_MSG_COOKIE;
	memcpy(out + 4, msg + 4, 4); /* receiver = the initiation's sender index */
	randombytes_buf(out + 8, COOKIE_NONCE_LEN);
	/* The key is the reply's only secret-independent part: reading it
	 * without the lock is safe, it never changes. */
	ret = crypto_aead_xchacha20poly1305_ietf_encrypt(out + 32, &clen, cookie, COOKIE_LEN,
							 msg + WG_MAC1_OFF, NOISE_MAC_LEN,
							 NULL, out + 8, c->s->reply_key) ?
		      -EIO : 0;
out:
	sodium_memzero(cookie, sizeof(cookie));
	return ret;
}

int cookie_open_reply(const uint8_t *reply, size_t len,
		      const uint8_t responder_public[static 32],
		      const uint8_t *initiation, uint8_t cookie[static COOKIE_LEN])
{
	uint8_t key[32];
	unsigned long long plen;
	int ret;

	if (len != COOKIE_REPLY_LEN || reply[0] != WG_MSG_COOKIE || reply[1] || reply[2] ||
	    reply[3] || memcmp(reply + 4, initiation + 4, 4))
		return -EINVAL;
	noise_hash2(key, LABEL_COOKIE, sizeof(LABEL_COOKIE) - 1, responder_public, 32);
	ret = crypto_aead_xchacha20poly1305_ietf_decrypt(cookie, &plen, NULL, reply + 32,
							 COOKIE_LEN + NOISE_AEAD_TAG_LEN,
							 initiation + WG_MAC1_OFF, NOISE_MAC_LEN,
							 reply + 8, key) ?
		      -EBADMSG : 0;
	sodium_memzero(key, sizeof(key));
	return ret;
}

int cookie_add_mac2(uint8_t *msg, const uint8_t cookie[static COOKIE_LEN])
{
	return mac2_of(msg + COOKIE_MAC2_OFF, msg, cookie);
}
