// SPDX-License-Identifier: MIT
/*
 * The provisioning pipeline:
 *
 *   capture (main thread) ──queue──▶ workers: shape, mac1, identify (1 DH)
 *        already on the device? → note the sighting, stop
 *        authenticate (2nd DH) + freshness against the cached timestamp
 *        one provisioning per key at a time (later sightings update the
 *        endpoint and wait for it)
 *        cache: fresh → install; negative → stop; miss/stale → api_submit()
 *   api thread ──queue (JOB_FETCHED)──▶ workers: cache the answer, install
 *   monitor thread: watches new peers until their handshake (restores their
 *        keepalive, logs the time), and sweeps idle managed peers.
 *
 * Nothing on the packet path waits for the control plane: the api client
 * runs its own thread and hands results back through the queue.
 *
 * With --consume the XDP program drops what it hands over, and the daemon
 * gives WireGuard back each initiation it can use (pending_end()): a sighting's at
 * once, a new key's once its provisioning ended (after the install). The
 * gateway then answers the client's own initiation instead of initiating.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "api.h"
#include "cache.h"
#include "daemon.h"
#include "keys.h"
#include "noise.h"
#include "redeliver.h"

enum {
	QUEUE_MAX = 1 << 17,         /* events waiting for a worker */
	PENDING_BUCKETS = 4096,
	/* Keepalive of the install-and-initiate switch; the peer's own value
	 * is restored once the handshake is done (WIREGUARD-NOTES). */
	INITIATE_KEEPALIVE = 25,
	MANAGED_F_INITIATED = 1 << 0, /* cache_managed.flags; keepalive in bits 16-31 */
	WATCH_POLL_MIN_US = 2000,
	WATCH_POLL_GAP = 9,           /* idle time per unit of listing time */
	WATCH_DEFER_MAX_MS = 1000,    /* longest an install backlog defers a poll */
	/*
	 * Handshakes start INITIATE_CHUNK keepalive switches per device call
	 * (wireguard-go computes each initiation inside the call) or, with
	 * --consume, ANSWER_CHUNK answers every SCHED_ANSWER_GAP_MS: wireguard-go
	 * counts itself under load once 128 handshakes wait (1/8 of its
	 * queue; the kernel: 512) and for the next second answers every
	 * initiation with a cookie instead, so thousands handed over at once
	 * would become cookie replies and 5 s retries. An answer older than
	 * ANSWER_MAX_AGE_MS is dropped: the client retries at REKEY_TIMEOUT
	 * (5 s), and that retry, its peer installed, is answered at once.
	 * When they start: sched_turn() (user/daemon_sched.c).
	 */
	INITIATE_CHUNK = 256,
	ANSWER_CHUNK = 20,
	ANSWER_MAX_AGE_MS = 4000,
	INSTALL_BATCH_MAX = 1024,
	WORKER_BATCH = 32,            /* jobs a worker takes at once */
};

enum job_type { JOB_EVENT, JOB_FETCHED };

struct pending;

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
	union {
		struct jitwg_event ev;
		struct fetched *f; /* allocated with the job, right after it */
	};
};

/* A key being provisioned: authenticated, waiting for the cache or the API. */
struct pending {
	struct pending *next;
	uint8_t key[32];
	union wgdev_endpoint ep;  /* latest authenticated sighting's source */
	struct jitwg_event last;  /* ... and its initiation (--consume) */
	uint64_t t_event, t_seen, t_ident, t_auth, t_fetch;
	struct api_peer *stale;   /* cached answer past its TTL, or NULL;
				   * secret: wiped on free */
};

struct watch {
	uint8_t key[32];
	uint64_t t_event, t_install;
	bool initiated;
	uint16_t keepalive;
};

struct daemon {
	struct daemon_env env;
	bool initiate;                /* initiate back: not with --consume */
	struct api_client *api;
	struct peer_table *ptab;
	struct evict_policy policy;

	pthread_mutex_t qlock;
	pthread_cond_t qcond;
	struct job *qhead, *qtail;
	size_t qlen;
	bool stopping;
	pthread_t *workers;
	unsigned int n_workers, n_started;

	pthread_mutex_t plock;
	struct pending *pending[PENDING_BUCKETS];

	pthread_mutex_t ilock;        /* installer queue */
	pthread_cond_t icond;
	struct ijob *ihead, *itail;
	bool istop, inst_started;
	pthread_t inst;

	pthread_mutex_t mlock;        /* monitor: watches, sweep requests */
	pthread_cond_t mcond;
	struct watch *watches;
	size_t n_watches, cap_watches;
	bool sweep_requested, mon_stop, mon_started;
	pthread_t monitor;

	struct {
		_Atomic uint64_t events, queue_full, bad_shape, bad_mac1, bad_identity;
		_Atomic uint64_t sightings, bad_auth, replays, waiting, installed;
		_Atomic uint64_t unknown, refused, errors, handshakes, evicted;
		_Atomic uint64_t redelivered, redeliver_errors, answers_stale;
	} st;
	_Atomic uint64_t jobs_done;   /* daemon_keeping_up() */
	uint64_t jobs_seen, lost_seen;
};

#define INC(d, f) atomic_fetch_add_explicit(&(d)->st.f, 1, memory_order_relaxed)

static double ms(uint64_t a, uint64_t b)
{
	return b > a ? (double)(b - a) / 1e6 : 0.0;
}

static void fmt_endpoint(char *buf, size_t len, const union wgdev_endpoint *ep)
{
	char a[INET6_ADDRSTRLEN];

	if (ep->addr.sa_family == AF_INET) {
		inet_ntop(AF_INET, &ep->addr4.sin_addr, a, sizeof(a));
		snprintf(buf, len, "%s:%u", a, ntohs(ep->addr4.sin_port));
	} else if (ep->addr.sa_family == AF_INET6) {
		inet_ntop(AF_INET6, &ep->addr6.sin6_addr, a, sizeof(a));
		snprintf(buf, len, "[%s]:%u", a, ntohs(ep->addr6.sin6_port));
	} else {
		snprintf(buf, len, "none");
	}
}

static void event_endpoint(const struct jitwg_event *ev, union wgdev_endpoint *ep)
{
	memset(ep, 0, sizeof(*ep));
	if (ev->family == 4) {
		ep->addr4.sin_family = AF_INET;
		memcpy(&ep->addr4.sin_addr, ev->saddr + 12, 4);
		ep->addr4.sin_port = htons(ev->sport);
	} else {
		ep->addr6.sin6_family = AF_INET6;
		memcpy(&ep->addr6.sin6_addr, ev->saddr, 16);
		ep->addr6.sin6_port = htons(ev->sport);
		/* A scope only for link-local sources (fe80::/10). */
		if (ev->saddr[0] == 0xfe && (ev->saddr[1] & 0xc0) == 0x80)
			ep->addr6.sin6_scope_id = ev->ifindex;
	}
}

/* ---- queue ---- */

static void push(struct daemon *d, struct job *j)
{
	j->next = NULL;
	pthread_mutex_lock(&d->qlock);
	if (d->qtail)
		d->qtail->next = j;
	else
		d->qhead = j;
	d->qtail = j;
	d->qlen++;
	pthread_cond_signal(&d->qcond);
	pthread_mutex_unlock(&d->qlock);
}

int daemon_on_event(void *ctx, const struct jitwg_event *ev)
{
	struct daemon *d = ctx;
	struct job *j;

	INC(d, events);
	/* Bounded: a flood beyond the workers' pace is dropped here, the
	 * clients retry in 5 s (XDP rate limits per source before this). */
	if (d->qlen >= QUEUE_MAX) {
		INC(d, queue_full);
		return 0;
	}
	j = malloc(sizeof(*j));
	if (!j) {
		INC(d, queue_full);
		return 0;
	}
	j->type = JOB_EVENT;
	memcpy(&j->ev, ev, sizeof(*ev));
	push(d, j);
	return 0;
}

/* ---- pending table ---- */

static struct pending **pslot(struct daemon *d, const uint8_t key[static 32])
{
	uint32_t h;

	memcpy(&h, key, sizeof(h));
	return &d->pending[h % PENDING_BUCKETS];
}

/*
 * Claim key for provisioning. Returns NULL when it is already in progress
 * (after moving its endpoint to ep: the latest authenticated source wins).
 */
static struct pending *pending_claim(struct daemon *d, const uint8_t key[static 32],
				     const struct jitwg_event *ev,
				     const union wgdev_endpoint *ep, bool *busy)
{
	struct pending **slot, *p;

	*busy = false;
	pthread_mutex_lock(&d->plock);
	slot = pslot(d, key);
	for (p = *slot; p; p = p->next) {
		if (!memcmp(p->key, key, 32)) {
			p->ep = *ep;
			/* The client only awaits an answer to its latest. */
			p->last = *ev;
			*busy = true;
			pthread_mutex_unlock(&d->plock);
			return NULL;
		}
	}
	p = calloc(1, sizeof(*p));
	if (p) {
		memcpy(p->key, key, 32);
		p->ep = *ep;
		p->last = *ev;
		p->next = *slot;
		*slot = p;
	}
	pthread_mutex_unlock(&d->plock);
	return p;
}

/*
 * The endpoint of the key's latest authenticated sighting: pending_claim()
 * moves it at any time, so copy it under the lock.
 */
static void pending_ep(struct daemon *d, const struct pending *p,
		       union wgdev_endpoint *out)
{
	pthread_mutex_lock(&d->plock);
	*out = p->ep;
	pthread_mutex_unlock(&d->plock);
}

static void pending_free(struct pending *p)
{
	if (p->stale) {
		sodium_memzero(p->stale, api_peer_len(p->stale->n_allowed_ips));
		free(p->stale);
	}
	free(p);
}

/* Unlink p; with last, copy its latest initiation as it leaves the table. */
static void pending_unlink(struct daemon *d, struct pending *p,
			   struct jitwg_event *last)
{
	struct pending **pp;

	pthread_mutex_lock(&d->plock);
	for (pp = pslot(d, p->key); *pp; pp = &(*pp)->next) {
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	}
	if (last)
		*last = p->last;
	pthread_mutex_unlock(&d->plock);
}

static void pending_release(struct daemon *d, struct pending *p)
{
	pending_unlink(d, p, NULL);
	pending_free(p);
}

/* ---- re-delivery (--consume) ---- */

static void redeliver_one(struct daemon *d, const struct jitwg_event *ev)
{
	uint64_t n;
	int ret;

	/* Not consuming, or passed by XDP (no lease, or not addressed to
	 * this host): WireGuard has it already. */
	if (!d->env.redeliver || !(ev->flags & JITWG_EV_CONSUMED))
		return;
	ret = redeliver_event(d->env.redeliver, ev);
	if (!ret) {
		INC(d, redelivered);
		return;
	}
	/* Logged at the 1st, 2nd, 4th, 8th… failure: a broken path must not
	 * turn each initiation into a log line. */
	n = atomic_fetch_add(&d->st.redeliver_errors, 1) + 1;
	if (!(n & (n - 1)))
		dlog(LOG_WARN, "redeliver", "error=%s failures=%lu", strerror(-ret),
		     (unsigned long)n);
}

/*
 * The key's provisioning ended: release it and, with --consume, give
 * WireGuard its latest initiation. Every authenticated initiation ends here
 * whatever its outcome (a peer added by hand since the last listing must
 * still get its answer, and WireGuard drops the others as it would have);
 * only malformed, forged and replayed ones stay dropped, which WireGuard
 * would refuse too. Read as the entry leaves the table, so no later
 * sighting can replace it unanswered: a later one starts anew.
 */
static void pending_end(struct daemon *d, struct pending *p)
{
	struct jitwg_event ev;

	pending_unlink(d, p, &ev);
	pending_free(p);
	redeliver_one(d, &ev);
}

/* ---- provisioning ---- */

static void log_outcome(struct daemon *d, struct pending *p, const char *outcome,
			const char *source, const char *extra, enum log_level lvl)
{
	char fp[9], ep[64];
	union wgdev_endpoint e;
	uint64_t now = now_mono_ns();

	log_fingerprint(fp, p->key);
	pending_ep(d, p, &e);
	fmt_endpoint(ep, sizeof(ep), &e);
	dlog(lvl, "provision",
	     "peer=%s outcome=%s source=%s endpoint=%s queue_ms=%.3f identify_ms=%.3f "
	     "auth_ms=%.3f fetch_ms=%.3f total_ms=%.3f%s%s",
	     fp, outcome, source, ep, ms(p->t_event, p->t_seen),
	     ms(p->t_seen, p->t_ident), ms(p->t_ident, p->t_auth),
	     ms(p->t_auth, p->t_fetch ? p->t_fetch : now),
	     ms(p->t_event, now), extra && *extra ? " " : "", extra ? extra : "");
}

static void watch_add(struct daemon *d, const struct watch *w)
{
	pthread_mutex_lock(&d->mlock);
	if (d->n_watches == d->cap_watches) {
		size_t cap = d->cap_watches ? d->cap_watches * 2 : 64;
		struct watch *n = realloc(d->watches, cap * sizeof(*n));

		if (!n) {
			pthread_mutex_unlock(&d->mlock);
			return; /* the sweep still restores and evicts */
		}
		d->watches = n;
		d->cap_watches = cap;
	}
	d->watches[d->n_watches++] = *w;
	/* Only the first watch changes how long the monitor sleeps; waking it
	 * for each install of a burst costs a context switch per peer. */
	if (d->n_watches == 1)
		pthread_cond_signal(&d->mcond);
	pthread_mutex_unlock(&d->mlock);
}

/* A reserved peer waiting for the installer thread. */
struct ijob {
	struct ijob *next;
	struct pending *p;
	const char *source;
	struct cache_managed cm; /* written by the installer, batched */
	struct api_peer peer; /* holds the preshared key: wiped on free. Last:
			       * allocated only up to its allowed IPs */
};

static void ijob_free(struct ijob *j)
{
	sodium_memzero(&j->peer, api_peer_len(j->peer.n_allowed_ips));
	free(j);
}

/*
 * Worker side of an install: reserve the allowed IPs (refusing overlaps
 * atomically, so two new peers cannot both claim an address) and hand the
 * peer to the installer thread, which batches device calls.
 */
static void install(struct daemon *d, struct pending *p,
		    const struct api_peer *ap, const char *source)
{
	struct managed_peer mp;
	struct cache_managed *cm;
	union wgdev_endpoint ep;
	struct ijob *j;
	uint8_t other[32];
	char extra[160], fp[9];
	int ret;

	p->t_fetch = now_mono_ns();
	memset(&mp, 0, sizeof(mp));
	memcpy(mp.key, p->key, 32);
	mp.installed_at = now_wall_s();
	mp.installed_ns = UINT64_MAX; /* in progress: sweeps leave it alone */
	pending_ep(d, p, &ep);
	mp.keepalive = (ap->flags & API_PEER_HAS_KEEPALIVE) ? ap->persistent_keepalive : 0;
	mp.initiated = d->initiate;
	mp.ips = (struct wgdev_allowed_ip *)ap->allowed_ips;
	mp.n_ips = ap->n_allowed_ips;
	/* Two peers with overlapping allowed IPs: WireGuard would move the
	 * addresses to the newer one and steal the other's traffic. */
	ret = ptab_reserve(d->ptab, &mp, other);
	if (ret == -EEXIST) {
		INC(d, refused);
		log_fingerprint(fp, other);
		snprintf(extra, sizeof(extra), "reason=allowed_ip_overlap other=%s", fp);
		log_outcome(d, p, "refused", source, extra, LOG_WARN);
		pending_end(d, p);
		return;
	}
	/* Sized to its allowed IPs: a burst queues thousands of these. */
	j = ret ? NULL : calloc(1, offsetof(struct ijob, peer) +
					   api_peer_len(ap->n_allowed_ips));
	if (!j) {
		if (!ret)
			ptab_remove(d->ptab, p->key);
		INC(d, errors);
		log_outcome(d, p, "error", source, "reason=out_of_memory", LOG_ERROR);
		pending_end(d, p);
		return;
	}
	/* The installer writes it, with the rest of its batch in one
	 * transaction, before the device call. */
	cm = &j->cm;
	memcpy(cm->public_key, p->key, 32);
	cm->installed_at = mp.installed_at;
	cm->last_seen = mp.installed_at;
	cm->endpoint = ep;
	cm->flags = (mp.initiated ? MANAGED_F_INITIATED : 0) |
		    ((uint32_t)mp.keepalive << 16);
	j->p = p;
	j->source = source;
	memcpy(&j->peer, ap, api_peer_len(ap->n_allowed_ips));
	pthread_mutex_lock(&d->ilock);
	if (d->itail)
		d->itail->next = j;
	else
		d->ihead = j;
	d->itail = j;
	pthread_cond_signal(&d->icond);
	pthread_mutex_unlock(&d->ilock);
}

static void to_wgdev(struct daemon *d, struct wgdev_peer *wp, const struct ijob *j,
		     uint16_t keepalive)
{
	memset(wp, 0, sizeof(*wp));
	memcpy(wp->public_key, j->peer.public_key, 32);
	if (j->peer.flags & API_PEER_HAS_PSK) {
		memcpy(wp->preshared_key, j->peer.preshared_key, 32);
		wp->flags |= WGDEV_PEER_HAS_PSK;
	}
	pending_ep(d, j->p, &wp->endpoint);
	wp->flags |= WGDEV_PEER_HAS_ENDPOINT | WGDEV_PEER_REPLACE_IPS |
		     WGDEV_PEER_HAS_KEEPALIVE;
	wp->persistent_keepalive = keepalive;
	wp->allowed_ips = (struct wgdev_allowed_ip *)j->peer.allowed_ips;
	wp->n_allowed_ips = j->peer.n_allowed_ips;
}

static uint16_t own_keepalive(const struct ijob *j)
{
	return (j->peer.flags & API_PEER_HAS_KEEPALIVE) ? j->peer.persistent_keepalive : 0;
}

/*
 * Peers of a batch installed with keepalive 0, waiting for their keepalive
 * switch, with the watch each gets once switched: watched earlier, a
 * handshake of the client's own could let the monitor restore the
 * keepalive before the late switch overwrote it.
 */
struct flips {
	struct watch *w;
	struct jitwg_event *ev; /* --consume: the initiations to answer */
	size_t head, n, cap;    /* [head, n) wait, oldest first */
};

/* False when out of memory: w is watched, p is not queued. */
static bool flips_add(struct daemon *d, struct flips *fl, const struct watch *w,
		      struct pending *p)
{
	if (fl->n == fl->cap && fl->head) {
		/* Started ones are done with: reuse their room first. */
		fl->n -= fl->head;
		memmove(fl->w, fl->w + fl->head, fl->n * sizeof(*fl->w));
		if (d->env.redeliver)
			memmove(fl->ev, fl->ev + fl->head, fl->n * sizeof(*fl->ev));
		fl->head = 0;
	}
	if (fl->n == fl->cap) {
		size_t cap = fl->cap ? fl->cap * 2 : 1024;
		struct watch *nw = realloc(fl->w, cap * sizeof(*nw));
		struct jitwg_event *ne = NULL;

		if (nw)
			fl->w = nw;
		if (nw && d->env.redeliver) {
			ne = realloc(fl->ev, cap * sizeof(*ne));
			if (ne)
				fl->ev = ne;
		}
		if (!nw || (d->env.redeliver && !ne)) {
			/* Installed, not initiated: the client's own retry. */
			dlog(LOG_WARN, "device", "op=initiate error=ENOMEM peers=1");
			watch_add(d, w);
			return false;
		}
		fl->cap = cap;
	}
	if (d->env.redeliver) {
		pthread_mutex_lock(&d->plock);
		fl->ev[fl->n] = p->last;
		pthread_mutex_unlock(&d->plock);
	}
	fl->w[fl->n++] = *w;
	return true;
}

/*
 * Start the next chunk of the waiting handshakes: with --consume by
 * answering the client's initiation, else by the 0 → non-zero keepalive
 * switch, update-only.
 */
static void flips_run(struct daemon *d, struct flips *fl)
{
	uint64_t now = now_mono_ns(), max_age = ANSWER_MAX_AGE_MS * 1000000ull;
	uint8_t (*keys)[32] = NULL;
	char q[300];
	size_t i, cnt;
	int ret = -ENOMEM;

	if (d->env.redeliver) {
		size_t sent = 0;

		/* Stale ones cost nothing: they do not count against the chunk. */
		for (i = fl->head; i < fl->n && sent < ANSWER_CHUNK; i++) {
			uint64_t t = fl->ev[i].ts_ns;

			if (!t || now <= t + max_age) {
				redeliver_one(d, &fl->ev[i]);
				sent++;
			} else {
				INC(d, answers_stale);
			}
			watch_add(d, &fl->w[i]);
		}
		fl->head = i;
		if (fl->head == fl->n) {
			dlog(LOG_DEBUG, "redeliver", "op=answer peers=%zu since_first_ms=%.3f",
			     fl->n, ms(fl->w[0].t_install, now));
			fl->head = fl->n = 0;
		}
		return;
	}
	/* Too late to matter: the client retries at REKEY_TIMEOUT, and that
	 * retry, its peer installed, is answered at once. */
	while (fl->head < fl->n && now > fl->w[fl->head].t_event + max_age) {
		INC(d, answers_stale);
		watch_add(d, &fl->w[fl->head++]);
	}
	cnt = fl->n - fl->head < INITIATE_CHUNK ? fl->n - fl->head : INITIATE_CHUNK;
	if (!cnt) {
		fl->head = fl->n = 0;
		return;
	}
	keys = malloc(cnt * sizeof(*keys));
	if (keys) {
		for (i = 0; i < cnt; i++)
			memcpy(keys[i], fl->w[fl->head + i].key, 32);
		ret = wgdev_initiate(d->env.dev, keys, cnt, INITIATE_KEEPALIVE);
		if (ret)
			log_quote(q, sizeof(q), wgdev_error(d->env.dev));
		free(keys);
	} else {
		snprintf(q, sizeof(q), "ENOMEM");
	}
	if (ret)
		dlog(LOG_WARN, "device", "op=initiate error=%s peers=%zu", q, cnt);
	dlog(LOG_DEBUG, "device", "op=initiate peers=%zu waited_ms=%.3f", cnt,
	     ms(fl->w[fl->head].t_install, now));
	for (i = 0; i < cnt; i++)
		watch_add(d, &fl->w[fl->head + i]);
	fl->head += cnt;
	if (fl->head == fl->n)
		fl->head = fl->n = 0;
}

/*
 * After the device call: record, log, watch for the handshake. defer: the
 * batch's keepalive switch (or answer) comes later; its watch goes there.
 */
static void finish_install(struct daemon *d, struct ijob *j, int ret,
			   const char *err, uint64_t t0, uint64_t t1, size_t batch,
			   struct flips *defer)
{
	struct pending *p = j->p;
	struct watch w;
	char extra[200], q[160];
	bool initiate = d->initiate;

	if (ret) {
		ptab_remove(d->ptab, p->key);
		cache_managed_del(d->env.cache, p->key);
		INC(d, errors);
		snprintf(extra, sizeof(extra), "reason=install_failed error=%s",
			 log_quote(q, sizeof(q), err));
		log_outcome(d, p, "error", j->source, extra, LOG_ERROR);
		pending_end(d, p);
		goto out;
	}
	ptab_set_installed(d->ptab, p->key, t1);
	INC(d, installed);
	snprintf(extra, sizeof(extra),
		 "install_ms=%.3f initiated=%s allowed_ips=%zu batch=%zu",
		 ms(t0, t1), initiate ? "true" : "false", j->peer.n_allowed_ips, batch);
	log_outcome(d, p, "installed", j->source, extra, LOG_INFO);

	memset(&w, 0, sizeof(w));
	memcpy(w.key, p->key, 32);
	w.t_event = p->t_event;
	w.t_install = t1;
	w.initiated = initiate;
	w.keepalive = own_keepalive(j);
	if (defer && flips_add(d, defer, &w, p)) {
		pending_release(d, p);
	} else {
		if (!defer)
			watch_add(d, &w);
		pending_end(d, p);
	}
out:
	ijob_free(j);
}

/* With ilock held: until a job is queued, stop is asked, or until (mono ns). */
static void icond_wait_until(struct daemon *d, uint64_t until)
{
	struct timespec ts = { .tv_sec = until / 1000000000ull,
			       .tv_nsec = until % 1000000000ull };

	/* icond uses CLOCK_MONOTONIC (daemon_new). */
	if (!d->ihead && !d->istop)
		pthread_cond_timedwait(&d->icond, &d->ilock, &ts);
}

/*
 * One thread owns installs so that a burst becomes a few large device
 * calls instead of thousands of small ones (wireguard-go's UAPI costs about
 * a millisecond per call). A lone peer still goes out at once.
 */
static void *installer(void *arg)
{
	struct daemon *d = arg;
	struct wgdev_peer *wp = NULL;
	struct ijob **batch = NULL;
	struct cache_managed *cms = NULL;
	struct flips fl = { 0 };
	size_t cap = 0;
	uint64_t last_install = 0, prev_install = 0, last_start = 0;
	bool started = false; /* the last turn was SCHED_START */

	for (;;) {
		struct ijob *j;
		size_t n = 0, i;
		uint64_t t0, t1, until;
		bool initiate = d->initiate;
		char err[256] = "";
		int ret;
		struct sched_state st;

		pthread_mutex_lock(&d->ilock);
		while (!d->ihead && !d->istop && !fl.n)
			pthread_cond_wait(&d->icond, &d->ilock);
		st = (struct sched_state){
			.now = now_mono_ns(),
			.last_install = last_install,
			.prev_install = prev_install,
			.last_start = last_start,
			.oldest = fl.n ? fl.w[fl.head].t_install : 0,
			.waiting = fl.n - fl.head,
			.queued = d->ihead != NULL,
			.stopping = d->istop,
			.answering = d->env.redeliver,
			.started_last = started,
		};
		switch (sched_turn(&st, &until)) {
		case SCHED_DROP:
			fl.head = fl.n = 0;
			pthread_mutex_unlock(&d->ilock);
			continue;
		case SCHED_WAIT:
			/* A new install ends the wait at once. */
			if (until)
				icond_wait_until(d, until);
			pthread_mutex_unlock(&d->ilock);
			continue;
		case SCHED_START:
			pthread_mutex_unlock(&d->ilock);
			started = true;
			last_start = st.now;
			flips_run(d, &fl);
			continue;
		case SCHED_EXIT:
			pthread_mutex_unlock(&d->ilock);
			goto out;
		case SCHED_INSTALL:
			break;
		}
		started = false;
		for (j = d->ihead; j && n < INSTALL_BATCH_MAX; j = j->next)
			n++;
		if (n > cap) {
			struct wgdev_peer *nw = realloc(wp, n * sizeof(*wp));
			struct ijob **nb = nw ? realloc(batch, n * sizeof(*batch)) : NULL;
			struct cache_managed *nc = nb ? realloc(cms, n * sizeof(*cms)) : NULL;

			if (nw)
				wp = nw;
			if (nb)
				batch = nb;
			if (nc)
				cms = nc;
			if (!nw || !nb || !nc) {
				pthread_mutex_unlock(&d->ilock);
				usleep(1000);
				continue;
			}
			cap = n;
		}
		for (i = 0; i < n; i++) {
			batch[i] = d->ihead;
			d->ihead = d->ihead->next;
		}
		if (!d->ihead)
			d->itail = NULL;
		pthread_mutex_unlock(&d->ilock);

		/*
		 * The managed records go to disk before the device call: a
		 * crash in between leaves a record without a peer (ignored at
		 * start-up), never a peer without a record (which no one would
		 * ever evict). One transaction for the batch: one commit (and
		 * with --cache-sync full one fsync) instead of one per peer.
		 */
		for (i = 0; i < n; i++)
			cms[i] = batch[i]->cm;
		ret = cache_managed_put_many(d->env.cache, cms, n);
		if (ret)
			dlog(LOG_WARN, "cache", "op=managed_put error=%s peers=%zu",
			     strerror(-ret), n);

		t0 = now_mono_ns();
		if (n == 1) {
			to_wgdev(d, &wp[0], batch[0], initiate ? 0 : own_keepalive(batch[0]));
			if (initiate)
				ret = wgdev_install_initiate(d->env.dev, &wp[0],
							     INITIATE_KEEPALIVE);
			else
				ret = wgdev_set_peers(d->env.dev, &wp[0], 1);
		} else {
			/* Keepalive 0 for all; with initiate, the switch to
			 * INITIATE_KEEPALIVE follows (flips_run) and starts
			 * each handshake. */
			for (i = 0; i < n; i++)
				to_wgdev(d, &wp[i], batch[i], initiate ? 0 : own_keepalive(batch[i]));
			ret = wgdev_set_peers(d->env.dev, wp, n);
		}
		if (ret)
			snprintf(err, sizeof(err), "%s", wgdev_error(d->env.dev));
		t1 = now_mono_ns();
		prev_install = last_install;
		last_install = t1;
		sodium_memzero(wp, n * sizeof(*wp));

		if (ret && n > 1) {
			/* One bad peer must not sink the others: one by one. */
			for (i = 0; i < n; i++) {
				uint64_t a = now_mono_ns();

				to_wgdev(d, &wp[0], batch[i], initiate ? 0 : own_keepalive(batch[i]));
				ret = initiate ? wgdev_install_initiate(d->env.dev, &wp[0],
									INITIATE_KEEPALIVE) :
						 wgdev_set_peers(d->env.dev, &wp[0], 1);
				snprintf(err, sizeof(err), "%s", ret ? wgdev_error(d->env.dev) : "");
				sodium_memzero(&wp[0], sizeof(wp[0]));
				/* Answers still paced (the switch is per peer here). */
				finish_install(d, batch[i], ret, err, a, now_mono_ns(), 1,
					       d->env.redeliver ? &fl : NULL);
			}
			last_install = now_mono_ns(); /* the quiet starts now */
			continue;
		}
		for (i = 0; i < n; i++)
			finish_install(d, batch[i], ret, err, t0, t1, n,
				       (initiate || d->env.redeliver) && n > 1 ? &fl : NULL);
	}
out:
	free(wp);
	free(batch);
	free(cms);
	free(fl.w);
	free(fl.ev);
	return NULL;
}

static void handle_fetched(struct daemon *d, struct job *j)
{
	struct pending *p = j->f->p;
	char extra[API_REASON_LEN + 96], q[API_REASON_LEN + 8];
	uint64_t now = now_wall_s();
	int ret;

	p->t_fetch = now_mono_ns();
	switch (j->f->status) {
	case API_FOUND:
		ret = cache_put_peer(d->env.cache, &j->f->peer, now);
		if (ret)
			dlog(LOG_WARN, "cache", "op=put_peer error=%s", strerror(-ret));
		install(d, p, &j->f->peer, "api");
		return;
	case API_NOT_FOUND:
		ret = cache_put_negative(d->env.cache, p->key, now);
		if (ret)
			dlog(LOG_WARN, "cache", "op=put_negative error=%s", strerror(-ret));
		INC(d, unknown);
		log_outcome(d, p, "unknown", "api", "http_status=404", LOG_INFO);
		break;
	case API_ERROR:
		/* Unreachable or broken control plane: a stale answer beats none. */
		if (p->stale && (j->f->err == -ETIMEDOUT || j->f->err == -ECONNREFUSED ||
				     j->f->err == -EHOSTUNREACH || j->f->err == -EPROTO)) {
			install(d, p, p->stale, "stale_cache");
			return;
		}
		INC(d, errors);
		snprintf(extra, sizeof(extra), "reason=%s error=%s http_status=%ld attempts=%u",
			 log_quote(q, sizeof(q), j->f->reason),
			 strerrorname_np(-j->f->err) ? strerrorname_np(-j->f->err) : "?",
			 j->f->http_status, j->f->attempts);
		log_outcome(d, p, "api_error", "api", extra, LOG_WARN);
		break;
	}
	pending_end(d, p);
}

void daemon_api_done(const uint8_t key[32], const struct api_result *res,
		     void *ctx, void *arg)
{
	struct daemon *d = arg;
	struct pending *p = ctx;
	struct job *j;
	size_t plen = api_peer_len(0); /* its header at least: wipes read it */

	(void)key;
	pthread_mutex_lock(&d->qlock);
	if (d->stopping) {
		pthread_mutex_unlock(&d->qlock);
		pending_release(d, p);
		return;
	}
	pthread_mutex_unlock(&d->qlock);
	if (res->status == API_FOUND && res->peer)
		plen = api_peer_len(res->peer->n_allowed_ips);
	/* The answer sized to its allowed IPs, as the installer's jobs are. */
	j = calloc(1, sizeof(*j) + offsetof(struct fetched, peer) + plen);
	if (!j) {
		pending_release(d, p);
		return;
	}
	j->type = JOB_FETCHED;
	j->f = (struct fetched *)(j + 1);
	j->f->p = p;
	j->f->status = res->status;
	j->f->err = res->err;
	j->f->http_status = res->http_status;
	j->f->attempts = res->attempts;
	snprintf(j->f->reason, sizeof(j->f->reason), "%s", res->reason);
	if (res->status == API_FOUND && res->peer)
		memcpy(&j->f->peer, res->peer, plen);
	push(d, j);
}

static void reject(struct jitwg_event *ev, const char *stage, enum noise_status st,
		   const uint8_t *key, enum log_level lvl)
{
	char fp[9] = "-", ep[64];
	union wgdev_endpoint e;

	if (!LOG_ENABLED(lvl))
		return;
	if (key)
		log_fingerprint(fp, key);
	event_endpoint(ev, &e);
	fmt_endpoint(ep, sizeof(ep), &e);
	dlog(lvl, "reject", "peer=%s stage=%s reason=%s endpoint=%s", fp, stage,
	     noise_status_str(st), ep);
}

/* An initiation that authenticated, waiting for its freshness check. */
struct authed {
	struct jitwg_event *ev;
	uint8_t key[32];
	uint8_t ts[NOISE_TIMESTAMP_LEN];
	uint64_t t_seen, t_ident;
};

/*
 * The first half of an event: shape, mac1, identity, authentication. True
 * when a has an initiation to check for freshness (handle_fresh() next).
 */
static bool handle_event(struct daemon *d, struct jitwg_event *ev, struct authed *a)
{
	struct noise_state ns;
	enum noise_status st;

	a->ev = ev;
	a->t_seen = now_mono_ns();
	st = noise_check_shape(ev->msg, sizeof(ev->msg));
	if (st) {
		INC(d, bad_shape);
		reject(ev, "shape", st, NULL, LOG_DEBUG);
		return false;
	}
	st = noise_check_mac1(d->env.responder, ev->msg);
	if (st) {
		INC(d, bad_mac1);
		reject(ev, "mac1", st, NULL, LOG_DEBUG);
		return false;
	}
	st = noise_identify(d->env.responder, ev->msg, &ns, a->key);
	if (st) {
		noise_state_wipe(&ns);
		INC(d, bad_identity);
		reject(ev, "identify", st, NULL, LOG_DEBUG);
		return false;
	}
	a->t_ident = now_mono_ns();
	/* Installed already: WireGuard answers it (given it back, with
	 * --consume: it authenticates and checks freshness itself). */
	if (ptab_on_device(d->ptab, a->key)) {
		noise_state_wipe(&ns);
		INC(d, sightings);
		redeliver_one(d, ev);
		if (LOG_ENABLED(LOG_DEBUG)) {
			char fp[9];

			log_fingerprint(fp, a->key);
			dlog(LOG_DEBUG, "sighting", "peer=%s identify_ms=%.3f", fp,
			     ms(a->t_seen, a->t_ident));
		}
		return false;
	}
	/*
	 * Freshness is checked once, by cache_ts_accept_many() in the worker:
	 * atomically against the stored timestamp, which a read here would
	 * only repeat (one LMDB transaction per client less in a burst).
	 */
	st = noise_authenticate(d->env.responder, ev->msg, &ns, NULL, a->ts);
	if (st) {
		/* Someone encrypted this key without its private key. */
		INC(d, bad_auth);
		reject(ev, "authenticate", st, a->key, LOG_INFO);
		return false;
	}
	return true;
}

/*
 * The second half: fresh is the cache's verdict on a->ts, given at t_auth
 * for the worker's whole batch (so auth_ms covers the batch's checks).
 */
static void handle_fresh(struct daemon *d, const struct authed *a, int fresh,
			 uint64_t t_auth)
{
	struct jitwg_event *ev = a->ev;
	const uint8_t *key = a->key;
	struct pending *p;
	struct cache_entry ce;
	union wgdev_endpoint ep;
	bool busy;
	int ret, state;

	if (fresh == -ESTALE) {
		INC(d, replays);
		reject(ev, "freshness", NOISE_ERR_REPLAY, key, LOG_INFO);
		return;
	}
	if (fresh)
		dlog(LOG_WARN, "cache", "op=ts_accept error=%s", strerror(-fresh));

	event_endpoint(ev, &ep);
	p = pending_claim(d, key, ev, &ep, &busy);
	if (!p) {
		if (busy) {
			INC(d, waiting);
			if (LOG_ENABLED(LOG_DEBUG)) {
				char fp[9];

				log_fingerprint(fp, key);
				dlog(LOG_DEBUG, "provision", "peer=%s outcome=waiting", fp);
			}
		}
		return;
	}
	p->t_event = ev->ts_ns ? ev->ts_ns : a->t_seen;
	p->t_seen = a->t_seen;
	p->t_ident = a->t_ident;
	p->t_auth = t_auth;

	state = cache_get_peer(d->env.cache, key, now_wall_s(), &ce);
	if (state == CACHE_FRESH) {
		install(d, p, &ce.peer, "cache");
		sodium_memzero(&ce, sizeof(ce));
		return;
	}
	if (state == CACHE_NEGATIVE) {
		p->t_fetch = now_mono_ns();
		INC(d, unknown);
		log_outcome(d, p, "unknown", "cache", NULL, LOG_INFO);
		pending_end(d, p);
		return;
	}
	if (state == CACHE_STALE) {
		size_t len = api_peer_len(ce.peer.n_allowed_ips);

		/* Without memory for it, the fetch just has no fallback. */
		p->stale = malloc(len);
		if (p->stale)
			memcpy(p->stale, &ce.peer, len);
		sodium_memzero(&ce, sizeof(ce));
	} else if (state < 0) {
		dlog(LOG_WARN, "cache", "op=get_peer error=%s", strerror(-state));
	}
	ret = d->api ? api_submit(d->api, key, p) : -ESHUTDOWN;
	if (ret == 0 || ret == API_ATTACHED)
		return; /* daemon_api_done() continues */
	if (p->stale) {
		install(d, p, p->stale, "stale_cache");
		return;
	}
	p->t_fetch = now_mono_ns();
	if (ret == -EAGAIN) {
		INC(d, waiting);
		log_outcome(d, p, "rate_limited", "api", NULL, LOG_INFO);
	} else {
		char extra[64];

		INC(d, errors);
		snprintf(extra, sizeof(extra), "reason=submit_failed error=%s",
			 strerrorname_np(-ret) ? strerrorname_np(-ret) : "?");
		log_outcome(d, p, "api_error", "api", extra, LOG_WARN);
	}
	pending_end(d, p);
}

/*
 * A worker takes its share of what is queued (up to WORKER_BATCH jobs) and
 * checks the freshness of all its authenticated initiations in one cache
 * transaction: with the default --cache-sync full, one fsync per client
 * made a burst disk-bound (10,000 clients: 4.2 s, against 1.2 s with
 * periodic syncs). A lone initiation is still a batch of one, at once.
 */
static void *worker(void *arg)
{
	struct daemon *d = arg;
	struct job *jobs[WORKER_BATCH];
	struct authed a[WORKER_BATCH];
	uint8_t keys[WORKER_BATCH][32], ts[WORKER_BATCH][NOISE_TIMESTAMP_LEN];
	int fresh[WORKER_BATCH];
	size_t n, na, i, take;
	uint64_t t_auth;

	for (;;) {
		pthread_mutex_lock(&d->qlock);
		while (!d->qhead && !d->stopping)
			pthread_cond_wait(&d->qcond, &d->qlock);
		if (d->stopping) {
			pthread_mutex_unlock(&d->qlock);
			return NULL;
		}
		/* Its share of the queue: a few jobs still go to all workers. */
		take = (d->qlen + d->n_workers - 1) / d->n_workers;
		if (take > WORKER_BATCH)
			take = WORKER_BATCH;
		for (n = 0; d->qhead && (n < take || !n); n++) {
			jobs[n] = d->qhead;
			d->qhead = jobs[n]->next;
			d->qlen--;
		}
		if (!d->qhead)
			d->qtail = NULL;
		pthread_mutex_unlock(&d->qlock);

		for (i = na = 0; i < n; i++) {
			if (jobs[i]->type == JOB_FETCHED)
				handle_fetched(d, jobs[i]);
			else if (handle_event(d, &jobs[i]->ev, &a[na]))
				na++;
		}
		for (i = 0; i < na; i++) {
			memcpy(keys[i], a[i].key, 32);
			memcpy(ts[i], a[i].ts, NOISE_TIMESTAMP_LEN);
		}
		cache_ts_accept_many(d->env.cache, (const uint8_t(*)[32])keys,
				     (const uint8_t(*)[NOISE_TIMESTAMP_LEN])ts, fresh, na);
		t_auth = now_mono_ns();
		for (i = 0; i < na; i++)
			handle_fresh(d, &a[i], fresh[i], t_auth);
		for (i = 0; i < n; i++) {
			if (jobs[i]->type == JOB_FETCHED)
				sodium_memzero(&jobs[i]->f->peer,
					       api_peer_len(jobs[i]->f->peer.n_allowed_ips));
			free(jobs[i]);
		}
		atomic_fetch_add_explicit(&d->jobs_done, n, memory_order_relaxed);
	}
}

/* ---- monitor: handshake watch and eviction ---- */

static int cmp_peer(const void *a, const void *b)
{
	return memcmp(((const struct wgdev_peer *)a)->public_key,
		      ((const struct wgdev_peer *)b)->public_key, 32);
}

static const struct wgdev_peer *find_peer(const struct wgdev_peer *v, size_t n,
					  const uint8_t key[static 32])
{
	struct wgdev_peer k;

	memcpy(k.public_key, key, 32);
	return bsearch(&k, v, n, sizeof(*v), cmp_peer);
}

/* Monitor thread only (or before the threads start). */
static int list_sorted(struct daemon *d, struct wgdev_peer **peers, size_t *n)
{
	int ret;

	ret = wgdev_list_peers(d->env.mon_dev, peers, n);
	if (ret)
		dlog(LOG_WARN, "device", "op=list_peers error=%s",
		     wgdev_error(d->env.mon_dev));
	if (!ret)
		qsort(*peers, *n, sizeof(**peers), cmp_peer);
	return ret;
}

static void restore_keepalive(struct daemon *d, const uint8_t key[static 32],
			      uint16_t keepalive)
{
	int ret;

	ret = wgdev_restore_keepalive(d->env.mon_dev, key, keepalive);
	if (ret) {
		char fp[9];

		log_fingerprint(fp, key);
		dlog(LOG_WARN, "device", "op=restore_keepalive peer=%s error=%s", fp,
		     strerrorname_np(-ret) ? strerrorname_np(-ret) : "?");
	}
}

/*
 * When the device says the handshake completed, on the monotonic clock of
 * the other timestamps, so that the log does not count the polling period
 * (up to WATCH_POLL_GAP times a listing on a big device). The time the
 * listing showed it (seen) when the clocks disagree: the wall clock stepped,
 * or a handshake before the initiation we saw.
 */
static uint64_t handshake_mono(const struct timespec *lh, uint64_t t_event, uint64_t seen)
{
	struct timespec rt;
	uint64_t wall, hs, now = now_mono_ns();

	clock_gettime(CLOCK_REALTIME, &rt);
	wall = (uint64_t)rt.tv_sec * 1000000000ull + (uint64_t)rt.tv_nsec;
	hs = (uint64_t)lh->tv_sec * 1000000000ull + (uint64_t)lh->tv_nsec;
	if (hs > wall || wall - hs > now || now - (wall - hs) < t_event ||
	    now - (wall - hs) > seen)
		return seen;
	return now - (wall - hs);
}

/* Watched peers whose handshake completed: log the timeline's last step. */
static void check_watches(struct daemon *d, const struct wgdev_peer *peers, size_t n,
			  uint64_t t_list)
{
	uint64_t now = now_mono_ns(), window;
	size_t i = 0;

	window = (uint64_t)d->env.opts->handshake_window * 1000000000ull;
	pthread_mutex_lock(&d->mlock);
	while (i < d->n_watches) {
		struct watch w = d->watches[i];
		const struct wgdev_peer *p = find_peer(peers, n, w.key);
		bool done = p && p->last_handshake.tv_sec;
		/* Installed after the listing began: absent from it, not gone. */
		bool drop = (!p && w.t_install < t_list) || now - w.t_install > window;

		if (!done && !drop) {
			i++;
			continue;
		}
		d->watches[i] = d->watches[--d->n_watches];
		pthread_mutex_unlock(&d->mlock);
		if (done) {
			uint64_t hs = handshake_mono(&p->last_handshake, w.t_event, now);
			char fp[9];

			if (w.initiated)
				restore_keepalive(d, w.key, w.keepalive);
			INC(d, handshakes);
			log_fingerprint(fp, w.key);
			dlog(LOG_INFO, "handshake",
			     "peer=%s outcome=done since_initiation_ms=%.3f since_install_ms=%.3f initiated=%s",
			     fp, ms(w.t_event, hs), ms(w.t_install, hs),
			     w.initiated ? "true" : "false");
		}
		pthread_mutex_lock(&d->mlock);
	}
	pthread_mutex_unlock(&d->mlock);
}

static void sweep(struct daemon *d, const struct wgdev_peer *peers, size_t n,
		  uint64_t t_list)
{
	struct managed_peer *mps = NULL;
	uint8_t (*victims)[32] = NULL;
	enum evict_verdict *why = NULL;
	size_t n_mps = 0, n_v = 0, i;
	uint64_t now = now_wall_s();
	struct wgdev_info info;
	int ret;

	ptab_refresh_device(d->ptab, peers, n, t_list);
	if (ptab_snapshot_managed(d->ptab, &mps, &n_mps))
		return;
	victims = calloc(n_mps ? n_mps : 1, sizeof(*victims));
	why = calloc(n_mps ? n_mps : 1, sizeof(*why));
	if (!victims || !why)
		goto out;
	for (i = 0; i < n_mps; i++) {
		const struct wgdev_peer *p = find_peer(peers, n, mps[i].key);
		uint64_t hs = p ? (uint64_t)p->last_handshake.tv_sec : 0;
		enum evict_verdict v;
		char fp[9];

		/* Installed while the listing ran: the listing cannot know. */
		if (!p && mps[i].installed_ns >= t_list)
			continue;
		v = evict_decide(&d->policy, now, p != NULL, mps[i].installed_at, hs);

		log_fingerprint(fp, mps[i].key);
		if (v == EVICT_GONE) {
			/* Removed by someone else: forget it, touch nothing. */
			ptab_remove(d->ptab, mps[i].key);
			cache_managed_del(d->env.cache, mps[i].key);
			dlog(LOG_INFO, "evict", "peer=%s outcome=forgotten reason=gone", fp);
			continue;
		}
		if (v == EVICT_KEEP) {
			/* A keepalive left at the initiate value (crash, failed
			 * restore) would keep the peer alive forever. */
			if (hs && mps[i].initiated &&
			    p->persistent_keepalive != mps[i].keepalive)
				restore_keepalive(d, mps[i].key, mps[i].keepalive);
			continue;
		}
		memcpy(victims[n_v], mps[i].key, 32);
		why[n_v++] = v;
	}
	if (n_v) {
		ret = wgdev_remove_peers(d->env.mon_dev, (const uint8_t(*)[32])victims, n_v);
		if (ret)
			dlog(LOG_ERROR, "evict", "outcome=error error=%s",
			     wgdev_error(d->env.mon_dev));
		for (i = 0; i < n_v && !ret; i++) {
			const struct wgdev_peer *p = find_peer(peers, n, victims[i]);
			char fp[9];

			ptab_remove(d->ptab, victims[i]);
			cache_managed_del(d->env.cache, victims[i]);
			INC(d, evicted);
			log_fingerprint(fp, victims[i]);
			dlog(LOG_INFO, "evict",
			     "peer=%s outcome=evicted reason=%s idle_s=%lld", fp,
			     evict_verdict_str(why[i]),
			     p && p->last_handshake.tv_sec ?
			     (long long)(now - p->last_handshake.tv_sec) : -1LL);
		}
	}
	/* The XDP port follows the device's listen port. */
	ret = wgdev_get_info(d->env.mon_dev, &info);
	sodium_memzero(info.private_key, sizeof(info.private_key));
	if (!ret && info.listen_port != d->env.listen_port && d->env.capture) {
		uint16_t port = info.listen_port;

		if (!capture_set_ports(d->env.capture, &port, 1)) {
			dlog(LOG_INFO, "port", "old=%u new=%u", d->env.listen_port, port);
			d->env.listen_port = port;
		}
	}
out:
	free(victims);
	free(why);
	free(mps);
}

static void *monitor(void *arg)
{
	struct daemon *d = arg;
	uint64_t interval = (uint64_t)d->env.opts->evict_interval * 1000000000ull;
	uint64_t next_sweep = now_mono_ns() + interval, poll_ns = WATCH_POLL_MIN_US * 1000ull;
	uint64_t last_list = 0;

	for (;;) {
		struct wgdev_peer *peers = NULL;
		size_t n = 0;
		bool do_sweep, watching;
		uint64_t t0, now;

		pthread_mutex_lock(&d->mlock);
		for (;;) {
			struct timespec ts;
			uint64_t until;

			now = now_mono_ns();
			if (d->mon_stop || d->sweep_requested || now >= next_sweep)
				break;
			if (d->n_watches) {
				until = now + poll_ns;
				if (until > next_sweep)
					until = next_sweep;
			} else {
				until = next_sweep;
			}
			/* mcond uses CLOCK_MONOTONIC (daemon_new). */
			ts.tv_sec = until / 1000000000ull;
			ts.tv_nsec = until % 1000000000ull;
			if (pthread_cond_timedwait(&d->mcond, &d->mlock, &ts) == ETIMEDOUT &&
			    d->n_watches)
				break;
		}
		if (d->mon_stop) {
			pthread_mutex_unlock(&d->mlock);
			return NULL;
		}
		do_sweep = d->sweep_requested || now_mono_ns() >= next_sweep;
		d->sweep_requested = false;
		watching = d->n_watches > 0;
		pthread_mutex_unlock(&d->mlock);
		if (!do_sweep && !watching)
			continue;
		/*
		 * While installs queue up (a burst), a listing only holds them
		 * up: wireguard-go runs no set while it lists. Defer the watch
		 * poll until the queue is empty, or for WATCH_DEFER_MAX_MS.
		 */
		if (!do_sweep) {
			bool backlog;

			pthread_mutex_lock(&d->ilock);
			backlog = d->ihead != NULL;
			pthread_mutex_unlock(&d->ilock);
			if (backlog && now_mono_ns() - last_list < WATCH_DEFER_MAX_MS * 1000000ull)
				continue;
		}

		t0 = now_mono_ns();
		last_list = t0;
		if (list_sorted(d, &peers, &n)) {
			if (do_sweep)
				next_sweep = now_mono_ns() + interval;
			continue;
		}
		/*
		 * Listing a big device is not free, for us nor for the device
		 * (wireguard-go serialises UAPI calls: a listing delays the
		 * installer's next call by as long as it takes, and a burst
		 * keeps thousands of peers watched). List at most a tenth of
		 * the time; the handshake log line may come later, nothing
		 * else waits for it (the keepalive restore is not urgent).
		 */
		poll_ns = WATCH_POLL_GAP * (now_mono_ns() - t0);
		if (poll_ns < WATCH_POLL_MIN_US * 1000ull)
			poll_ns = WATCH_POLL_MIN_US * 1000ull;
		if (watching)
			check_watches(d, peers, n, t0);
		if (do_sweep) {
			sweep(d, peers, n, t0);
			next_sweep = now_mono_ns() + interval;
			dlog(LOG_DEBUG, "sweep", "device_peers=%zu managed=%zu ms=%.3f", n,
			     ptab_count_managed(d->ptab), ms(t0, now_mono_ns()));
		}
		wgdev_peers_free(peers, n);
	}
}

/* ---- lifecycle ---- */

int daemon_new(struct daemon **out, const struct daemon_env *env)
{
	struct daemon *d = calloc(1, sizeof(*d));
	pthread_condattr_t ca;
	int ret;

	if (!d)
		return -ENOMEM;
	d->env = *env;
	d->initiate = env->opts->initiate_back && !env->redeliver;
	d->policy.idle_timeout = env->opts->idle_timeout;
	d->policy.handshake_window = env->opts->handshake_window;
	ret = ptab_new(&d->ptab);
	if (ret) {
		free(d);
		return ret;
	}
	pthread_mutex_init(&d->qlock, NULL);
	pthread_cond_init(&d->qcond, NULL);
	pthread_mutex_init(&d->plock, NULL);
	pthread_mutex_init(&d->ilock, NULL);
	pthread_mutex_init(&d->mlock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&d->icond, &ca);
	pthread_cond_init(&d->mcond, &ca);
	pthread_condattr_destroy(&ca);
	*out = d;
	return 0;
}

void daemon_set_api(struct daemon *d, struct api_client *api)
{
	d->api = api;
}

void daemon_set_capture(struct daemon *d, struct capture *c)
{
	d->env.capture = c;
}

int daemon_reconcile(struct daemon *d, size_t *n_device, size_t *n_managed)
{
	struct wgdev_peer *peers = NULL;
	size_t n = 0, i, m = 0;
	int ret;

	ret = list_sorted(d, &peers, &n);
	if (ret)
		return ret;
	ptab_refresh_device(d->ptab, peers, n, 0);
	/* One point lookup per device peer: start-up never walks the cache. */
	for (i = 0; i < n; i++) {
		struct cache_managed cm;
		struct managed_peer mp;

		if (cache_managed_get(d->env.cache, peers[i].public_key, &cm))
			continue;
		memset(&mp, 0, sizeof(mp));
		memcpy(mp.key, cm.public_key, 32);
		mp.installed_at = cm.installed_at;
		mp.initiated = cm.flags & MANAGED_F_INITIATED;
		mp.keepalive = cm.flags >> 16;
		mp.ips = peers[i].allowed_ips;
		mp.n_ips = peers[i].n_allowed_ips;
		if (!ptab_add_managed(d->ptab, &mp))
			m++;
	}
	wgdev_peers_free(peers, n);
	*n_device = n;
	*n_managed = m;
	return 0;
}

int daemon_start(struct daemon *d)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned int i;
	int ret;

	d->n_workers = d->env.opts->workers ? d->env.opts->workers :
		       (cpus > 0 ? (unsigned int)cpus : 1);
	d->workers = calloc(d->n_workers, sizeof(*d->workers));
	if (!d->workers)
		return -ENOMEM;
	for (i = 0; i < d->n_workers; i++) {
		ret = pthread_create(&d->workers[i], NULL, worker, d);
		if (ret)
			return -ret;
		d->n_started++;
	}
	ret = pthread_create(&d->inst, NULL, installer, d);
	if (ret)
		return -ret;
	d->inst_started = true;
	ret = pthread_create(&d->monitor, NULL, monitor, d);
	if (ret)
		return -ret;
	d->mon_started = true;
	return 0;
}

void daemon_request_sweep(struct daemon *d)
{
	pthread_mutex_lock(&d->mlock);
	d->sweep_requested = true;
	pthread_cond_signal(&d->mcond);
	pthread_mutex_unlock(&d->mlock);
}

void daemon_stop(struct daemon *d)
{
	unsigned int i;

	pthread_mutex_lock(&d->qlock);
	d->stopping = true;
	pthread_cond_broadcast(&d->qcond);
	pthread_mutex_unlock(&d->qlock);
	for (i = 0; i < d->n_started; i++)
		pthread_join(d->workers[i], NULL);
	d->n_started = 0;
	pthread_mutex_lock(&d->ilock);
	d->istop = true;
	pthread_cond_signal(&d->icond);
	pthread_mutex_unlock(&d->ilock);
	if (d->inst_started)
		pthread_join(d->inst, NULL);
	d->inst_started = false;
	pthread_mutex_lock(&d->mlock);
	d->mon_stop = true;
	pthread_cond_signal(&d->mcond);
	pthread_mutex_unlock(&d->mlock);
	if (d->mon_started)
		pthread_join(d->monitor, NULL);
	d->mon_started = false;
}

void daemon_free(struct daemon *d)
{
	struct job *j, *n;
	struct ijob *ij, *in;
	size_t i;

	if (!d)
		return;
	for (ij = d->ihead; ij; ij = in) {
		in = ij->next;
		pending_release(d, ij->p);
		ijob_free(ij);
	}
	for (j = d->qhead; j; j = n) {
		n = j->next;
		if (j->type == JOB_FETCHED) {
			sodium_memzero(&j->f->peer, api_peer_len(j->f->peer.n_allowed_ips));
			pending_release(d, j->f->p);
		}
		free(j);
	}
	for (i = 0; i < PENDING_BUCKETS; i++) {
		struct pending *p = d->pending[i], *next;

		/* Only keys whose fetch never completed (api destroyed first). */
		for (; p; p = next) {
			next = p->next;
			pending_free(p);
		}
	}
	ptab_free(d->ptab);
	free(d->watches);
	free(d->workers);
	free(d);
}

void daemon_get_stats(struct daemon *d, struct daemon_stats *o)
{
#define G(f) o->f = atomic_load(&d->st.f)
	G(events); G(queue_full); G(bad_shape); G(bad_mac1); G(bad_identity);
	G(sightings); G(bad_auth); G(replays); G(waiting); G(installed);
	G(unknown); G(refused); G(errors); G(handshakes); G(evicted);
	G(redelivered); G(redeliver_errors); G(answers_stale);
#undef G
}

bool daemon_keeping_up(struct daemon *d)
{
	uint64_t done = atomic_load(&d->jobs_done);
	uint64_t lost = atomic_load(&d->st.queue_full);
	size_t qlen;
	bool ok;

	pthread_mutex_lock(&d->qlock);
	qlen = d->qlen;
	pthread_mutex_unlock(&d->qlock);
	/* Progress, and nothing lost to a full queue since the last call:
	 * beyond the workers' pace, WireGuard gets the rest itself (and its
	 * own under-load defence runs). */
	ok = (qlen == 0 || done != d->jobs_seen) && lost == d->lost_seen;
	d->jobs_seen = done;
	d->lost_seen = lost;
	return ok;
}

unsigned int daemon_workers(const struct daemon *d)
{
	return d->n_workers;
}
