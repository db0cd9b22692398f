// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for everything that reads untrusted bytes in the noise
 * module: the staged decoder, the raw/hex message parser and the key codecs.
 * The first input byte picks the mode; the rest is the input:
 *   0  a packet as captured: noise_decode() on any length
 *   1  a 148-byte packet whose mac1 we make valid, so mutations reach the
 *      DH and AEAD stages; 12 more bytes, if present, are the last timestamp
 *   2  text for noise_parse_initiation(), then decoded if it parses
 *   3  text for key_from_base64() and key_from_hex()
 * Seeds (tests/corpus/fuzz_noise/) hold valid messages for RESPONDER_KEY.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "keys.h"
#include "noise.h"
#include "noise_crypto.h"
#include "noise_input.h"

/* base64 EP6Yb+p5Bu2m1r5u8pW3HN2F1v2ltq4a5h0O0CB0N28=, seeds were built for it */
static const uint8_t RESPONDER_KEY[32] = {
	0x10, 0xfe, 0x98, 0x6f, 0xea, 0x79, 0x06, 0xed, 0xa6, 0xd6, 0xbe,
	0x6e, 0xf2, 0x95, 0xb7, 0x1c, 0xdd, 0x85, 0xd6, 0xfd, 0xa5, 0xb6,
	0xae, 0x1a, 0xe6, 0x1d, 0x0e, 0xd0, 0x20, 0x74, 0x37, 0x6f,
};

static struct noise_responder *responder;
static uint8_t mac1_key[32];

static void decode(const uint8_t *msg, size_t len, const uint8_t *last)
{
	uint8_t pub[NOISE_KEY_LEN], ts[NOISE_TIMESTAMP_LEN];
	enum noise_status st;

	st = noise_decode(responder, msg, len, last, pub, ts);
	if (noise_status_str(st)[0] == 'u')
		abort(); /* a status outside the enum */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t msg[NOISE_INITIATION_LEN], key[KEY_LEN], pub[32];
	char *text;

	if (!responder) {
		if (sodium_init() < 0 ||
		    noise_responder_new(&responder, RESPONDER_KEY))
			abort();
		noise_responder_public_key(responder, pub);
		noise_hash2(mac1_key, "mac1----", 8, pub, 32);
	}
	if (!size)
		return 0;

	switch (data[0] & 3) {
	case 0:
		decode(data + 1, size - 1, NULL);
		break;
	case 1:
		if (size < 1 + NOISE_INITIATION_LEN)
			break;
		memcpy(msg, data + 1, NOISE_INITIATION_LEN);
		if (noise_blake2s(msg + 116, 16, msg, 116, mac1_key, 32))
			abort();
		decode(msg, sizeof(msg),
		       size >= 1 + NOISE_INITIATION_LEN + NOISE_TIMESTAMP_LEN
			       ? data + 1 + NOISE_INITIATION_LEN
			       : NULL);
		break;
	case 2:
		if (!noise_parse_initiation(msg, data + 1, size - 1))
			decode(msg, sizeof(msg), NULL);
		break;
	case 3:
		/* The key codecs take C strings. */
		text = malloc(size);
		if (!text)
			return 0;
		memcpy(text, data + 1, size - 1);
		text[size - 1] = '\0';
		if (!key_from_base64(key, text) || !key_from_hex(key, text)) {
			char b64[KEY_B64_LEN], hex[KEY_HEX_LEN];

			key_to_base64(b64, key);
			key_to_hex(hex, key);
		}
		free(text);
		break;
	}
	return 0;
}
