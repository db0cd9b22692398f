// SPDX-License-Identifier: MIT
/*
 * Unit tests of the cookie module (user/cookie.c): a reply opened by the
 * initiator's side, checked also with the key derived here independently
 * (BLAKE2s of the label and libsodium's XChaCha20-Poly1305, not the
 * module's helpers); mac2 verification by source, secret rotation, and the
 * ways a reply or a mac2 can be wrong. Interop with a real WireGuard client
 * is in tests/test_e2e.sh (test_e2e_cookie_*).
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include <sodium.h>

#include "check.h"
#include "cookie.h"
#include "jitwg.h"
#include "noise.h"
#include "noise_crypto.h"

#define S ((uint64_t)1000000000ull)

struct fixture {
	uint8_t r_priv[32], r_pub[32], i_priv[32];
	struct noise_initiator *in;
	struct cookie_checker *cc;
	uint8_t msg[NOISE_INITIATION_LEN];
	uint8_t addr[16];
	uint16_t port;
};

static int setup(struct fixture *f)
{
	uint8_t ts[NOISE_TIMESTAMP_LEN];
	static const uint8_t a4[16] = { [10] = 0xff, [11] = 0xff, 192, 0, 2, 7 };

	randombytes_buf(f->r_priv, 32);
	randombytes_buf(f->i_priv, 32);
	memcpy(f->addr, a4, 16);
	f->port = 41001;
	noise_timestamp_now(ts);
	if (crypto_scalarmult_base(f->r_pub, f->r_priv) ||
	    noise_initiator_new(&f->in, f->i_priv, f->r_pub) ||
	    cookie_checker_new(&f->cc, f->r_pub))
		return -1;
	return noise_build_initiation(f->in, 0x11223344, ts, 0, f->msg);
}

static void teardown(struct fixture *f)
{
	noise_initiator_free(f->in);
	cookie_checker_free(f->cc);
}

/* A reply: its layout, opened by the initiator, and by an independent derivation. */
static void test_reply(struct fixture *f)
{
	uint8_t reply[COOKIE_REPLY_LEN], cookie[COOKIE_LEN], c2[COOKIE_LEN], key[32];
	uint8_t label_pub[8 + 32];
	unsigned long long plen;

	CHECK("reply: made", !cookie_make_reply(f->cc, f->msg, f->addr, f->port, 1 * S, reply),
	      "cookie_make_reply failed");
	CHECK("reply: type 3, reserved zero, receiver = sender index",
	      reply[0] == 3 && !reply[1] && !reply[2] && !reply[3] &&
		      !memcmp(reply + 4, f->msg + 4, 4),
	      "header %02x %02x%02x%02x", reply[0], reply[1], reply[2], reply[3]);
	CHECK("reply: opened by the initiator",
	      !cookie_open_reply(reply, sizeof(reply), f->r_pub, f->msg, cookie), "did not open");
	memcpy(label_pub, "cookie--", 8);
	memcpy(label_pub + 8, f->r_pub, 32);
	CHECK("reply: opens under HASH(\"cookie--\" ‖ S_pub) with AD = mac1 (independent)",
	      !noise_blake2s(key, 32, label_pub, sizeof(label_pub), NULL, 0) &&
		      !crypto_aead_xchacha20poly1305_ietf_decrypt(
			      c2, &plen, NULL, reply + 32, 32, f->msg + WG_MAC1_OFF, 16,
			      reply + 8, key) &&
		      plen == 16 && !memcmp(c2, cookie, 16),
	      "independent decryption failed or differs");
	/* Another initiation (its own mac1): the reply is not for it. */
	{
		uint8_t other[NOISE_INITIATION_LEN], bad[COOKIE_REPLY_LEN], wrong_pub[32];

		memcpy(other, f->msg, sizeof(other));
		other[WG_MAC1_OFF] ^= 1;
		CHECK("reply: refused for another mac1",
		      cookie_open_reply(reply, sizeof(reply), f->r_pub, other, c2) == -EBADMSG,
		      "opened");
		randombytes_buf(wrong_pub, 32);
		CHECK("reply: refused under another responder key",
		      cookie_open_reply(reply, sizeof(reply), wrong_pub, f->msg, c2) == -EBADMSG,
		      "opened");
		memcpy(bad, reply, sizeof(bad));
		bad[40] ^= 0x80;
		CHECK("reply: refused when tampered",
		      cookie_open_reply(bad, sizeof(bad), f->r_pub, f->msg, c2) == -EBADMSG,
		      "opened");
		memcpy(bad, reply, sizeof(bad));
		bad[4] ^= 1;
		CHECK("reply: refused for another sender index",
		      cookie_open_reply(bad, sizeof(bad), f->r_pub, f->msg, c2) == -EINVAL,
		      "accepted");
		CHECK("reply: refused at another length",
		      cookie_open_reply(reply, 63, f->r_pub, f->msg, c2) == -EINVAL, "accepted");
	}
	{
		uint8_t r2[COOKIE_REPLY_LEN], k2[COOKIE_LEN];

		CHECK("reply: a fresh nonce each time, the same cookie",
		      !cookie_make_reply(f->cc, f->msg, f->addr, f->port, 2 * S, r2) &&
			      memcmp(r2 + 8, reply + 8, 24) &&
			      !cookie_open_reply(r2, sizeof(r2), f->r_pub, f->msg, k2) &&
			      !memcmp(k2, cookie, 16),
		      "nonce repeated or cookie changed within one secret");
	}
}

/* One row per mac2 case. */
static void test_mac2(struct fixture *f)
{
	uint8_t reply[COOKIE_REPLY_LEN], cookie[COOKIE_LEN], retry[NOISE_INITIATION_LEN];
	uint8_t ts[NOISE_TIMESTAMP_LEN], other_addr[16], v6[16];
	struct {
		const char *name;
		const uint8_t *addr;
		uint16_t port;
		uint64_t at;
		enum cookie_mac2 want;
	} rows[] = {
		/* the source it was issued to, at once */
		{ "mac2: valid from its source", f->addr, f->port, 10 * S, COOKIE_MAC2_VALID },
		/* another port of the same address (a NAT's other client) */
		{ "mac2: invalid from another port", f->addr, f->port + 1, 10 * S, COOKIE_MAC2_INVALID },
		/* another address */
		{ "mac2: invalid from another address", other_addr, f->port, 10 * S, COOKIE_MAC2_INVALID },
		/* an IPv6 address whose last 4 bytes are the IPv4 address */
		{ "mac2: invalid from an IPv6 look-alike", v6, f->port, 10 * S, COOKIE_MAC2_INVALID },
		/* after one rotation: the previous secret still counts */
		{ "mac2: valid after one rotation", f->addr, f->port, 130 * S, COOKIE_MAC2_VALID },
		/* after two: gone */
		{ "mac2: invalid after two rotations", f->addr, f->port, 250 * S, COOKIE_MAC2_INVALID },
	};
	size_t i;

	memcpy(other_addr, f->addr, 16);
	other_addr[15] ^= 1;
	memset(v6, 0, sizeof(v6));
	v6[0] = 0x20;
	v6[1] = 0x01;
	memcpy(v6 + 12, f->addr + 12, 4);

	noise_timestamp_now(ts);
	if (noise_build_initiation(f->in, 0x55667788, ts, 0, retry)) {
		CHECK("mac2: initiation built", 0, "noise_build_initiation failed");
		return;
	}
	CHECK("mac2: none in a fresh initiation",
	      cookie_check_mac2(f->cc, retry, f->addr, f->port, 5 * S) == COOKIE_MAC2_NONE,
	      "not NONE");
	/* The secret drawn at 5 s: the cookie issued at 5 s. */
	if (cookie_make_reply(f->cc, f->msg, f->addr, f->port, 5 * S, reply) ||
	    cookie_open_reply(reply, sizeof(reply), f->r_pub, f->msg, cookie) ||
	    cookie_add_mac2(retry, cookie)) {
		CHECK("mac2: cookie obtained", 0, "reply round trip failed");
		return;
	}
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		enum cookie_mac2 got = cookie_check_mac2(f->cc, retry, rows[i].addr, rows[i].port,
							 rows[i].at);

		CHECK(rows[i].name, got == rows[i].want, "got %d want %d", got, rows[i].want);
	}
	/* A random mac2 (pktgen's kind), and a valid one on a changed message. */
	{
		uint8_t forged[NOISE_INITIATION_LEN];
		struct cookie_checker *cc2;

		if (cookie_checker_new(&cc2, f->r_pub)) {
			CHECK("mac2: checker", 0, "cookie_checker_new failed");
			return;
		}
		memcpy(forged, retry, sizeof(forged));
		if (cookie_make_reply(cc2, f->msg, f->addr, f->port, 1 * S, reply) ||
		    cookie_open_reply(reply, sizeof(reply), f->r_pub, f->msg, cookie) ||
		    cookie_add_mac2(forged, cookie)) {
			CHECK("mac2: cookie obtained", 0, "reply round trip failed");
			return;
		}
		CHECK("mac2: valid under its own checker",
		      cookie_check_mac2(cc2, forged, f->addr, f->port, 2 * S) == COOKIE_MAC2_VALID,
		      "not VALID");
		forged[20] ^= 1;
		CHECK("mac2: invalid when the message changed",
		      cookie_check_mac2(cc2, forged, f->addr, f->port, 2 * S) == COOKIE_MAC2_INVALID,
		      "accepted");
		forged[20] ^= 1;
		/* Another checker's cookie: what the device's own reply is to jitwgd. */
		CHECK("mac2: another issuer's cookie is invalid",
		      cookie_check_mac2(f->cc, forged, f->addr, f->port, 10 * S) ==
			      COOKIE_MAC2_INVALID,
		      "accepted");
		randombytes_buf(forged + COOKIE_MAC2_OFF, 16);
		CHECK("mac2: random bytes are invalid",
		      cookie_check_mac2(cc2, forged, f->addr, f->port, 2 * S) == COOKIE_MAC2_INVALID,
		      "accepted");
		cookie_checker_free(cc2);
	}
}

int main(void)
{
	struct fixture f;

	if (sodium_init() < 0) {
		printf("FAIL: sodium_init\n");
		return 1;
	}
	memset(&f, 0, sizeof(f));
	if (setup(&f)) {
		printf("FAIL: cookie fixture\n");
		return 1;
	}
	test_reply(&f);
	teardown(&f);
	memset(&f, 0, sizeof(f));
	if (setup(&f)) {
		printf("FAIL: cookie fixture\n");
		return 1;
	}
	test_mac2(&f);
	teardown(&f);
	CHECK_EXIT();
}
