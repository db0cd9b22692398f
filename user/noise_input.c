// SPDX-License-Identifier: MIT
/* Initiations from files and pipes: raw bytes or hex text (noise_input.h). */
#include <errno.h>
#include <string.h>

#include <sodium.h>

#include "noise_input.h"

static int is_space(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

int noise_parse_initiation(uint8_t out[static NOISE_INITIATION_LEN],
			   const uint8_t *in, size_t len)
{
	const char *end = NULL;
	size_t n = 0;

	/* 148 raw bytes cannot be hex: that would be 74 bytes at most. */
	if (len == NOISE_INITIATION_LEN) {
		memcpy(out, in, NOISE_INITIATION_LEN);
		return 0;
	}
	while (len && is_space(in[0])) {
		in++;
		len--;
	}
	while (len && is_space(in[len - 1]))
		len--;
	if (!len)
		return -EINVAL;
	if (sodium_hex2bin(out, NOISE_INITIATION_LEN, (const char *)in, len,
			   " \t\r\n:", &n, &end))
		goto bad;
	/* All of it, and exactly one message's worth. */
	if (n != NOISE_INITIATION_LEN || end != (const char *)in + len)
		goto bad;
	return 0;
bad:
	sodium_memzero(out, NOISE_INITIATION_LEN);
	return -EINVAL;
}
