/* SPDX-License-Identifier: MIT */
/*
 * The responder's half of WireGuard's first handshake message, in stages the
 * caller can stop between (WireGuard paper §5.4.2, Noise_IKpsk2), and an
 * initiator that builds such messages (tests, load generator).
 *
 *   1. shape          noise_check_shape()     no crypto
 *   2. mac1           noise_check_mac1()      one keyed BLAKE2s
 *   3. identity       noise_identify()        DH(r_priv, e_pub), opens static
 *   4. authentication noise_authenticate()    DH(r_priv, s_pub), opens timestamp
 *   5. freshness      noise_authenticate()    timestamp > last accepted
 *
 * A peer that is already installed needs only 1–3; a new key must pass 1–5
 * before anything is fetched or installed: without step 4 anyone can encrypt
 * a victim's public key under their own ephemeral key.
 */
#ifndef JITWG_NOISE_H
#define JITWG_NOISE_H

#include <stddef.h>
#include <stdint.h>

#define NOISE_KEY_LEN 32
#define NOISE_TIMESTAMP_LEN 12 /* TAI64N: 8-byte seconds, 4-byte ns, big-endian */
#define NOISE_INITIATION_LEN 148
#define NOISE_RESPONSE_LEN 92
/* A transport message: type, receiver index, counter (16 bytes), then data. */
#define NOISE_TRANSPORT_HEADER_LEN 16
#define NOISE_KEEPALIVE_LEN (NOISE_TRANSPORT_HEADER_LEN + 16)

/* Ignoring a decode verdict or a constructor's error is always a bug. */
#define NOISE_WUR __attribute__((warn_unused_result))

/* Every outcome of a decode stage; 0 is success. */
enum noise_status {
	NOISE_OK = 0,
	NOISE_ERR_SHAPE,     /* wrong length, type or non-zero reserved bytes */
	NOISE_ERR_MAC1,      /* mac1 does not verify for this responder */
	NOISE_ERR_STATIC,    /* encrypted_static does not open */
	NOISE_ERR_TIMESTAMP, /* encrypted_timestamp does not open */
	NOISE_ERR_REPLAY,    /* timestamp not newer than the last accepted */
	NOISE_ERR_LOW_ORDER, /* a DH gave the all-zero result (low-order point) */
	NOISE_ERR_INTERNAL,  /* out of memory, libsodium failure */
};

/* A short stable word for logs: "ok", "bad_shape", "bad_mac1", … */
const char *noise_status_str(enum noise_status st);

/*
 * The responder: the interface's private key in locked memory plus what
 * depends only on it (public key, mac1 key, the initial chaining hash).
 */
struct noise_responder;

int noise_responder_new(struct noise_responder **out,
			const uint8_t private_key[static NOISE_KEY_LEN]) NOISE_WUR;
void noise_responder_free(struct noise_responder *r);
void noise_responder_public_key(const struct noise_responder *r,
				uint8_t out[static NOISE_KEY_LEN]);

/*
 * Handshake state carried from noise_identify() to noise_authenticate().
 * Holds secrets: noise_authenticate() wipes it on every path; a caller that
 * stops after identify calls noise_state_wipe().
 */
struct noise_state {
	uint8_t chaining_key[32];
	uint8_t hash[32];
	uint8_t initiator_static[NOISE_KEY_LEN];
};

void noise_state_wipe(struct noise_state *st);

enum noise_status noise_check_shape(const uint8_t *msg, size_t len) NOISE_WUR;
enum noise_status noise_check_mac1(const struct noise_responder *r,
				   const uint8_t msg[static NOISE_INITIATION_LEN]) NOISE_WUR;

/* Stage 3. On NOISE_OK, initiator_public holds the claimed (not yet proven) key. */
enum noise_status noise_identify(const struct noise_responder *r,
				 const uint8_t msg[static NOISE_INITIATION_LEN],
				 struct noise_state *st,
				 uint8_t initiator_public[static NOISE_KEY_LEN]) NOISE_WUR;

/*
 * Stages 4 and 5. last_timestamp is the greatest timestamp accepted for this
 * key, or NULL when none is known; an equal or older one is NOISE_ERR_REPLAY.
 * On NOISE_OK (and on NOISE_ERR_REPLAY) timestamp_out holds the decrypted
 * timestamp. Wipes *st.
 */
enum noise_status noise_authenticate(const struct noise_responder *r,
				     const uint8_t msg[static NOISE_INITIATION_LEN],
				     struct noise_state *st,
				     const uint8_t *last_timestamp,
				     uint8_t timestamp_out[static NOISE_TIMESTAMP_LEN]) NOISE_WUR;

/* Stages 1–5 in one call. */
enum noise_status noise_decode(const struct noise_responder *r,
			       const uint8_t *msg, size_t len,
			       const uint8_t *last_timestamp,
			       uint8_t initiator_public[static NOISE_KEY_LEN],
			       uint8_t timestamp_out[static NOISE_TIMESTAMP_LEN]) NOISE_WUR;

/* memcmp order of two TAI64N timestamps: <0, 0, >0. */
int noise_timestamp_cmp(const uint8_t a[static NOISE_TIMESTAMP_LEN],
			const uint8_t b[static NOISE_TIMESTAMP_LEN]);
/* Now, as TAI64N (TAI = UTC + 10 s offset label 2^62, as WireGuard does). */
void noise_timestamp_now(uint8_t out[static NOISE_TIMESTAMP_LEN]);
/* Seconds since the Unix epoch of a TAI64N timestamp (for display). */
double noise_timestamp_unix(const uint8_t ts[static NOISE_TIMESTAMP_LEN]);

/*
 * The initiator: a static key pair and the responder's public key, with
 * everything that depends only on them precomputed, so building a message
 * costs two X25519 operations (ephemeral keygen and DH(e, S_r)).
 */
struct noise_initiator;

int noise_initiator_new(struct noise_initiator **out,
			const uint8_t static_private[static NOISE_KEY_LEN],
			const uint8_t responder_public[static NOISE_KEY_LEN]) NOISE_WUR;
void noise_initiator_free(struct noise_initiator *in);

/* Deliberate defects for tests; 0 builds a valid message. */
enum noise_defect {
	NOISE_DEFECT_NONE = 0,
	NOISE_DEFECT_MAC1 = 1 << 0,      /* wrong mac1 */
	NOISE_DEFECT_STATIC = 1 << 1,    /* corrupt encrypted_static */
	NOISE_DEFECT_TIMESTAMP = 1 << 2, /* corrupt encrypted_timestamp */
	NOISE_DEFECT_LOW_ORDER_EPHEMERAL = 1 << 3, /* ephemeral = low-order point */
};

/*
 * Claim another public key (a victim's) while keeping this initiator's own
 * private key for the static-static DH: what an attacker without the
 * victim's private key can do. Identify yields the victim's key;
 * authentication must fail.
 */
void noise_initiator_forge_identity(struct noise_initiator *in,
				    const uint8_t victim_public[static NOISE_KEY_LEN]);

int noise_build_initiation(struct noise_initiator *in, uint32_t sender_index,
			   const uint8_t timestamp[static NOISE_TIMESTAMP_LEN],
			   unsigned int defects,
			   uint8_t out[static NOISE_INITIATION_LEN]) NOISE_WUR;

/*
 * The initiator's side of the rest of the handshake (paper §5.4.3-§5.4.6), so
 * synthetic clients can complete handshakes and send data.
 *
 * What the initiator keeps between its initiation and the response: the
 * ephemeral private key and the chaining key and hash after the initiation.
 * Secret; noise_initiator_finish() wipes it on every path, a caller that
 * gives up calls noise_handshake_wipe().
 */
struct noise_handshake {
	uint8_t ephemeral_private[NOISE_KEY_LEN];
	uint8_t chaining_key[32];
	uint8_t hash[32];
	uint32_t sender_index; /* ours, the response's receiver index */
};

void noise_handshake_wipe(struct noise_handshake *hs);

/* The transport keys of one completed handshake, initiator's view (§5.4.5). */
struct noise_keypair {
	uint8_t send_key[32];
	uint8_t receive_key[32];
	uint32_t local_index;  /* the index the peer addresses us by */
	uint32_t remote_index; /* the index we address the peer by */
	uint64_t send_counter; /* next nonce; never reused under one key */
};

void noise_keypair_wipe(struct noise_keypair *kp);

/* noise_build_initiation() that also keeps the state for the response. */
int noise_initiator_begin(struct noise_initiator *in,
			  struct noise_handshake *hs, uint32_t sender_index,
			  const uint8_t timestamp[static NOISE_TIMESTAMP_LEN],
			  uint8_t out[static NOISE_INITIATION_LEN]) NOISE_WUR;

/*
 * Consumes the responder's 92-byte response to the initiation hs was made
 * for: checks shape, receiver index and mac1, runs the response's DHs and the
 * pre-shared-key step (psk NULL = all zero, as WireGuard without a psk), opens
 * the empty AEAD and derives the transport keys into *kp. Returns 0, -EINVAL
 * for a message that is no response to hs (shape, index, mac1), -EBADMSG when
 * it does not authenticate. Wipes *hs either way.
 */
int noise_initiator_finish(struct noise_initiator *in,
			   struct noise_handshake *hs, const uint8_t *msg,
			   size_t len, const uint8_t *psk,
			   struct noise_keypair *kp) NOISE_WUR;

/*
 * Seals len bytes of plain (len a multiple of 16, as WireGuard pads; 0 is a
 * keepalive) into a type-4 message of NOISE_TRANSPORT_HEADER_LEN + len + 16
 * bytes at out, under the next counter. Returns the message length or -errno.
 */
int noise_seal_transport(struct noise_keypair *kp, const uint8_t *plain,
			 size_t len, uint8_t *out, size_t outlen) NOISE_WUR;

/*
 * Opens a type-4 message sent to us (under kp->receive_key) into out (room
 * for len - 32 bytes). Returns the plaintext length, -EINVAL for a message of
 * the wrong shape or index, -EBADMSG for one that does not authenticate. No
 * replay window: a test and load-generator helper, not a data path.
 */
int noise_open_transport(const struct noise_keypair *kp, const uint8_t *msg,
			 size_t len, uint8_t *out, uint64_t *counter) NOISE_WUR;

#endif
