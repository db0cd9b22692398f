/* SPDX-License-Identifier: MIT */
/*
 * The loader of the XDP capture program (user/capture.c): loads the BPF
 * skeleton and attaches it to a device, or uses an object already loaded and
 * attached with bpftool through its pinned maps; sets the WireGuard ports
 * and rate limits; consumes ring-buffer events; reads the counters.
 *
 * Functions return 0 or -errno; capture_error() then holds a one-line
 * message with the remedy (no such device, not root, verifier log tail,
 * bpffs not mounted, ring buffer map missing).
 */
#ifndef JITWG_CAPTURE_H
#define JITWG_CAPTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "jitwg.h"

enum capture_mode {
	CAPTURE_AUTO,    /* native, else generic */
	CAPTURE_NATIVE,
	CAPTURE_GENERIC,
	CAPTURE_PINNED,  /* bpftool loaded and attached it: use pin_dir's maps */
	CAPTURE_LOAD_ONLY, /* load, do not attach (tests, benchmarks) */
	/*
	 * Through libxdp's multi-program dispatcher (native, else generic), so
	 * that other XDP programs attached through libxdp run on the same
	 * device; jitwg runs after those of a lower priority
	 * (CAPTURE_MULTI_PRIO).
	 */
	CAPTURE_MULTI,
};

/*
 * jitwg's run priority in libxdp's dispatcher: lower runs first. Above
 * libxdp's default (50, xdp-filter's) so that a filter drops first and
 * jitwg's own drops (--consume, --drop) end the chain after it.
 */
enum { CAPTURE_MULTI_PRIO = 100 };

const char *capture_mode_str(enum capture_mode mode);
/* "auto", "native", "generic", "pinned", "multi" → mode; -EINVAL otherwise. */
int capture_mode_parse(const char *s, enum capture_mode *mode);

struct capture_opts {
	const char *ifname;      /* device to attach to (not for CAPTURE_PINNED) */
	enum capture_mode mode;
	const char *pin_dir;     /* bpffs directory of pinned maps, or NULL */
	const uint16_t *ports;   /* WireGuard ports; NULL/0 = 51820 */
	size_t n_ports;
	/* Rates, bursts and flags (JITWG_F_DROP_LIMITED); NULL = the
	 * defaults, JITWG_CONFIG_DEFAULTS. */
	const struct jitwg_config *limits;
	/*
	 * CAPTURE_PINNED: leave the ports and limits in the maps as they are
	 * (whoever set them, jitwgd included), ignoring ports and limits.
	 */
	bool keep_settings;
};

/* Called once per event from capture_poll(); a negative return stops polling. */
typedef int (*capture_event_fn)(void *ctx, const struct jitwg_event *ev);

struct capture;

/*
 * Load (or open the pinned maps), set, attach. The project's convention
 * (docs/daemon.md): 0 or -errno, and on failure one line saying what to fix
 * in errbuf (may be NULL).
 */
int capture_open(struct capture **out, const struct capture_opts *opts,
		 capture_event_fn fn, void *ctx, char *errbuf, size_t errlen);
/* Room for capture_open()'s longest message (a verifier log's end). */
#define CAPTURE_ERR_LEN 512
/* Detaches (unless pinned/bpftool-owned) and frees. */
void capture_close(struct capture *c);
/* The last failure of an open capture's other calls. */
const char *capture_error(const struct capture *c);

/* The ring buffer's epoll fd, readable when events wait. */
int capture_fd(const struct capture *c);
/*
 * Consume waiting events, waiting up to timeout_ms; returns events or -errno.
 * While the last call consumed events (capture_busy()), a call with a
 * timeout first sleeps CAPTURE_COALESCE_US, so events are taken in batches
 * (see capture_poll() in capture.c); a caller that polls capture_fd() with
 * other fds does the same with capture_busy().
 */
int capture_poll(struct capture *c, int timeout_ms);
enum { CAPTURE_COALESCE_US = 200 };
/* Whether the last capture_poll() consumed events. */
bool capture_busy(const struct capture *c);

/* The program's fd (not for CAPTURE_PINNED), for BPF_PROG_TEST_RUN. */
int capture_prog_fd(const struct capture *c);
/* Whether the program runs in native (driver) XDP mode. */
bool capture_is_native(const struct capture *c);

int capture_set_ports(struct capture *c, const uint16_t *ports, size_t n);
int capture_set_limits(struct capture *c, const struct jitwg_config *cfg);
/*
 * Hold the consumer's lease until until_ns (CLOCK_MONOTONIC; 0 gives it
 * back): initiations in the ring buffer are then dropped instead of passed,
 * and the caller re-delivers them (see the lease in jitwg.h). Renew it every
 * JITWG_LEASE_RENEW_MS while consuming. capture_close() gives it back.
 */
int capture_set_lease(struct capture *c, uint64_t until_ns);
/*
 * The automatic consumer's word (JITWG_LEASE_AUTO in jitwg.h): until
 * until_ns, the program consumes by itself while a burst has spent
 * JITWG_LEASE_AUTO_SPENT of the global bucket's tokens. -EOPNOTSUPP for a program pinned before it existed.
 * capture_close() clears it.
 */
int capture_set_lease_auto(struct capture *c, uint64_t until_ns);
/*
 * This host's addresses (16 bytes each, IPv4-mapped for IPv4): only an
 * initiation sent to one of them is dropped under the lease. Replaces the
 * set; at most JITWG_LOCAL_ADDRS_MAX (-E2BIG beyond).
 */
int capture_set_local_addrs(struct capture *c, const uint8_t (*addrs)[16],
			    size_t n);
/*
 * Mark a source verified until until_ns (CLOCK_MONOTONIC; the daemon passes
 * now + JITWG_VERIFIED_TTL_NS once an initiation from it completed a
 * handshake; 0 unmarks it). saddr is an event's source address (16 bytes,
 * IPv4-mapped for IPv4); an IPv6 source marks its /64. Until then its
 * initiations skip the per-source buckets, the prefix reserve and the
 * global bucket and spend only a bucket of their own (verified_rate,
 * verified_burst in struct jitwg_config): a flood of spoofed sources can neither evict it nor spend
 * its budget. Renewing keeps its bucket. A full map (JITWG_VERIFIED_MAP_ENTRIES)
 * first loses the sources whose time ran out; -E2BIG if none did.
 * Thread-safe as far as the kernel's map calls are.
 */
int capture_mark_verified(struct capture *c, const uint8_t saddr[static 16],
			  uint64_t until_ns);
/*
 * Sources jitwgd just sent a cookie reply to (see jitwg_cookie_key): their
 * retries carrying mac2 get the program's cookie budget until until_ns
 * (CLOCK_MONOTONIC); a source already there keeps its bucket. The LRU map
 * recycles its oldest entries when full.
 */
int capture_cookie_sent(struct capture *c, const struct jitwg_cookie_key *keys, size_t n,
			uint64_t until_ns);
/* Unmark every verified source. */
int capture_forget_verified(struct capture *c);
/* Forget all bucket state (every source and the global bucket start full,
 * no initiation is recent; verified sources stay verified). */
int capture_reset_limits(struct capture *c);
/* The limits and up to max ports (*n: how many there are) now in the maps. */
int capture_read_settings(struct capture *c, struct jitwg_config *cfg,
			  uint16_t *ports, size_t max, size_t *n);
/* Counters summed over CPUs, indexed by enum jitwg_counter. */
int capture_read_counters(struct capture *c, uint64_t out[static JITWG_CTR_MAX]);
const char *capture_counter_name(enum jitwg_counter ctr);

#endif
