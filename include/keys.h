/* SPDX-License-Identifier: MIT */
/* WireGuard key encodings: base64 (wg genkey), base64url (API paths), hex (UAPI). */
#ifndef JITWG_KEYS_H
#define JITWG_KEYS_H

#include <stddef.h>
#include <stdint.h>

#define KEY_LEN 32
#define KEY_B64_LEN 45     /* 44 characters + NUL */
#define KEY_B64URL_LEN 44  /* 43 characters, unpadded, + NUL */
#define KEY_HEX_LEN 65     /* 64 characters + NUL */

/* Decoders accept surrounding whitespace; return 0 or -EINVAL. */
int key_from_base64(uint8_t key[static KEY_LEN], const char *s);
int key_from_hex(uint8_t key[static KEY_LEN], const char *s);
void key_to_base64(char out[static KEY_B64_LEN], const uint8_t key[static KEY_LEN]);
void key_to_base64url(char out[static KEY_B64URL_LEN], const uint8_t key[static KEY_LEN]);
void key_to_hex(char out[static KEY_HEX_LEN], const uint8_t key[static KEY_LEN]);
/* True for the all-zero key (unset). Constant time. */
int key_is_zero(const uint8_t key[static KEY_LEN]);
/*
 * Read a base64 private key from a file, as `wg genkey` writes it. The file
 * buffer is wiped. Returns 0, -errno from open/read, or -EINVAL.
 */
int key_read_file(uint8_t key[static KEY_LEN], const char *path);

#endif
