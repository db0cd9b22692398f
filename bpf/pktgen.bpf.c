// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * jitwg-pktgen's sender: run by BPF_PROG_TEST_RUN with live frames
 * (BPF_F_TEST_XDP_LIVE_FRAMES) on the sending veth, it turns the template
 * frame of the current kind into the next packet and returns XDP_TX, which
 * the test run turns into a transmit on that device: no socket, no skb, so
 * one core sends millions of packets a second.
 *
 * Per packet it writes the source address from a counter, the payload from a
 * table of prepared messages, and the checksums, derived incrementally
 * (RFC 1624) from the template's: a page of the live-frames pool keeps what
 * the previous packet left in it, so nothing is read back from the frame.
 */
#include "vmlinux.h"
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "pktgen.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";

/* Prepared UDP payloads of every kind. Written by jitwg-pktgen before sending. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, PKTGEN_MSGS_MAX);
	__type(key, __u32);
	__type(value, struct pktgen_msg);
} msgs SEC(".maps");

/* Each kind's offsets and counter; written by jitwg-pktgen, seq by us. */
struct pktgen_kind kinds[PKTGEN_KINDS_MAX];
/* The kind the next test run sends. Written by jitwg-pktgen. */
__u32 cur;

static __always_inline __u32 fold(__u32 s)
{
	s = (s & 0xffff) + (s >> 16);
	return (s & 0xffff) + (s >> 16);
}

/* Copy n 8-byte words (and a 4-byte head when n4) into the packet. */
#define COPY_WORDS(dst, src, head4, words)                                   \
	do {                                                                 \
		__u32 o_ = 0;                                                \
		if (head4) {                                                 \
			*(__u32 *)(dst) = *(const __u32 *)(src);             \
			o_ = 4;                                              \
		}                                                            \
		_Pragma("unroll") for (int i_ = 0; i_ < (words); i_++)       \
			*(__u64 *)((dst) + o_ + i_ * 8) =                    \
				*(const __u64 *)((src) + o_ + i_ * 8);       \
	} while (0)

SEC("xdp")
int pktgen_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct pktgen_kind *k;
	struct pktgen_msg *m;
	__u32 idx = cur, old, new, delta, off, sum;
	__u8 *p;
	__u64 n;

	if (idx >= PKTGEN_KINDS_MAX)
		return XDP_ABORTED;
	k = &kinds[idx];
	n = k->seq++;

	/* Source: one 32-bit word of the address counts up. */
	old = bpf_htonl(k->src_base);
	new = bpf_htonl(k->src_base + (__u32)(k->src_count ? n % k->src_count : 0));
	/* ~old + new, as 16-bit words in memory order (RFC 1624 eqn. 3) */
	delta = (~old & 0xffff) + (~old >> 16) + (new & 0xffff) + (new >> 16);
	off = k->src_off;
	if (off > PKTGEN_PAYLOAD_OFF_MAX)
		return XDP_ABORTED;
	p = data + off;
	if ((void *)(p + 4) > end)
		return XDP_ABORTED;
	*(__u32 *)p = new;

	if (k->ip_csum_off) {
		off = k->ip_csum_off;
		if (off > PKTGEN_PAYLOAD_OFF_MAX)
			return XDP_ABORTED;
		p = data + off;
		if ((void *)(p + 2) > end)
			return XDP_ABORTED;
		*(__u16 *)p = ~fold((__u16)~k->ip_csum + delta);
	}

	sum = k->hdr_sum + delta;
	if (k->msg_count) {
		idx = k->msg_first + (__u32)(n % k->msg_count);
		m = bpf_map_lookup_elem(&msgs, &idx);
		if (!m)
			return XDP_ABORTED;
		off = k->payload_off;
		if (off > PKTGEN_PAYLOAD_OFF_MAX)
			return XDP_ABORTED;
		p = data + off;
		if (k->msg_len == 148) {
			if ((void *)(p + 148) > end)
				return XDP_ABORTED;
			COPY_WORDS(p, m->data, 1, 18);
		} else {
			if ((void *)(p + 128) > end)
				return XDP_ABORTED;
			COPY_WORDS(p, m->data, 0, 16);
		}
		sum += m->sum;
		if (k->stamp) {
			/* over zeros: the sum gains the counter's words */
			*(__u64 *)(p + PKTGEN_STAMP_OFF) = n;
			sum += (n & 0xffff) + ((n >> 16) & 0xffff) +
			       ((n >> 32) & 0xffff) + (n >> 48);
		}
	}
	off = k->udp_csum_off;
	if (off > PKTGEN_PAYLOAD_OFF_MAX)
		return XDP_ABORTED;
	p = data + off;
	if ((void *)(p + 2) > end)
		return XDP_ABORTED;
	sum = ~fold(sum) & 0xffff;
	/* A computed 0 is sent as all ones (RFC 768); 0 means "no checksum". */
	*(__u16 *)p = sum ? sum : 0xffff;
	return XDP_TX;
}
