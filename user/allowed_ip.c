// SPDX-License-Identifier: MIT
#include <string.h>
#include <sys/socket.h>

#include "allowed_ip.h"

bool allowed_ip_overlaps(const struct wgdev_allowed_ip *a,
			 const struct wgdev_allowed_ip *b)
{
	const uint8_t *x, *y;
	unsigned int bits, full, rem;

	if (a->family != b->family)
		return false;
	bits = a->cidr < b->cidr ? a->cidr : b->cidr;
	if (a->family == AF_INET) {
		x = (const uint8_t *)&a->ip4;
		y = (const uint8_t *)&b->ip4;
	} else {
		x = (const uint8_t *)&a->ip6;
		y = (const uint8_t *)&b->ip6;
	}
	/* Two prefixes overlap iff they agree on the shorter one's bits. */
	full = bits / 8;
	rem = bits % 8;
	if (memcmp(x, y, full))
		return false;
	if (rem) {
		uint8_t mask = (uint8_t)(0xff << (8 - rem));

		if ((x[full] & mask) != (y[full] & mask))
			return false;
	}
	return true;
}

long allowed_ips_overlap(const struct wgdev_allowed_ip *a, size_t na,
			 const struct wgdev_allowed_ip *b, size_t nb)
{
	for (size_t i = 0; i < na; i++)
		for (size_t j = 0; j < nb; j++)
			if (allowed_ip_overlaps(&a[i], &b[j]))
				return (long)i;
	return -1;
}
