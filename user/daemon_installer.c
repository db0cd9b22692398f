// SPDX-License-Identifier: MIT
/*
 * The installer thread: the device's one writer. It installs what the
 * workers reserved (daemon_provision.c), in batches, and then starts each
 * new peer's handshake. A handshake start is, initiating back, the
 * keepalive switch 0 → INITIATE_KEEPALIVE, which makes the gateway send an
 * initiation at once (docs/protocol.md); with --consume, handing WireGuard
 * back the client's own initiation, which it answers. Whether the next
 * turn installs or starts: sched_turn() (daemon_sched.c).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "daemon_internal.h"

/* From a worker (daemon_provision.c): a reserved peer to install. */
void installer_submit(struct daemon *d, struct ijob *j)
{
	pthread_mutex_lock(&d->inst.lock);
	if (d->inst.tail)
		d->inst.tail->next = j;
	else
		d->inst.head = j;
	d->inst.tail = j;
	d->inst.len++;
	pthread_cond_signal(&d->inst.cond);
	pthread_mutex_unlock(&d->inst.lock);
}

/*
 * Installs are queued (a burst). The monitor's one look at the installer:
 * the caller holds no lock.
 */
bool installer_backlog(struct daemon *d)
{
	bool backlog;

	pthread_mutex_lock(&d->inst.lock);
	backlog = d->inst.head != NULL;
	pthread_mutex_unlock(&d->inst.lock);
	return backlog;
}

void ijob_free(struct ijob *j)
{
	sodium_memzero(&j->peer, api_peer_len(j->peer.n_allowed_ips));
	free(j);
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

/* False when out of memory: w is watched, p is not queued. */
static bool starts_add(struct daemon *d, struct starts *ws, const struct watch *w,
		       struct pending *p)
{
	if (ws->n == ws->cap && ws->head) {
		/* Started ones are done with: reuse their room first. */
		ws->n -= ws->head;
		memmove(ws->w, ws->w + ws->head, ws->n * sizeof(*ws->w));
		if (d->env.redeliver)
			memmove(ws->ev, ws->ev + ws->head, ws->n * sizeof(*ws->ev));
		ws->head = 0;
	}
	if (ws->n == ws->cap) {
		size_t cap = ws->cap ? ws->cap * 2 : 1024;
		struct watch *nw = realloc(ws->w, cap * sizeof(*nw));
		struct jitwg_event *ne = NULL;

		if (nw)
			ws->w = nw;
		if (nw && d->env.redeliver) {
			ne = realloc(ws->ev, cap * sizeof(*ne));
			if (ne)
				ws->ev = ne;
		}
		if (!nw || (d->env.redeliver && !ne)) {
			/* Installed, not initiated: the client's own retry. */
			dlog(LOG_WARN, "device", "op=initiate error=ENOMEM peers=1");
			watch_add(d, w);
			return false;
		}
		ws->cap = cap;
	}
	if (d->env.redeliver) {
		if (w->initiated)
			memset(&ws->ev[ws->n], 0, sizeof(ws->ev[ws->n]));
		else
			pending_last(d, p, &ws->ev[ws->n]);
	}
	ws->w[ws->n++] = *w;
	return true;
}

/*
 * Start the next chunk of the waiting handshakes, oldest first: a peer
 * whose initiation XDP consumed by answering it (giving it back), the
 * others by the 0 → non-zero keepalive switch, update-only. A chunk is
 * ANSWER_CHUNK answers or INITIATE_CHUNK switches, whichever comes first.
 */
static void starts_run(struct daemon *d, struct starts *ws)
{
	uint64_t now = mono(d), max_age = ANSWER_MAX_AGE_MS * 1000000ull;
	uint8_t (*keys)[32] = NULL;
	size_t i, cnt = 0, sent = 0, first = ws->head;
	char q[300];
	int ret;

	keys = malloc(INITIATE_CHUNK * sizeof(*keys));
	for (i = ws->head; i < ws->n && sent < ANSWER_CHUNK && cnt < INITIATE_CHUNK; i++) {
		struct watch *w = &ws->w[i];

		if (!w->initiated) {
			uint64_t t = ws->ev[i].ts_ns;

			/* Stale ones cost nothing: they do not count
			 * against the chunk. */
			if (!t || now <= t + max_age) {
				redeliver_one(d, &ws->ev[i]);
				sent++;
			} else {
				INC(d, answers_stale);
			}
			watch_add(d, w);
		} else if (now > w->t_event + max_age || !keys) {
			/* Too late to matter: the client retries at
			 * REKEY_TIMEOUT, and that retry, its peer
			 * installed, is answered at once. */
			if (keys)
				INC(d, answers_stale);
			else
				dlog(LOG_WARN, "device", "op=initiate error=ENOMEM peers=1");
		} else {
			memcpy(keys[cnt++], w->key, 32);
		}
	}
	ws->head = i;
	if (sent)
		dlog(LOG_DEBUG, "redeliver", "op=answer peers=%zu since_first_ms=%.3f",
		     sent, ms(ws->w[first].t_install, now));
	if (cnt) {
		ret = wgdev_initiate(d->env.dev, keys, cnt, INITIATE_KEEPALIVE);
		if (ret)
			dlog(LOG_WARN, "device", "op=initiate error=%s peers=%zu",
			     log_quote(q, sizeof(q), wgdev_error(d->env.dev)), cnt);
		dlog(LOG_DEBUG, "device", "op=initiate peers=%zu waited_ms=%.3f", cnt,
		     ms(ws->w[first].t_install, now));
	}
	/* Those initiated back watched once switched (struct starts), the
	 * stale ones with them: each once. */
	for (i = first; i < ws->head; i++)
		if (ws->w[i].initiated)
			watch_add(d, &ws->w[i]);
	free(keys);
	if (ws->head == ws->n)
		ws->head = ws->n = 0;
}

/*
 * After the device call: record, log, watch for the handshake. defer: the
 * batch's handshake start comes later; its watch goes there.
 */
static void finish_install(struct daemon *d, struct ijob *j, int ret,
			   const char *err, uint64_t t0, uint64_t t1, size_t batch,
			   struct starts *defer)
{
	struct pending *p = j->p;
	struct watch w;
	char extra[200], q[160];
	bool initiate = j->initiate;

	if (ret) {
		ptab_remove(d->peers, p->key);
		d->cache_ops.managed_del(d->env.cache, p->key);
		INC(d, errors);
		snprintf(extra, sizeof(extra), "reason=install_failed error=%s",
			 log_quote(q, sizeof(q), err));
		log_outcome(d, p, "error", j->source, extra, LOG_ERROR);
		pending_end(d, p);
		goto out;
	}
	ptab_set_installed(d->peers, p->key, t1);
	INC(d, installed);
	metrics_hist_observe_ns(&d->hists.stage[STAGE_INSTALL], t1 > t0 ? t1 - t0 : 0);
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
	if (defer && starts_add(d, defer, &w, p)) {
		pending_release(d, p);
	} else {
		if (!defer)
			watch_add(d, &w);
		/* Initiated back: its consumed initiation is not given
		 * back too (two handshakes crossing). */
		if (initiate)
			pending_release(d, p);
		else
			pending_end(d, p);
	}
out:
	ijob_free(j);
}

/* With inst.lock held: until a job is queued, stop is asked, or until (mono ns). */
static void inst_wait_until(struct daemon *d, uint64_t until)
{
	struct timespec ts = { .tv_sec = until / 1000000000ull,
			       .tv_nsec = until % 1000000000ull };

	/* inst.cond uses CLOCK_MONOTONIC (daemon_new). */
	if (!d->inst.head && !d->inst.stop)
		pthread_cond_timedwait(&d->inst.cond, &d->inst.lock, &ts);
}

/* Initiated back: installed with keepalive 0, for the switch that starts it. */
static uint16_t start_keepalive(const struct ijob *j)
{
	return j->initiate ? 0 : own_keepalive(j);
}

/* One peer alone: initiated back in the same device call. */
static int install_one(struct daemon *d, struct ijob *j)
{
	struct wgdev_peer wp;
	int ret;

	to_wgdev(d, &wp, j, start_keepalive(j));
	ret = j->initiate ? wgdev_install_initiate(d->env.dev, &wp, INITIATE_KEEPALIVE) :
			    wgdev_set_peers(d->env.dev, &wp, 1);
	sodium_memzero(&wp, sizeof(wp));
	return ret;
}

/*
 * SCHED_INSTALL: one batch of the queued installs. Called with inst.lock
 * held; returns with it released.
 */
static void install_batch(struct daemon *d)
{
	struct installer *in = &d->inst;
	struct ijob *j;
	size_t n = 0, i;
	uint64_t t0, t1;
	char err[256] = "";
	int ret;

	for (j = in->head; j && n < INSTALL_BATCH_MAX; j = j->next)
		n++;
	if (n > in->cap) {
		struct wgdev_peer *nw = realloc(in->wp, n * sizeof(*in->wp));
		struct ijob **nb = nw ? realloc(in->batch, n * sizeof(*in->batch)) : NULL;
		struct cache_managed *nc = nb ? realloc(in->cms, n * sizeof(*in->cms)) : NULL;

		if (nw)
			in->wp = nw;
		if (nb)
			in->batch = nb;
		if (nc)
			in->cms = nc;
		if (!nw || !nb || !nc) {
			pthread_mutex_unlock(&in->lock);
			usleep(1000);
			return;
		}
		in->cap = n;
	}
	for (i = 0; i < n; i++) {
		in->batch[i] = in->head;
		in->head = in->head->next;
	}
	in->len -= n;
	if (!in->head)
		in->tail = NULL;
	pthread_mutex_unlock(&in->lock);

	/*
	 * The managed records are committed before the device call: a crash in
	 * between leaves a record without a peer (ignored at start-up), never
	 * a peer without a record (which no one would ever evict). One
	 * transaction for the batch, committed unsynced: a crash of jitwgd
	 * keeps it, an OS crash empties the device too (docs/security.md).
	 */
	for (i = 0; i < n; i++)
		in->cms[i] = in->batch[i]->cm;
	ret = d->cache_ops.managed_put_many(d->env.cache, in->cms, n);
	if (ret) {
		/* No record, no install: a peer that no record tracks would
		 * count as hand-made after a restart and never be evicted. */
		dlog(LOG_WARN, "cache", "op=managed_put error=%s peers=%zu",
		     strerror(-ret), n);
		snprintf(err, sizeof(err), "managed record not saved: %s", strerror(-ret));
		t0 = mono(d);
		for (i = 0; i < n; i++)
			finish_install(d, in->batch[i], ret, err, t0, t0, n, NULL);
		return;
	}

	t0 = mono(d);
	if (n == 1) {
		ret = install_one(d, in->batch[0]);
	} else {
		/* Keepalive 0 for those initiated back: the switch to
		 * INITIATE_KEEPALIVE follows (starts_run) and starts each
		 * handshake. */
		for (i = 0; i < n; i++)
			to_wgdev(d, &in->wp[i], in->batch[i], start_keepalive(in->batch[i]));
		ret = wgdev_set_peers(d->env.dev, in->wp, n);
	}
	if (ret)
		snprintf(err, sizeof(err), "%s", wgdev_error(d->env.dev));
	t1 = mono(d);
	in->prev_install = in->last_install;
	in->last_install = t1;
	sodium_memzero(in->wp, n * sizeof(*in->wp));

	if (ret && n > 1) {
		/* One bad peer must not sink the others: one by one. */
		for (i = 0; i < n; i++) {
			uint64_t a = mono(d);

			ret = install_one(d, in->batch[i]);
			snprintf(err, sizeof(err), "%s", ret ? wgdev_error(d->env.dev) : "");
			/* Answers still paced (the switch is per peer here). */
			finish_install(d, in->batch[i], ret, err, a, mono(d), 1,
				       d->env.redeliver && !in->batch[i]->initiate ?
					       &in->ws : NULL);
		}
		in->last_install = mono(d); /* the quiet starts now */
		return;
	}
	for (i = 0; i < n; i++)
		finish_install(d, in->batch[i], ret, err, t0, t1, n,
			       (in->batch[i]->initiate || d->env.redeliver) && n > 1 ?
				       &in->ws : NULL);
}

/*
 * One thread owns installs so that a burst becomes a few large device
 * calls instead of thousands of small ones (each UAPI call has a fixed
 * cost: docs/daemon.md). A lone peer still goes out at once.
 */
void *installer_thread(void *arg)
{
	struct daemon *d = arg;
	struct installer *in = &d->inst;

	for (;;) {
		uint64_t until;
		struct sched_state st;

		pthread_mutex_lock(&in->lock);
		while (!in->head && !in->stop && !in->ws.n)
			pthread_cond_wait(&in->cond, &in->lock);
		st = (struct sched_state){
			.now = mono(d),
			.last_install = in->last_install,
			.prev_install = in->prev_install,
			.last_start = in->last_start,
			.oldest = in->ws.n ? in->ws.w[in->ws.head].t_install : 0,
			.waiting = in->ws.n - in->ws.head,
			.queued = in->head != NULL,
			.stopping = in->stop,
			.answering = in->ws.n && !in->ws.w[in->ws.head].initiated,
			.started_last = in->started_last,
		};
		switch (sched_turn(&st, &until)) {
		case SCHED_DROP:
			in->ws.head = in->ws.n = 0;
			pthread_mutex_unlock(&in->lock);
			continue;
		case SCHED_WAIT:
			/* A new install ends the wait at once. */
			if (until)
				inst_wait_until(d, until);
			pthread_mutex_unlock(&in->lock);
			continue;
		case SCHED_START:
			pthread_mutex_unlock(&in->lock);
			in->started_last = true;
			in->last_start = st.now;
			starts_run(d, &in->ws);
			continue;
		case SCHED_EXIT:
			pthread_mutex_unlock(&in->lock);
			installer_release(d);
			return NULL;
		case SCHED_INSTALL:
			break;
		}
		in->started_last = false;
		install_batch(d);
	}
}

/*
 * daemon_drain(): every queued install, then every waiting handshake
 * start, on the caller's thread. Returns the number of batches installed.
 */
size_t installer_drain(struct daemon *d)
{
	struct installer *in = &d->inst;
	size_t batches = 0;

	for (;;) {
		pthread_mutex_lock(&in->lock);
		if (!in->head) {
			pthread_mutex_unlock(&in->lock);
			break;
		}
		install_batch(d);
		batches++;
	}
	while (in->ws.n > in->ws.head) {
		in->last_start = mono(d);
		starts_run(d, &in->ws);
	}
	return batches;
}

/* The installer's buffers, once it stopped. */
void installer_release(struct daemon *d)
{
	struct installer *in = &d->inst;

	free(in->wp);
	free(in->batch);
	free(in->cms);
	free(in->ws.w);
	free(in->ws.ev);
	in->wp = NULL;
	in->batch = NULL;
	in->cms = NULL;
	in->ws = (struct starts){ 0 };
	in->cap = 0;
}
