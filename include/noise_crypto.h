/* SPDX-License-Identifier: MIT */
/*
 * The symmetric primitives of WireGuard's Noise_IKpsk2 (WireGuard paper §5.4):
 * HASH = BLAKE2s-256, MAC = keyed BLAKE2s-128, HMAC-BLAKE2s (RFC 2104 with a
 * 64-byte block), the HKDF-style KDF built on it, and ChaCha20-Poly1305 (IETF)
 * with WireGuard's nonce. Internal to the noise module; exposed so the tests
 * can check each against independently computed values.
 */
#ifndef JITWG_NOISE_CRYPTO_H
#define JITWG_NOISE_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#include <blake2.h>

#define NOISE_HASH_LEN 32
#define NOISE_MAC_LEN 16
#define NOISE_AEAD_TAG_LEN 16
#define NOISE_BLAKE2S_BLOCK_LEN 64

#define __noise_wur __attribute__((warn_unused_result))

/*
 * BLAKE2s (RFC 7693) with outlen 1..32 and an optional key of 0..32 bytes.
 * Returns 0 or -EINVAL.
 */
int noise_blake2s(uint8_t *out, size_t outlen, const void *in, size_t inlen,
		  const uint8_t *key, size_t keylen) __noise_wur;

/* Which libb2 build the BLAKE2s calls use ("libb2 ref" or "libb2 dispatch"). */
const char *noise_blake2s_impl(void);

/*
 * MAC(key, ·) = keyed BLAKE2s-128 with the key block already compressed, for
 * mac1 under the one key of a responder: 2 compressions instead of 3 for the
 * 116 bytes mac1 covers.
 */
struct noise_mac_key {
	blake2s_state state;
	uint8_t key[NOISE_HASH_LEN]; /* fallback when !absorbed */
	int absorbed;
};

void noise_mac_key_init(struct noise_mac_key *k,
			const uint8_t key[static NOISE_HASH_LEN]);
int noise_mac_with(uint8_t out[static NOISE_MAC_LEN],
		   const struct noise_mac_key *k, const void *in,
		   size_t inlen) __noise_wur;

/* HASH(a ‖ b), BLAKE2s-256 of the concatenation; either part may be empty. */
void noise_hash2(uint8_t out[static NOISE_HASH_LEN], const void *a, size_t alen,
		 const void *b, size_t blen);

/* HMAC-BLAKE2s-256 (RFC 2104, B = 64) with a key of at most 64 bytes. */
int noise_hmac(uint8_t out[static NOISE_HASH_LEN], const uint8_t *key,
	       size_t keylen, const void *in, size_t inlen) __noise_wur;

/*
 * An HMAC key whose two pad blocks are already compressed, for keys used more
 * than once (the responder's first chaining key, T0 inside a KDF): saves two
 * of the four BLAKE2s compressions of every HMAC under it. Holds secrets.
 */
struct noise_hmac_key {
	blake2s_state inner, outer; /* after (K ^ ipad), (K ^ opad) */
	uint8_t key[NOISE_HASH_LEN]; /* fallback when !absorbed */
	int absorbed;
};

/* Cannot fail: when the pads cannot be absorbed, HMACs use key itself. */
void noise_hmac_key_init(struct noise_hmac_key *k,
			 const uint8_t key[static NOISE_HASH_LEN]);
int noise_hmac_with(uint8_t out[static NOISE_HASH_LEN],
		    const struct noise_hmac_key *k, const void *in,
		    size_t inlen) __noise_wur;

/*
 * KDF_n(key, input) of the paper §5.4: T0 = HMAC(key, input),
 * T1 = HMAC(T0, 0x1), Ti = HMAC(T0, Ti-1 ‖ i). Writes T1..Tn into the
 * non-NULL outputs (t2 only if t1, t3 only if t2). Wipes T0.
 */
int noise_kdf(uint8_t *t1, uint8_t *t2, uint8_t *t3,
	      const uint8_t key[static NOISE_HASH_LEN], const void *in,
	      size_t inlen) __noise_wur;
/* The same with a prepared key. */
int noise_kdf_with(uint8_t *t1, uint8_t *t2, uint8_t *t3,
		   const struct noise_hmac_key *key, const void *in,
		   size_t inlen) __noise_wur;

/*
 * AEAD(key, counter, plain, ad): ChaCha20-Poly1305 IETF, nonce = 4 zero bytes
 * ‖ 64-bit little-endian counter. out holds len + 16 bytes.
 */
int noise_aead_seal(uint8_t *out, const uint8_t key[static 32],
		    uint64_t counter, const uint8_t *plain, size_t len,
		    const uint8_t *ad, size_t adlen) __noise_wur;
/* Opens len + 16 bytes of in into len bytes of out; -EBADMSG if forged. */
int noise_aead_open(uint8_t *out, const uint8_t key[static 32],
		    uint64_t counter, const uint8_t *in, size_t len,
		    const uint8_t *ad, size_t adlen) __noise_wur;

#endif
