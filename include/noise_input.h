/* SPDX-License-Identifier: MIT */
/* Reading a handshake initiation as an operator hands it over: raw or hex. */
#ifndef JITWG_NOISE_INPUT_H
#define JITWG_NOISE_INPUT_H

#include <stddef.h>
#include <stdint.h>

#include "noise.h"

/*
 * in is either exactly NOISE_INITIATION_LEN raw bytes, or 2 * that many hex
 * digits (either case), optionally separated between bytes by spaces, tabs,
 * newlines or colons (tcpdump -xx, xxd -p), with surrounding whitespace.
 * Returns 0 or -EINVAL; never reads past in + len.
 */
int noise_parse_initiation(uint8_t out[static NOISE_INITIATION_LEN],
			   const uint8_t *in, size_t len)
	__attribute__((warn_unused_result));

#endif
