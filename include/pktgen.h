/* SPDX-License-Identifier: MIT */
/*
 * Types shared by the packet-rate sender's XDP program (bpf/pktgen.bpf.c)
 * and jitwg-pktgen (user/pktgen.c). The program runs through
 * BPF_PROG_TEST_RUN with live frames: each run starts from a template frame
 * of one kind, writes what varies per packet and returns XDP_TX.
 */
#ifndef JITWG_PKTGEN_H
#define JITWG_PKTGEN_H

#ifdef __bpf__
/* vmlinux.h provides __u8 … __u64 */
#else
#include <linux/types.h>
#endif

enum {
	PKTGEN_KINDS_MAX = 16,
	PKTGEN_MSG_LEN = 148,      /* longest payload the table holds */
	PKTGEN_MSGS_MAX = 1 << 16, /* payloads of all kinds together */
	PKTGEN_PAYLOAD_OFF_MAX = 128,
	PKTGEN_STAMP_OFF = 4,      /* the counter of a unique kind: over the
				    * sender index and the start of the
				    * ephemeral key, the head jitwg tells
				    * copies by (jitwg_recent) */
};

/*
 * One UDP payload of the table, and the 16-bit ones' complement sum of its
 * first len bytes as loaded word by word from memory (RFC 1071: the sum does
 * not depend on byte order), so the program can finish the UDP checksum
 * without reading the payload.
 */
struct pktgen_msg {
	__u8 data[PKTGEN_MSG_LEN];
	__u16 sum;
	__u16 reserved;
};

_Static_assert(sizeof(struct pktgen_msg) == 152, "pktgen_msg layout");

/*
 * What the program rewrites for one kind. Offsets are from the start of the
 * frame; 0 means "nothing to write" where a real offset is never 0.
 * The template frame carries the first source (src_base) and its
 * checksums; the program derives each packet's from those, never from what
 * the page held before (live frames reuse pages without resetting them).
 */
struct pktgen_kind {
	__u32 src_off;       /* the 32-bit word of the source address that counts */
	__u32 src_base;      /* its value in the template, host order */
	__u32 src_count;     /* sources: src_base + seq % src_count */
	__u32 ip_csum_off;   /* IPv4 header checksum, 0 for IPv6 */
	__u32 udp_csum_off;  /* UDP checksum */
	__u32 payload_off;   /* UDP payload */
	__u32 msg_first;     /* first table entry of this kind */
	__u32 msg_count;     /* entries: msg_first + seq % msg_count; 0 = none */
	__u32 msg_len;       /* 148 or 128 bytes copied from the table */
	__u32 stamp;         /* nonzero: write seq over payload bytes 4-11 (the
			      * head, zero in the table): every packet is a new
			      * message, its mac1 wrong */
	__u32 reserved;
	__u16 ip_csum;       /* the template's IPv4 header checksum, as in memory */
	__u16 hdr_sum;       /* sum of the pseudo-header and UDP header (checksum
			      * 0), template source, as loaded from memory */
	__u64 seq;           /* packets of this kind so far (the program's) */
};

_Static_assert(sizeof(struct pktgen_kind) == 56, "pktgen_kind layout");

#endif
