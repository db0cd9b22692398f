/* SPDX-License-Identifier: MIT */
/*
 * Synthetic clients shared by jitwg-loadgen and jitwg-cachefill: client i's
 * private key is BLAKE2b-256("jitwg-loadgen" ‖ seed ‖ i), clamped, and its
 * allowed IP is net + i + 1, so the sender, the control plane's list and a
 * pre-filled cache agree without sharing files. bench-cache fills its cache
 * with synth_peer() too.
 */
#ifndef JITWG_SYNTH_H
#define JITWG_SYNTH_H

#include <arpa/inet.h>
#include <stdint.h>
#include <string.h>

#include <sodium.h>

#include "api.h"

static inline void synth_key(uint8_t priv[32], uint8_t pub[32], const char *seed,
			     uint32_t i)
{
	crypto_generichash_state st;

	crypto_generichash_init(&st, NULL, 0, 32);
	crypto_generichash_update(&st, (const uint8_t *)"jitwg-loadgen", 13);
	crypto_generichash_update(&st, (const uint8_t *)seed, strlen(seed));
	crypto_generichash_update(&st, (const uint8_t *)&i, sizeof(i));
	crypto_generichash_final(&st, priv, 32);
	/* X25519 clamping, as wg genkey does. */
	priv[0] &= 248;
	priv[31] = (priv[31] & 127) | 64;
	if (pub && crypto_scalarmult_base(pub, priv))
		memset(pub, 0, 32);
}

/*
 * Cache entry i of a synthetic fill: one /32 and a day's TTL. With a seed,
 * client i (synth_key) at net + i + 1, as `jitwg-loadgen keys --net NET`
 * lists it; without (net may be NULL), a random key at 10.0.0.0 + i mod 2^24.
 */
static inline void synth_peer(struct api_peer *p, const char *seed,
			      const struct in_addr *net, uint32_t i)
{
	memset(p, 0, sizeof(*p));
	if (seed) {
		uint8_t priv[32];

		synth_key(priv, p->public_key, seed, i);
		sodium_memzero(priv, sizeof(priv));
	} else {
		randombytes_buf(p->public_key, 32);
	}
	p->flags = API_PEER_HAS_TTL;
	p->ttl = 86400;
	p->n_allowed_ips = 1;
	p->allowed_ips[0].family = AF_INET;
	p->allowed_ips[0].cidr = 32;
	p->allowed_ips[0].ip4.s_addr =
		seed ? htonl(ntohl(net->s_addr) + i + 1) :
		       htonl(0x0a000000u | (i & 0xffffff));
}

#endif
