/* SPDX-License-Identifier: MIT */
/*
 * WireGuard's cookie mechanism (WireGuard paper §5.4.7), both sides:
 *
 *   responder   cookie = MAC(R, source address ‖ source port), R a random
 *               secret replaced every COOKIE_SECRET_LIFE_S; the reply (type 3,
 *               64 bytes) carries it sealed with XChaCha20-Poly1305 under
 *               HASH("cookie--" ‖ responder public key), with the
 *               initiation's mac1 as associated data; a later initiation's
 *               mac2 = MAC(cookie, msg[0..132)) proves that its source
 *               receives what is sent to it.
 *   initiator   opens a reply into the cookie and writes mac2 (tests).
 *
 * jitwgd is a responder beside the WireGuard device, not the device: only
 * cookies from this checker can be verified here (docs/security.md).
 * Addresses are 16 bytes, IPv4 as IPv4-mapped IPv6, as in struct
 * jitwg_event; ports in host order.
 */
#ifndef JITWG_COOKIE_H
#define JITWG_COOKIE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define COOKIE_LEN 16
#define COOKIE_NONCE_LEN 24
#define COOKIE_REPLY_LEN 64
#define COOKIE_MAC2_OFF 132 /* mac2 in an initiation: the last 16 bytes */

enum {
	/* The paper's COOKIE_SECRET_MAX_AGE: R is replaced this often. The
	 * one before stays valid for as long again: a client keeps its
	 * cookie that long and its retry must not fail at a rotation. */
	COOKIE_SECRET_LIFE_S = 120,
};

#define COOKIE_WUR __attribute__((warn_unused_result))

/* The responder's side: the two secrets and the reply's key. Thread-safe. */
struct cookie_checker;

int cookie_checker_new(struct cookie_checker **out,
		       const uint8_t responder_public[static 32]) COOKIE_WUR;
void cookie_checker_free(struct cookie_checker *c);

enum cookie_mac2 {
	COOKIE_MAC2_NONE,    /* all zero: the client holds no cookie */
	COOKIE_MAC2_VALID,   /* made with a cookie this checker issued to the source */
	COOKIE_MAC2_INVALID, /* anything else: forged, another issuer's, stale */
};

/*
 * mac2 of a 148-byte initiation from addr:port, at now_ns (CLOCK_MONOTONIC).
 * Compared in constant time, against the current secret's cookie and the
 * previous one's.
 */
enum cookie_mac2 cookie_check_mac2(struct cookie_checker *c, const uint8_t *msg,
				   const uint8_t addr[static 16], uint16_t port,
				   uint64_t now_ns);

/*
 * The type-3 reply to a 148-byte initiation (whose mac1 the caller has
 * checked) from addr:port, into out. Returns 0 or -errno.
 */
int cookie_make_reply(struct cookie_checker *c, const uint8_t *msg,
		      const uint8_t addr[static 16], uint16_t port,
		      uint64_t now_ns, uint8_t out[static COOKIE_REPLY_LEN]) COOKIE_WUR;

/*
 * The initiator's side. Opens a reply to the initiation whose mac1 is
 * given, from the responder with this public key, into cookie: 0, -EINVAL
 * for a message of the wrong shape or index, -EBADMSG when it does not
 * open (wrong key, another mac1, tampered).
 */
int cookie_open_reply(const uint8_t *reply, size_t len,
		      const uint8_t responder_public[static 32],
		      const uint8_t *initiation,
		      uint8_t cookie[static COOKIE_LEN]) COOKIE_WUR;
/* Writes mac2 = MAC(cookie, msg[0..132)) into a 148-byte initiation. */
int cookie_add_mac2(uint8_t *msg, const uint8_t cookie[static COOKIE_LEN]) COOKIE_WUR;

#endif
