/* SPDX-License-Identifier: MIT */
/*
 * Small facts about IP packets that jitwgd builds (re-delivery under
 * --consume, cookie replies) or receives: the Internet checksum and the
 * source addresses no client can have.
 */
#ifndef JITWG_INET_H
#define JITWG_INET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <netinet/udp.h>

/* RFC 1071: the ones' complement sum of data (network order) added to sum. */
uint32_t inet_sum16(uint32_t sum, const void *data, size_t len);
/* The 32-bit sum folded to 16 bits, not complemented. */
uint16_t inet_fold(uint32_t sum);
/*
 * The UDP checksum (host order) of uh (its check field 0) and plen bytes of
 * payload, over the pseudo-header of src and dst, alen (4 or 16) bytes each:
 * RFC 768, RFC 8200 §8.1. A computed 0 comes back as 0xffff, 0 meaning "no
 * checksum".
 */
uint16_t inet_udp_check(const void *src, const void *dst, size_t alen,
			const struct udphdr *uh, const void *payload, size_t plen);
/*
 * Sources no client can have, by their class alone: unspecified, loopback,
 * multicast, IPv4's class E and broadcast, IPv4-mapped inside IPv6. saddr is
 * IPv4-mapped for family 4. The kernel drops them as martians on the uplink,
 * but XDP sees them first.
 */
bool inet_martian(int family, const uint8_t saddr[static 16]);

#endif
