/* SPDX-License-Identifier: MIT */
/* Crafted Ethernet frames for BPF_PROG_TEST_RUN tests and benchmarks. */
#ifndef JITWG_TESTS_FRAMES_H
#define JITWG_TESTS_FRAMES_H

#include <stddef.h>
#include <stdint.h>

enum { FRAME_MAX = 1600 };

struct frame_spec {
	int family;            /* 4 or 6; 0 = ARP (not IP) */
	int vlans;             /* 0, 1 (802.1Q) or 2 (802.1ad + 802.1Q) */
	int ip_opts;           /* IPv4 option bytes, multiple of 4 */
	int l4proto;           /* 0 = UDP (17), else that protocol number */
	uint16_t frag;         /* IPv4 frag_off field (host order), e.g. 0x2000 */
	uint8_t ext[6];        /* IPv6 extension headers in order (0, 43, 44,
				* 60), n_ext of them; 43 is 16 bytes long, the
				* others 8 */
	int n_ext;
	const uint8_t *saddr;  /* 4 or 16 bytes; NULL = a default */
	uint16_t sport, dport;
	const uint8_t *payload;
	size_t payload_len;
};

/* Header offsets in the built frame, for truncation tests. */
struct frame_layout {
	size_t l3;      /* IP header */
	size_t l4;      /* UDP header */
	size_t payload; /* UDP payload */
	size_t len;     /* whole frame */
};

size_t frame_build(uint8_t *buf, const struct frame_spec *spec,
		   struct frame_layout *layout);
/* A 148-byte handshake-initiation-shaped payload (type 1, filled with a pattern). */
void frame_initiation(uint8_t msg[148], uint8_t seed);

#endif
