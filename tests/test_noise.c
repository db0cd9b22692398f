// SPDX-License-Identifier: MIT
/*
 * Unit tests of the Noise module: the primitives against independently
 * computed values, the decoder against the initiator (round trip and one
 * rejection row per way a message can be wrong), and the input parser.
 * Interop with a real WireGuard is in tests/test_noise.sh.
 *
 * Expected values marked "Python" were computed when the test was written,
 * with CPython's hashlib.blake2s and hmac.new(key, msg, hashlib.blake2s)
 * (standard RFC 2104 HMAC with BLAKE2s' 64-byte block), not with this code.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "check.h"
#include "noise.h"
#include "noise_crypto.h"
#include "noise_input.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static double fabs_(double x)
{
	return x < 0 ? -x : x;
}

static void unhex(uint8_t *out, size_t len, const char *hex)
{
	size_t n = 0;

	if (sodium_hex2bin(out, len, hex, strlen(hex), NULL, &n, NULL) ||
	    n != len) {
		fprintf(stderr, "bad hex in test table: %s\n", hex);
		exit(2);
	}
}

/* Bytes start, start + 1, ... (the Python side used the same). */
static void seq(uint8_t *out, size_t len, unsigned int start)
{
	size_t i;

	for (i = 0; i < len; i++)
		out[i] = (uint8_t)(start + i);
}

static int eq_hex(const uint8_t *got, size_t len, const char *want_hex)
{
	uint8_t want[64];

	unhex(want, len, want_hex);
	if (memcmp(got, want, len)) {
		char h[129];

		sodium_bin2hex(h, sizeof(h), got, len);
		printf("  got  %s\n  want %s\n", h, want_hex);
		return 0;
	}
	return 1;
}

/* RFC 7693 Appendix E: deterministic input for the self-test. */
static void selftest_seq(uint8_t *out, size_t len, uint32_t seed)
{
	uint32_t t, a = 0xDEAD4BAD * seed, b = 1;
	size_t i;

	for (i = 0; i < len; i++) {
		t = a + b;
		a = b;
		b = t;
		out[i] = (uint8_t)(t >> 24);
	}
}

static void test_blake2s(void)
{
	static const size_t md_len[] = { 16, 20, 28, 32 };
	static const size_t in_len[] = { 0, 3, 64, 65, 255, 1024 };
	uint8_t in[1024], md[32], key[32], hashes[4 * 6 * 2 * 32];
	size_t i, j, off = 0;
	int ok;

	/* RFC 7693 Appendix B: BLAKE2s-256("abc"). */
	ok = !noise_blake2s(md, 32, "abc", 3, NULL, 0) &&
	     eq_hex(md, 32, "508c5e8c327c14e2e1a72ba34eeb452f"
			    "37458b209ed63a294d999b4c86675982");
	CHECK("blake2s_rfc7693_abc", ok, "BLAKE2s-256(\"abc\") differs");

	/*
	 * RFC 7693 Appendix E: keyed and unkeyed hashes of several lengths,
	 * hashed together ("grand hash").
	 */
	for (i = 0; i < ARRAY_SIZE(md_len); i++) {
		for (j = 0; j < ARRAY_SIZE(in_len); j++) {
			selftest_seq(in, in_len[j], (uint32_t)in_len[j]);
			ok = !noise_blake2s(hashes + off, md_len[i], in,
					    in_len[j], NULL, 0);
			off += md_len[i];
			selftest_seq(key, md_len[i], (uint32_t)md_len[i]);
			ok &= !noise_blake2s(hashes + off, md_len[i], in,
					     in_len[j], key, md_len[i]);
			off += md_len[i];
			if (!ok)
				break;
		}
	}
	ok = ok && !noise_blake2s(md, 32, hashes, off, NULL, 0) &&
	     eq_hex(md, 32, "6a411f08ce25adcdfb02aba641451cec"
			    "53c598b24f4fc787fbdc88797f4c1dfe");
	CHECK("blake2s_rfc7693_selftest", ok, "grand hash differs");

	/* BLAKE2 reference KAT (blake2s-kat.txt), key 00..1f; Python agrees. */
	seq(key, 32, 0);
	seq(in, 255, 0);
	ok = !noise_blake2s(md, 32, in, 0, key, 32) &&
	     eq_hex(md, 32, "48a8997da407876b3d79c0d92325ad3b"
			    "89cbb754d86ab71aee047ad345fd2c49");
	ok = ok && !noise_blake2s(md, 32, in, 3, key, 32) &&
	     eq_hex(md, 32, "1d220dbe2ee134661fdf6d9e74b41704"
			    "710556f2f6e5a091b227697445dbea6b");
	ok = ok && !noise_blake2s(md, 32, in, 255, key, 32) &&
	     eq_hex(md, 32, "3fb735061abc519dfe979e54c1ee5bfa"
			    "d0a9d858b3315bad34bde999efd724dd");
	CHECK("blake2s_keyed_kat", ok, "keyed BLAKE2s differs");

	ok = noise_blake2s(md, 33, in, 3, NULL, 0) == -EINVAL &&
	     noise_blake2s(md, 0, in, 3, NULL, 0) == -EINVAL &&
	     noise_blake2s(md, 32, in, 3, key, 33) == -EINVAL;
	CHECK("blake2s_bad_lengths", ok, "out-of-range lengths accepted");
	printf("# BLAKE2s implementation: %s\n", noise_blake2s_impl());
}

static void test_hmac_kdf(void)
{
	/* Key bytes 0x40.., message bytes 0x80.. (Python). */
	static const struct {
		size_t keylen, msglen;
		const char *want;
	} hmac_rows[] = {
		{ 32, 0, "38f6b1b1c8088754979e5df7ecf0d718faa6cca09cb6092a0a25290b7af5530b" },
		{ 32, 1, "814907142ca0089710ee432d0e1e6ab88ba4932ec2607829a6e80485666bbb32" },
		{ 32, 32, "1ce7436c7963c64cb0fc4eec0efb51cad75e1e261f17e9e0ee8a6a6cd4d5b6a7" },
		{ 32, 33, "55e7b46133885b4643f1dd2248b88d09f958c11060f979f0b1db4ea51b31f26d" },
		{ 32, 64, "714546ddaf9229b04151226ab0fe90640155f3faa746cae508bd5f6199ca2126" },
		{ 32, 65, "6de91c2f86c94e4b24e6b24363c952a0117a824bd8497faf6730bedbde57a45e" },
		{ 32, 200, "18ddff43fd1c2d8c00ba6746d5629583696ce285fc181f9bfee2cb796832bc2a" },
		{ 0, 10, "a096701ccfda2b798e26e0ded51ccd257b9d80ac8384f1c74a4af51ae71f562d" },
		{ 64, 10, "df3c2bc258a4dcc4817ae439431a0c72a554a4e1b143f776e20fa4d22c35f7a1" },
		{ 16, 100, "ffee3e109447ca8ad430b446130836ee9a397d1323eb7b9b563c2683d3410512" },
	};
	/* KDF3 with key bytes 0x10.., input bytes 0xa0.. (Python). */
	static const struct {
		size_t inlen;
		const char *t1, *t2, *t3;
	} kdf_rows[] = {
		{ 0, "65c47d883565e61a3d86de1df89e1224a6604cce0893b910dc1931309fec6359",
		  "dc11ee10b31d8b21b782bd21d804bbaaf943d34c9e01786fe06777bf4e90d214",
		  "1b1da7a05bfa5a1e0cb3bae4a4ca0bce3a0cf4489c8c671b5486ca4c04e45e3c" },
		{ 32, "7b831dd1090774985f5c78c039e56a2a706b336f9d4d0fcb4b1f3eefb1a94095",
		  "85f8e26f7e0d484e77bcde6ddeecd7b06fcbe50268a6762043ea1bcd00d1fbc5",
		  "1eae2fb5b23270595dd2df542d0608ee7a0251698fbf1ceea5be5240f722eee9" },
		{ 65, "5b563928328b16d5d4907af1a3fc3fc805770eb50849c2e1182b27f6fd75b541",
		  "0a45ac2ee04bc0d997bc01fa114ef74ba05247a2cf53c0f4159ac08de1e6eb86",
		  "62fc50a581da444a5c1b79fc4db3f9c0ffdebecec7623376cd0e16ed43bdac7a" },
	};
	uint8_t key[64], msg[200], out[32], t1[32], t2[32], t3[32], t1b[32];
	char name[64];
	size_t i;
	int ok;

	for (i = 0; i < ARRAY_SIZE(hmac_rows); i++) {
		seq(key, hmac_rows[i].keylen, 0x40);
		seq(msg, hmac_rows[i].msglen, 0x80);
		snprintf(name, sizeof(name), "hmac_blake2s_key%zu_msg%zu",
			 hmac_rows[i].keylen, hmac_rows[i].msglen);
		ok = !noise_hmac(out, key, hmac_rows[i].keylen, msg,
				 hmac_rows[i].msglen) &&
		     eq_hex(out, 32, hmac_rows[i].want);
		CHECK(name, ok, "HMAC differs from Python's");
	}
	/* The same rows with a prepared key (pad blocks compressed ahead). */
	for (i = 0; i < ARRAY_SIZE(hmac_rows); i++) {
		struct noise_hmac_key k;

		if (hmac_rows[i].keylen != 32)
			continue;
		seq(key, 32, 0x40);
		seq(msg, hmac_rows[i].msglen, 0x80);
		snprintf(name, sizeof(name), "hmac_prepared_key_msg%zu",
			 hmac_rows[i].msglen);
		noise_hmac_key_init(&k, key);
		ok = EXPECT(k.absorbed, "pad blocks not absorbed (fallback)") &&
		     !noise_hmac_with(out, &k, msg, hmac_rows[i].msglen) &&
		     eq_hex(out, 32, hmac_rows[i].want);
		/* The fallback path gives the same. */
		k.absorbed = 0;
		ok = ok && !noise_hmac_with(out, &k, msg, hmac_rows[i].msglen) &&
		     eq_hex(out, 32, hmac_rows[i].want);
		CHECK(name, ok, "prepared HMAC differs from Python's");
	}
	CHECK("hmac_blake2s_long_key_refused",
	      noise_hmac(out, key, 65, msg, 1) == -EINVAL, "65-byte key accepted");

	seq(key, 32, 0x10);
	for (i = 0; i < ARRAY_SIZE(kdf_rows); i++) {
		seq(msg, kdf_rows[i].inlen, 0xa0);
		snprintf(name, sizeof(name), "kdf_input%zu", kdf_rows[i].inlen);
		ok = !noise_kdf(t1, t2, t3, key, msg, kdf_rows[i].inlen) &&
		     eq_hex(t1, 32, kdf_rows[i].t1) &&
		     eq_hex(t2, 32, kdf_rows[i].t2) &&
		     eq_hex(t3, 32, kdf_rows[i].t3);
		/* KDF1 is T1 of KDF3, and the output may alias the key. */
		memcpy(t1b, key, 32);
		ok = ok && !noise_kdf(t1b, NULL, NULL, t1b, msg,
				      kdf_rows[i].inlen) &&
		     !memcmp(t1b, t1, 32);
		CHECK(name, ok, "KDF differs from Python's");
		{
			struct noise_hmac_key k;

			snprintf(name, sizeof(name), "kdf_prepared_input%zu",
				 kdf_rows[i].inlen);
			noise_hmac_key_init(&k, key);
			ok = !noise_kdf_with(t1, t2, t3, &k, msg,
					     kdf_rows[i].inlen) &&
			     eq_hex(t1, 32, kdf_rows[i].t1) &&
			     eq_hex(t2, 32, kdf_rows[i].t2) &&
			     eq_hex(t3, 32, kdf_rows[i].t3) &&
			     !noise_kdf_with(t1b, NULL, NULL, &k, msg,
					     kdf_rows[i].inlen) &&
			     !memcmp(t1b, t1, 32);
			CHECK(name, ok, "prepared KDF differs from Python's");
		}
	}

	/* Keyed BLAKE2s-128 (mac1's MAC), key 00..1f, input 0x80.. (Python). */
	{
		static const struct {
			size_t len;
			const char *want;
		} mac_rows[] = {
			{ 0, "9536f9b267655743dee97b8a670f9f53" },
			{ 1, "4b2d9ea0b272e7b04f7829d6382b15e0" },
			{ 64, "a59e8ada6465484c18f69211150e4fba" },
			{ 65, "b2b2377a71074b04163095e7955dbd24" },
			{ 116, "f4d5d1884fb8d1ff73ef910be459e26f" },
			{ 200, "5c08cf216d16daf44ea180a27dbfb200" },
		};
		struct noise_mac_key mk;
		int absorbed;

		seq(key, 32, 0);
		noise_mac_key_init(&mk, key);
		absorbed = mk.absorbed;
		CHECK("mac_prepared_key_absorbed", absorbed,
		      "key block not absorbed (fallback in use)");
		for (i = 0; i < ARRAY_SIZE(mac_rows); i++) {
			seq(msg, mac_rows[i].len, 0x80);
			snprintf(name, sizeof(name), "mac_blake2s128_len%zu",
				 mac_rows[i].len);
			mk.absorbed = absorbed;
			ok = !noise_blake2s(out, 16, msg, mac_rows[i].len, key,
					    32) &&
			     eq_hex(out, 16, mac_rows[i].want);
			ok = ok &&
			     !noise_mac_with(out, &mk, msg, mac_rows[i].len) &&
			     eq_hex(out, 16, mac_rows[i].want);
			mk.absorbed = 0;
			ok = ok &&
			     !noise_mac_with(out, &mk, msg, mac_rows[i].len) &&
			     eq_hex(out, 16, mac_rows[i].want);
			CHECK(name, ok, "keyed BLAKE2s-128 differs from Python's");
		}
	}

	/* The first chaining key and hash (paper §5.4.2; Python). */
	noise_hash2(out, "Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s", 37, NULL, 0);
	ok = eq_hex(out, 32, "60e26daef327efc02ec335e2a025d2d016eb4206f87277f52d38d1988b78cd36");
	noise_hash2(out, out, 32, "WireGuard v1 zx2c4 Jason@zx2c4.com", 34);
	ok &= eq_hex(out, 32, "2211b361081ac566691243db458ad5322d9c6c662293e8b70ee19c65ba079ef3");
	CHECK("noise_initial_chaining_key_and_hash", ok, "C0/H0 differ");
}

static void test_aead(void)
{
	/* RFC 8439 §2.8.2's key and AAD, with WireGuard's nonce layout. */
	uint8_t key[32], ad[12], plain[40], sealed[56], opened[40];
	uint8_t n[12] = { 0 }, ref[56];
	int ok;

	seq(key, 32, 0x80);
	seq(ad, 12, 0x50);
	seq(plain, 40, 0);
	/* counter 0x0102030405060708 -> nonce 00000000 0807060504030201 */
	n[4] = 8, n[5] = 7, n[6] = 6, n[7] = 5, n[8] = 4, n[9] = 3, n[10] = 2,
	n[11] = 1;
	ok = !noise_aead_seal(sealed, key, 0x0102030405060708ULL, plain, 40, ad,
			      12) &&
	     !crypto_aead_chacha20poly1305_ietf_encrypt(ref, NULL, plain, 40,
							ad, 12, NULL, n, key) &&
	     !memcmp(sealed, ref, sizeof(ref));
	ok = ok && !noise_aead_open(opened, key, 0x0102030405060708ULL, sealed,
				    40, ad, 12) &&
	     !memcmp(opened, plain, 40);
	sealed[3] ^= 1;
	ok = ok && noise_aead_open(opened, key, 0x0102030405060708ULL, sealed,
				   40, ad, 12) == -EBADMSG &&
	     sodium_is_zero(opened, 40);
	CHECK("aead_nonce_layout_and_forgery", ok, "AEAD wrapper misbehaves");
}

/* A responder, an initiator aimed at it, and one valid message. */
struct pair {
	uint8_t r_priv[32], r_pub[32], i_priv[32], i_pub[32];
	struct noise_responder *r;
	struct noise_initiator *in;
	uint8_t ts[NOISE_TIMESTAMP_LEN];
	uint8_t msg[NOISE_INITIATION_LEN];
};

static int pair_new(struct pair *p, unsigned int defects)
{
	randombytes_buf(p->r_priv, 32);
	randombytes_buf(p->i_priv, 32);
	if (crypto_scalarmult_base(p->i_pub, p->i_priv) ||
	    noise_responder_new(&p->r, p->r_priv))
		return -1;
	noise_responder_public_key(p->r, p->r_pub);
	if (noise_initiator_new(&p->in, p->i_priv, p->r_pub))
		return -1;
	noise_timestamp_now(p->ts);
	return noise_build_initiation(p->in, randombytes_random(), p->ts,
				      defects, p->msg);
}

static void pair_free(struct pair *p)
{
	noise_initiator_free(p->in);
	noise_responder_free(p->r);
	memset(p, 0, sizeof(*p));
}

/* What a sender who knows the responder's public key can always do. */
static void fix_mac1(uint8_t msg[NOISE_INITIATION_LEN],
		     const uint8_t r_pub[32])
{
	uint8_t key[32];

	noise_hash2(key, "mac1----", 8, r_pub, 32);
	if (noise_blake2s(msg + 116, 16, msg, 116, key, 32))
		abort();
}

static void test_round_trip(void)
{
	uint8_t pub[32], ts[NOISE_TIMESTAMP_LEN], priv_back[32];
	struct pair p;
	int i, bad = 0, n = 200;

	for (i = 0; i < n && !bad; i++) {
		enum noise_status st;

		if (pair_new(&p, 0)) {
			bad = EXPECT(0, "setup of pair %d", i);
			break;
		}
		/* Random timestamps too, not only now. */
		randombytes_buf(p.ts, sizeof(p.ts));
		if (noise_build_initiation(p.in, (uint32_t)i, p.ts, 0, p.msg))
			bad = !EXPECT(0, "build %d", i);
		st = noise_decode(p.r, p.msg, sizeof(p.msg), NULL, pub, ts);
		if (!EXPECT(st == NOISE_OK, "pair %d: %s", i, noise_status_str(st)) ||
		    !EXPECT(!memcmp(pub, p.i_pub, 32), "pair %d: key", i) ||
		    !EXPECT(!memcmp(ts, p.ts, sizeof(ts)), "pair %d: ts", i) ||
		    !EXPECT(p.msg[4] == (uint8_t)i && !p.msg[7], "sender index"))
			bad = 1;
		pair_free(&p);
	}
	CHECK("round_trip_random_keys", !bad, "%d of %d pairs", i, n);

	/* Fresh ephemerals: two messages from one initiator differ. */
	if (pair_new(&p, 0))
		abort();
	memcpy(priv_back, p.msg, 32);
	if (noise_build_initiation(p.in, 0, p.ts, 0, p.msg))
		abort();
	CHECK("initiator_fresh_ephemeral", memcmp(priv_back, p.msg, 32),
	      "same ephemeral twice");
	pair_free(&p);
}

static void test_stages(void)
{
	uint8_t pub[32], ts[NOISE_TIMESTAMP_LEN];
	struct noise_state st;
	struct pair p;
	int ok;

	if (pair_new(&p, 0))
		abort();
	ok = noise_check_shape(p.msg, sizeof(p.msg)) == NOISE_OK &&
	     noise_check_mac1(p.r, p.msg) == NOISE_OK &&
	     noise_identify(p.r, p.msg, &st, pub) == NOISE_OK &&
	     !memcmp(pub, p.i_pub, 32) &&
	     !memcmp(st.initiator_static, p.i_pub, 32);
	ok = ok && noise_authenticate(p.r, p.msg, &st, NULL, ts) == NOISE_OK &&
	     !memcmp(ts, p.ts, sizeof(ts)) &&
	     sodium_is_zero((void *)&st, sizeof(st));
	CHECK("stages_one_by_one_and_state_wiped", ok, "staged decode failed");

	/* A caller that stops after identify wipes the state itself. */
	ok = noise_identify(p.r, p.msg, &st, pub) == NOISE_OK &&
	     !sodium_is_zero((void *)&st, sizeof(st));
	noise_state_wipe(&st);
	ok = ok && sodium_is_zero((void *)&st, sizeof(st));
	/* A failed identify leaves nothing behind either. */
	p.msg[50] ^= 1;
	memset(&st, 0xa5, sizeof(st));
	ok = ok && noise_identify(p.r, p.msg, &st, pub) == NOISE_ERR_STATIC &&
	     sodium_is_zero((void *)&st, sizeof(st));
	CHECK("state_wipe_on_stop_and_failure", ok, "state not wiped");
	pair_free(&p);
}

/* Decode a whole message with no last timestamp, into pub and ts. */
#define DECODE(r, m) noise_decode(r, m, NOISE_INITIATION_LEN, NULL, pub, ts)

/* One row per way a message can be wrong. */
static void test_rejections(void)
{
	static const struct {
		const char *name;
		size_t off;     /* byte whose low bit is flipped */
		int fix_mac1;   /* sender recomputes mac1 afterwards */
		enum noise_status want;
	} flips[] = {
		{ "flip_type", 0, 1, NOISE_ERR_SHAPE },
		{ "flip_reserved1", 1, 1, NOISE_ERR_SHAPE },
		{ "flip_reserved3", 3, 1, NOISE_ERR_SHAPE },
		{ "flip_sender_index", 5, 0, NOISE_ERR_MAC1 },
		/* not covered by the handshake hash: only mac1 protects it */
		{ "flip_sender_index_fixed_mac1", 5, 1, NOISE_OK },
		{ "flip_ephemeral", 9, 0, NOISE_ERR_MAC1 },
		{ "flip_ephemeral_fixed_mac1", 9, 1, NOISE_ERR_STATIC },
		{ "flip_static", 41, 0, NOISE_ERR_MAC1 },
		{ "flip_static_fixed_mac1", 41, 1, NOISE_ERR_STATIC },
		{ "flip_static_tag_fixed_mac1", 87, 1, NOISE_ERR_STATIC },
		{ "flip_timestamp", 89, 0, NOISE_ERR_MAC1 },
		{ "flip_timestamp_fixed_mac1", 89, 1, NOISE_ERR_TIMESTAMP },
		{ "flip_timestamp_tag_fixed_mac1", 115, 1, NOISE_ERR_TIMESTAMP },
		{ "flip_mac1", 116, 0, NOISE_ERR_MAC1 },
		{ "flip_mac1_last", 131, 0, NOISE_ERR_MAC1 },
		/* mac2 matters only to a responder under load (cookies) */
		{ "flip_mac2", 140, 0, NOISE_OK },
	};
	static const struct {
		const char *name;
		unsigned int defects;
		enum noise_status want;
	} defects[] = {
		{ "defect_mac1", NOISE_DEFECT_MAC1, NOISE_ERR_MAC1 },
		{ "defect_static", NOISE_DEFECT_STATIC, NOISE_ERR_STATIC },
		{ "defect_timestamp", NOISE_DEFECT_TIMESTAMP, NOISE_ERR_TIMESTAMP },
		{ "defect_low_order_ephemeral", NOISE_DEFECT_LOW_ORDER_EPHEMERAL,
		  NOISE_ERR_LOW_ORDER },
	};
	uint8_t msg[NOISE_INITIATION_LEN + 1], pub[32], ts[12], last[12];
	struct noise_responder *other;
	struct noise_state st;
	enum noise_status got;
	struct pair p, victim;
	char name[80];
	size_t i;

	if (pair_new(&p, 0))
		abort();

	for (i = 0; i < ARRAY_SIZE(flips); i++) {
		memcpy(msg, p.msg, NOISE_INITIATION_LEN);
		msg[flips[i].off] ^= 1;
		if (flips[i].fix_mac1)
			fix_mac1(msg, p.r_pub);
		got = DECODE(p.r, msg);
		snprintf(name, sizeof(name), "reject_%s", flips[i].name);
		CHECK(name, got == flips[i].want, "got %s, want %s",
		      noise_status_str(got), noise_status_str(flips[i].want));
	}

	memcpy(msg, p.msg, NOISE_INITIATION_LEN);
	msg[NOISE_INITIATION_LEN] = 0;
	CHECK("reject_short", noise_decode(p.r, msg, 147, NULL, pub, ts) == NOISE_ERR_SHAPE,
	      "147 bytes accepted");
	CHECK("reject_long", noise_decode(p.r, msg, 149, NULL, pub, ts) == NOISE_ERR_SHAPE,
	      "149 bytes accepted");
	CHECK("reject_null", noise_decode(p.r, NULL, 148, NULL, pub, ts) == NOISE_ERR_SHAPE,
	      "NULL accepted");

	for (i = 0; i < ARRAY_SIZE(defects); i++) {
		if (noise_build_initiation(p.in, 7, p.ts, defects[i].defects,
					   msg))
			abort();
		got = DECODE(p.r, msg);
		snprintf(name, sizeof(name), "reject_%s", defects[i].name);
		CHECK(name, got == defects[i].want, "got %s, want %s",
		      noise_status_str(got), noise_status_str(defects[i].want));
	}

	/* Another responder: mac1 first, and past it the static cannot open. */
	{
		uint8_t k[32], other_pub[32];

		randombytes_buf(k, 32);
		if (noise_responder_new(&other, k))
			abort();
		noise_responder_public_key(other, other_pub);
		got = DECODE(other, p.msg);
		CHECK("reject_wrong_responder_key", got == NOISE_ERR_MAC1,
		      "got %s", noise_status_str(got));
		memcpy(msg, p.msg, NOISE_INITIATION_LEN);
		fix_mac1(msg, other_pub);
		got = DECODE(other, msg);
		CHECK("reject_wrong_responder_key_fixed_mac1",
		      got == NOISE_ERR_STATIC, "got %s", noise_status_str(got));
		noise_responder_free(other);
	}

	/*
	 * The attack step 4 exists for: claim a victim's key under one's own
	 * ephemeral. Identify believes it; authentication must not.
	 */
	if (pair_new(&victim, 0))
		abort();
	noise_initiator_forge_identity(p.in, victim.i_pub);
	if (noise_build_initiation(p.in, 9, p.ts, 0, msg))
		abort();
	got = noise_check_mac1(p.r, msg);
	if (!got)
		got = noise_identify(p.r, msg, &st, pub);
	CHECK("forgery_identify_sees_victim",
	      got == NOISE_OK && !memcmp(pub, victim.i_pub, 32), "got %s",
	      noise_status_str(got));
	got = got ? got : noise_authenticate(p.r, msg, &st, NULL, ts);
	CHECK("reject_victim_forgery", got == NOISE_ERR_TIMESTAMP, "got %s",
	      noise_status_str(got));
	got = DECODE(p.r, msg);
	CHECK("reject_victim_forgery_decode", got == NOISE_ERR_TIMESTAMP,
	      "got %s", noise_status_str(got));
	pair_free(&victim);
	noise_initiator_forge_identity(p.in, p.i_pub);

	/* Freshness: equal and older are replays, newer passes. */
	{
		static const struct {
			const char *name;
			int delta; /* last = ts + delta ns */
			enum noise_status want;
		} rows[] = {
			{ "replay_equal", 0, NOISE_ERR_REPLAY },
			{ "replay_older_by_1ns", 1, NOISE_ERR_REPLAY },
			{ "replay_older_by_1s", 1000000000, NOISE_ERR_REPLAY },
			{ "fresh_newer_by_1ns", -1, NOISE_OK },
		};
		uint8_t base[12] = { 0x40, 0, 0, 0, 0x6b, 0, 0, 0,
				     0x10, 0, 0, 0 };

		if (noise_build_initiation(p.in, 1, base, 0, msg))
			abort();
		for (i = 0; i < ARRAY_SIZE(rows); i++) {
			uint32_t ns = 0x10000000u + (uint32_t)rows[i].delta;

			memcpy(last, base, 12);
			if (rows[i].delta == 1000000000)
				last[7] = 1, ns = 0x10000000u;
			last[8] = (uint8_t)(ns >> 24);
			last[9] = (uint8_t)(ns >> 16);
			last[10] = (uint8_t)(ns >> 8);
			last[11] = (uint8_t)ns;
			memset(ts, 0, sizeof(ts));
			got = noise_decode(p.r, msg, NOISE_INITIATION_LEN, last,
					   pub, ts);
			snprintf(name, sizeof(name), "%s", rows[i].name);
			CHECK(name, got == rows[i].want && !memcmp(ts, base, 12),
			      "got %s, want %s", noise_status_str(got),
			      noise_status_str(rows[i].want));
		}
	}

	/*
	 * Every low-order (or non-canonical low-order) point as the ephemeral,
	 * with a correct mac1: the DH result is zero, which must be refused
	 * rather than used as a public key (libsodium's blocklist, plus the
	 * same points with bit 255 set, which X25519 ignores).
	 */
	{
		static const char *const points[] = {
			"0000000000000000000000000000000000000000000000000000000000000000",
			"0100000000000000000000000000000000000000000000000000000000000000",
			"e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
			"5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
			"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
			"edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
			"eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
			"0000000000000000000000000000000000000000000000000000000000000080",
			"e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b880",
			"edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
		};
		int bad = 0;

		for (i = 0; i < ARRAY_SIZE(points); i++) {
			memcpy(msg, p.msg, NOISE_INITIATION_LEN);
			unhex(msg + 8, 32, points[i]);
			fix_mac1(msg, p.r_pub);
			got = noise_decode(p.r, msg, NOISE_INITIATION_LEN, NULL,
					   pub, ts);
			if (!EXPECT(got == NOISE_ERR_LOW_ORDER, "point %s: %s",
				    points[i], noise_status_str(got)))
				bad = 1;
		}
		CHECK("reject_low_order_ephemerals", !bad, "see above");

		/* A low-order static key fails the second DH the same way. */
		unhex(pub, 32, points[2]);
		noise_initiator_forge_identity(p.in, pub);
		if (noise_build_initiation(p.in, 1, p.ts, 0, msg))
			abort();
		got = DECODE(p.r, msg);
		CHECK("reject_low_order_static", got == NOISE_ERR_LOW_ORDER,
		      "got %s", noise_status_str(got));
		noise_initiator_forge_identity(p.in, p.i_pub);

		/* An initiator aimed at a low-order responder is refused. */
		{
			struct noise_initiator *in = (void *)1;

			unhex(pub, 32, points[3]);
			CHECK("initiator_refuses_low_order_responder",
			      noise_initiator_new(&in, p.i_priv, pub) == -EINVAL &&
				      !in,
			      "accepted");
		}
	}
	pair_free(&p);
}

static void test_timestamps_and_names(void)
{
	uint8_t a[12], b[12];
	double d;
	size_t i, j;
	int ok = 1;

	noise_timestamp_now(a);
	d = noise_timestamp_unix(a) - (double)time(NULL);
	CHECK("timestamp_now_is_now", a[0] == 0x40 && fabs_(d) < 2.0,
	      "off by %f s", d);
	memcpy(b, a, 12);
	b[11]++;
	if (!b[11])
		b[10]++;
	CHECK("timestamp_cmp",
	      noise_timestamp_cmp(a, b) < 0 && noise_timestamp_cmp(b, a) > 0 &&
		      noise_timestamp_cmp(a, a) == 0,
	      "order wrong");
	memset(a, 0, 12);
	a[0] = 0x40, a[7] = 0x0a + 100, a[8] = 0x1d, a[9] = 0xcd, a[10] = 0x65;
	CHECK("timestamp_unix", fabs_(noise_timestamp_unix(a) - 100.5) < 1e-9,
	      "got %f", noise_timestamp_unix(a));

	for (i = NOISE_OK; i <= NOISE_ERR_INTERNAL; i++) {
		ok &= EXPECT(strcmp(noise_status_str(i), "unknown"), "%zu", i);
		for (j = 0; j < i; j++)
			ok &= EXPECT(strcmp(noise_status_str(i), noise_status_str(j)),
				     "%zu vs %zu", i, j);
	}
	ok &= EXPECT(!strcmp(noise_status_str(NOISE_OK), "ok"), "ok") &&
	      EXPECT(!strcmp(noise_status_str(NOISE_ERR_MAC1), "bad_mac1"), "mac1") &&
	      EXPECT(!strcmp(noise_status_str(99), "unknown"), "99");
	CHECK("status_names_distinct", ok, "see above");
}

static void test_parse_input(void)
{
	static const struct {
		const char *name;
		const char *text; /* %s = the 296 hex digits */
		int ok;
	} rows[] = {
		{ "hex", "%s", 1 },
		{ "hex_newline", "%s\n", 1 },
		{ "hex_surrounding_space", "  \n%s \r\n", 1 },
		{ "hex_truncated", "%.295s", 0 },
		{ "hex_one_byte_short", "%.294s", 0 },
		{ "hex_extra_byte", "%s00", 0 },
		{ "hex_trailing_garbage", "%s zz", 0 },
		{ "hex_empty", "", 0 },
		{ "hex_prefix_0x", "0x%s", 0 },
	};
	uint8_t msg[NOISE_INITIATION_LEN], out[NOISE_INITIATION_LEN];
	char hex[2 * NOISE_INITIATION_LEN + 1], text[1024], spaced[1024];
	size_t i, k = 0;
	int ret;

	randombytes_buf(msg, sizeof(msg));
	sodium_bin2hex(hex, sizeof(hex), msg, sizeof(msg));
	for (i = 0; i < ARRAY_SIZE(rows); i++) {
		char name[64];

		snprintf(text, sizeof(text), rows[i].text, hex);
		memset(out, 0, sizeof(out));
		ret = noise_parse_initiation(out, (const uint8_t *)text,
					     strlen(text));
		snprintf(name, sizeof(name), "parse_%s", rows[i].name);
		CHECK(name, rows[i].ok ? !ret && !memcmp(out, msg, sizeof(msg))
				       : ret == -EINVAL,
		      "ret %d", ret);
	}

	/* xxd/tcpdump style: pairs separated by spaces, colons, newlines. */
	for (i = 0; i < sizeof(msg); i++) {
		k += (size_t)snprintf(spaced + k, sizeof(spaced) - k, "%02X%s",
				      msg[i], i % 16 == 15 ? "\n" : i % 2 ? " " : ":");
	}
	ret = noise_parse_initiation(out, (const uint8_t *)spaced, k);
	CHECK("parse_hex_uppercase_separated", !ret && !memcmp(out, msg, sizeof(msg)),
	      "ret %d", ret);

	ret = noise_parse_initiation(out, msg, sizeof(msg));
	CHECK("parse_raw", !ret && !memcmp(out, msg, sizeof(msg)), "ret %d", ret);
	CHECK("parse_raw_short", noise_parse_initiation(out, msg, 147) == -EINVAL,
	      "147 raw bytes accepted");
}


/*
 * The responder's side of messages 1 and 2, written here from the paper
 * (§5.4.2-§5.4.5) with the primitives alone, independently of noise.c's
 * initiator: what a WireGuard responder derives from the initiation, the
 * response it sends and its transport keys (it receives with T1, sends with
 * T2). Interop with wireguard-go is in tests/test_noise.sh.
 */
struct resp2 {
	uint8_t msg[NOISE_RESPONSE_LEN];
	uint8_t recv_key[32], send_key[32];
	uint32_t index;
};

static int respond(struct resp2 *o, const uint8_t r_priv[32],
		   const uint8_t r_pub[32], const uint8_t i_pub[32],
		   const uint8_t m1[NOISE_INITIATION_LEN], const uint8_t psk[32])
{
	static const char cons[] = "Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s";
	static const char ident[] = "WireGuard v1 zx2c4 Jason@zx2c4.com";
	uint8_t c[32], h[32], k[32], dh[32], t[32], e_priv[32], e_pub[32],
		mk[32], none[1];
	const uint8_t *ei = m1 + 8;

	noise_hash2(c, cons, sizeof(cons) - 1, NULL, 0);
	noise_hash2(h, c, 32, ident, sizeof(ident) - 1);
	noise_hash2(h, h, 32, r_pub, 32);
	noise_hash2(h, h, 32, ei, 32);
	if (noise_kdf(c, NULL, NULL, c, ei, 32) ||
	    crypto_scalarmult(dh, r_priv, ei) ||
	    noise_kdf(c, k, NULL, c, dh, 32))
		return -1;
	noise_hash2(h, h, 32, m1 + 40, 48);
	if (crypto_scalarmult(dh, r_priv, i_pub) ||
	    noise_kdf(c, k, NULL, c, dh, 32))
		return -1;
	noise_hash2(h, h, 32, m1 + 88, 28);

	memset(o->msg, 0, sizeof(o->msg));
	o->msg[0] = 2;
	o->index = randombytes_random();
	memcpy(o->msg + 4, &o->index, 4); /* little-endian host (x86-64) */
	memcpy(o->msg + 8, m1 + 4, 4);
	randombytes_buf(e_priv, 32);
	if (crypto_scalarmult_base(e_pub, e_priv))
		return -1;
	memcpy(o->msg + 12, e_pub, 32);
	noise_hash2(h, h, 32, e_pub, 32);
	if (noise_kdf(c, NULL, NULL, c, e_pub, 32) ||
	    crypto_scalarmult(dh, e_priv, ei) ||
	    noise_kdf(c, NULL, NULL, c, dh, 32) ||
	    crypto_scalarmult(dh, e_priv, i_pub) ||
	    noise_kdf(c, NULL, NULL, c, dh, 32) ||
	    noise_kdf(c, t, k, c, psk, 32))
		return -1;
	noise_hash2(h, h, 32, t, 32);
	if (noise_aead_seal(o->msg + 44, k, 0, none, 0, h, 32))
		return -1;
	noise_hash2(mk, "mac1----", 8, i_pub, 32);
	if (noise_blake2s(o->msg + 60, 16, o->msg, 60, mk, 32) ||
	    noise_kdf(o->recv_key, o->send_key, NULL, c, none, 0))
		return -1;
	return 0;
}

static void test_initiator_finish(void)
{
	static const uint8_t zero[32];
	uint8_t psk[32], plain[32], got[32], wire[64], ts[NOISE_TIMESTAMP_LEN];
	struct noise_handshake hs;
	struct noise_keypair kp;
	struct resp2 rsp;
	struct pair p;
	uint64_t ctr;
	int i, n, bad = 0;

	/* Round trip, with and without a pre-shared key. */
	for (i = 0; i < 100 && !bad; i++) {
		if (pair_new(&p, 0))
			abort();
		randombytes_buf(psk, sizeof(psk));
		noise_timestamp_now(ts);
		if (!EXPECT(!noise_initiator_begin(p.in, &hs, 1000u + i, ts,
						   p.msg), "begin") ||
		    !EXPECT(noise_decode(p.r, p.msg, sizeof(p.msg), NULL, got,
					 ts) == NOISE_OK, "decode") ||
		    respond(&rsp, p.r_priv, p.r_pub, p.i_pub, p.msg,
			    i % 2 ? psk : zero)) {
			bad = 1;
			pair_free(&p);
			break;
		}
		n = noise_initiator_finish(p.in, &hs, rsp.msg, sizeof(rsp.msg),
					   i % 2 ? psk : NULL, &kp);
		if (!EXPECT(n == 0, "pair %d: finish %d", i, n) ||
		    !EXPECT(!memcmp(kp.send_key, rsp.recv_key, 32) &&
				    !memcmp(kp.receive_key, rsp.send_key, 32),
			    "pair %d: transport keys", i) ||
		    !EXPECT(kp.remote_index == rsp.index &&
				    kp.local_index == 1000u + (uint32_t)i,
			    "pair %d: indexes", i) ||
		    !EXPECT(sodium_is_zero((uint8_t *)&hs, sizeof(hs)),
			    "handshake state wiped"))
			bad = 1;
		noise_keypair_wipe(&kp);
		pair_free(&p);
	}
	CHECK("initiator_finish_round_trip", !bad, "at pair %d", i);

	/* A keepalive: 32 bytes, type 4, counter 0, opens under T1. */
	if (pair_new(&p, 0) || noise_initiator_begin(p.in, &hs, 7, p.ts, p.msg) ||
	    respond(&rsp, p.r_priv, p.r_pub, p.i_pub, p.msg, zero) ||
	    noise_initiator_finish(p.in, &hs, rsp.msg, sizeof(rsp.msg), NULL,
				   &kp))
		abort();
	n = noise_seal_transport(&kp, NULL, 0, wire, sizeof(wire));
	{
		uint8_t nonce[12] = { 0 };
		uint8_t ad_none[1];

		CHECK("keepalive_layout",
		      n == NOISE_KEEPALIVE_LEN && wire[0] == 4 && !wire[1] &&
			      !wire[2] && !wire[3] &&
			      !memcmp(wire + 4, &rsp.index, 4) &&
			      sodium_is_zero(wire + 8, 8) &&
			      !crypto_aead_chacha20poly1305_ietf_decrypt(
				      ad_none, NULL, NULL, wire + 16, 16, NULL,
				      0, nonce, rsp.recv_key),
		      "len %d type %u", n, wire[0]);
	}
	n = noise_seal_transport(&kp, NULL, 0, wire, sizeof(wire));
	CHECK("transport_counter_advances", n == 32 && wire[8] == 1,
	      "second counter %u", wire[8]);
	CHECK("transport_refuses_unpadded",
	      noise_seal_transport(&kp, plain, 5, wire, sizeof(wire)) ==
			      -EINVAL &&
		      noise_seal_transport(&kp, plain, 32, wire, 63) == -EINVAL,
	      "odd length or short buffer accepted");

	/* Data from the responder (sealed here under T2) opens. */
	{
		uint8_t m[16 + 32 + 16], nonce[12] = { 0 };

		randombytes_buf(plain, sizeof(plain));
		memset(m, 0, 16);
		m[0] = 4;
		memcpy(m + 4, &kp.local_index, 4);
		m[8] = 3, nonce[4] = 3;
		if (crypto_aead_chacha20poly1305_ietf_encrypt(
			    m + 16, NULL, plain, 32, NULL, 0, NULL, nonce,
			    rsp.send_key))
			abort();
		n = noise_open_transport(&kp, m, sizeof(m), got, &ctr);
		CHECK("transport_open",
		      n == 32 && ctr == 3 && !memcmp(got, plain, 32), "got %d",
		      n);
		m[20] ^= 1;
		CHECK("transport_open_forged",
		      noise_open_transport(&kp, m, sizeof(m), got, &ctr) ==
			      -EBADMSG,
		      "forged data accepted");
	}
	noise_keypair_wipe(&kp);

	/* Rejections: one row per way a response can be wrong. */
	{
		static const struct {
			const char *name;
			int off;      /* byte flipped, -1 none */
			int fix_mac1; /* recompute mac1 after the flip */
			int len;
			int wrong_psk;
			int want;
		} rows[] = {
			/* shape */
			{ "response_short", -1, 0, 91, 0, -EINVAL },
			{ "response_type", 0, 1, 92, 0, -EINVAL },
			{ "response_reserved", 2, 1, 92, 0, -EINVAL },
			/* answers another initiation */
			{ "response_receiver_index", 9, 1, 92, 0, -EINVAL },
			/* mac1 */
			{ "response_mac1", 61, 0, 92, 0, -EINVAL },
			/* a changed ephemeral: DHs differ, empty does not open */
			{ "response_ephemeral", 20, 1, 92, 0, -EBADMSG },
			{ "response_empty_tag", 50, 1, 92, 0, -EBADMSG },
			/* the peer holds a psk we do not */
			{ "response_wrong_psk", -1, 0, 92, 1, -EBADMSG },
		};
		unsigned int r;

		for (r = 0; r < ARRAY_SIZE(rows); r++) {
			uint8_t mk[32];

			if (noise_initiator_begin(p.in, &hs, 7, p.ts, p.msg) ||
			    respond(&rsp, p.r_priv, p.r_pub, p.i_pub, p.msg,
				    rows[r].wrong_psk ? psk : zero))
				abort();
			if (rows[r].off >= 0)
				rsp.msg[rows[r].off] ^= 0x01;
			if (rows[r].fix_mac1) {
				noise_hash2(mk, "mac1----", 8, p.i_pub, 32);
				if (noise_blake2s(rsp.msg + 60, 16, rsp.msg, 60,
						  mk, 32))
					abort();
			}
			n = noise_initiator_finish(p.in, &hs, rsp.msg,
						   (size_t)rows[r].len, NULL,
						   &kp);
			CHECK(rows[r].name,
			      n == rows[r].want &&
				      sodium_is_zero((uint8_t *)&kp,
						     sizeof(kp)) &&
				      sodium_is_zero((uint8_t *)&hs,
						     sizeof(hs)),
			      "got %d, want %d", n, rows[r].want);
		}
	}
	pair_free(&p);
}

int main(void)
{
	if (sodium_init() < 0) {
		printf("FAIL: sodium_init\n");
		return 1;
	}
	test_blake2s();
	test_hmac_kdf();
	test_aead();
	test_round_trip();
	test_stages();
	test_rejections();
	test_timestamps_and_names();
	test_parse_input();
	test_initiator_finish();
	CHECK_EXIT();
}
