// SPDX-License-Identifier: MIT
/*
 * Intake: the first stage of the data path. The main thread hands each
 * captured initiation to daemon_on_event(), the control-plane thread each
 * answer to daemon_api_done(); both become jobs on one queue, which the
 * workers drain in batches into the provisioning stage
 * (daemon_provision.c). Nothing here waits for the network.
 *
 * With --consume, daemon_keeping_up() tells the main loop whether to renew
 * the XDP lease: stuck workers let initiations pass to WireGuard instead.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "daemon_internal.h"

/*
 * A job to the queue's tail, or with first to the end of the priority
 * segment at its head: served before every other waiting job, in the order
 * they came (a LIFO head would starve the first of a burst of them).
 * Without wake, the job waits for daemon_events_flush() to wake a worker,
 * or for a batch's worth of them: the main thread queues a poll's events
 * so, since a worker woken per event put two thread switches on each one,
 * and under a flood those switches were most of jitwgd's CPU (bench-flood,
 * docs/bench.md); a poll that drains a long backlog still sets workers
 * going every WORKER_BATCH jobs.
 */
static void push(struct daemon *d, struct job *j, bool first, bool wake)
{
	struct intake *q = &d->intake;
	struct job **link;

	j->t_queued = mono(d);
	pthread_mutex_lock(&q->lock);
	link = first ? (q->prio_tail ? &q->prio_tail->next : &q->head) :
		       (q->tail ? &q->tail->next : &q->head);
	j->next = *link;
	*link = j;
	if (!j->next)
		q->tail = j;
	if (first)
		q->prio_tail = j;
	q->len++;
	if (wake) {
		pthread_cond_signal(&q->cond);
	} else if (++q->unwoken >= WORKER_BATCH) {
		pthread_cond_signal(&q->cond);
		q->unwoken = 0;
	}
	pthread_mutex_unlock(&q->lock);
}

void daemon_events_flush(struct daemon *d)
{
	struct intake *q = &d->intake;
	size_t i;

	daemon_cookie_flush(d);
	pthread_mutex_lock(&q->lock);
	/* A worker per queued job, as push() would have, but once per poll. */
	for (i = 0; i < q->unwoken && i < q->n_workers; i++)
		pthread_cond_signal(&q->cond);
	q->unwoken = 0;
	pthread_mutex_unlock(&q->lock);
}

uint64_t intake_oldest_locked(const struct intake *q)
{
	const struct job *rest = q->prio_tail ? q->prio_tail->next : q->head;
	uint64_t oldest = q->head ? q->head->t_queued : 0;

	if (rest && (!oldest || rest->t_queued < oldest))
		oldest = rest->t_queued;
	return oldest;
}

void intake_push(struct daemon *d, struct job *j)
{
	push(d, j, false, true);
}

int daemon_on_event(void *ctx, const struct jitwg_event *ev)
{
	struct daemon *d = ctx;
	enum cookie_verdict cv;
	struct job *j;
	bool first;

	INC(d, events);
	/* Under load, a cookie reply instead of a DH; a valid mac2 goes
	 * first, even past a full queue (only a client that got jitwgd's
	 * cookie can make one, and its budget bounds it). An initiation XDP
	 * admitted on a verified source's own budget goes first too, so that
	 * a returning client or a rekey does not wait behind a flood from
	 * elsewhere, but not past a full queue: a spoofer who knows verified
	 * addresses gets each one's budget, and those add up. */
	cv = daemon_cookie_intake(d, ev);
	if (cv == COOKIE_ANSWERED)
		return 0;
	first = cv == COOKIE_FIRST || (ev->flags & JITWG_EV_VERIFIED);
	/* Bounded: a flood beyond the workers' pace is dropped here, the
	 * clients retry in 5 s (XDP rate limits per source before this). */
	if (d->intake.len >= QUEUE_MAX && cv != COOKIE_FIRST) {
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
	if (first)
		INC(d, intake_first);
	push(d, j, first, false);
	return 0;
}

/*
 * A request's outcome by the status it ended with: 200, 404, 429, other
 * 4xx, 5xx, or transport (no HTTP answer). One per request, retries
 * included.
 */
static void api_observe(struct daemon *d, const struct api_result *res)
{
	long s = res->http_status;

	metrics_hist_observe_ns(&d->hists.api, res->elapsed_us * 1000);
	if (res->status == API_ERROR && !s)
		INC(d, api_transport);
	else if (s == 200)
		INC(d, api_200);
	else if (s == 404)
		INC(d, api_404);
	else if (s == 429)
		INC(d, api_429);
	else if (s >= 500)
		INC(d, api_5xx);
	else
		INC(d, api_4xx);
}

void daemon_api_done(const uint8_t key[32], const struct api_result *res,
		     void *ctx, void *arg)
{
	struct daemon *d = arg;
	struct pending *p = ctx;
	struct job *j;
	size_t plen = api_peer_len(0); /* its header at least: wipes read it */

	api_observe(d, res);
	if (ctx == revalidate_ctx) {
		revalidate_done(d, key, res);
		return;
	}
	lanes_done(d, p);
	pthread_mutex_lock(&d->intake.lock);
	if (d->intake.stopping) {
		pthread_mutex_unlock(&d->intake.lock);
		pending_release(d, p);
		return;
	}
	pthread_mutex_unlock(&d->intake.lock);
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
	intake_push(d, j);
}

/* A fetched answer holds the peer's preshared key: wiped first. */
void job_free(struct job *j)
{
	if (j->type == JOB_FETCHED)
		sodium_memzero(&j->f->peer, api_peer_len(j->f->peer.n_allowed_ips));
	free(j);
}

/* With the queue's lock held: up to take jobs, at least one if any. */
static size_t take_jobs(struct intake *q, struct job **jobs, size_t take)
{
	size_t n;

	for (n = 0; q->head && (n < take || !n); n++) {
		jobs[n] = q->head;
		q->head = jobs[n]->next;
		q->len--;
		if (jobs[n] == q->prio_tail)
			q->prio_tail = NULL;
	}
	if (!q->head)
		q->tail = NULL;
	return n;
}

/*
 * With --consume, a rekey of an installed peer is given back to WireGuard on
 * the cache's read-only verdict, before the batch's durable write: that
 * write costs an fsync (about a millisecond here), and the peer is on the
 * device, whose own timestamp check refuses a replay of it. The timestamp is
 * still recorded after (provision_fresh(), which does not give it back
 * twice); a replay that read fresh here is refused there all the same.
 */
static void give_back_rekeys(struct daemon *d, struct authed *a,
			     uint8_t (*keys)[32], uint8_t (*ts)[NOISE_TIMESTAMP_LEN],
			     int *res, size_t na)
{
	size_t i;
	bool any = false;

	for (i = 0; i < na; i++)
		any |= a[i].rekey && (a[i].ev->flags & JITWG_EV_CONSUMED);
	if (!any || !d->env.redeliver || !d->cache_ops.ts_check_many)
		return;
	d->cache_ops.ts_check_many(d->env.cache, (const uint8_t(*)[32])keys,
				   (const uint8_t(*)[NOISE_TIMESTAMP_LEN])ts, res, na);
	for (i = 0; i < na; i++) {
		if (!a[i].rekey || res[i] || !(a[i].ev->flags & JITWG_EV_CONSUMED))
			continue;
		redeliver_one(d, a[i].ev);
		a[i].given_back = true;
	}
}

/*
 * A worker's batch: provisioning decisions for each job, with the freshness
 * of all its authenticated initiations checked in one cache transaction
 * (with --cache-sync full, one fsync per client made a burst disk-bound;
 * docs/daemon.md). A lone initiation is still a batch of one, at once.
 */
static void run_batch(struct daemon *d, struct job **jobs, size_t n)
{
	struct authed a[WORKER_BATCH];
	uint8_t keys[WORKER_BATCH][32], ts[WORKER_BATCH][NOISE_TIMESTAMP_LEN];
	int fresh[WORKER_BATCH];
	size_t na, i;
	uint64_t t_auth;

	for (i = na = 0; i < n; i++) {
		if (jobs[i]->type == JOB_FETCHED)
			provision_fetched(d, jobs[i]);
		else if (provision_event(d, &jobs[i]->ev, &a[na]))
			na++;
	}
	for (i = 0; i < na; i++) {
		memcpy(keys[i], a[i].key, 32);
		memcpy(ts[i], a[i].ts, NOISE_TIMESTAMP_LEN);
	}
	give_back_rekeys(d, a, keys, ts, fresh, na);
	d->cache_ops.ts_accept_many(d->env.cache, (const uint8_t(*)[32])keys,
				    (const uint8_t(*)[NOISE_TIMESTAMP_LEN])ts, fresh, na);
	t_auth = mono(d);
	for (i = 0; i < na; i++)
		provision_fresh(d, &a[i], fresh[i], t_auth);
	for (i = 0; i < n; i++)
		job_free(jobs[i]);
	atomic_fetch_add_explicit(&d->intake.jobs_done, n, memory_order_relaxed);
}

/* A worker takes its share of what is queued, up to WORKER_BATCH jobs. */
void *intake_worker(void *arg)
{
	struct daemon *d = arg;
	struct intake *q = &d->intake;
	struct job *jobs[WORKER_BATCH];
	size_t n, take;

	for (;;) {
		pthread_mutex_lock(&q->lock);
		while (!q->head && !q->stopping)
			pthread_cond_wait(&q->cond, &q->lock);
		if (q->stopping) {
			pthread_mutex_unlock(&q->lock);
			return NULL;
		}
		/* Its share of the queue: a few jobs still go to all workers. */
		take = (q->len + q->n_workers - 1) / q->n_workers;
		if (take > WORKER_BATCH)
			take = WORKER_BATCH;
		n = take_jobs(q, jobs, take);
		pthread_mutex_unlock(&q->lock);
		run_batch(d, jobs, n);
	}
}

/* daemon_drain(): one batch on the caller's thread. Returns its size. */
size_t intake_drain(struct daemon *d)
{
	struct job *jobs[WORKER_BATCH];
	size_t n;

	pthread_mutex_lock(&d->intake.lock);
	n = take_jobs(&d->intake, jobs, WORKER_BATCH);
	pthread_mutex_unlock(&d->intake.lock);
	if (n)
		run_batch(d, jobs, n);
	return n;
}

bool daemon_keeping_up(struct daemon *d)
{
	uint64_t done = atomic_load(&d->intake.jobs_done);
	uint64_t lost = atomic_load(&d->counters.queue_full);
	uint64_t oldest = 0, now = mono(d);
	size_t qlen;
	bool ok;

	pthread_mutex_lock(&d->intake.lock);
	qlen = d->intake.len;
	oldest = intake_oldest_locked(&d->intake);
	pthread_mutex_unlock(&d->intake.lock);
	/* Progress, nothing lost to a full queue since the last call, and the
	 * oldest queued job young: beyond the workers' pace (slow progress
	 * is not keeping up), WireGuard gets the rest itself (and its own
	 * under-load defence runs). */
	ok = (qlen == 0 || done != d->intake.jobs_seen) && lost == d->intake.lost_seen &&
	     (!oldest || now < oldest || now - oldest < LEASE_MAX_QUEUE_AGE_MS * 1000000ull);
	d->intake.jobs_seen = done;
	d->intake.lost_seen = lost;
	return ok;
}
