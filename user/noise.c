// SPDX-License-Identifier: MIT
/*
 * The first message of WireGuard's Noise_IKpsk2 handshake (WireGuard paper
 * §5.4.2), from both sides: the responder decodes it in stages, the initiator
 * builds it. Symmetric primitives are in noise_crypto.c.
 *
 * Initiator -> responder, with Ci/Hi the chaining key and hash:
 *   Ci = HASH(CONSTRUCTION)
 *   Hi = HASH(HASH(Ci ‖ IDENTIFIER) ‖ Sr_pub)
 *   Ci = KDF1(Ci, E_pub)               Hi = HASH(Hi ‖ E_pub)
 *   (Ci, k) = KDF2(Ci, DH(E, Sr))      static = AEAD(k, 0, Si_pub, Hi)
 *                                      Hi = HASH(Hi ‖ static)
 *   (Ci, k) = KDF2(Ci, DH(Si, Sr))     timestamp = AEAD(k, 0, TAI64N, Hi)
 *   mac1 = MAC(HASH(LABEL_MAC1 ‖ Sr_pub), msg[0..116))
 *                                      Hi = HASH(Hi ‖ timestamp)
 *
 * Responder -> initiator (§5.4.3), as the initiator consumes it:
 *   Ci = KDF1(Ci, Er_pub)              Hi = HASH(Hi ‖ Er_pub)
 *   Ci = KDF1(Ci, DH(E, Er_pub))
 *   Ci = KDF1(Ci, DH(Si, Er_pub))
 *   (Ci, t, k) = KDF3(Ci, psk)         Hi = HASH(Hi ‖ t)
 *   empty = AEAD(k, 0, "", Hi)
 *   (T_send, T_recv) = KDF2(Ci, "")    (§5.4.5)
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "jitwg.h"
#include "noise.h"
#include "noise_crypto.h"

/* Paper §5.4: hashed without a trailing NUL. */
static const char CONSTRUCTION[] = "Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s";
static const char IDENTIFIER[] = "WireGuard v1 zx2c4 Jason@zx2c4.com";
static const char LABEL_MAC1[] = "mac1----";

/* Message 1 layout (paper §5.4.2), byte offsets. */
enum {
	OFF_TYPE = 0,
	OFF_SENDER = 4,
	OFF_EPHEMERAL = 8,
	OFF_STATIC = 40,
	OFF_TIMESTAMP = 88,
	OFF_MAC1 = 116,
	OFF_MAC2 = 132,
	STATIC_SEALED_LEN = NOISE_KEY_LEN + NOISE_AEAD_TAG_LEN,
	TIMESTAMP_SEALED_LEN = NOISE_TIMESTAMP_LEN + NOISE_AEAD_TAG_LEN,
};
/* The capture hands the daemon WG_INITIATION_LEN bytes (include/jitwg.h). */
_Static_assert(NOISE_INITIATION_LEN == WG_INITIATION_LEN, "one message size");
_Static_assert(OFF_STATIC == OFF_EPHEMERAL + NOISE_KEY_LEN, "layout");
_Static_assert(OFF_TIMESTAMP == OFF_STATIC + STATIC_SEALED_LEN, "layout");
_Static_assert(OFF_MAC1 == OFF_TIMESTAMP + TIMESTAMP_SEALED_LEN, "layout");
_Static_assert(OFF_MAC2 + NOISE_MAC_LEN == NOISE_INITIATION_LEN, "layout");

/* Message 2 layout (paper §5.4.3), byte offsets. */
enum {
	R_OFF_SENDER = 4,
	R_OFF_RECEIVER = 8,
	R_OFF_EPHEMERAL = 12,
	R_OFF_EMPTY = 44,
	R_OFF_MAC1 = 60,
	R_OFF_MAC2 = 76,
};
_Static_assert(R_OFF_EMPTY == R_OFF_EPHEMERAL + NOISE_KEY_LEN, "layout");
_Static_assert(R_OFF_MAC1 == R_OFF_EMPTY + NOISE_AEAD_TAG_LEN, "layout");
_Static_assert(R_OFF_MAC2 + NOISE_MAC_LEN == NOISE_RESPONSE_LEN, "layout");

/* Message 4 layout (paper §5.4.6): type, receiver, 64-bit counter, data. */
enum {
	T_OFF_RECEIVER = 4,
	T_OFF_COUNTER = 8,
	T_OFF_DATA = 16,
};
_Static_assert(T_OFF_DATA == NOISE_TRANSPORT_HEADER_LEN, "layout");

/* TAI64N label of the Unix epoch: 2^62 + 10 s, as WireGuard writes it. */
#define TAI64_EPOCH 0x400000000000000aULL

/* What depends only on the responder's public key, for both sides. */
struct fixed {
	/* HMAC key C0 = HASH(CONSTRUCTION), for Ci = KDF1(C0, E_pub) */
	struct noise_hmac_key chaining_key;
	/* H0 = HASH(HASH(C0 ‖ IDENTIFIER) ‖ Sr_pub) */
	uint8_t hash[NOISE_HASH_LEN];
	/* MAC key HASH(LABEL_MAC1 ‖ Sr_pub) */
	struct noise_mac_key mac1;
};

/*
 * Read-only once built (and mprotected so): any number of threads may decode
 * with one responder at once.
 */
struct noise_responder {
	uint8_t private_key[NOISE_KEY_LEN];
	uint8_t public_key[NOISE_KEY_LEN];
	struct fixed fixed;
};

/*
 * Not in locked memory, unlike the responder: a load generator holds tens of
 * thousands of these, and each sodium_malloc() costs three mappings and
 * locked pages. Wiped on free all the same. Building only reads it, so
 * threads may build from one initiator at once (forge_identity writes).
 */
struct noise_initiator {
	uint8_t static_private[NOISE_KEY_LEN];
	uint8_t static_public[NOISE_KEY_LEN];
	/* The key placed in encrypted_static: our own, or a forged victim's. */
	uint8_t claimed_public[NOISE_KEY_LEN];
	uint8_t responder_public[NOISE_KEY_LEN];
	/* DH(Si, Sr): fixed for the pair, so computed once. */
	uint8_t static_static[NOISE_KEY_LEN];
	struct fixed fixed;
};

static const char *const status_names[] = {
	[NOISE_OK] = "ok",
	[NOISE_ERR_SHAPE] = "bad_shape",
	[NOISE_ERR_MAC1] = "bad_mac1",
	[NOISE_ERR_STATIC] = "bad_static",
	[NOISE_ERR_TIMESTAMP] = "bad_timestamp",
	[NOISE_ERR_REPLAY] = "replay",
	[NOISE_ERR_LOW_ORDER] = "low_order",
	[NOISE_ERR_INTERNAL] = "internal_error",
};

const char *noise_status_str(enum noise_status st)
{
	if ((unsigned int)st < sizeof(status_names) / sizeof(status_names[0]) &&
	    status_names[st])
		return status_names[st];
	return "unknown";
}

static void precompute(struct fixed *f,
		       const uint8_t responder_public[static NOISE_KEY_LEN])
{
	uint8_t ck[NOISE_HASH_LEN], mac1_key[NOISE_HASH_LEN];

	noise_hash2(ck, CONSTRUCTION, sizeof(CONSTRUCTION) - 1, NULL, 0);
	noise_hash2(f->hash, ck, NOISE_HASH_LEN, IDENTIFIER,
		    sizeof(IDENTIFIER) - 1);
	noise_hash2(f->hash, f->hash, NOISE_HASH_LEN, responder_public,
		    NOISE_KEY_LEN);
	noise_hmac_key_init(&f->chaining_key, ck);
	noise_hash2(mac1_key, LABEL_MAC1, sizeof(LABEL_MAC1) - 1,
		    responder_public, NOISE_KEY_LEN);
	noise_mac_key_init(&f->mac1, mac1_key);
	sodium_memzero(ck, sizeof(ck));
	sodium_memzero(mac1_key, sizeof(mac1_key));
}

int noise_responder_new(struct noise_responder **out,
			const uint8_t private_key[static NOISE_KEY_LEN])
{
	struct noise_responder *r;

	*out = NULL;
	if (sodium_init() < 0)
		return -EIO;
	/*
	 * Guard pages around it, wiped by sodium_free(). sodium_malloc() also
	 * mlocks, but ignores failure; lock again to know it held (it must not
	 * reach swap or a core dump).
	 */
	r = sodium_malloc(sizeof(*r));
	if (!r)
		return -ENOMEM;
	if (sodium_mlock(r, sizeof(*r))) {
		sodium_free(r);
		return -ENOMEM;
	}
	memcpy(r->private_key, private_key, NOISE_KEY_LEN);
	if (crypto_scalarmult_base(r->public_key, r->private_key)) {
		sodium_free(r);
		return -EINVAL;
	}
	precompute(&r->fixed, r->public_key);
	/* Nothing writes it again: a stray write faults instead of leaking. */
	sodium_mprotect_readonly(r);
	*out = r;
	return 0;
}

void noise_responder_free(struct noise_responder *r)
{
	if (r)
		sodium_free(r);
}

void noise_responder_public_key(const struct noise_responder *r,
				uint8_t out[static NOISE_KEY_LEN])
{
	memcpy(out, r->public_key, NOISE_KEY_LEN);
}

void noise_state_wipe(struct noise_state *st)
{
	sodium_memzero(st, sizeof(*st));
}

enum noise_status noise_check_shape(const uint8_t *msg, size_t len)
{
	/* Type 1 is a little-endian u32: three reserved bytes must be zero. */
	if (!msg || len != NOISE_INITIATION_LEN ||
	    msg[0] != WG_MSG_INITIATION || msg[1] || msg[2] || msg[3])
		return NOISE_ERR_SHAPE;
	return NOISE_OK;
}

static int __noise_wur mac1(uint8_t out[static NOISE_MAC_LEN],
			    const struct fixed *f,
			    const uint8_t msg[static NOISE_INITIATION_LEN])
{
	return noise_mac_with(out, &f->mac1, msg, OFF_MAC1);
}

enum noise_status noise_check_mac1(const struct noise_responder *r,
				   const uint8_t msg[static NOISE_INITIATION_LEN])
{
	uint8_t mac[NOISE_MAC_LEN];

	if (mac1(mac, &r->fixed, msg))
		return NOISE_ERR_INTERNAL;
	/* Constant time, though mac1 is not secret: a habit, costs nothing. */
	if (crypto_verify_16(mac, msg + OFF_MAC1))
		return NOISE_ERR_MAC1;
	return NOISE_OK;
}

/* Temporaries of one stage, wiped together on every path. */
struct scratch {
	uint8_t dh[NOISE_KEY_LEN];
	uint8_t key[NOISE_KEY_LEN];
	uint8_t chaining_key[NOISE_HASH_LEN];
	uint8_t hash[NOISE_HASH_LEN];
};

enum noise_status noise_identify(const struct noise_responder *r,
				 const uint8_t msg[static NOISE_INITIATION_LEN],
				 struct noise_state *st,
				 uint8_t initiator_public[static NOISE_KEY_LEN])
{
	const uint8_t *e = msg + OFF_EPHEMERAL;
	struct scratch s;
	enum noise_status ret;

	/* Hi = HASH(H0 ‖ E_pub); Ci = KDF1(C0, E_pub) */
	noise_hash2(st->hash, r->fixed.hash, NOISE_HASH_LEN, e, NOISE_KEY_LEN);
	ret = NOISE_ERR_INTERNAL;
	if (noise_kdf_with(s.chaining_key, NULL, NULL, &r->fixed.chaining_key,
			   e, NOISE_KEY_LEN))
		goto out;
	/*
	 * DH(Sr, E_pub). libsodium fails on an all-zero result, which is what a
	 * low-order point gives: such a key would make k public (paper §5.4.2,
	 * and the kernel's curve25519() check).
	 */
	ret = NOISE_ERR_LOW_ORDER;
	if (crypto_scalarmult(s.dh, r->private_key, e))
		goto out;
	/* (Ci, k) = KDF2(Ci, DH); the state takes the new chaining key. */
	ret = NOISE_ERR_INTERNAL;
	if (noise_kdf(st->chaining_key, s.key, NULL, s.chaining_key, s.dh,
		      NOISE_KEY_LEN))
		goto out;
	ret = NOISE_ERR_STATIC;
	if (noise_aead_open(st->initiator_static, s.key, 0, msg + OFF_STATIC,
			    NOISE_KEY_LEN, st->hash, NOISE_HASH_LEN))
		goto out;
	/*
	 * st->hash stays the hash before encrypted_static: the next one,
	 * HASH(Hi ‖ static), is only needed to authenticate, and a caller that
	 * stops here should not pay for it.
	 */
	memcpy(initiator_public, st->initiator_static, NOISE_KEY_LEN);
	ret = NOISE_OK;
out:
	sodium_memzero(&s, sizeof(s));
	if (ret != NOISE_OK)
		noise_state_wipe(st);
	return ret;
}

enum noise_status noise_authenticate(const struct noise_responder *r,
				     const uint8_t msg[static NOISE_INITIATION_LEN],
				     struct noise_state *st,
				     const uint8_t *last_timestamp,
				     uint8_t timestamp_out[static NOISE_TIMESTAMP_LEN])
{
	uint8_t ts[NOISE_TIMESTAMP_LEN];
	struct scratch s;
	enum noise_status ret;

	/*
	 * DH(Sr, Si_pub): only the holder of Si's private key derives the same
	 * value, so only they can seal the timestamp.
	 */
	ret = NOISE_ERR_LOW_ORDER;
	if (crypto_scalarmult(s.dh, r->private_key, st->initiator_static))
		goto out;
	ret = NOISE_ERR_INTERNAL;
	if (noise_kdf(s.chaining_key, s.key, NULL, st->chaining_key, s.dh,
		      NOISE_KEY_LEN))
		goto out;
	/* Hi = HASH(Hi ‖ static): the associated data of the timestamp. */
	noise_hash2(s.hash, st->hash, NOISE_HASH_LEN, msg + OFF_STATIC,
		    STATIC_SEALED_LEN);
	ret = NOISE_ERR_TIMESTAMP;
	if (noise_aead_open(ts, s.key, 0, msg + OFF_TIMESTAMP,
			    NOISE_TIMESTAMP_LEN, s.hash, NOISE_HASH_LEN))
		goto out;
	memcpy(timestamp_out, ts, NOISE_TIMESTAMP_LEN);
	/* Paper §5.1: a replayed initiation carries a timestamp not newer. */
	ret = NOISE_OK;
	if (last_timestamp && noise_timestamp_cmp(ts, last_timestamp) <= 0)
		ret = NOISE_ERR_REPLAY;
out:
	sodium_memzero(&s, sizeof(s));
	sodium_memzero(ts, sizeof(ts));
	noise_state_wipe(st);
	return ret;
}

enum noise_status noise_decode(const struct noise_responder *r,
			       const uint8_t *msg, size_t len,
			       const uint8_t *last_timestamp,
			       uint8_t initiator_public[static NOISE_KEY_LEN],
			       uint8_t timestamp_out[static NOISE_TIMESTAMP_LEN])
{
	struct noise_state st;
	enum noise_status ret;

	ret = noise_check_shape(msg, len);
	if (ret)
		return ret;
	ret = noise_check_mac1(r, msg);
	if (ret)
		return ret;
	ret = noise_identify(r, msg, &st, initiator_public);
	if (ret)
		return ret;
	return noise_authenticate(r, msg, &st, last_timestamp, timestamp_out);
}

int noise_timestamp_cmp(const uint8_t a[static NOISE_TIMESTAMP_LEN],
			const uint8_t b[static NOISE_TIMESTAMP_LEN])
{
	/* Big-endian fields: byte order is numeric order. Not secret. */
	return memcmp(a, b, NOISE_TIMESTAMP_LEN);
}

void noise_timestamp_now(uint8_t out[static NOISE_TIMESTAMP_LEN])
{
	struct timespec now;
	uint64_t sec;
	uint32_t ns;
	int i;

	clock_gettime(CLOCK_REALTIME, &now);
	sec = TAI64_EPOCH + (uint64_t)now.tv_sec;
	ns = (uint32_t)now.tv_nsec;
	for (i = 0; i < 8; i++)
		out[i] = (uint8_t)(sec >> (56 - 8 * i));
	for (i = 0; i < 4; i++)
		out[8 + i] = (uint8_t)(ns >> (24 - 8 * i));
}

double noise_timestamp_unix(const uint8_t ts[static NOISE_TIMESTAMP_LEN])
{
	uint64_t sec = 0;
	uint32_t ns = 0;
	int i;

	for (i = 0; i < 8; i++)
		sec = sec << 8 | ts[i];
	for (i = 0; i < 4; i++)
		ns = ns << 8 | ts[8 + i];
	return (double)(int64_t)(sec - TAI64_EPOCH) + ns / 1e9;
}

int noise_initiator_new(struct noise_initiator **out,
			const uint8_t static_private[static NOISE_KEY_LEN],
			const uint8_t responder_public[static NOISE_KEY_LEN])
{
	struct noise_initiator *in;
	int ret;

	*out = NULL;
	if (sodium_init() < 0)
		return -EIO;
	in = calloc(1, sizeof(*in));
	if (!in)
		return -ENOMEM;
	memcpy(in->static_private, static_private, NOISE_KEY_LEN);
	memcpy(in->responder_public, responder_public, NOISE_KEY_LEN);
	ret = -EINVAL;
	if (crypto_scalarmult_base(in->static_public, in->static_private))
		goto err;
	memcpy(in->claimed_public, in->static_public, NOISE_KEY_LEN);
	/* A low-order responder key makes DH(Si, Sr) zero: refuse it. */
	if (crypto_scalarmult(in->static_static, in->static_private,
			      responder_public))
		goto err;
	precompute(&in->fixed, responder_public);
	*out = in;
	return 0;
err:
	noise_initiator_free(in);
	return ret;
}

void noise_initiator_free(struct noise_initiator *in)
{
	if (!in)
		return;
	sodium_memzero(in, sizeof(*in));
	free(in);
}

void noise_initiator_forge_identity(struct noise_initiator *in,
				    const uint8_t victim_public[static NOISE_KEY_LEN])
{
	memcpy(in->claimed_public, victim_public, NOISE_KEY_LEN);
}

/* An order-8 point of Curve25519 (the libsodium and kernel blocklists). */
static const uint8_t low_order_point[NOISE_KEY_LEN] = {
	0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3,
	0xfa, 0xf1, 0x9f, 0xc4, 0x6a, 0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32,
	0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49, 0xb8, 0x00,
};

/* Builds message 1; with hs, keeps what the response needs in it. */
static int build(struct noise_initiator *in, struct noise_handshake *hs,
		 uint32_t sender_index,
		 const uint8_t timestamp[static NOISE_TIMESTAMP_LEN],
		 unsigned int defects, uint8_t out[static NOISE_INITIATION_LEN])
{
	struct {
		uint8_t e_priv[NOISE_KEY_LEN];
		uint8_t dh[NOISE_KEY_LEN];
		uint8_t key[NOISE_KEY_LEN];
		uint8_t chaining_key[NOISE_HASH_LEN];
		uint8_t hash[NOISE_HASH_LEN];
	} s;
	uint8_t *e = out + OFF_EPHEMERAL;
	int i, ret = -EINVAL;

	memset(out, 0, NOISE_INITIATION_LEN);
	out[OFF_TYPE] = WG_MSG_INITIATION;
	for (i = 0; i < 4; i++)
		out[OFF_SENDER + i] = (uint8_t)(sender_index >> (8 * i));

	randombytes_buf(s.e_priv, sizeof(s.e_priv));
	if (crypto_scalarmult_base(e, s.e_priv))
		goto out;
	/* The responder's DH with this point is zero; ours stays as it was. */
	if (defects & NOISE_DEFECT_LOW_ORDER_EPHEMERAL)
		memcpy(e, low_order_point, NOISE_KEY_LEN);

	noise_hash2(s.hash, in->fixed.hash, NOISE_HASH_LEN, e, NOISE_KEY_LEN);
	if (noise_kdf_with(s.chaining_key, NULL, NULL,
			   &in->fixed.chaining_key, e, NOISE_KEY_LEN))
		goto out;
	if (crypto_scalarmult(s.dh, s.e_priv, in->responder_public))
		goto out;
	if (noise_kdf(s.chaining_key, s.key, NULL, s.chaining_key, s.dh,
		      NOISE_KEY_LEN))
		goto out;
	if (noise_aead_seal(out + OFF_STATIC, s.key, 0, in->claimed_public,
			    NOISE_KEY_LEN, s.hash, NOISE_HASH_LEN))
		goto out;
	if (defects & NOISE_DEFECT_STATIC)
		out[OFF_STATIC + 7] ^= 0x01;
	noise_hash2(s.hash, s.hash, NOISE_HASH_LEN, out + OFF_STATIC,
		    STATIC_SEALED_LEN);
	if (noise_kdf(s.chaining_key, s.key, NULL, s.chaining_key,
		      in->static_static, NOISE_KEY_LEN))
		goto out;
	if (noise_aead_seal(out + OFF_TIMESTAMP, s.key, 0, timestamp,
			    NOISE_TIMESTAMP_LEN, s.hash, NOISE_HASH_LEN))
		goto out;
	if (defects & NOISE_DEFECT_TIMESTAMP)
		out[OFF_TIMESTAMP + 3] ^= 0x01;
	if (mac1(out + OFF_MAC1, &in->fixed, out))
		goto out;
	if (defects & NOISE_DEFECT_MAC1)
		out[OFF_MAC1] ^= 0x01;
	/* mac2 stays zero: no cookie was received (paper §5.4.7). */
	if (hs) {
		memcpy(hs->ephemeral_private, s.e_priv, NOISE_KEY_LEN);
		memcpy(hs->chaining_key, s.chaining_key, NOISE_HASH_LEN);
		noise_hash2(hs->hash, s.hash, NOISE_HASH_LEN,
			    out + OFF_TIMESTAMP, TIMESTAMP_SEALED_LEN);
		hs->sender_index = sender_index;
	}
	ret = 0;
out:
	sodium_memzero(&s, sizeof(s));
	if (ret)
		sodium_memzero(out, NOISE_INITIATION_LEN);
	return ret;
}

int noise_build_initiation(struct noise_initiator *in, uint32_t sender_index,
			   const uint8_t timestamp[static NOISE_TIMESTAMP_LEN],
			   unsigned int defects,
			   uint8_t out[static NOISE_INITIATION_LEN])
{
	return build(in, NULL, sender_index, timestamp, defects, out);
}

void noise_handshake_wipe(struct noise_handshake *hs)
{
	sodium_memzero(hs, sizeof(*hs));
}

void noise_keypair_wipe(struct noise_keypair *kp)
{
	sodium_memzero(kp, sizeof(*kp));
}

int noise_initiator_begin(struct noise_initiator *in,
			  struct noise_handshake *hs, uint32_t sender_index,
			  const uint8_t timestamp[static NOISE_TIMESTAMP_LEN],
			  uint8_t out[static NOISE_INITIATION_LEN])
{
	int ret = build(in, hs, sender_index, timestamp, 0, out);

	if (ret)
		noise_handshake_wipe(hs);
	return ret;
}

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static void put_le32(uint8_t *p, uint32_t v)
{
	int i;

	for (i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static const uint8_t zero_psk[NOISE_KEY_LEN];

int noise_initiator_finish(struct noise_initiator *in,
			   struct noise_handshake *hs, const uint8_t *msg,
			   size_t len, const uint8_t *psk,
			   struct noise_keypair *kp)
{
	struct {
		uint8_t dh[NOISE_KEY_LEN];
		uint8_t key[NOISE_KEY_LEN];
		uint8_t tau[NOISE_HASH_LEN];
		uint8_t chaining_key[NOISE_HASH_LEN];
		uint8_t hash[NOISE_HASH_LEN];
		uint8_t mac_key[NOISE_HASH_LEN];
		uint8_t mac[NOISE_MAC_LEN];
	} s;
	const uint8_t *e = msg + R_OFF_EPHEMERAL;
	uint8_t empty[1];
	int ret = -EINVAL;

	memset(kp, 0, sizeof(*kp));
	if (!msg || len != NOISE_RESPONSE_LEN || msg[0] != WG_MSG_RESPONSE ||
	    msg[1] || msg[2] || msg[3] ||
	    get_le32(msg + R_OFF_RECEIVER) != hs->sender_index)
		goto out;
	/* The responder keys mac1 with our public key (§5.4.4). */
	noise_hash2(s.mac_key, LABEL_MAC1, sizeof(LABEL_MAC1) - 1,
		    in->static_public, NOISE_KEY_LEN);
	if (noise_blake2s(s.mac, NOISE_MAC_LEN, msg, R_OFF_MAC1, s.mac_key,
			  NOISE_HASH_LEN) ||
	    crypto_verify_16(s.mac, msg + R_OFF_MAC1))
		goto out;

	ret = -EBADMSG;
	noise_hash2(s.hash, hs->hash, NOISE_HASH_LEN, e, NOISE_KEY_LEN);
	if (noise_kdf(s.chaining_key, NULL, NULL, hs->chaining_key, e,
		      NOISE_KEY_LEN))
		goto out;
	/* A low-order Er gives a zero DH: refuse it, as for the initiation. */
	if (crypto_scalarmult(s.dh, hs->ephemeral_private, e) ||
	    noise_kdf(s.chaining_key, NULL, NULL, s.chaining_key, s.dh,
		      NOISE_KEY_LEN))
		goto out;
	if (crypto_scalarmult(s.dh, in->static_private, e) ||
	    noise_kdf(s.chaining_key, NULL, NULL, s.chaining_key, s.dh,
		      NOISE_KEY_LEN))
		goto out;
	if (noise_kdf(s.chaining_key, s.tau, s.key, s.chaining_key,
		      psk ? psk : zero_psk, NOISE_KEY_LEN))
		goto out;
	noise_hash2(s.hash, s.hash, NOISE_HASH_LEN, s.tau, NOISE_HASH_LEN);
	/* The empty AEAD proves the responder derived the same keys. */
	if (noise_aead_open(empty, s.key, 0, msg + R_OFF_EMPTY, 0, s.hash,
			    NOISE_HASH_LEN))
		goto out;
	/* The initiator sends with T1 and receives with T2 (§5.4.5). */
	if (noise_kdf(kp->send_key, kp->receive_key, NULL, s.chaining_key,
		      empty, 0))
		goto out;
	kp->local_index = hs->sender_index;
	kp->remote_index = get_le32(msg + R_OFF_SENDER);
	kp->send_counter = 0;
	ret = 0;
out:
	sodium_memzero(&s, sizeof(s));
	noise_handshake_wipe(hs);
	if (ret)
		noise_keypair_wipe(kp);
	return ret;
}

int noise_seal_transport(struct noise_keypair *kp, const uint8_t *plain,
			 size_t len, uint8_t *out, size_t outlen)
{
	size_t total = NOISE_TRANSPORT_HEADER_LEN + len + NOISE_AEAD_TAG_LEN;
	uint8_t dummy[1] = { 0 };
	int i;

	if (len % 16 || outlen < total)
		return -EINVAL;
	/* REJECT_AFTER_MESSAGES is far below this; never wrap the nonce. */
	if (kp->send_counter == UINT64_MAX)
		return -ERANGE;
	memset(out, 0, NOISE_TRANSPORT_HEADER_LEN);
	out[0] = WG_MSG_DATA;
	put_le32(out + T_OFF_RECEIVER, kp->remote_index);
	for (i = 0; i < 8; i++)
		out[T_OFF_COUNTER + i] = (uint8_t)(kp->send_counter >> (8 * i));
	if (noise_aead_seal(out + T_OFF_DATA, kp->send_key, kp->send_counter,
			    len ? plain : dummy, len, NULL, 0))
		return -EIO;
	kp->send_counter++;
	return (int)total;
}

int noise_open_transport(const struct noise_keypair *kp, const uint8_t *msg,
			 size_t len, uint8_t *out, uint64_t *counter)
{
	uint64_t ctr = 0;
	uint8_t dummy[1];
	size_t plain;
	int i;

	if (!msg || len < NOISE_KEEPALIVE_LEN || msg[0] != WG_MSG_DATA ||
	    msg[1] || msg[2] || msg[3] ||
	    get_le32(msg + T_OFF_RECEIVER) != kp->local_index)
		return -EINVAL;
	for (i = 7; i >= 0; i--)
		ctr = ctr << 8 | msg[T_OFF_COUNTER + i];
	plain = len - NOISE_KEEPALIVE_LEN;
	if (noise_aead_open(plain ? out : dummy, kp->receive_key, ctr,
			    msg + T_OFF_DATA, plain, NULL, 0))
		return -EBADMSG;
	if (counter)
		*counter = ctr;
	return (int)plain;
}
