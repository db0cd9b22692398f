/* SPDX-License-Identifier: MIT */
/*
 * The daemon's own types, shared by its stage files only (user/daemon*.c).
 * A packet's way through them, in data-path order:
 *
 *   daemon_intake.c     event → job queue → workers (and the lease signal)
 *   daemon_pending.c    one provisioning per key; re-delivery (--consume)
 *   daemon_provision.c  identify, authenticate, freshness; cache and
 *                       control plane; reserve the peer's allowed IPs
 *   daemon_installer.c  device installs in batches; handshake starts
 *   daemon_monitor.c    handshake watches, keepalive restore
 *   daemon_evict.c      idle sweeps and their policy; listen-port follow
 *   daemon.c            lifecycle: new, reconcile, start, stop, free
 *
 * Locks never nest: no function holds two of them at once. Each subsystem
 * below owns its lock; the one place a subsystem takes another's lock is
 * installer_backlog(), which the monitor calls (holding none of its own) to
 * hold back a watch poll while installs are queued. The peer table
 * (daemon_peer_table.c) and the pending table are shared stores: every
 * stage calls their functions, which take their lock themselves.
 */
#ifndef JITWG_DAEMON_INTERNAL_H
#define JITWG_DAEMON_INTERNAL_H

#include <stdatomic.h>

#include <sodium.h>

#include "api.h"
#include "cache.h"
#include "daemon.h"
#include "metrics.h"
#include "noise.h"

enum {
	QUEUE_MAX = 1 << 17,         /* events waiting for a worker */
	PENDING_BUCKETS = 4096,
	/* Keepalive of the install-and-initiate switch; the peer's own value
	 * is restored once the handshake is done (docs/protocol.md). */
	INITIATE_KEEPALIVE = 25,
	MANAGED_F_INITIATED = 1 << 0, /* cache_managed.flags; keepalive in bits 16-31 */
	WATCH_POLL_MIN_US = 2000,
	WATCH_POLL_GAP = 9,           /* idle time per unit of listing time */
	WATCH_DEFER_MAX_MS = 1000,    /* longest an install backlog defers a poll */
	/*
	 * Handshake starts: INITIATE_CHUNK keepalive switches per device call
	 * (wireguard-go computes each initiation inside the call) or, with
	 * --consume, ANSWER_CHUNK answers every SCHED_ANSWER_GAP_MS:
	 * wireguard-go counts itself under load once 128 handshakes wait
	 * and then answers with cookies (docs/protocol.md), so thousands
	 * handed over at once would become cookie replies and 5 s retries. A
	 * start older than ANSWER_MAX_AGE_MS is dropped: the client's own
	 * retry, its peer installed, is answered at once. When they start:
	 * sched_turn() (user/daemon_sched.c).
	 */
	INITIATE_CHUNK = 256,
	/* Give-backs of keys not on the device: a second's worth at once. */
	GIVEBACK_UNUSED_RATE = 100,
	ANSWER_CHUNK = 20,
	ANSWER_MAX_AGE_MS = 4000,
	INSTALL_BATCH_MAX = 1024,
	WORKER_BATCH = 32,            /* jobs a worker takes at once */
	CWRITER_BATCH = 256,          /* answers per cache transaction */
	CWRITER_MAX = 65536,          /* answers waiting for the cache writer */
	/* The seal at eviction: the client's clock learned from its last
	 * initiation, plus this for that initiation's network delay and the
	 * clients' 2^24 ns timestamp granularity (docs/security.md). */
	SEAL_MARGIN_MS = 1000,
	/* Two sightings of an installed key this close: its handshakes do
	 * not complete (rekeys come 120 s apart, retries 5 s): check the
	 * device at once, it may have lost the peer (wg set … remove). At
	 * most one such check per CHECK_MIN_GAP_MS. */
	RETRY_GAP_MS = 15000,
	CHECK_MIN_GAP_MS = 1000,
	/* Rejection lines (authentication, replays) logged per second at
	 * most; the rest are counted in one summary line. */
	REJECT_LOG_PER_S = 20,
	/* --consume: the lease is renewed only while the oldest queued job
	 * waited less than this: slow progress is not keeping up. */
	LEASE_MAX_QUEUE_AGE_MS = 250,
};

/* ---- intake (daemon_intake.c) ---- */

enum job_type { JOB_EVENT, JOB_FETCHED };

struct pending;

/* A control-plane answer, handed back to the workers through the queue. */
struct fetched {
	struct pending *p;
	enum api_status status;
	int err;
	long http_status;
	unsigned int attempts;
	char reason[API_REASON_LEN];
	struct api_peer peer; /* secret (PSK); last: allocated only up to its
			       * allowed IPs (zeroed, none, unless API_FOUND) */
};

/* An answer (~3 KiB) only behind a pointer: a burst queues thousands of
 * events, which need 200 bytes each. */
struct job {
	struct job *next;
	enum job_type type;
	uint64_t t_queued;      /* mono(d) when pushed: the lease's age check */
	union {
		struct jitwg_event ev;
		struct fetched *f; /* allocated with the job, right after it */
	};
};

struct intake {
	pthread_mutex_t lock;   /* head, tail, len, stopping */
	pthread_cond_t cond;    /* a job was queued, or stopping */
	struct job *head, *tail;
	struct job *prio_tail;  /* last of the served-first jobs at the head */
	size_t len;
	size_t unwoken;         /* queued by events since the last flush */
	bool stopping;
	pthread_t *workers;
	unsigned int n_workers, n_started;
	_Atomic uint64_t jobs_done;     /* daemon_keeping_up() */
	uint64_t jobs_seen, lost_seen;  /* daemon_keeping_up()'s caller only */
};

void intake_push(struct daemon *d, struct job *j);
/* The oldest waiting job's t_queued, 0 if none; the queue's lock held. */
uint64_t intake_oldest_locked(const struct intake *q);
void *intake_worker(void *arg);
size_t intake_drain(struct daemon *d);
void job_free(struct job *j);

/* ---- cache writer (daemon_cache_writer.c) ---- */

struct cwrite;

struct cache_writer {
	pthread_mutex_t lock;   /* head, tail, len, stop */
	pthread_cond_t cond;    /* an answer was queued, or stop */
	struct cwrite *head, *tail;
	size_t len;
	bool stop, started;
	pthread_t thread;
};

/* Cache a control-plane answer (peer; NULL: a 404 or other final "no"). */
void cwriter_put(struct daemon *d, const uint8_t key[static 32], const struct api_peer *peer,
		 uint64_t now);
void *cwriter_thread(void *arg);
size_t cwriter_drain(struct daemon *d);
void cwriter_free_all(struct daemon *d);

/* ---- pending table (daemon_pending.c) ---- */

/* A key being provisioned: authenticated, waiting for the cache or the API. */
struct pending {
	struct pending *next;
	uint8_t key[32];
	union wgdev_endpoint ep;  /* latest authenticated sighting's source */
	struct jitwg_event last;  /* ... and its initiation (--consume) */
	uint64_t t_event, t_seen, t_ident, t_auth, t_fetch;
	struct api_peer *stale;   /* cached answer past its TTL, or NULL;
				   * secret: wiped on free */
	struct pending *lnext;    /* its lane's FIFO (daemon_lanes.c) */
	uint8_t lane;             /* enum fetch_lane */
};

/*
 * A token bucket of initiations a second, the caller holding whatever lock
 * guards it: starts with tokens = burst (set by its owner) and at = 0.
 */
struct rate_bucket {
	double tokens;
	uint64_t at; /* mono ns of the last take (0: none yet) */
};

/* One token, if any is left after the refill since the last take. */
static inline bool rate_bucket_take(struct rate_bucket *b, uint64_t now, double rate,
				    double burst)
{
	if (b->at && now > b->at) {
		b->tokens += (double)(now - b->at) * rate / 1e9;
		if (b->tokens > burst)
			b->tokens = burst;
	}
	b->at = now;
	if (b->tokens < 1)
		return false;
	b->tokens -= 1;
	return true;
}

struct pending_table {
	pthread_mutex_t lock;     /* the chains, and each entry's ep and last */
	struct pending *buckets[PENDING_BUCKETS];
	uint8_t hash_key[crypto_shorthash_KEYBYTES]; /* set once, at daemon_new */
	/* The give-back budget of keys not on the device (pending_unused). */
	struct rate_bucket giveback;
};

struct pending *pending_claim(struct daemon *d, const uint8_t key[static 32],
			      const struct jitwg_event *ev,
			      const union wgdev_endpoint *ep, bool *busy);
void pending_ep(struct daemon *d, const struct pending *p,
		union wgdev_endpoint *out);
void pending_last(struct daemon *d, const struct pending *p,
		  struct jitwg_event *out);
void pending_release(struct daemon *d, struct pending *p);
void pending_end(struct daemon *d, struct pending *p);
/*
 * Ended without an install (unknown, refused, shed, a failed lookup): the
 * initiation goes back only if its key is on the device, or within
 * GIVEBACK_UNUSED_RATE a second (a peer added by hand since the last
 * listing): a flood of fresh keys must not reach WireGuard through
 * jitwgd. giveback_unused() is the same for an event with no entry.
 */
void pending_unused(struct daemon *d, struct pending *p);
void giveback_unused(struct daemon *d, const uint8_t key[static 32],
		     const struct jitwg_event *ev);
void pending_free_all(struct daemon *d);
void redeliver_one(struct daemon *d, const struct jitwg_event *ev);

/* ---- provisioning (daemon_provision.c) ---- */

/* An initiation that authenticated, waiting for its freshness check. */
struct authed {
	struct jitwg_event *ev;
	uint8_t key[32];
	uint8_t ts[NOISE_TIMESTAMP_LEN];
	uint64_t t_seen, t_ident;
	bool rekey;      /* the key is on the device: record, give back */
	bool prio;       /* a verified source or a cached answer (budget, lanes) */
	bool given_back; /* a rekey already re-delivered (run_batch()) */
};

bool provision_event(struct daemon *d, struct jitwg_event *ev, struct authed *a);
void provision_fresh(struct daemon *d, const struct authed *a, int fresh,
		     uint64_t t_auth);
void provision_fetched(struct daemon *d, struct job *j);
void log_outcome(struct daemon *d, struct pending *p, const char *outcome,
		 const char *source, const char *extra, enum log_level lvl);
/* A lookup the control-plane client refused (ret): a stale answer, or the
 * end of p's provisioning. */
void fetch_failed(struct daemon *d, struct pending *p, int ret);

/* ---- the CPU share (daemon_budget.c) ---- */

enum {
	/* The last quarter of the bucket is for priority work only. */
	BUDGET_RESERVE_PCT = 25,
	/* Sources that completed a handshake, direct-mapped. */
	BUDGET_VSLOTS = 1 << 16,
	/* One X25519 when it was not measured (the budget off). */
	BUDGET_DH_FALLBACK_NS = 50000,
};

struct vslot {
	uint8_t addr[16];        /* IPv4-mapped address, or an IPv6 /64 */
	uint64_t until;          /* mono ns */
};

struct dh_budget {
	pthread_mutex_t lock;    /* all but the verified set */
	unsigned int pct;        /* --max-cpu; 0: no budget */
	uint64_t dh_ns;          /* CPU time of a DH stage: a moving average */
	bool fixed;              /* dh_ns set by a test: not learned */
	uint64_t cap, reserve;   /* bucket size and priority reserve, CPU ns */
	uint64_t tokens, last;   /* CPU ns available, at mono ns last */
	uint64_t window;         /* start of the summary's second */
	uint64_t refused, refused_prio; /* in that second */
	pthread_mutex_t vlock;   /* vslots */
	struct vslot *vslots;    /* BUDGET_VSLOTS, allocated at the first mark */
	uint8_t vkey[crypto_shorthash_KEYBYTES];
};

void budget_init(struct daemon *d, unsigned int max_cpu_pct);
void budget_set_cost(struct daemon *d, uint64_t dh_ns);
void budget_free(struct daemon *d);
bool budget_take(struct daemon *d, bool prio, unsigned int n);
uint64_t budget_clock(void);
void budget_spent(struct daemon *d, uint64_t t0);
void budget_log(struct daemon *d, bool force);
void budget_mark_verified(struct daemon *d, const uint8_t saddr[static 16]);
bool budget_verified(struct daemon *d, const uint8_t saddr[static 16]);

/* ---- control-plane lanes (daemon_lanes.c) ---- */

enum fetch_lane { LANE_PRIO, LANE_FRESH };

enum {
	/* The HTTP client's transfers (api_config.max_inflight's default):
	 * what is started is started at once, nothing waits in its FIFO. */
	FETCH_INFLIGHT = 64,
	FETCH_FRESH_INFLIGHT = 48,    /* the fresh lane's share of them */
	FETCH_FRESH_MAX = 4096,       /* waiting in the fresh lane */
	FETCH_FRESH_BUCKETS = 256,    /* its per-prefix FIFOs */
	FETCH_PRIO_MAX = 65536,       /* waiting in the priority lane */
};

struct fetch_fifo {
	struct pending *head, *tail;
	unsigned int n;
};

struct fetch_lanes {
	pthread_mutex_t lock;         /* all below */
	struct pending *prio_head, *prio_tail;
	struct fetch_fifo fresh[FETCH_FRESH_BUCKETS];
	unsigned int cursor;          /* the next fresh FIFO's turn */
	size_t n_prio, n_fresh;
	unsigned int inflight, inflight_fresh;
	uint8_t hash_key[crypto_shorthash_KEYBYTES];
};

struct lanes_stats {
	size_t prio, fresh;
	unsigned int inflight, inflight_fresh;
};

void lanes_init(struct daemon *d);
unsigned int lanes_bucket(const struct daemon *d, const union wgdev_endpoint *ep);
void lanes_submit(struct daemon *d, struct pending *p, enum fetch_lane lane);
void lanes_pump(struct daemon *d);
void lanes_done(struct daemon *d, const struct pending *p);
void lanes_stats(struct daemon *d, struct lanes_stats *s);
void lanes_clear(struct daemon *d);

/* ---- installer (daemon_installer.c) ---- */

/* A new peer, watched until its handshake completes. */
struct watch {
	uint8_t key[32];
	uint64_t t_event, t_install;
	bool initiated;
	uint16_t keepalive;
};


/* A reserved peer waiting for the installer thread. */
struct ijob {
	struct ijob *next;
	struct pending *p;
	const char *source;
	/* How its handshake starts, decided as it is reserved: initiated
	 * back (keepalive 0, then the switch), or, its initiation consumed
	 * by XDP, answered (its own keepalive, then given back). */
	bool initiate;
	struct cache_managed cm; /* written by the installer, batched */
	struct api_peer peer; /* holds the preshared key: wiped on free. Last:
			       * allocated only up to its allowed IPs */
};

/*
 * Handshakes waiting to start: peers of a batch installed with keepalive 0
 * (or, with --consume, whose initiation is not answered yet), with the
 * watch each gets once started: watched earlier, a handshake of the
 * client's own could let the monitor restore the keepalive before the late
 * switch overwrote it.
 */
struct starts {
	struct watch *w;
	/* With a re-delivery socket: the initiations to answer (zeroed
	 * for the peers initiated back). */
	struct jitwg_event *ev;
	size_t head, n, cap;    /* [head, n) wait, oldest first */
};

struct installer {
	pthread_mutex_t lock;   /* head, tail, stop */
	pthread_cond_t cond;    /* a job was queued, or stop (CLOCK_MONOTONIC) */
	struct ijob *head, *tail;
	size_t len;             /* jobs queued (metrics, status) */
	bool stop, started;
	pthread_t thread;
	/* The installer thread's own (or daemon_drain()'s), unlocked: */
	struct starts ws;
	struct wgdev_peer *wp;  /* a batch, for the device call */
	struct ijob **batch;
	struct cache_managed *cms;
	size_t cap;             /* of the three above */
	uint64_t last_install, prev_install, last_start; /* sched_state */
	bool started_last;      /* the last turn was SCHED_START */
};

void installer_submit(struct daemon *d, struct ijob *j);
bool installer_backlog(struct daemon *d);
void *installer_thread(void *arg);
size_t installer_drain(struct daemon *d);
void installer_release(struct daemon *d);
void ijob_free(struct ijob *j);

/* ---- monitor (daemon_monitor.c) ---- */

/* Work for the monitor thread from others (it owns the device handle). */
enum mon_req_kind {
	MON_REQ_ANSWER, /* a revalidation's answer */
	MON_REQ_EVICT,  /* daemon_evict(): the operator's */
};

struct mon_req {
	struct mon_req *next;
	enum mon_req_kind kind;
	uint8_t key[32];
	enum api_status status;
	int err;
	long http_status;
	struct api_peer peer; /* secret (PSK): wiped on free */
};

struct monitor {
	pthread_mutex_t lock;   /* watches, reqs, sweep_requested, revalidate_all, stop */
	pthread_cond_t cond;    /* first watch, a request, sweep or stop (CLOCK_MONOTONIC) */
	struct watch *watches;
	size_t n_watches, cap_watches;
	struct mon_req *reqs;
	uint64_t last_check;    /* the last sweep a retry asked for (mono) */
	bool sweep_requested, revalidate_all, stop, started;
	pthread_t thread;
	_Atomic size_t device_peers; /* in the last listing (metrics) */
};

void watch_add(struct daemon *d, const struct watch *w);
void *monitor_thread(void *arg);
int list_sorted(struct daemon *d, struct wgdev_peer **peers, size_t *n);
const struct wgdev_peer *find_peer(const struct wgdev_peer *v, size_t n,
				   const uint8_t key[static 32]);
void restore_keepalive(struct daemon *d, const uint8_t key[static 32],
		       uint16_t keepalive);
void mark_verified(struct daemon *d, const union wgdev_endpoint *ep);

/* ---- eviction (daemon_evict.c) ---- */

void evict_sweep(struct daemon *d, const struct wgdev_peer *peers, size_t n,
		 uint64_t t_list, bool revalidate_all);
void follow_listen_port(struct daemon *d);
/*
 * Monitor thread: remove one managed peer now (revoked, stale, overlap,
 * operator): sealed first, then off the device, forgotten, logged as
 * "outcome=evicted reason=<reason>" (other: the peer it overlaps). 0 or
 * the device's -errno (then nothing changed but the seal).
 */
int evict_one(struct daemon *d, const uint8_t key[static 32], const char *reason,
	      const char *other);

/* ---- revalidation (daemon_revalidate.c) ---- */

enum reval_action {
	REVAL_UPDATE, /* 200: cache it, apply a change in place */
	REVAL_REVOKE, /* a final answer about the key: remove now */
	REVAL_KEEP,   /* the control plane fails: keep, the cache still has it */
	REVAL_EXPIRE, /* ... and the cached answer is past ttl + max_stale */
};

extern const char revalidate_ctx[1];
/* Pure: what a revalidation's answer does, given the cached answer's state. */
enum reval_action revalidate_decide(const struct api_result *res, int cache_state);
const char *reval_action_str(enum reval_action a);
void revalidate_done(struct daemon *d, const uint8_t key[32], const struct api_result *res);
void revalidate_ask(struct daemon *d, const uint8_t (*keys)[32], size_t n, bool all);
void revalidate_apply(struct daemon *d);
void revalidate_free_all(struct daemon *d);

/* ---- prefix index (daemon_prefix_index.c), inside the peer table ---- */

struct iprefix;

struct prefix_index {
	struct iprefix **buckets;
	size_t n_buckets; /* power of two, or 0 before the first insert */
	size_t n;
	size_t by_len[2][129]; /* prefixes per family (v4, v6) and length */
	bool incomplete;       /* an insert failed: scan until the next rebuild */
};

enum pidx_result {
	PIDX_NONE,  /* no other owner's prefix overlaps */
	PIDX_FOUND, /* one does: its owner in other */
	PIDX_SCAN,  /* the index cannot tell: compare with every peer */
};

void pidx_mod(struct prefix_index *x, const uint8_t owner[static 32],
	      const struct wgdev_allowed_ip *ip, int delta);
enum pidx_result pidx_overlap(const struct prefix_index *x,
			      const uint8_t key[static 32],
			      const struct wgdev_allowed_ip *ips, size_t n,
			      uint8_t other[static 32]);
void pidx_clear(struct prefix_index *x);
void pidx_free(struct prefix_index *x);

/* ---- recent initiations, for byte-identical copies (daemon_provision.c) ---- */

enum { DUP_SLOTS = 1 << 16, DUP_WINDOW_S = 180 };

struct dup_slot {
	uint8_t mac1[16];
	uint64_t at;            /* mono ns; 0: empty */
	uint8_t key[32];        /* who sent it, once identified (for the log) */
	bool has_key;
};

struct dup_filter {
	pthread_mutex_t lock;   /* slots */
	uint8_t hash_key[crypto_shorthash_KEYBYTES];
	struct dup_slot *slots; /* DUP_SLOTS, direct-mapped by a keyed hash */
};

/* ---- the rejection log's limit (daemon_provision.c) ---- */

struct reject_log {
	pthread_mutex_t lock;   /* all below */
	uint64_t window;        /* start of the current second (mono) */
	uint64_t lines, suppressed, by_auth, by_fresh, by_unknown;
};

void reject_log_flush(struct daemon *d);

/* ---- the daemon (daemon.c) ---- */

/* Counters, from the one list in daemon.h; bumped without a lock. */
struct daemon_counters {
#define X(name, metric, labels, help, stop) _Atomic uint64_t name;
	DAEMON_COUNTERS(X)
#undef X
};

#define INC(d, f) atomic_fetch_add_explicit(&(d)->counters.f, 1, memory_order_relaxed)

/* Latency histograms the stages observe into without a lock (metrics). */
enum daemon_stage {
	STAGE_QUEUE,		/* XDP to worker */
	STAGE_IDENTIFY,
	STAGE_AUTHENTICATE,	/* with the freshness check */
	STAGE_FETCH,		/* cache or control plane */
	STAGE_INSTALL,		/* the device call */
	STAGE_MAX,
};

struct daemon_hists {
	struct metrics_hist first_contact; /* XDP saw it -> handshake done */
	struct metrics_hist stage[STAGE_MAX];
	struct metrics_hist api;           /* control-plane requests */
};

struct daemon {
	struct daemon_env env;
	struct daemon_cache_ops cache_ops; /* env's, or the defaults */
	struct daemon_api_ops api_ops;
	struct daemon_clock clock;
	bool initiate;                /* --no-initiate-back not given */
	atomic_bool consuming;        /* the XDP lease is held (main loop) */
	struct api_client *api;
	struct peer_table *peers;     /* takes its own lock */
	struct evict_policy policy;

	struct intake intake;
	struct pending_table pending;
	struct installer inst;
	struct monitor mon;
	struct cache_writer cwriter;
	struct reject_log rejlog;
	struct dup_filter dups;
	struct cookie_stage *cookie;  /* daemon_cookie.c; NULL with --cookie never */
	struct dh_budget budget;
	struct fetch_lanes lanes;
	struct daemon_counters counters;
	struct daemon_hists hists;
	uint64_t started_at;          /* wall s */
};

/* ---- cookie replies and mac2 (daemon_cookie.c) ---- */

enum cookie_verdict {
	COOKIE_PASS,     /* to the queue, as any initiation */
	COOKIE_FIRST,    /* a valid jitwgd mac2: to the queue's head */
	COOKIE_ANSWERED, /* a cookie reply instead: nothing queued */
};

struct cookie_stage;
int daemon_cookie_new(struct daemon *d);
void daemon_cookie_free(struct daemon *d);
/* From the main thread only (daemon_on_event). */
enum cookie_verdict daemon_cookie_intake(struct daemon *d, const struct jitwg_event *ev);
/* A handshake completed from addr (IPv4-mapped for family 4): its source
 * never needs a cookie for an hour, as in the XDP program's verified map. */

static inline uint64_t mono(const struct daemon *d)
{
	return d->clock.mono_ns(d->clock.arg);
}

static inline uint64_t wall(const struct daemon *d)
{
	return d->clock.wall_s(d->clock.arg);
}

static inline double ms(uint64_t a, uint64_t b)
{
	return b > a ? (double)(b - a) / 1e6 : 0.0;
}

#endif
