// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * jitwg XDP capture: finds WireGuard handshake initiations on the uplink,
 * rate-limits them per source and globally (sources that completed a
 * handshake, "verified", on a budget of their own), and hands them to userspace
 * through a ring buffer. Every other packet passes untouched; initiations
 * pass too (WireGuard itself must still receive them) unless the operator
 * asked to drop those over the limit, or a consumer holds the lease (see the
 * lease in jitwg.h) and re-delivers them itself.
 *
 * Parsers take a cursor and return the next protocol, or a negative value
 * when the packet is not ours (NOT_OURS) or its headers are cut short or
 * inconsistent (MALFORMED).
 */
#include "vmlinux.h"
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "jitwg.h"

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define ETH_P_8021Q 0x8100
#define ETH_P_8021AD 0x88A8
#define IP_MF 0x2000
#define IP_OFFSET 0x1FFF
/* IPv6 extension headers (uapi/linux/in6.h; macros, not in vmlinux.h) */
#define IPPROTO_HOPOPTS 0
#define IPPROTO_ROUTING 43
#define IPPROTO_DSTOPTS 60
#define IPV6_EXT_MAX 4 /* extension headers followed before UDP */
#define UDP_HLEN 8
#define WG_UDP_LEN (UDP_HLEN + WG_INITIATION_LEN)

enum { NOT_OURS = -1, MALFORMED = -2 };

char LICENSE[] SEC("license") = "Dual MIT/GPL";

/* Handshake initiations for userspace. Written here, read by the loader. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, JITWG_RINGBUF_BYTES);
} events SEC(".maps");

/* enum jitwg_counter → count, per CPU. Written here, summed by the loader. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, JITWG_CTR_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

/* One struct jitwg_config: rate limits and flags. Written by the loader. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct jitwg_config);
} settings SEC(".maps");

/*
 * The consumer's lease: CLOCK_MONOTONIC ns until which initiations handed
 * to the ring buffer are dropped here (JITWG_LEASE_NS). Written by the
 * consumer (jitwgd --consume), 0 otherwise.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, JITWG_LEASE_WORDS);
	__type(key, __u32);
	__type(value, __u64);
} lease SEC(".maps");

/*
 * This host's addresses (IPv4-mapped) → 1. Only an initiation sent to one
 * of them is dropped under the lease: WireGuard traffic this host forwards
 * to another one is never taken. Written by the consumer with the lease.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, JITWG_LOCAL_ADDRS_MAX);
	__type(key, struct jitwg_src_key);
	__type(value, __u8);
} local_addrs SEC(".maps");

/*
 * WireGuard UDP ports as a 65,536-bit bitmap: entry port / 64, bit port % 64.
 * An array lookup is inlined by the verifier, so UDP to other ports costs
 * a load and a test. Written by the loader.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 65536 / 64);
	__type(key, __u32);
	__type(value, __u64);
} ports SEC(".maps");

/*
 * Per-source buckets: GCRA state (see limited()) in a fixed array, slot
 * JITWG_SRC_SLOT(key) of the source's key (IPv4 address or IPv6 /64). No
 * entry is ever inserted or evicted, so a flood of spoofed sources costs no
 * allocation and cannot push a real source's state out; two sources whose
 * keys hash alike share a bucket (the hash is keyed, see jitwg.h, so a flood
 * cannot pick whose). Written here only.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, JITWG_SRC_MAP_ENTRIES);
	__type(key, __u32);
	__type(value, __u64);
} src_buckets SEC(".maps");

/*
 * Verified sources (IPv4 address or IPv6 /64, as source_key()) → their own
 * bucket and expiry. A plain hash, never an LRU: only userspace adds entries
 * (capture_mark_verified), so no flood can push one out. The program writes
 * only the bucket.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, JITWG_VERIFIED_MAP_ENTRIES);
	__type(key, struct jitwg_src_key);
	__type(value, struct jitwg_verified);
} verified SEC(".maps");

/* Bit JITWG_VERIFIED_HASH(key) set for each verified source. Written by the loader. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, JITWG_VERIFIED_WORDS);
	__type(key, __u32);
	__type(value, __u64);
} verified_bits SEC(".maps");

/* The seed of JITWG_VERIFIED_HASH, one entry. Written by the loader. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} verified_seed SEC(".maps");

/* Initiations handed to userspace lately, by head and mac1 (see jitwg_recent). Written here only. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, JITWG_RECENT_SLOTS);
	__type(key, __u32);
	__type(value, struct jitwg_recent);
} recent SEC(".maps");

/* The bucket of copies (see jitwg_recent), one entry. Written here only. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct jitwg_bucket);
} dup_bucket SEC(".maps");

/* Sources sent a cookie (see jitwg_cookie_key). Added by userspace; the program writes the bucket. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, JITWG_COOKIE_MAP_ENTRIES);
	__type(key, struct jitwg_cookie_key);
	__type(value, struct jitwg_cookie_src);
} cookie_sources SEC(".maps");

/* Until when a cookie may come back (see JITWG_COOKIE_TTL_NS). Written by userspace. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} cookie_active SEC(".maps");

/* The bucket all cookie retries share, one entry. Written here only. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct jitwg_bucket);
} cookie_bucket SEC(".maps");
/* The prefix reserve's slots, GCRA words (see JITWG_PREFIX_SLOT_A). Written here only. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, JITWG_PREFIX_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} prefix_reserve SEC(".maps");

/* The global bucket, one entry. Written here only. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct jitwg_bucket);
} global_bucket SEC(".maps");

struct cursor {
	void *pos;
	void *end;
};

/*
 * What the parsers learnt. Addresses stay in the packet (l3) until a match:
 * copying them for every UDP packet would tax all the traffic that is not
 * ours.
 */
struct flow {
	void *l3;      /* the IPv4 or IPv6 header */
	__u16 sport, dport;
	__u16 l4_len;  /* bytes after the IP header, from the IP header */
	__u8 family;
	__u8 vlan_depth;
	__be16 udp_check;
};

static __always_inline void count(__u32 ctr)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &ctr);

	if (v)
		*v += 1;
}

/* Ethernet and up to two VLAN tags (802.1ad outer, 802.1Q inner). */
static __always_inline int parse_eth(struct cursor *c, struct flow *f)
{
	struct ethhdr *eth = c->pos;
	struct vlan_hdr *vh;
	__u16 proto;
	int i;

	if ((void *)(eth + 1) > c->end)
		return MALFORMED;
	proto = eth->h_proto;
	c->pos = eth + 1;
#pragma unroll
	for (i = 0; i < 2; i++) {
		if (proto != bpf_htons(ETH_P_8021Q) &&
		    proto != bpf_htons(ETH_P_8021AD))
			break;
		vh = c->pos;
		if ((void *)(vh + 1) > c->end)
			return MALFORMED;
		proto = vh->h_vlan_encapsulated_proto;
		c->pos = vh + 1;
		f->vlan_depth++;
	}
	return proto;
}

/*
 * IPv4 with any header length. Fragments are never matched: a first
 * fragment's UDP length covers data that is not here, and later fragments
 * carry no UDP header at all.
 */
static __always_inline int parse_ipv4(struct cursor *c, struct flow *f)
{
	struct iphdr *ip = c->pos;
	__u32 hlen;

	if ((void *)(ip + 1) > c->end)
		return MALFORMED;
	hlen = ip->ihl * 4;
	if (ip->version != 4 || hlen < sizeof(*ip))
		return MALFORMED;
	if (c->pos + hlen > c->end)
		return MALFORMED;
	if (ip->protocol != IPPROTO_UDP)
		return NOT_OURS;
	if (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET))
		return NOT_OURS;
	if (bpf_ntohs(ip->tot_len) < hlen)
		return MALFORMED;
	f->l4_len = bpf_ntohs(ip->tot_len) - hlen;
	f->l3 = ip;
	f->family = 4;
	c->pos += hlen;
	return IPPROTO_UDP;
}

/*
 * IPv6, following the extension headers that may precede UDP (RFC 8200
 * §4.2-4.6: hop-by-hop options, routing, destination options), at most
 * IPV6_EXT_MAX of them; a longer chain is passed unmatched. A fragment
 * header means a fragmented datagram: not matched, as for IPv4.
 */
static __always_inline int parse_ipv6(struct cursor *c, struct flow *f)
{
	struct ipv6hdr *ip6 = c->pos;
	__u32 ext = 0;
	__u8 next;
	int i;

	if ((void *)(ip6 + 1) > c->end)
		return MALFORMED;
	if (ip6->version != 6)
		return MALFORMED;
	next = ip6->nexthdr;
	c->pos = ip6 + 1;
#pragma unroll
	for (i = 0; i < IPV6_EXT_MAX; i++) {
		struct ipv6_opt_hdr *h = c->pos;
		__u32 len;

		if (next != IPPROTO_HOPOPTS && next != IPPROTO_ROUTING &&
		    next != IPPROTO_DSTOPTS)
			break;
		if ((void *)(h + 1) > c->end)
			return MALFORMED;
		len = ((__u32)h->hdrlen + 1) * 8; /* 8-octet units, the first not counted */
		if (c->pos + len > c->end)
			return MALFORMED;
		next = h->nexthdr;
		c->pos += len;
		ext += len;
	}
	if (next != IPPROTO_UDP)
		return NOT_OURS;
	if (bpf_ntohs(ip6->payload_len) < ext)
		return MALFORMED;
	f->l4_len = bpf_ntohs(ip6->payload_len) - ext;
	f->l3 = ip6;
	f->family = 6;
	return IPPROTO_UDP;
}

/*
 * Word-sized copies. clang only knows the packet is byte-aligned and would
 * copy byte by byte (a 148-byte message was ~300 instructions, most of an
 * event's cost); these casts make it emit 8-byte loads and stores. The
 * verifier accepts misaligned packet and ring-buffer access on every
 * architecture with efficient unaligned access (x86-64, arm64), which is what
 * the JIT then runs.
 */
static __always_inline void copy16(__u8 *dst, const void *src)
{
	((__u64 *)dst)[0] = ((const __u64 *)src)[0];
	((__u64 *)dst)[1] = ((const __u64 *)src)[1];
}

/* IPv4-mapped IPv6: ::ffff:a.b.c.d */
static __always_inline void map4(__u8 *dst, __be32 addr)
{
	((__u64 *)dst)[0] = 0;
	((__u32 *)dst)[2] = bpf_htonl(0xffff);
	((__u32 *)dst)[3] = addr;
}

/*
 * The source and destination addresses, 16 bytes each, IPv4 as IPv4-mapped
 * IPv6 (::ffff:a.b.c.d). Either pointer may be NULL.
 */
static __always_inline int addrs(const struct flow *f, void *end, __u8 *saddr,
				 __u8 *daddr)
{
	if (f->family == 4) {
		struct iphdr *ip = f->l3;

		if ((void *)(ip + 1) > end)
			return -1;
		if (saddr)
			map4(saddr, ip->saddr);
		if (daddr)
			map4(daddr, ip->daddr);
	} else {
		struct ipv6hdr *ip6 = f->l3;

		if ((void *)(ip6 + 1) > end)
			return -1;
		if (saddr)
			copy16(saddr, &ip6->saddr);
		if (daddr)
			copy16(daddr, &ip6->daddr);
	}
	return 0;
}

/* The initiation: 148 = 4 + 18 * 8, so the 8-byte stores land aligned. */
static __always_inline void copy_msg(__u8 *dst, const __u8 *src)
{
	*(__u32 *)dst = *(const __u32 *)src;
#pragma unroll
	for (int i = 4; i < WG_INITIATION_LEN; i += 8)
		*(__u64 *)(dst + i) = *(const __u64 *)(src + i);
}

static __always_inline bool is_wg_port(__u16 port)
{
	__u32 idx = port >> 6;
	__u64 *bits = bpf_map_lookup_elem(&ports, &idx);

	return bits && (*bits & (1ULL << (port & 63)));
}

/*
 * Generic cell rate algorithm, the token bucket in one word: the bucket
 * state is the "theoretical arrival time" tat. A packet conforms when
 * tat - now <= (burst - 1) * interval, and then moves tat on by one
 * interval. Equivalent to a bucket of `burst` tokens refilled at `rate`
 * per second, and updatable with one compare-and-swap, so concurrent CPUs
 * never admit more than the bucket allows. Returns true when limited.
 */
static __always_inline bool limited_iv(__u64 *tat_p, __u64 interval, __u64 tol,
				       __u64 now)
{
	__u64 tat, start;
	int i;

	tat = *tat_p;
	/* Two tries; losing twice to other CPUs counts as limited. */
#pragma unroll
	for (i = 0; i < 2; i++) {
		__u64 old;

		start = tat > now ? tat : now;
		if (start - now > tol)
			return true;
		old = __sync_val_compare_and_swap(tat_p, tat, start + interval);
		if (old == tat)
			return false;
		tat = old;
	}
	return true;
}

/* A bucket of burst tokens refilled at rate per second (0: no limit). */
static __always_inline bool limited(__u64 *tat_p, __u32 rate, __u32 burst,
				    __u64 now)
{
	__u64 interval;

	if (!rate)
		return false;
	interval = 1000000000ULL / rate;
	return limited_iv(tat_p, interval, (burst ? burst - 1 : 0) * interval, now);
}

/* The source's bucket key: its IPv4 address, or its IPv6 /64. */
static __always_inline int source_key(const struct flow *f, void *end,
				      struct jitwg_src_key *key)
{
	if (addrs(f, end, key->addr, NULL))
		return -1;
	/* IPv6 sources share a bucket per /64, as one host may own all of it. */
	if (f->family == 6)
		((__u64 *)key->addr)[1] = 0;
	return 0;
}

/* Whether the bucket has no token now, without taking one (no write). */
static __always_inline bool spent(const __u64 *tat_p, __u32 rate, __u32 burst,
				  __u64 now)
{
	__u64 interval, tat = *(volatile const __u64 *)tat_p;

	if (!rate)
		return false;
	interval = 1000000000ULL / rate;
	return tat > now && tat - now > (burst ? burst - 1 : 0) * interval;
}

/* The seed of the keyed hashes (verified_seed), or NULL. */
static __always_inline __u64 *hash_seed(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&verified_seed, &zero);
}

/* Whether key may be verified: its bit in verified_bits (see jitwg.h). */
static __always_inline bool maybe_verified(const struct jitwg_src_key *key,
					   const __u64 *seed)
{
	const __u64 *w = (const __u64 *)key->addr;
	__u64 *word;
	__u32 idx, h;

	if (!seed)
		return true;
	h = JITWG_VERIFIED_HASH(w[0], w[1], *seed);
	idx = h >> 6;
	word = bpf_map_lookup_elem(&verified_bits, &idx);
	return !word || (*word & (1ull << (h & 63)));
}

/* The source's bucket in src_buckets (see JITWG_SRC_SLOT), or NULL. */
static __always_inline __u64 *source_bucket(const struct jitwg_src_key *key,
					    const __u64 *seed)
{
	const __u64 *w = (const __u64 *)key->addr;
	__u32 idx;

	if (!seed)
		return NULL;
	idx = JITWG_SRC_SLOT(w[0], w[1], *seed);
	return bpf_map_lookup_elem(&src_buckets, &idx);
}

/*
 * The source's prefix's two slots in prefix_reserve (see
 * JITWG_PREFIX_SLOT_A), *a the emptier: IPv4 /20, IPv6 /48 (a site; a /64
 * is one host's), from the source's key. A /20 rather than a /24: a spoofed
 * range of a million addresses covers ~3,900 /24s but only ~240 /20s.
 * Returns -1 if a slot is missing.
 */
static __always_inline int prefix_slots(const struct flow *f,
					const struct jitwg_src_key *key,
					const __u64 *seed, __u64 **a, __u64 **b)
{
	__u64 w0 = ((const __u64 *)key->addr)[0], w1 = ((const __u64 *)key->addr)[1];
	__u64 h, *t;
	__u32 idx;

	if (!seed)
		return -1;
	if (f->family == 4) {
		((__u8 *)&w1)[6] &= 0xf0; /* address byte 14: a /20 */
		((__u8 *)&w1)[7] = 0;     /* address byte 15 */
	} else {
		w1 = 0;
		((__u8 *)&w0)[6] = 0;     /* address bytes 6 and 7 */
		((__u8 *)&w0)[7] = 0;
	}
	h = JITWG_PREFIX_HASH(w0, w1, *seed);
	idx = JITWG_PREFIX_SLOT_A(h);
	*a = bpf_map_lookup_elem(&prefix_reserve, &idx);
	idx = JITWG_PREFIX_SLOT_B(h);
	*b = bpf_map_lookup_elem(&prefix_reserve, &idx);
	if (!*a || !*b)
		return -1;
	/* Racy reads: another CPU may charge either meanwhile (a meter). */
	if (*(volatile __u64 *)*b < *(volatile __u64 *)*a) {
		t = *a;
		*a = *b;
		*b = t;
	}
	return 0;
}

/* A prefix slot's refill interval and tolerance (see JITWG_PREFIX_SLOT_A). */
static __always_inline __u64 prefix_interval(const struct jitwg_config *cfg)
{
	return 1000000000ULL * JITWG_PREFIX_SHARE * JITWG_PREFIX_SLOTS /
	       cfg->global_rate;
}

static __always_inline __u64 prefix_tol(const struct jitwg_config *cfg, __u64 iv)
{
	__u32 burst = cfg->global_burst / JITWG_PREFIX_SHARE / JITWG_PREFIX_SLOTS;

	return burst > 1 ? (burst - 1) * iv : 0;
}

/*
 * An initiation the global bucket admitted, charged to both of its prefix's
 * slots too: what the prefix used of its share. The debt is capped, so a prefix
 * that stops flooding has its reserve back within JITWG_PREFIX_DEBT_NS.
 * Racing CPUs may lose a charge: it is a meter, not a limit.
 */
static __always_inline void charge_prefix(__u64 *p, const struct jitwg_config *cfg,
					  __u64 now)
{
	__u64 iv = prefix_interval(cfg), tol = prefix_tol(cfg, iv);
	__u64 tat = *p, cap = now + tol + JITWG_PREFIX_DEBT_NS;

	tat = (tat > now ? tat : now) + iv;
	*p = tat < cap ? tat : cap;
}

/*
 * The recent table is 2-way set-associative: a set is two neighbouring
 * slots (one cache line), so two messages that hash alike do not push each
 * other out and pass as new each time. A message is found by its head (see
 * jitwg_recent), the set by the head's low bits: the sender index, random
 * per handshake.
 */
static __always_inline __u64 head(const __u8 *msg)
{
	return *(const __u64 *)(msg + JITWG_RECENT_HEAD_OFF);
}

static __always_inline struct jitwg_recent *recent_slot(const __u8 *msg, __u32 way)
{
	__u32 idx = (head(msg) & (JITWG_RECENT_SLOTS - 2)) | way;

	return bpf_map_lookup_elem(&recent, &idx);
}

/* The head alone (see jitwg_recent): the packet's first cache line. */
static __always_inline bool same(const struct jitwg_recent *r, const __u8 *msg)
{
	return r->head == head(msg);
}

static __always_inline bool holds(const struct jitwg_recent *r, const __u8 *msg,
				  __u64 now)
{
	return r && same(r, msg) && now - r->ts_ns < JITWG_RECENT_NS;
}

/* A copy of an initiation handed to userspace within JITWG_RECENT_NS. */
static __always_inline bool duplicate(const __u8 *msg, __u64 now)
{
	return holds(recent_slot(msg, 0), msg, now) ||
	       holds(recent_slot(msg, 1), msg, now);
}

/*
 * Into the way that holds it already (a copy let through on its budget
 * must not push another message out), else the older way of its set.
 */
static __always_inline void remember(const __u8 *msg, __u64 now)
{
	struct jitwg_recent *r0 = recent_slot(msg, 0), *r1 = recent_slot(msg, 1);
	struct jitwg_recent *r;

	if (!r0 || !r1)
		return;
	if (same(r0, msg))
		r = r0;
	else if (same(r1, msg))
		r = r1;
	else
		r = r1->ts_ns < r0->ts_ns ? r1 : r0;
	/* Racing CPUs may tear it: at worst a copy passes as new once. */
	r->head = head(msg);
	r->ts_ns = now;
}

/* Whether a copy may go on (1), is refused (0), or the message is new (-1). */
static __always_inline int copy_admitted(const struct jitwg_config *cfg,
					 const __u8 *msg, __u64 now)
{
	struct jitwg_bucket *b;
	__u32 zero = 0;

	/*
	 * No global budget, nothing to protect. (Asking only while the
	 * global bucket is below full was not enough: each copy let through
	 * put it back to full within one refill interval, so most copies
	 * went the ordinary way.)
	 */
	if (!cfg->global_rate || !duplicate(msg, now))
		return -1;
	b = bpf_map_lookup_elem(&dup_bucket, &zero);
	return b && !limited(&b->tokens, JITWG_DUP_RATE, JITWG_DUP_BURST, now);
}

/* Whether tat's bucket has no token now, without taking one (no write). */
static __always_inline bool spent_iv(const __u64 *tat_p, __u64 tol, __u64 now)
{
	__u64 tat = *(volatile const __u64 *)tat_p;

	return tat > now && tat - now > tol;
}

/*
 * The source's bucket (*b, NULL without a per-source limit): LIMITED_SRC if
 * it has no token, else 0. Only reads it.
 */
static __always_inline __u32 source_spent(const struct jitwg_src_key *key,
					  const __u64 *seed,
					  const struct jitwg_config *cfg,
					  __u64 now, __u64 **b)
{
	*b = cfg->src_rate ? source_bucket(key, seed) : NULL;
	return *b && spent(*b, cfg->src_rate, cfg->src_burst, now) ?
		       JITWG_CTR_LIMITED_SRC : 0;
}

/* Take the source's token (b from source_spent()): 0, or LIMITED_SRC. */
static __always_inline __u32 source_take(__u64 *b, const struct jitwg_config *cfg,
					 __u64 now)
{
	/* Full since it was last charged: a source not seen lately. */
	bool idle;

	if (!b)
		return 0;
	idle = *(volatile __u64 *)b <= now;
	/* Another CPU may have taken its last token meanwhile: then the
	 * global token was spent for nothing, as before a refusal. */
	if (limited(b, cfg->src_rate, cfg->src_burst, now))
		return JITWG_CTR_LIMITED_SRC;
	if (idle)
		count(JITWG_CTR_SRC_NEW);
	return 0;
}

/* Without a global limit: the source's own bucket alone. */
static __always_inline __u32 source_admits(const struct jitwg_src_key *key,
					   const __u64 *seed,
					   const struct jitwg_config *cfg,
					   __u64 now)
{
	__u64 *b;
	__u32 ctr = source_spent(key, seed, cfg, now, &b);

	return ctr ? ctr : source_take(b, cfg, now);
}

/*
 * The limits, cheapest refusal first; returns the counter of the limit hit,
 * or 0 to admit.
 *
 * A verified source spends only its own bucket: a flood from other sources
 * can take neither its state nor its budget. Any other source first asks
 * whether the global budget is spent (a read of one shared word). If not,
 * its own bucket must have a token (a read), so that one flooding source
 * never drains the global tokens everybody shares; then the global bucket
 * is charged, the prefix's reserve slot metered, and last the source's own
 * token taken. If it is spent (under a flood), only the source's prefix
 * reserve can still admit it (see JITWG_PREFIX_SLOT_A): a prefix that did not
 * flood has its share left, the flood's own prefixes have spent theirs and
 * are refused there, before any source bucket is read. A source's bucket is
 * a slot of a fixed array: no insert, no eviction, nothing a flood can churn.
 */
static __always_inline __u32 admit(const struct flow *f, void *end,
				   const __u8 *msg,
				   const struct jitwg_config *cfg, __u64 now,
				   __u16 *flags)
{
	/* aligned: the verifier wants the word stores to the stack aligned */
	struct jitwg_src_key key __attribute__((aligned(8))) = {};
	struct jitwg_verified *v;
	struct jitwg_bucket *g;
	__u64 *b = NULL, *p, *q, *seed, iv, tol;
	__u32 zero = 0, ctr;

	g = bpf_map_lookup_elem(&global_bucket, &zero);
	if (!g)
		return 0;
	if (source_key(f, end, &key))
		return 0;
	seed = hash_seed();
	v = maybe_verified(&key, seed) ? bpf_map_lookup_elem(&verified, &key) : NULL;
	if (v && now < v->until_ns) {
		count(JITWG_CTR_VERIFIED);
		*flags |= JITWG_EV_VERIFIED;
		return limited(&v->tokens, cfg->verified_rate,
			       cfg->verified_burst, now) ?
			       JITWG_CTR_LIMITED_VERIFIED : 0;
	}
	/* Copies of what userspace has spend their own small budget. */
	switch (copy_admitted(cfg, msg, now)) {
	case 1:
		return 0;
	case 0:
		return JITWG_CTR_DUPLICATE;
	}
	if (!cfg->global_rate)
		return source_admits(&key, seed, cfg, now);
	if (prefix_slots(f, &key, seed, &p, &q))
		return 0;
	/*
	 * Under a flood the global budget is spent: then only a prefix with
	 * its reserve left (a small array in the cache, see
	 * JITWG_PREFIX_SLOT_A) can pass, and for the flood's own prefixes,
	 * whose reserve it spent, no source bucket is even read (a random
	 * slot is a cache miss).
	 */
	if (spent(&g->tokens, cfg->global_rate, cfg->global_burst, now)) {
		iv = prefix_interval(cfg);
		tol = prefix_tol(cfg, iv);
		if (spent_iv(p, tol, now))
			return JITWG_CTR_LIMITED_GLOBAL;
		ctr = source_spent(&key, seed, cfg, now, &b);
		if (ctr)
			return ctr;
		if (limited_iv(p, iv, tol, now))
			return JITWG_CTR_LIMITED_GLOBAL;
		ctr = source_take(b, cfg, now);
		if (ctr)
			return ctr;
		/* The global bucket's debt: repaid before it admits again. */
		__sync_fetch_and_add(&g->tokens, 1000000000ULL / cfg->global_rate);
		count(JITWG_CTR_PREFIX_RESERVE);
		return 0;
	}
	ctr = source_spent(&key, seed, cfg, now, &b);
	if (ctr)
		return ctr;
	if (limited(&g->tokens, cfg->global_rate, cfg->global_burst, now))
		return JITWG_CTR_LIMITED_GLOBAL;
	charge_prefix(p, cfg, now);
	if (q != p)
		charge_prefix(q, cfg, now);
	return source_take(b, cfg, now);
}

/*
 * A retry that carries mac2 from a source jitwgd sent a cookie to (see
 * jitwg_cookie_key): its own budgets, never the global one. Returns -1
 * when it is no such retry (admit() decides), else the counter of the
 * limit hit or 0 to admit. While no cookie is out (cookie_active), that is
 * one word in the cache; else an initiation without mac2 costs two loads.
 */
static __always_inline int cookie_retry(const struct flow *f, void *end,
					const __u8 *msg, __u64 now)
{
	struct jitwg_cookie_key key __attribute__((aligned(8))) = {};
	struct jitwg_cookie_src *s;
	struct jitwg_bucket *b;
	__u32 zero = 0;
	__u64 *active;

	active = bpf_map_lookup_elem(&cookie_active, &zero);
	if (!active || now >= *active)
		return -1;
	if (!(*(const __u64 *)(msg + WG_MAC1_OFF + 16) |
	      *(const __u64 *)(msg + WG_MAC1_OFF + 24)))
		return -1;
	if (addrs(f, end, key.addr, NULL))
		return -1;
	key.port = f->sport;
	s = bpf_map_lookup_elem(&cookie_sources, &key);
	if (!s || now >= s->until_ns)
		return -1;
	count(JITWG_CTR_COOKIE_RETRY);
	b = bpf_map_lookup_elem(&cookie_bucket, &zero);
	if (!b || limited(&s->tokens, JITWG_COOKIE_SRC_RATE, JITWG_COOKIE_SRC_BURST, now) ||
	    limited(&b->tokens, JITWG_COOKIE_RATE, JITWG_COOKIE_BURST, now))
		return JITWG_CTR_LIMITED_COOKIE;
	return 0;
}

static __always_inline int emit(struct xdp_md *ctx, const struct flow *f,
				void *end, const __u8 *msg, __u16 flags)
{
	struct jitwg_event *ev;

	ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);
	if (!ev) {
		count(JITWG_CTR_RINGBUF_FULL);
		return -1;
	}
	if (addrs(f, end, ev->saddr, ev->daddr)) {
		bpf_ringbuf_discard(ev, 0);
		return -1;
	}
	ev->ts_ns = bpf_ktime_get_ns();
	ev->ifindex = ctx->ingress_ifindex;
	ev->sport = f->sport;
	ev->dport = f->dport;
	ev->family = f->family;
	ev->vlan_depth = f->vlan_depth;
	ev->flags = flags;
	ev->udp_check = f->udp_check;
	__builtin_memset(ev->pad, 0, sizeof(ev->pad));
	copy_msg(ev->msg, msg);
	bpf_ringbuf_submit(ev, 0);
	count(JITWG_CTR_EVENTS);
	return 0;
}

/*
 * Whether a consumer holds the lease: it then takes what emit() handed it
 * and re-delivers what WireGuard can use. Only an initiation that is in the
 * ring buffer and addressed to this host is ever dropped: one over the
 * limit, one the full ring refused, or one passing through, passes as
 * without a consumer. now is the coarse clock, at most a
 * tick behind the consumer's CLOCK_MONOTONIC: a 500 ms lease does not care.
 */
static __always_inline bool leased(__u64 now, const struct jitwg_config *cfg)
{
	__u32 key = JITWG_LEASE_FULL, zero = 0, used;
	__u64 *until = bpf_map_lookup_elem(&lease, &key);
	struct jitwg_bucket *g;

	if (until && now < *until)
		return true;
	/* The automatic consumer's word: a burst that spent
	 * JITWG_LEASE_AUTO_SPENT tokens is load enough (see JITWG_LEASE_AUTO). */
	key = JITWG_LEASE_AUTO;
	until = bpf_map_lookup_elem(&lease, &key);
	if (!until || now >= *until || !cfg->global_rate || cfg->global_burst < 2)
		return false;
	g = bpf_map_lookup_elem(&global_bucket, &zero);
	used = cfg->global_burst / 2;
	if (used > JITWG_LEASE_AUTO_SPENT)
		used = JITWG_LEASE_AUTO_SPENT;
	return g && spent(&g->tokens, cfg->global_rate, used + 1, now);
}

/*
 * Sent to one of this host's addresses (local_addrs), not through it, and
 * not claiming to come from one: such a source is a martian the kernel
 * would drop, which re-delivery over loopback would let in.
 */
static __always_inline bool to_this_host(const struct flow *f, void *end)
{
	struct jitwg_src_key src __attribute__((aligned(8))) = {};
	struct jitwg_src_key dst __attribute__((aligned(8))) = {};

	if (addrs(f, end, src.addr, dst.addr))
		return false;
	return bpf_map_lookup_elem(&local_addrs, &dst) &&
	       !bpf_map_lookup_elem(&local_addrs, &src);
}

SEC("xdp")
int jitwg_xdp(struct xdp_md *ctx)
{
	struct cursor c = {
		.pos = (void *)(long)ctx->data,
		.end = (void *)(long)ctx->data_end,
	};
	struct flow f = {};
	struct jitwg_config *cfg;
	struct udphdr *udp;
	__u8 *msg;
	__u32 zero = 0, ctr;
	__u16 flags = 0;
	__u64 now;
	bool consume;
	int proto, ret;

	count(JITWG_CTR_PACKETS);
	proto = parse_eth(&c, &f);
	if (proto == bpf_htons(ETH_P_IP))
		proto = parse_ipv4(&c, &f);
	else if (proto == bpf_htons(ETH_P_IPV6))
		proto = parse_ipv6(&c, &f);
	else if (proto != MALFORMED)
		return XDP_PASS;
	if (proto != IPPROTO_UDP)
		goto out;

	udp = c.pos;
	if ((void *)(udp + 1) > c.end) {
		proto = MALFORMED;
		goto out;
	}
	f.dport = bpf_ntohs(udp->dest);
	if (!is_wg_port(f.dport))
		return XDP_PASS;
	count(JITWG_CTR_WG_UDP);
	f.sport = bpf_ntohs(udp->source);
	f.udp_check = udp->check;

	/* Exactly 148 bytes, type 1, three reserved zero bytes (paper §5.4.2). */
	msg = (void *)(udp + 1);
	if (bpf_ntohs(udp->len) != WG_UDP_LEN)
		return XDP_PASS;
	if (f.l4_len != WG_UDP_LEN || (void *)(msg + WG_INITIATION_LEN) > c.end) {
		proto = MALFORMED; /* IP and UDP lengths disagree, or cut short */
		goto out;
	}
	if (*(__u32 *)msg != bpf_htonl(WG_MSG_INITIATION << 24))
		return XDP_PASS;
	count(JITWG_CTR_MATCHED);

	cfg = bpf_map_lookup_elem(&settings, &zero);
	if (!cfg)
		return XDP_PASS;
	/*
	 * The buckets run on the coarse clock (CLOCK_MONOTONIC_COARSE, one
	 * tick): its read costs nothing, where a precise read is ~20 ns under
	 * kvm-clock, and a flood is exactly when the limited path must be
	 * cheap. A tick of granularity only makes refills arrive in steps of
	 * rate / HZ tokens, well inside any sensible burst. The event's
	 * receive time is read precisely, in emit().
	 */
	now = bpf_ktime_get_coarse_ns();
	ret = cookie_retry(&f, c.end, msg, now);
	ctr = ret >= 0 ? (__u32)ret : admit(&f, c.end, msg, cfg, now, &flags);
	if (ctr) {
		count(ctr);
		/*
		 * A copy over its budget is of no use to WireGuard either:
		 * it saw the original, and would refuse the copy as a replay
		 * only after a Diffie-Hellman. Passed on, a replay flood
		 * loads the device as much as it would have loaded us.
		 */
		if (ctr == JITWG_CTR_DUPLICATE)
			return XDP_DROP;
		/*
		 * Nor is the excess of a flood (the global budget spent):
		 * passed on, millions a second fill WireGuard's socket and
		 * handshake queue, and the handshake of a peer just installed
		 * (its response, the client's retry) drowns with them.
		 */
		if (ctr == JITWG_CTR_LIMITED_GLOBAL && !(cfg->flags & JITWG_F_PASS_FLOOD))
			return XDP_DROP;
		goto limit;
	}
	/* Decided before the event leaves, which says whether it was taken:
	 * the consumer gives back only what WireGuard has not seen. */
	consume = leased(now, cfg) && to_this_host(&f, c.end);
	if (consume)
		flags |= JITWG_EV_CONSUMED;
	if (emit(ctx, &f, c.end, msg, flags))
		return XDP_PASS;
	remember(msg, now);
	if (consume) {
		count(JITWG_CTR_CONSUMED);
		return XDP_DROP;
	}
	return XDP_PASS;

limit:
	return cfg->flags & JITWG_F_DROP_LIMITED ? XDP_DROP : XDP_PASS;
out:
	if (proto == MALFORMED)
		count(JITWG_CTR_MALFORMED);
	return XDP_PASS;
}
