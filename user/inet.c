// SPDX-License-Identifier: MIT
#include <string.h>

#include <netinet/in.h>

#include "inet.h"

uint32_t inet_sum16(uint32_t sum, const void *data, size_t len)
{
	const uint8_t *p = data;

	for (; len > 1; len -= 2, p += 2)
		sum += (uint32_t)p[0] << 8 | p[1];
	if (len)
		sum += (uint32_t)p[0] << 8;
	return sum;
}

uint16_t inet_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

uint16_t inet_udp_check(const void *src, const void *dst, size_t alen,
			const struct udphdr *uh, const void *payload, size_t plen)
{
	uint32_t sum = inet_sum16(inet_sum16(0, src, alen), dst, alen);
	uint16_t c;

	sum += IPPROTO_UDP + sizeof(*uh) + plen;
	sum = inet_sum16(inet_sum16(sum, uh, sizeof(*uh)), payload, plen);
	c = (uint16_t)~inet_fold(sum);
	return c ? c : 0xffff;
}

bool inet_martian(int family, const uint8_t saddr[static 16])
{
	static const uint8_t mapped[12] = { [10] = 0xff, [11] = 0xff };
	size_t i;

	if (family == 4)
		return saddr[12] == 0 || saddr[12] == 127 || saddr[12] >= 224;
	if (saddr[0] == 0xff || !memcmp(saddr, mapped, 12))
		return true;
	for (i = 0; i < 15; i++)
		if (saddr[i])
			return false;
	return saddr[15] <= 1; /* :: and ::1 */
}
