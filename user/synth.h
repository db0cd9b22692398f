/* SPDX-License-Identifier: MIT */
/*
 * Synthetic clients shared by jitwg-loadgen and jitwg-cachefill: client i's
 * private key is BLAKE2b-256("jitwg-loadgen" ‖ seed ‖ i), clamped, and its
 * allowed IP is net + i + 1, so the sender, the control plane's list and a
 * pre-filled cache agree without sharing files.
 */
#ifndef JITWG_SYNTH_H
#define JITWG_SYNTH_H

#include <stdint.h>
#include <string.h>

#include <sodium.h>

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

#endif
