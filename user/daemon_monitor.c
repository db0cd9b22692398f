// SPDX-License-Identifier: MIT
/*
 * The monitor thread: watches each new peer until its handshake completes
 * (then restores the peer's own keepalive, if the install switched it, and
 * logs the time since the initiation), and runs the eviction sweeps
 * (daemon_evict.c). It uses its own device handle, so that listing a big
 * device never delays an install.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "daemon_internal.h"

/* From the installer: a peer just installed and started. */
void watch_add(struct daemon *d, const struct watch *w)
{
	pthread_mutex_lock(&d->mon.lock);
	if (d->mon.n_watches == d->mon.cap_watches) {
		size_t cap = d->mon.cap_watches ? d->mon.cap_watches * 2 : 64;
		struct watch *n = realloc(d->mon.watches, cap * sizeof(*n));

		if (!n) {
			pthread_mutex_unlock(&d->mon.lock);
			return; /* the sweep still restores and evicts */
		}
		d->mon.watches = n;
		d->mon.cap_watches = cap;
	}
	d->mon.watches[d->mon.n_watches++] = *w;
	/* Only the first watch changes how long the monitor sleeps; waking it
	 * for each install of a burst costs a context switch per peer. */
	if (d->mon.n_watches == 1)
		pthread_cond_signal(&d->mon.cond);
	pthread_mutex_unlock(&d->mon.lock);
}

static int cmp_peer(const void *a, const void *b)
{
	return memcmp(((const struct wgdev_peer *)a)->public_key,
		      ((const struct wgdev_peer *)b)->public_key, 32);
}

/* In a listing sorted by list_sorted(). */
const struct wgdev_peer *find_peer(const struct wgdev_peer *v, size_t n,
				   const uint8_t key[static 32])
{
	struct wgdev_peer k;

	memcpy(k.public_key, key, 32);
	return bsearch(&k, v, n, sizeof(*v), cmp_peer);
}

/* Monitor thread only (or before the threads start). */
int list_sorted(struct daemon *d, struct wgdev_peer **peers, size_t *n)
{
	int ret;

	ret = wgdev_list_peers(d->env.mon_dev, peers, n);
	if (ret)
		dlog(LOG_WARN, "device", "op=list_peers error=%s",
		     wgdev_error(d->env.mon_dev));
	if (!ret) {
		qsort(*peers, *n, sizeof(**peers), cmp_peer);
		/* A scrape reads this: it never lists the device itself. */
		atomic_store(&d->mon.device_peers, *n);
	}
	return ret;
}

void restore_keepalive(struct daemon *d, const uint8_t key[static 32],
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

/*
 * A handshake completed from ep: the XDP program gives its source a budget
 * of its own for an hour (renewed at each sweep while the peer's handshakes
 * are that recent), so a spoofed flood can neither evict it from the
 * per-source table nor spend the global budget it would otherwise need
 * (README, Floods).
 */
void mark_verified(struct daemon *d, const union wgdev_endpoint *ep)
{
	uint8_t a[16] = { 0 };
	struct capture *cap = d->env.capture;

	if (ep->addr.sa_family == AF_INET) {
		a[10] = a[11] = 0xff;
		memcpy(a + 12, &ep->addr4.sin_addr, 4);
	} else if (ep->addr.sa_family == AF_INET6) {
		memcpy(a, &ep->addr6.sin6_addr, 16);
	} else {
		return;
	}
	/*
	 * Its Diffie-Hellmans and lookups go first (daemon_budget.c), and it
	 * needs no cookie (daemon_cookie.c): one table for both.
	 */
	budget_mark_verified(d, a);
	if (!cap)
		return;
	/* The program's clock, whatever a test's daemon clock says. */
	capture_mark_verified(cap, a, now_mono_ns() + JITWG_VERIFIED_TTL_NS);
}

/* Watched peers whose handshake completed: log the timeline's last step. */
static void check_watches(struct daemon *d, const struct wgdev_peer *peers, size_t n,
			  uint64_t t_list)
{
	uint64_t now = mono(d), window;
	size_t i = 0;

	window = (uint64_t)d->env.opts->handshake_window * 1000000000ull;
	pthread_mutex_lock(&d->mon.lock);
	while (i < d->mon.n_watches) {
		struct watch w = d->mon.watches[i];
		const struct wgdev_peer *p = find_peer(peers, n, w.key);
		bool done = p && p->last_handshake.tv_sec;
		/* Installed after the listing began: absent from it, not gone. */
		/* A watch added while the lock was released may be newer
		 * than now: not expired (an unsigned difference would wrap). */
		bool drop = (!p && w.t_install < t_list) ||
			    (now > w.t_install && now - w.t_install > window);

		if (!done && !drop) {
			i++;
			continue;
		}
		d->mon.watches[i] = d->mon.watches[--d->mon.n_watches];
		pthread_mutex_unlock(&d->mon.lock);
		if (done) {
			uint64_t hs = handshake_mono(&p->last_handshake, w.t_event, now);
			char fp[9];

			if (w.initiated)
				restore_keepalive(d, w.key, w.keepalive);
			mark_verified(d, &p->endpoint);
			INC(d, handshakes);
			metrics_hist_observe_ns(&d->hists.first_contact,
						hs > w.t_event ? hs - w.t_event : 0);
			log_fingerprint(fp, w.key);
			dlog(LOG_INFO, "handshake",
			     "peer=%s outcome=done since_initiation_ms=%.3f since_install_ms=%.3f initiated=%s",
			     fp, ms(w.t_event, hs), ms(w.t_install, hs),
			     w.initiated ? "true" : "false");
		}
		pthread_mutex_lock(&d->mon.lock);
	}
	pthread_mutex_unlock(&d->mon.lock);
}

void *monitor_thread(void *arg)
{
	struct daemon *d = arg;
	uint64_t interval = (uint64_t)d->env.opts->evict_interval * 1000000000ull;
	uint64_t next_sweep = now_mono_ns() + interval, poll_ns = WATCH_POLL_MIN_US * 1000ull;
	uint64_t last_list = 0;

	for (;;) {
		struct wgdev_peer *peers = NULL;
		size_t n = 0;
		bool do_sweep, watching, reval_all, has_reqs;
		uint64_t t0, now;

		pthread_mutex_lock(&d->mon.lock);
		for (;;) {
			struct timespec ts;
			uint64_t until;

			now = now_mono_ns();
			if (d->mon.stop || d->mon.sweep_requested || d->mon.reqs ||
			    now >= next_sweep)
				break;
			if (d->mon.n_watches) {
				until = now + poll_ns;
				if (until > next_sweep)
					until = next_sweep;
			} else {
				until = next_sweep;
			}
			/* mon.cond uses CLOCK_MONOTONIC (daemon_new). */
			ts.tv_sec = until / 1000000000ull;
			ts.tv_nsec = until % 1000000000ull;
			if (pthread_cond_timedwait(&d->mon.cond, &d->mon.lock, &ts) == ETIMEDOUT &&
			    d->mon.n_watches)
				break;
		}
		if (d->mon.stop) {
			pthread_mutex_unlock(&d->mon.lock);
			return NULL;
		}
		do_sweep = d->mon.sweep_requested || now_mono_ns() >= next_sweep;
		d->mon.sweep_requested = false;
		reval_all = d->mon.revalidate_all && do_sweep;
		if (reval_all)
			d->mon.revalidate_all = false;
		watching = d->mon.n_watches > 0;
		has_reqs = d->mon.reqs != NULL;
		pthread_mutex_unlock(&d->mon.lock);
		/* Revalidation answers and operator evictions, at once. */
		if (has_reqs)
			revalidate_apply(d);
		if (!do_sweep && !watching)
			continue;
		/*
		 * While installs queue up (a burst), a listing only holds them
		 * up: wireguard-go runs no set while it lists. Defer the watch
		 * poll until the queue is empty, or for WATCH_DEFER_MAX_MS.
		 */
		if (!do_sweep && installer_backlog(d) &&
		    now_mono_ns() - last_list < WATCH_DEFER_MAX_MS * 1000000ull)
			continue;

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
			evict_sweep(d, peers, n, t0, reval_all);
			next_sweep = now_mono_ns() + interval;
			dlog(LOG_DEBUG, "sweep", "device_peers=%zu managed=%zu ms=%.3f", n,
			     ptab_count_managed(d->peers), ms(t0, now_mono_ns()));
		}
		wgdev_peers_free(peers, n);
	}
}
