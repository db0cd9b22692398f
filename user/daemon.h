/* SPDX-License-Identifier: MIT */
/*
 * jitwgd's interfaces, used by user/jitwgd.c and the tests: options and
 * config file, logfmt logging, the installer's schedule, the peer table
 * and the eviction policy, the counters, the daemon's lifecycle. The
 * pipeline's own types are in user/daemon_internal.h.
 */
#ifndef JITWG_DAEMON_H
#define JITWG_DAEMON_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <pthread.h>

#include "api.h"
#include "cache.h"
#include "capture.h"
#include "wgdev.h"

/* ---- options (user/daemon_opts.c) ---- */

enum {
	/* WireGuard's REJECT_AFTER_TIME is 180 s: evicting a peer whose
	 * session may still be alive strands it for ~15 s (docs/protocol.md). */
	OPT_DEFAULT_IDLE_TIMEOUT = 300,
	OPT_DEFAULT_EVICT_INTERVAL = 30,
	/* A client retries for REKEY_ATTEMPT_TIME = 90 s; a peer installed
	 * on a forged-looking endpoint that never answers is gone well
	 * before that. */
	OPT_DEFAULT_HANDSHAKE_WINDOW = 30,
	OPT_MAX_WORKERS = 256,
	/* --max-cpu: half a core for Diffie-Hellmans (docs/security.md). */
	OPT_DEFAULT_MAX_CPU = 50,
};

enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };

/* --cookie: when new sources get a cookie reply instead of a DH (user/daemon_cookie.c). */
enum cookie_mode { COOKIE_AUTO = 0, COOKIE_ALWAYS, COOKIE_NEVER };

/* --consume: when XDP drops captured initiations for jitwgd to give back
 * (user/daemon_consume.c). */
enum consume_mode { CONSUME_AUTO = 0, CONSUME_ALWAYS, CONSUME_NEVER };
const char *consume_mode_str(enum consume_mode m);

enum {
	CONSUME_AUTO_RATE = 1000,      /* unverified initiations/s handed to jitwgd */
	CONSUME_AUTO_WINDOW_MS = 100,  /* the shortest span a rate is taken over */
	CONSUME_AUTO_HOLD_MS = 10000,  /* kept this long past the last load */
};

/* --consume auto's view of the XDP program's counters. */
struct consume_auto {
	uint64_t at;       /* mono ns of the last look (0: none yet) */
	uint64_t events;   /* events from unverified sources then */
	uint64_t limited;  /* JITWG_CTR_LIMITED_GLOBAL then */
	uint64_t until;    /* consume until (mono ns) */
	uint64_t rate;     /* events/s over the last window (for the log) */
};
/*
 * One look at the counters (now: mono ns): whether to hold the lease. A
 * pure decision, so that it can be tested without a program.
 */
bool consume_auto_step(struct consume_auto *s, uint64_t now, uint64_t events,
		       uint64_t limited_global);

struct daemon_opts {
	char *wg_dev;
	char *xdp_dev;
	char *api_url;
	char *api_token_file;
	char *ca_file;
	char *cache_dir;
	char *pin_dir;
	char *config;
	char *metrics_listen;         /* ADDR:PORT; NULL: no /metrics */
	char *control_socket;         /* NULL: CONTROL_DIR/WGDEV.sock; "none" */
	unsigned int idle_timeout;     /* s */
	unsigned int evict_interval;   /* s */
	unsigned int handshake_window; /* s */
	unsigned int cache_max_mib;    /* the cache's map size */
	unsigned int max_stale;        /* s past an answer's ttl */
	unsigned int workers;          /* 0 = number of online CPUs */
	unsigned int max_cpu;          /* % of a core for DHs; 0: no limit */
	enum wgdev_backend backend;
	enum capture_mode xdp_mode;
	enum cache_sync cache_sync;
	bool initiate_back;
	enum consume_mode consume;     /* XDP drops, jitwgd re-delivers */
	bool adopt;                    /* reconcile: device peers become managed */
	enum cookie_mode cookie;       /* default COOKIE_AUTO */
	enum log_level log_level;
};

void opts_init(struct daemon_opts *o);
void opts_free(struct daemon_opts *o);
/*
 * Parse the command line; a --config file found there is read first and
 * the command line overrides it. Returns 0, 1 for --help (usage printed),
 * or -EINVAL with a message in err (caller exits 2).
 */
int opts_parse(struct daemon_opts *o, int argc, char **argv, char *err,
	       size_t errlen);
/* One "name = value" setting; the config file's names are the long options. */
int opts_set(struct daemon_opts *o, const char *name, const char *value,
	     char *err, size_t errlen);
int opts_load_file(struct daemon_opts *o, const char *path, char *err,
		   size_t errlen);
/* The same from memory (len bytes, no NUL needed); origin names it in errors. */
int opts_load_string(struct daemon_opts *o, const char *text, size_t len,
		     const char *origin, char *err, size_t errlen);
/* Required options present and values consistent. */
int opts_validate(const struct daemon_opts *o, char *err, size_t errlen);
void opts_usage(FILE *f);

/* ---- logging (user/daemon_log.c) ---- */

extern enum log_level log_level_current;
int log_level_parse(const char *s, enum log_level *out);
/*
 * One logfmt line on stderr: "ts=… level=… msg=<msg> " followed by fmt,
 * which the caller writes as key=value pairs. Values that may contain
 * spaces go through log_quote(). Never pass a key or token: use
 * log_fingerprint().
 */
void dlog(enum log_level lvl, const char *msg, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
#define LOG_ENABLED(l) ((l) <= log_level_current)
/* First 8 characters of the key's base64: enough to tell peers apart in a log. */
void log_fingerprint(char out[static 9], const uint8_t key[static 32]);
/* A logfmt value: quoted and escaped when needed. Returns out. */
const char *log_quote(char *out, size_t outlen, const char *s);
/* "addr:port" or "[addr6]:port"; none when there is no endpoint. */
void log_endpoint(char *buf, size_t len, const union wgdev_endpoint *ep, const char *none);

/* ---- the installer's turn (user/daemon_sched.c) ---- */

enum {
	/* Initiating back, a batch's keepalive switches start once no
	 * install ran for INITIATE_QUIET_MS, or once the oldest waited
	 * INITIATE_DEFER_MAX_MS. */
	SCHED_INITIATE_QUIET_MS = 20,
	SCHED_INITIATE_DEFER_MAX_MS = 1000,
	/* With --consume, the answers: an install takes wireguard-go's peer
	 * table for writing, its handshake workers wait, and a queue of 128
	 * makes it count itself under load (cookie replies for a second).
	 * At most any time before the client's retry (REKEY_TIMEOUT, 5 s),
	 * which would be answered at once. */
	SCHED_ANSWER_QUIET_MS = 100,
	SCHED_ANSWER_DEFER_MAX_MS = 3000,
	/* ... and leave one chunk (ANSWER_CHUNK, daemon_internal.h) per gap:
	 * a rate wireguard-go answers below that threshold (docs/daemon.md,
	 * --consume). */
	SCHED_ANSWER_GAP_MS = 10,
	/* Up to this many, installed after a quiet spell, start at once. */
	SCHED_AT_ONCE_MAX = 8,
};

enum sched_turn {
	SCHED_INSTALL, /* one batch of the queued installs */
	SCHED_START,   /* the next chunk of waiting handshakes */
	SCHED_WAIT,    /* until *wait_until (0: until work arrives) */
	SCHED_DROP,    /* stopping with --consume: forget the waiting answers */
	SCHED_EXIT,
};

struct sched_state {
	uint64_t now;          /* CLOCK_MONOTONIC ns, as the two below */
	uint64_t last_install; /* end of the last install call (0: none) */
	uint64_t prev_install; /* ... and of the one before it */
	uint64_t last_start;   /* the last SCHED_START (0: none) */
	uint64_t oldest;       /* install of the oldest waiting handshake */
	size_t waiting;        /* handshakes waiting to be started */
	bool queued;           /* installs queued */
	bool stopping;
	bool answering;        /* --consume */
	bool started_last;     /* the previous turn was SCHED_START */
};

enum sched_turn sched_turn(const struct sched_state *s, uint64_t *wait_until);
const char *sched_turn_str(enum sched_turn t);

/* ---- eviction policy (user/daemon_evict.c) ---- */

enum evict_verdict {
	EVICT_KEEP,
	EVICT_IDLE,      /* last handshake older than the idle timeout */
	EVICT_NEVER,     /* no handshake within the window after install */
	EVICT_GONE,      /* no longer on the device: forget the record */
};

struct evict_policy {
	uint64_t idle_timeout;     /* s */
	uint64_t handshake_window; /* s */
};

/*
 * Pure decision for one managed peer: installed_at and last_handshake are
 * wall-clock seconds (0 = never), on_device tells whether the device still
 * has the peer. Unmanaged peers are never passed here.
 */
enum evict_verdict evict_decide(const struct evict_policy *p, uint64_t now,
				bool on_device, uint64_t installed_at,
				uint64_t last_handshake);
const char *evict_verdict_str(enum evict_verdict v);

struct managed_peer {
	uint8_t key[32];
	uint64_t installed_at;   /* wall s */
	uint64_t installed_ns;   /* CLOCK_MONOTONIC */
	uint16_t keepalive;      /* the peer's own persistent keepalive */
	bool initiated;          /* installed with the keepalive switch */
	const char *source;      /* api, cache, stale_cache, reconciled (static) */
	struct wgdev_allowed_ip *ips;
	size_t n_ips;
};

/* ---- the peer table (user/daemon_peer_table.c) ---- */

/*
 * The daemon's view of peers: those it manages (with allowed IPs, for the
 * overlap check) and the set of keys the device had at the last listing
 * (managed or not: "already installed" means present on the device).
 * Chained hashing on the key's first 8 bytes, which are uniformly random.
 * All functions take the table's lock themselves.
 */
struct peer_table;

int ptab_new(struct peer_table **out);
void ptab_free(struct peer_table *t);
/*
 * Present on the device: as of the last refresh, or installed by us (a
 * reserved peer whose install is still in progress is not).
 */
bool ptab_on_device(struct peer_table *t, const uint8_t key[static 32]);
bool ptab_is_managed(struct peer_table *t, const uint8_t key[static 32]);
/* Note a sighting of key at now (CLOCK_MONOTONIC); returns the previous
 * one's time (0: none, or key unknown). */
uint64_t ptab_sighting(struct peer_table *t, const uint8_t key[static 32], uint64_t now);
/*
 * Another peer (managed, or on the device with known allowed IPs) that
 * holds an allowed IP overlapping one of ips. Returns true and its key.
 */
bool ptab_overlap(struct peer_table *t, const uint8_t key[static 32],
		  const struct wgdev_allowed_ip *ips, size_t n,
		  uint8_t other[static 32]);
/* Record a peer we installed (copies ips). Also marks it on the device. */
int ptab_add_managed(struct peer_table *t, const struct managed_peer *mp);
/*
 * Check for overlap and record as managed in one step (no other install can
 * slip in between): -EEXIST with the other peer's key on overlap.
 */
int ptab_reserve(struct peer_table *t, const struct managed_peer *mp,
		 uint8_t other[static 32]);
/* The device install of a reserved peer completed at installed_ns. */
void ptab_set_installed(struct peer_table *t, const uint8_t key[static 32],
			uint64_t installed_ns);
/* Forget a managed peer (and its on-device mark). */
void ptab_remove(struct peer_table *t, const uint8_t key[static 32]);
/*
 * Replace the on-device set and device allowed IPs with a fresh listing
 * that began at listed_ns (CLOCK_MONOTONIC): managed peers installed since
 * then are kept as present.
 */
int ptab_refresh_device(struct peer_table *t, const struct wgdev_peer *peers,
			size_t n, uint64_t listed_ns);
/* Copies of the managed peers (ips not copied: NULL). Caller frees. */
int ptab_snapshot_managed(struct peer_table *t, struct managed_peer **out,
			  size_t *n);
/* One managed peer without its allowed IPs; -ENOENT if it is not managed. */
int ptab_get_managed(struct peer_table *t, const uint8_t key[static 32],
		     struct managed_peer *out);
size_t ptab_count_managed(struct peer_table *t);

/* ---- counters ---- */

/*
 * Every counter, listed once: X(name, metric, labels, help, stop). name is
 * the field of struct daemon_stats and the key in the stop log line;
 * metric, labels (Prometheus label pairs, "" for none) and help describe
 * it as a Prometheus counter (entries sharing a metric share its help
 * text); stop is 1 when the stop line shows it, in this order.
 */
#define DAEMON_COUNTERS(X)                                                    \
	X(events, "jitwg_initiations_total", "",                              \
	  "Handshake initiations received from the XDP program", 1)           \
	X(installed, "jitwg_provisions_total", "outcome=\"installed\"",       \
	  "Provisioning decisions by outcome", 1)                             \
	X(handshakes, "jitwg_handshakes_total", "",                           \
	  "Handshakes completed by newly installed peers", 1)                 \
	X(evicted, "jitwg_evictions_total", "reason=\"idle\"",                \
	  "Managed peers removed, by reason", 1)                              \
	X(evicted_no_handshake, "jitwg_evictions_total",                      \
	  "reason=\"no_handshake\"", "Managed peers removed, by reason", 0)   \
	X(evicted_operator, "jitwg_evictions_total", "reason=\"operator\"",   \
	  "Managed peers removed, by reason", 0)                              \
	X(evicted_revoked, "jitwg_evictions_total", "reason=\"revoked\"",     \
	  "Managed peers removed, by reason", 0)                              \
	X(evicted_stale, "jitwg_evictions_total", "reason=\"stale\"",         \
	  "Managed peers removed, by reason", 0)                              \
	X(evicted_overlap, "jitwg_evictions_total",                           \
	  "reason=\"allowed_ip_overlap\"", "Managed peers removed, by reason", 0) \
	X(forgotten, "jitwg_evictions_total", "reason=\"gone\"",              \
	  "Managed peers removed, by reason", 0)                              \
	X(unknown, "jitwg_provisions_total", "outcome=\"unknown\"",           \
	  "Provisioning decisions by outcome", 1)                             \
	X(refused, "jitwg_provisions_total", "outcome=\"refused\"",           \
	  "Provisioning decisions by outcome", 1)                             \
	X(errors, "jitwg_provisions_total", "outcome=\"error\"",              \
	  "Provisioning decisions by outcome", 1)                             \
	X(api_errors, "jitwg_provisions_total", "outcome=\"api_error\"",      \
	  "Provisioning decisions by outcome", 0)                             \
	X(rate_limited, "jitwg_provisions_total", "outcome=\"rate_limited\"", \
	  "Provisioning decisions by outcome", 0)                             \
	X(bad_auth, "jitwg_rejections_total", "reason=\"bad_timestamp\"",   \
	  "Initiations rejected, by reason", 1)                               \
	X(replays, "jitwg_rejections_total", "reason=\"replay\"",             \
	  "Initiations rejected, by reason", 1)                               \
	X(sightings, "jitwg_sightings_total", "",                             \
	  "Initiations of peers already on the device", 1)                    \
	X(queue_full, "jitwg_queue_dropped_total", "",                        \
	  "Initiations dropped: the workers' queue was full", 1)              \
	X(intake_first, "jitwg_queued_first_total", "",                       \
	  "Initiations served before the rest of the queue: a verified source or a valid jitwgd mac2", 0) \
	X(redelivered, "jitwg_redelivered_total", "",                         \
	  "Consumed initiations given back to WireGuard", 1)                  \
	X(redeliver_errors, "jitwg_redeliver_errors_total", "",               \
	  "Consumed initiations that could not be given back", 1)             \
	X(answers_stale, "jitwg_answers_stale_total", "",                     \
	  "Handshake starts dropped as too old", 1)                           \
	X(bad_shape, "jitwg_rejections_total", "reason=\"bad_shape\"",        \
	  "Initiations rejected, by reason", 0)                               \
	X(bad_mac1, "jitwg_rejections_total", "reason=\"bad_mac1\"",          \
	  "Initiations rejected, by reason", 0)                               \
	X(bad_identity, "jitwg_rejections_total", "reason=\"bad_static\"",    \
	  "Initiations rejected, by reason", 0)                               \
	X(low_order, "jitwg_rejections_total", "reason=\"low_order\"",        \
	  "Initiations rejected, by reason", 0)                               \
	X(api_200, "jitwg_api_requests_total", "code=\"200\"",                \
	  "Control-plane requests by the status they ended with (transport: no HTTP answer)", 0) \
	X(api_404, "jitwg_api_requests_total", "code=\"404\"",                \
	  "Control-plane requests by the status they ended with (transport: no HTTP answer)", 0) \
	X(api_429, "jitwg_api_requests_total", "code=\"429\"",                \
	  "Control-plane requests by the status they ended with (transport: no HTTP answer)", 0) \
	X(api_4xx, "jitwg_api_requests_total", "code=\"4xx\"",                \
	  "Control-plane requests by the status they ended with (transport: no HTTP answer)", 0) \
	X(api_5xx, "jitwg_api_requests_total", "code=\"5xx\"",                \
	  "Control-plane requests by the status they ended with (transport: no HTTP answer)", 0) \
	X(api_transport, "jitwg_api_requests_total", "code=\"transport\"",    \
	  "Control-plane requests by the status they ended with (transport: no HTTP answer)", 0) \
	X(waiting, "jitwg_waiting_total", "",                                 \
	  "Initiations of a key already being provisioned (not a decision)", 0) \
	X(revalidate_failed, "jitwg_revalidations_failed_total", "",          \
	  "Revalidations of managed peers the control plane did not answer", 0) \
	X(cache_write_dropped, "jitwg_cache_answers_dropped_total", "",       \
	  "Control-plane answers not cached: the cache writer's queue was full", 0) \
	X(cookie_replies, "jitwg_cookie_replies_total", "",                   \
	  "Cookie replies sent instead of a Diffie-Hellman (under load)", 0)  \
	X(cookie_send_errors, "jitwg_cookie_send_errors_total", "",           \
	  "Cookie replies not sent: a send failed, or the source is one no client can have", 0)                         \
	X(mac2_valid, "jitwg_mac2_total", "result=\"valid\"",                  \
	  "Initiations carrying a mac2, by whether it was one of jitwgd's cookies", 0) \
	X(mac2_invalid, "jitwg_mac2_total", "result=\"invalid\"",              \
	  "Initiations carrying a mac2, by whether it was one of jitwgd's cookies", 0) \
	X(budget_refused, "jitwg_budget_refused_total", "",                   \
	  "Initiations refused for the CPU share (--max-cpu)", 1)             \
	X(fetch_shed, "jitwg_fetch_shed_total", "",                           \
	  "Control-plane lookups dropped: the fresh lane was full", 1)        \
	X(giveback_skipped, "jitwg_giveback_skipped_total", "",               \
	  "Initiations of keys not on the device not given back to WireGuard: over their budget (a flood of fresh keys)", 1) \
	X(consume_engaged, "jitwg_consume_engaged_total", "",                 \
	  "Times --consume auto took the XDP lease (initiations under load)", 1)

struct daemon_stats {
#define X(name, metric, labels, help, stop) uint64_t name;
	DAEMON_COUNTERS(X)
#undef X
};

/* The list as data, for a renderer: the value is at offset in daemon_stats. */
struct daemon_counter_def {
	const char *name, *metric, *labels, *help;
	size_t offset;
	bool stop;
};
extern const struct daemon_counter_def daemon_counter_defs[];
extern const size_t daemon_n_counters;

/*
 * "events=… installed=… …": the counters the stop line shows, in the
 * list's order. Returns snprintf's result.
 */
int daemon_stats_format(const struct daemon_stats *st, char *buf, size_t len);

/* ---- the daemon (user/daemon.c; its stages: user/daemon_internal.h) ---- */

struct daemon;
struct cache;
struct api_client;
struct noise_responder;

/*
 * The cache and the control-plane client as the daemon uses them: thin
 * tables of the functions it calls, with the signatures of include/cache.h
 * and include/api.h. NULL in daemon_env: LMDB (cache.c) and HTTP (api.c);
 * tests pass fakes (a fake may define struct cache and struct api_client
 * for itself: the daemon never looks inside).
 */
struct daemon_cache_ops {
	int (*ts_accept_many)(struct cache *c, const uint8_t (*keys)[32],
			      const uint8_t (*ts)[CACHE_TS_LEN], int *res, size_t n);
	/* Optional: with it, a rekey is given back (--consume) before its
	 * timestamp's durable write (daemon_intake.c's run_batch()). */
	int (*ts_check_many)(struct cache *c, const uint8_t (*keys)[32],
			     const uint8_t (*ts)[CACHE_TS_LEN], int *res, size_t n);
	int (*get_peer)(struct cache *c, const uint8_t key[static 32], uint64_t now,
			struct cache_entry *out);
	int (*put_peer)(struct cache *c, const struct api_peer *peer, uint64_t now);
	int (*put_negative)(struct cache *c, const uint8_t key[static 32],
			    uint64_t now);
	int (*managed_put_many)(struct cache *c, const struct cache_managed *m,
				size_t n);
	int (*managed_get)(struct cache *c, const uint8_t key[static 32],
			   struct cache_managed *out);
	int (*managed_del)(struct cache *c, const uint8_t key[static 32]);
	int (*ts_seal)(struct cache *c, const uint8_t key[static 32], uint64_t margin_ns);
	int (*put_answers)(struct cache *c, const struct cache_answer *a, size_t n,
			   uint64_t now);
};

struct daemon_api_ops {
	/* api_submit()'s contract: done (daemon_api_done) follows 0 and
	 * API_ATTACHED, never an error. */
	int (*submit)(struct api_client *c, const uint8_t key[static 32], void *ctx);
};

extern const struct daemon_cache_ops daemon_cache_lmdb;
extern const struct daemon_api_ops daemon_api_http;

/*
 * The daemon's clocks (NULL in daemon_env: CLOCK_MONOTONIC ns and wall
 * seconds, now_mono_ns() and now_wall_s()). A test's clock drives the
 * stages it runs through daemon_drain(); the threads of daemon_start()
 * wait on condition variables of CLOCK_MONOTONIC and need the real one.
 */
struct daemon_clock {
	uint64_t (*mono_ns)(void *arg);
	uint64_t (*wall_s)(void *arg);
	void *arg;
};

/*
 * Everything the daemon runs on; the objects are opened by main and owned
 * by it, the daemon only uses them.
 */
/*
 * Where cookie replies go (user/daemon_cookie.c): one datagram from
 * saddr:sport (the WireGuard port) to daddr:dport (the client). send returns
 * how many of the n were sent, or -errno. NULL ops: raw sockets.
 */
struct cookie_out {
	uint8_t saddr[16], daddr[16]; /* IPv4-mapped for IPv4 */
	uint16_t sport, dport;        /* host order */
	uint32_t ifindex;
	uint8_t family;               /* 4 or 6 */
	uint8_t msg[64];              /* the type-3 reply */
};

struct daemon_cookie_ops {
	int (*send)(void *arg, const struct cookie_out *out, size_t n);
	void *arg;
};

struct daemon_env {
	const struct daemon_opts *opts;
	struct wgdev *dev;        /* installs: the installer thread only, unlocked */
	struct wgdev *mon_dev;    /* listings, keepalive, eviction (monitor
				   * thread): a second handle, so that polling
				   * a big device never delays an install */
	struct noise_responder *responder;
	struct cache *cache;
	struct capture *capture; /* may be set after daemon_start() */
	struct redeliver *redeliver; /* gives consumed initiations back to
				      * WireGuard; NULL with --consume never */
	uint16_t listen_port;
	const struct daemon_cache_ops *cache_ops; /* NULL: daemon_cache_lmdb */
	const struct daemon_api_ops *api_ops;     /* NULL: daemon_api_http */
	const struct daemon_clock *clock;         /* NULL: the system's */
	const struct daemon_cookie_ops *cookie_ops; /* NULL: raw sockets */
};

int daemon_new(struct daemon **out, const struct daemon_env *env);
/* Start-up reconciliation: device peers ∩ managed records. */
int daemon_reconcile(struct daemon *d, size_t *n_device, size_t *n_managed);
/* The api client's completion callback (api_config.done, arg = daemon). */
void daemon_api_done(const uint8_t key[32], const struct api_result *res,
		     void *ctx, void *arg);
void daemon_set_api(struct daemon *d, struct api_client *api);
void daemon_set_capture(struct daemon *d, struct capture *c);
int daemon_start(struct daemon *d);
/* capture_event_fn: queue one event for the workers (never blocks). */
int daemon_on_event(void *ctx, const struct jitwg_event *ev);
/* Send the cookie replies daemon_on_event() decided on (after each poll). */
void daemon_cookie_flush(struct daemon *d);
/* After each poll of the ring buffer: the cookie replies sent, and workers
 * woken for the jobs daemon_on_event() queued. */
void daemon_events_flush(struct daemon *d);
/*
 * Whether the workers keep up: their queue is empty, or they finished a job
 * since the last call. --consume renews its lease only then, so that stuck
 * workers give the initiations back to WireGuard (one caller: main loop).
 */
bool daemon_keeping_up(struct daemon *d);
/*
 * Whether XDP consumes initiations now (the lease held): the main loop
 * tells, /metrics and the status show it; turning it on counts an
 * engagement.
 */
void daemon_set_consuming(struct daemon *d, bool on);
bool daemon_consuming(struct daemon *d);
/* Ask the monitor thread for an eviction sweep now (SIGHUP). */
void daemon_request_sweep(struct daemon *d);
/*
 * Ask the control plane about one managed peer now (key), or about every
 * managed peer at the next sweep, which starts now (NULL): how an operator
 * pushes a revocation (SIGUSR1, jitwgctl revalidate). -ENOENT: not a managed
 * peer; -EAGAIN: asked less than 4.5 s ago; -ENOTCONN: no control plane.
 */
int daemon_revalidate(struct daemon *d, const uint8_t *key);
/* Remove one managed peer now, as an eviction (jitwgctl evict); -ENOENT
 * if jitwgd does not manage it. Done by the monitor thread, at once. */
int daemon_evict(struct daemon *d, const uint8_t key[static 32]);
/*
 * Without threads (tests; daemon_start() not called): run the stages on
 * the caller's thread until nothing is queued: the workers' jobs, the
 * installs, and every waiting handshake start, whatever sched_turn()
 * would wait for. Returns the number of jobs and installs handled.
 */
size_t daemon_drain(struct daemon *d);
/* Stop threads; pending fetches are dropped. */
void daemon_stop(struct daemon *d);
void daemon_free(struct daemon *d);
unsigned int daemon_workers(const struct daemon *d);
void daemon_get_stats(struct daemon *d, struct daemon_stats *out);

/* ---- the capture at start-up (user/daemon_capture.c) ---- */

struct capture_job {
	struct capture_opts co;
	const struct daemon_opts *o;
	struct daemon *d;
	struct capture *cap;  /* out */
	int ret;              /* out: 0 or -errno, with err */
	char err[CAPTURE_ERR_LEN];
	uint64_t t_done;      /* CLOCK_MONOTONIC */
};

/* pthread start routine: capture_open() for daemon_on_event(). */
void *daemon_capture_thread(void *arg);
/*
 * The XDP lease, as --consume asks (user/daemon_consume.c): held always,
 * never, or under load (auto). Used by the main loop only.
 */
struct lease_keeper {
	enum consume_mode mode;  /* never if auto could not take it */
	struct daemon *d;
	struct capture *cap;
	struct consume_auto a;
	uint64_t renewed;        /* mono ns of the last look */
	uint64_t renewals;
	bool held, lapsed;
	bool auto_word;          /* the program's own trigger (JITWG_LEASE_AUTO) */
};
/* 0 or -errno with a message in err (always only: auto falls back to never). */
int lease_keeper_start(struct lease_keeper *l, struct daemon *d, struct capture *cap,
		       enum consume_mode mode, char *err, size_t errlen);
/* poll()'s timeout for the main loop: -1 when never. */
int lease_keeper_timeout_ms(const struct lease_keeper *l);
/* After each wakeup: renew, take or give back the lease when due. */
void lease_keeper_tick(struct lease_keeper *l);
/* Give the XDP program the namespace's addresses (the lease's scope). */
int daemon_set_local_addrs(struct capture *cap, char *err, size_t errlen);

/* ---- the cache directory (user/daemon_dirs.c) ---- */
/*
 * Create path and its parents (0700) and make it private: a directory
 * with wider permissions is tightened (logged, quoted into q), one that is
 * not a directory or cannot be tightened is refused. 0 or -errno.
 */
int daemon_cache_dir(const char *path, char *q, size_t qlen);

/* ---- clocks (user/daemon_clock.c) ---- */
uint64_t now_mono_ns(void);
uint64_t now_wall_s(void);

/* ---- operating it: /metrics and the control socket (user/daemon_ops.c) ---- */

struct daemon_ops;
/* Option values daemon_ops_start() would refuse (exit 2). */
int daemon_ops_check(const struct daemon_opts *o, char *err, size_t errlen);
/*
 * The metrics server (--metrics-listen, if set) and the control socket
 * (--control-socket, unless "none"), each on its own thread. Once the
 * daemon runs; stopped before it. 0 or -errno with a message in err.
 */
int daemon_ops_start(struct daemon_ops **out, struct daemon *d, char *err,
		     size_t errlen);
void daemon_ops_stop(struct daemon_ops *ops);

#endif
