/* SPDX-License-Identifier: MIT */
/*
 * Types shared by the XDP program (bpf/jitwg.bpf.c) and userspace. Only
 * fixed-width types: this header is compiled for both targets.
 */
#ifndef JITWG_H
#define JITWG_H

#ifdef __bpf__
/* vmlinux.h provides __u8 … __u64 */
#else
#include <linux/types.h>
#endif

/* WireGuard message sizes and types, WireGuard paper §5.4. */
enum {
	WG_MSG_INITIATION = 1,
	WG_MSG_RESPONSE = 2,
	WG_MSG_COOKIE = 3,
	WG_MSG_DATA = 4,
	WG_INITIATION_LEN = 148,
	WG_MAC1_OFF = 116,    /* mac1 in an initiation; mac2 follows */
	WG_RESPONSE_LEN = 92,
	WG_DEFAULT_PORT = 51820,
};

/*
 * One captured handshake initiation, as pushed through the ring buffer.
 * Addresses are 16 bytes, IPv4 as IPv4-mapped IPv6 (::ffff:a.b.c.d); ports
 * in host byte order.
 */
struct jitwg_event {
	__u64 ts_ns;          /* bpf_ktime_get_ns() at receive (CLOCK_MONOTONIC) */
	__u32 ifindex;        /* receiving interface */
	__u16 sport;          /* UDP source port, host order */
	__u16 dport;          /* UDP destination port, host order */
	__u8 saddr[16];       /* source address, IPv4-mapped for IPv4 */
	__u8 daddr[16];       /* destination address, IPv4-mapped for IPv4 */
	__u8 family;          /* 4 or 6 */
	__u8 vlan_depth;      /* 0, 1 or 2 VLAN tags seen */
	__u16 flags;          /* JITWG_EV_* */
	__u8 msg[WG_INITIATION_LEN]; /* the initiation, byte for byte */
	__be16 udp_check;     /* the datagram's UDP checksum, as received:
			       * XDP never checks it, re-delivery must */
	__u8 pad[6];
};

_Static_assert(sizeof(struct jitwg_event) == 208, "jitwg_event layout is ABI");

enum jitwg_event_flags {
	/* Dropped by XDP under the consumer's lease: WireGuard has not seen
	 * it, and only the consumer can give it back. */
	JITWG_EV_CONSUMED = 1 << 0,
	/* Admitted on a verified source's own budget (see verified): a
	 * source that completed a handshake lately, so most likely a
	 * returning client or a rekey. The consumer serves it before the
	 * rest of a flood; the per-source budget bounds what a spoofer of
	 * such an address can put ahead. */
	JITWG_EV_VERIFIED = 1 << 1,
};

/*
 * Runtime settings, one entry in the config array map. Rates are tokens per
 * second, bursts the bucket size; a rate of 0 disables that limit.
 */
struct jitwg_config {
	__u32 src_rate;       /* per-source refill, initiations/s */
	__u32 src_burst;      /* per-source bucket size */
	__u32 global_rate;    /* global refill, initiations/s */
	__u32 global_burst;   /* global bucket size */
	__u32 flags;          /* JITWG_F_* */
	__u32 verified_rate;  /* per verified source (see verified), initiations/s */
	__u32 verified_burst; /* per verified source bucket size */
	__u32 reserved;
};

_Static_assert(sizeof(struct jitwg_config) == 32, "jitwg_config layout is ABI");

enum jitwg_flags {
	JITWG_F_DROP_LIMITED = 1 << 0, /* XDP_DROP initiations over the limit */
	/*
	 * Pass initiations the global budget refused (a flood) to WireGuard
	 * as other limited ones. Without it they are dropped: a flood that
	 * passes drowns the device's socket and handshake queue, and then
	 * even a peer jitwgd installed cannot complete its handshake.
	 */
	JITWG_F_PASS_FLOOD = 1 << 1,
};

/* Defaults: generous enough for many real clients behind one NAT address. */
#define JITWG_CONFIG_DEFAULTS                                      \
	{                                                          \
		.src_rate = JITWG_DEFAULT_SRC_RATE,                \
		.src_burst = JITWG_DEFAULT_SRC_BURST,              \
		.global_rate = JITWG_DEFAULT_GLOBAL_RATE,          \
		.global_burst = JITWG_DEFAULT_GLOBAL_BURST,        \
		.verified_rate = JITWG_DEFAULT_VERIFIED_RATE,      \
		.verified_burst = JITWG_DEFAULT_VERIFIED_BURST,    \
	}
enum {
	JITWG_DEFAULT_SRC_RATE = 100,
	JITWG_DEFAULT_SRC_BURST = 200,
	JITWG_DEFAULT_GLOBAL_RATE = 20000,
	JITWG_DEFAULT_GLOBAL_BURST = 40000,
	JITWG_SRC_MAP_ENTRIES = 65536,
	/* A verified source gets what any source gets, but from its own
	 * bucket: a NAT address shared by many clients is still capped. */
	JITWG_DEFAULT_VERIFIED_RATE = JITWG_DEFAULT_SRC_RATE,
	JITWG_DEFAULT_VERIFIED_BURST = JITWG_DEFAULT_SRC_BURST,
	JITWG_VERIFIED_MAP_ENTRIES = 65536,
	/*
	 * Room for the whole default global burst (40,000 events of 216
	 * bytes with the ring's header, 8.6 MB) so a burst the limiter lets
	 * through is not then lost to a full ring. A larger ring is also
	 * cheaper per event (bench-xdp: 4 MiB 103-109 ns, 16 MiB 81-86 ns):
	 * its lines have left the consumer's cache by the time the producer
	 * comes round to them again.
	 */
	JITWG_RINGBUF_BYTES = 1 << 24,
	JITWG_MAX_PORTS = 64,
};

/*
 * The consumer's lease (one __u64 in the lease array map): CLOCK_MONOTONIC ns
 * until which userspace takes every initiation it is handed and re-delivers
 * to WireGuard those WireGuard can use. While it runs, an initiation that
 * reached the ring buffer is dropped here instead of passed: WireGuard then
 * never spends a Diffie-Hellman on an initiation from a key it does not have
 * (jitwgd --consume). 0, or a lease not renewed in time, means pass as usual,
 * so a consumer that stops or stalls costs at most one lease of initiations
 * (their clients retry after REKEY_TIMEOUT, 5 s).
 */
/*
 * The lease map's second word (JITWG_LEASE_AUTO) is the automatic consumer's
 * (jitwgd --consume auto), renewed the same way: while it is valid, the
 * program takes over on its own as soon as a burst has spent
 * JITWG_LEASE_AUTO_SPENT of the global bucket's tokens (half the bucket if
 * it is smaller), without waiting for the consumer to see the load and
 * take the lease: its look every JITWG_LEASE_RENEW_MS came after a
 * line-rate flood had put the whole burst (40,000) through to WireGuard,
 * and wireguard-go, under load, then answered real clients with cookies or
 * seconds late. 64 stays below the 128 queued handshakes at which
 * wireguard-go counts itself under load; a steady rate below the global
 * one never spends that many. A program pinned before the second word has
 * only the first.
 */
enum {
	JITWG_LEASE_FULL = 0,                /* lease map keys */
	JITWG_LEASE_AUTO = 1,
	JITWG_LEASE_WORDS = 2,
	JITWG_LEASE_AUTO_SPENT = 64,
	JITWG_LEASE_NS = 500000000ull,       /* how long one renewal holds */
	JITWG_LEASE_RENEW_MS = 100,          /* how often the consumer renews */
	/* Addresses of this host the consumer may take initiations for
	 * (struct jitwg_src_key, IPv4-mapped): never transit traffic. */
	JITWG_LOCAL_ADDRS_MAX = 1024,
};

/*
 * Token bucket state, kept as GCRA's "theoretical arrival time" (ns,
 * bpf_ktime_get_ns clock): one word updated by compare-and-swap.
 */
struct jitwg_bucket {
	__u64 tokens;         /* theoretical arrival time of the next packet */
	__u64 reserved;
};

/* Per-source bucket key: IPv4 address (mapped), or IPv6 /64 prefix. */
struct jitwg_src_key {
	__u8 addr[16];
};

/*
 * A verified source: one whose initiation completed a handshake (the
 * daemon marks it, capture_mark_verified()). Kept in a map of its own that
 * only userspace adds to, so a flood of spoofed sources, which churns the
 * per-source LRU, can never evict it; its own bucket, so neither can a flood
 * spend the budget it relies on.
 */
struct jitwg_verified {
	__u64 tokens;         /* GCRA state, as jitwg_bucket.tokens */
	__u64 until_ns;       /* CLOCK_MONOTONIC ns; verified until then */
};

/*
 * Recent initiations, by head: the message's bytes JITWG_RECENT_HEAD_OFF..+8,
 * the sender index and the start of the ephemeral key, 64 bits drawn afresh
 * for every initiation a client sends. No real client sends two messages
 * with one head; an attacker cannot make a real message's head before the
 * client sends it, and one who sees it on the way and races it to the
 * gateway could as well copy any other bytes the check compared. So the
 * head alone tells messages apart, and the check reads only the packet's
 * first cache line: comparing mac1 too, two lines further on, cost a copy
 * ~130 ns of a ~200 ns refusal under a copies flood (bench-flood,
 * docs/bench.md). A 2-way
 * set-associative table of JITWG_RECENT_SLOTS slots (recent map, set = the
 * head's low bits mod slots / 2), 32 KiB so that it stays in the cache.
 * A client's retry is always a new message (new ephemeral key and
 * timestamp), so a byte-for-byte copy of one handed to userspace within
 * JITWG_RECENT_NS is a replay or a network duplicate: it spends a small
 * bucket of its own (JITWG_DUP_RATE/s, JITWG_DUP_BURST), never a source's or
 * the global one; over it a copy is dropped. A replay flood then costs one
 * event plus that trickle, and the daemon still sees (and logs) a few
 * replays. Checked whenever a global limit is set.
 */
struct jitwg_recent {
	__u64 unused[2];      /* mac1 until it was no longer compared: the
			       * map's layout stays for pinned maps */
	__u64 ts_ns;          /* coarse clock when it was handed to userspace */
	__u64 head;           /* its bytes JITWG_RECENT_HEAD_OFF..+8, as in the packet */
};

enum {
	JITWG_RECENT_HEAD_OFF = 4,
	JITWG_RECENT_SLOTS = 1024,
	JITWG_DUP_RATE = 100,
	JITWG_DUP_BURST = 100,
};
#define JITWG_RECENT_NS (10ull * 1000000000ull)

/* How long a handshake keeps its source verified (clients rekey every 2 min). */
#define JITWG_VERIFIED_TTL_NS (3600ull * 1000000000ull)

/*
 * A bitmap in front of the verified map: one bit per keyed hash of a
 * verified source's key, 2^JITWG_VERIFIED_BITS_LOG bits (32 KiB) in
 * JITWG_VERIFIED_WORDS words of the verified_bits array map. Under a flood
 * from random sources, a lookup in a 65,536-entry hash map is a cache miss
 * (~200 ns here) that most packets would pay; a 32 KiB bitmap stays in the
 * cache and answers "certainly not verified" for nearly all of them. The
 * hash is keyed with a random seed (entry 0 of verified_seed, written by the
 * loader), so a flood cannot aim at the bits of real sources. Userspace
 * sets a source's bit when it marks it and rebuilds the bitmap when sources
 * leave. w0, w1: the key's two 64-bit words as loaded from memory.
 */
#define JITWG_VERIFIED_BITS_LOG 18
#define JITWG_VERIFIED_WORDS (1u << (JITWG_VERIFIED_BITS_LOG - 6))
#define JITWG_VERIFIED_HASH(w0, w1, seed)                                     \
	((__u32)(((((w0) ^ (seed)) * 0x9E3779B97F4A7C15ull ^ (w1)) *          \
		  0xBF58476D1CE4E5B9ull) >> (64 - JITWG_VERIFIED_BITS_LOG)))

/*
 * Sources jitwgd sent a cookie reply to (cookie_sources map: address, IPv4
 * mapped, and UDP port in host order → jitwg_cookie_src), written by
 * userspace only (capture_cookie_sent()). A client's retry carries mac2
 * from the same address and port, and the program cannot check mac2 at its
 * cost budget (two BLAKE2s): an initiation with a non-zero mac2 from such a
 * source spends a budget of its own, JITWG_COOKIE_SRC_* per source and
 * JITWG_COOKIE_* for all, never the global one a flood spends. jitwgd then
 * checks mac2. Spoofed sources never learn a cookie, and random mac2 from a
 * source that got none finds no entry. An LRU: a flood of cookie replies
 * recycles the oldest entries; JITWG_COOKIE_MAP_ENTRIES holds more than
 * the replies of a client's retry interval at the global event rate.
 */
struct jitwg_cookie_key {
	__u8 addr[16];
	__u16 port;
	__u8 pad[6];
};

_Static_assert(sizeof(struct jitwg_cookie_key) == 24, "jitwg_cookie_key layout is ABI");

struct jitwg_cookie_src {
	__u64 tokens;         /* GCRA state, as jitwg_bucket.tokens */
	__u64 until_ns;       /* CLOCK_MONOTONIC ns; the cookie's life */
};

enum {
	JITWG_COOKIE_MAP_ENTRIES = 262144,
	JITWG_COOKIE_SRC_RATE = 1,   /* a client retries every 5 s */
	JITWG_COOKIE_SRC_BURST = 4,
	JITWG_COOKIE_RATE = 20000,
	JITWG_COOKIE_BURST = 20000,
};
/*
 * The cookie_active map: one __u64, CLOCK_MONOTONIC ns until which a cookie
 * jitwgd sent may still come back (the latest until_ns it wrote to
 * cookie_sources; it only grows). Written by userspace only. Until then the
 * program reads an initiation's mac2 and looks its source up in
 * cookie_sources; after it, while no cookie is out, an initiation is no
 * cookie retry and the program reads neither: mac2 sits in the packet's
 * last cache line, and a lookup in the 262,144-bucket table misses the
 * cache, which under a mac2 flood cost the receiver as much as the rest of
 * the program (bench-flood, docs/bench.md).
 */

/* A cookie is good for two minutes at the client (paper §5.4.7). */
#define JITWG_COOKIE_TTL_NS (120ull * 1000000000ull)

/*
 * A source's slot in the per-source bucket array (src_buckets, an array of
 * JITWG_SRC_MAP_ENTRIES GCRA words): the same kind of keyed hash as the
 * verified bitmap's, on the complement of the same seed. Sources that hash
 * alike share a bucket; without the seed a flood cannot choose which real
 * source it shares one with.
 */
#define JITWG_SRC_SLOTS_LOG 16
#define JITWG_SRC_SLOT(w0, w1, seed)                                          \
	((__u32)(((((w0) ^ ~(seed)) * 0x9E3779B97F4A7C15ull ^ (w1)) *         \
		  0xBF58476D1CE4E5B9ull) >> (64 - JITWG_SRC_SLOTS_LOG)))
_Static_assert(JITWG_SRC_MAP_ENTRIES == 1 << JITWG_SRC_SLOTS_LOG,
	       "one slot per hash value");

/*
 * The prefix reserve: a share of the global budget kept for source prefixes
 * that have not used theirs lately, so that a flood from one range cannot
 * take all of it from clients elsewhere. Prefixes (IPv4 /20, IPv6 /48) hash
 * (keyed, as above) to two of JITWG_PREFIX_SLOTS GCRA words (prefix_reserve
 * map, 128 KiB), and each initiation uses the emptier of the two: a prefix
 * whose slot a flooding prefix shares still has its other one, so a flood
 * from 256 /20s (a spoofed million addresses) leaves a client's prefix
 * without a slot about once in a thousand instead of once in sixteen. A
 * slot refills at a 1/JITWG_PREFIX_SHARE share of the global rate divided
 * by the slots (with the defaults 20,000/s / 4 / 16,384: one every 3.3 s,
 * so a prefix has up to one every 1.6 s), bucket the same share of the
 * global burst (at least 1). Every initiation the global bucket admits is
 * charged to both of its prefix's slots as well (their debt capped at
 * JITWG_PREFIX_DEBT_NS), so a prefix that floods empties both. Only when
 * the global budget is spent does a slot admit on its own; such an
 * admission is then charged to the global bucket as debt, which the
 * global's refill repays before the global bucket admits again: the
 * long-run total stays the global rate.
 */
#define JITWG_PREFIX_SLOTS_LOG 14
#define JITWG_PREFIX_SLOTS (1u << JITWG_PREFIX_SLOTS_LOG)
#define JITWG_PREFIX_SHARE 4
#define JITWG_PREFIX_DEBT_NS (10ull * 1000000000ull)
#define JITWG_PREFIX_HASH(w0, w1, seed)                                       \
	((((w0) ^ (seed) ^ 0x5bd1e9955bd1e995ull) * 0x9E3779B97F4A7C15ull ^   \
	  (w1)) * 0xBF58476D1CE4E5B9ull)
/* The prefix's two slots: two disjoint bit fields of its hash. */
#define JITWG_PREFIX_SLOT_A(h) ((__u32)((h) >> (64 - JITWG_PREFIX_SLOTS_LOG)))
#define JITWG_PREFIX_SLOT_B(h)                                                \
	((__u32)((h) >> (64 - 2 * JITWG_PREFIX_SLOTS_LOG)) & (JITWG_PREFIX_SLOTS - 1))

/* Per-CPU counters, indexes into the counters array map. */
enum jitwg_counter {
	JITWG_CTR_PACKETS,        /* packets seen */
	JITWG_CTR_WG_UDP,         /* UDP to a WireGuard port */
	JITWG_CTR_MATCHED,        /* handshake initiations matched */
	JITWG_CTR_EVENTS,         /* events sent to the ring buffer */
	JITWG_CTR_LIMITED_SRC,    /* over the per-source limit */
	JITWG_CTR_LIMITED_GLOBAL, /* over the global limit */
	JITWG_CTR_RINGBUF_FULL,   /* ring buffer reservation failed */
	JITWG_CTR_MALFORMED,      /* truncated or inconsistent headers */
	JITWG_CTR_CONSUMED,       /* events dropped here under the lease */
	JITWG_CTR_VERIFIED,       /* initiations from a verified source */
	JITWG_CTR_LIMITED_VERIFIED, /* over a verified source's own limit */
	JITWG_CTR_SRC_NEW,        /* admitted with an idle (full) source bucket */
	JITWG_CTR_DUPLICATE,      /* copies of a recent initiation over their budget */
	JITWG_CTR_COOKIE_RETRY,   /* initiations with mac2 from a source sent a cookie */
	JITWG_CTR_LIMITED_COOKIE, /* ... over their own budget */
	JITWG_CTR_PREFIX_RESERVE, /* admitted from the prefix reserve, global budget spent */
	JITWG_CTR_MAX,
};

#endif
