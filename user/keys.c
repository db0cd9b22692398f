// SPDX-License-Identifier: MIT
/* Key encodings on top of libsodium's constant-time codecs. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "keys.h"

static int decode(uint8_t key[static KEY_LEN], const char *s, int b64)
{
	uint8_t tmp[KEY_LEN + 8];
	size_t n = 0;
	const char *end = NULL;
	int ret = -EINVAL;

	while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
		s++;
	if (b64 ? sodium_base642bin(tmp, sizeof(tmp), s, strlen(s), NULL, &n,
				    &end, sodium_base64_VARIANT_ORIGINAL)
		: sodium_hex2bin(tmp, sizeof(tmp), s, strlen(s), NULL, &n, &end))
		goto out;
	if (n != KEY_LEN)
		goto out;
	while (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r')
		end++;
	if (*end)
		goto out;
	memcpy(key, tmp, KEY_LEN);
	ret = 0;
out:
	sodium_memzero(tmp, sizeof(tmp));
	return ret;
}

int key_from_base64(uint8_t key[static KEY_LEN], const char *s)
{
	return decode(key, s, 1);
}

int key_from_hex(uint8_t key[static KEY_LEN], const char *s)
{
	return decode(key, s, 0);
}

void key_to_base64(char out[static KEY_B64_LEN], const uint8_t key[static KEY_LEN])
{
	sodium_bin2base64(out, KEY_B64_LEN, key, KEY_LEN,
			  sodium_base64_VARIANT_ORIGINAL);
}

void key_to_base64url(char out[static KEY_B64URL_LEN], const uint8_t key[static KEY_LEN])
{
	sodium_bin2base64(out, KEY_B64URL_LEN, key, KEY_LEN,
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

void key_to_hex(char out[static KEY_HEX_LEN], const uint8_t key[static KEY_LEN])
{
	sodium_bin2hex(out, KEY_HEX_LEN, key, KEY_LEN);
}

int key_is_zero(const uint8_t key[static KEY_LEN])
{
	return sodium_is_zero(key, KEY_LEN);
}

int key_read_file(uint8_t key[static KEY_LEN], const char *path)
{
	char buf[128];
	ssize_t n;
	int fd, ret;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	ret = n < 0 ? -errno : 0;
	close(fd);
	if (ret)
		goto out;
	buf[n] = '\0';
	ret = key_from_base64(key, buf);
out:
	sodium_memzero(buf, sizeof(buf));
	return ret;
}
