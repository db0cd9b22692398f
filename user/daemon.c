// SPDX-License-Identifier: MIT
/*
 * The daemon's lifecycle: main (user/jitwgd.c) creates it, reconciles it
 * with the device, starts its threads (workers, installer, monitor) and
 * stops them in data-path order. The stages themselves: see
 * daemon_internal.h.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "daemon_internal.h"

const struct daemon_cache_ops daemon_cache_lmdb = {
	.ts_accept_many = cache_ts_accept_many,
	.ts_check_many = cache_ts_check_many,
	.get_peer = cache_get_peer,
	.put_peer = cache_put_peer,
	.put_negative = cache_put_negative,
	.managed_put_many = cache_managed_put_many,
	.managed_get = cache_managed_get,
	.managed_del = cache_managed_del,
	.ts_seal = cache_ts_seal,
	.put_answers = cache_put_answers,
};

const struct daemon_api_ops daemon_api_http = {
	.submit = api_submit,
};

static uint64_t sys_mono_ns(void *arg)
{
	(void)arg;
	return now_mono_ns();
}

static uint64_t sys_wall_s(void *arg)
{
	(void)arg;
	return now_wall_s();
}

static const struct daemon_clock sys_clock = {
	.mono_ns = sys_mono_ns,
	.wall_s = sys_wall_s,
};

int daemon_new(struct daemon **out, const struct daemon_env *env)
{
	struct daemon *d = calloc(1, sizeof(*d));
	pthread_condattr_t ca;
	int ret;

	if (!d)
		return -ENOMEM;
	d->env = *env;
	d->cache_ops = env->cache_ops ? *env->cache_ops : daemon_cache_lmdb;
	d->api_ops = env->api_ops ? *env->api_ops : daemon_api_http;
	d->clock = env->clock ? *env->clock : sys_clock;
	d->initiate = env->opts->initiate_back;
	d->policy.idle_timeout = env->opts->idle_timeout;
	d->policy.handshake_window = env->opts->handshake_window;
	d->started_at = now_wall_s();
	metrics_hist_init(&d->hists.first_contact, metrics_latency_bounds,
			  metrics_latency_nbounds);
	metrics_hist_init(&d->hists.api, metrics_latency_bounds,
			  metrics_latency_nbounds);
	for (ret = 0; ret < STAGE_MAX; ret++)
		metrics_hist_init(&d->hists.stage[ret], metrics_latency_bounds,
				  metrics_latency_nbounds);
	ret = ptab_new(&d->peers);
	if (ret) {
		free(d);
		return ret;
	}
	pthread_mutex_init(&d->intake.lock, NULL);
	pthread_cond_init(&d->intake.cond, NULL);
	pthread_mutex_init(&d->rejlog.lock, NULL);
	pthread_mutex_init(&d->dups.lock, NULL);
	randombytes_buf(d->dups.hash_key, sizeof(d->dups.hash_key));
	d->dups.slots = calloc(DUP_SLOTS, sizeof(*d->dups.slots));
	if (!d->dups.slots) {
		ptab_free(d->peers);
		free(d);
		return -ENOMEM;
	}
	budget_init(d, env->opts->max_cpu);
	lanes_init(d);
	pthread_mutex_init(&d->cwriter.lock, NULL);
	pthread_cond_init(&d->cwriter.cond, NULL);
	pthread_mutex_init(&d->pending.lock, NULL);
	randombytes_buf(d->pending.hash_key, sizeof(d->pending.hash_key));
	d->pending.giveback.tokens = GIVEBACK_UNUSED_RATE;
	pthread_mutex_init(&d->inst.lock, NULL);
	pthread_mutex_init(&d->mon.lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&d->inst.cond, &ca);
	pthread_cond_init(&d->mon.cond, &ca);
	pthread_condattr_destroy(&ca);
	ret = daemon_cookie_new(d);
	if (ret) {
		daemon_free(d);
		return ret;
	}
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

static int adopt(struct daemon *d, const struct wgdev_peer *p, struct cache_managed *cm)
{
	char fp[9];
	int ret;

	memset(cm, 0, sizeof(*cm));
	memcpy(cm->public_key, p->public_key, 32);
	cm->installed_at = wall(d);
	cm->last_seen = cm->installed_at;
	cm->endpoint = p->endpoint;
	cm->flags = (uint32_t)p->persistent_keepalive << 16;
	ret = d->cache_ops.managed_put_many(d->env.cache, cm, 1);
	log_fingerprint(fp, p->public_key);
	if (ret)
		dlog(LOG_WARN, "reconcile", "peer=%s outcome=error op=adopt error=%s", fp,
		     strerror(-ret));
	else
		dlog(LOG_INFO, "reconcile", "peer=%s outcome=adopted", fp);
	return ret;
}

int daemon_reconcile(struct daemon *d, size_t *n_device, size_t *n_managed)
{
	struct wgdev_peer *peers = NULL;
	size_t n = 0, i, m = 0;
	int ret;

	ret = list_sorted(d, &peers, &n);
	if (ret)
		return ret;
	ptab_refresh_device(d->peers, peers, n, 0);
	/* One point lookup per device peer: start-up never walks the cache. */
	for (i = 0; i < n; i++) {
		struct cache_managed cm;
		struct managed_peer mp;

		if (d->cache_ops.managed_get(d->env.cache, peers[i].public_key, &cm)) {
			/* --adopt: a peer no record claims (a lost cache
			 * directory) is managed from now on, as installed now. */
			if (!d->env.opts->adopt || adopt(d, &peers[i], &cm))
				continue;
		}
		memset(&mp, 0, sizeof(mp));
		memcpy(mp.key, cm.public_key, 32);
		mp.installed_at = cm.installed_at;
		mp.initiated = cm.flags & MANAGED_F_INITIATED;
		mp.keepalive = cm.flags >> 16;
		mp.source = "reconciled";
		mp.ips = peers[i].allowed_ips;
		mp.n_ips = peers[i].n_allowed_ips;
		if (!ptab_add_managed(d->peers, &mp))
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

	d->intake.n_workers = d->env.opts->workers ? d->env.opts->workers :
		       (cpus > 0 ? (unsigned int)cpus : 1);
	d->intake.workers = calloc(d->intake.n_workers, sizeof(*d->intake.workers));
	if (!d->intake.workers)
		return -ENOMEM;
	for (i = 0; i < d->intake.n_workers; i++) {
		ret = pthread_create(&d->intake.workers[i], NULL, intake_worker, d);
		if (ret)
			return -ret;
		d->intake.n_started++;
	}
	ret = pthread_create(&d->cwriter.thread, NULL, cwriter_thread, d);
	if (ret)
		return -ret;
	d->cwriter.started = true;
	ret = pthread_create(&d->inst.thread, NULL, installer_thread, d);
	if (ret)
		return -ret;
	d->inst.started = true;
	ret = pthread_create(&d->mon.thread, NULL, monitor_thread, d);
	if (ret)
		return -ret;
	d->mon.started = true;
	return 0;
}

size_t daemon_drain(struct daemon *d)
{
	size_t done = 0, n;

	daemon_cookie_flush(d);
	do {
		n = 0;
		while (intake_drain(d))
			n++;
		n += installer_drain(d);
		n += cwriter_drain(d);
		done += n;
	} while (n);
	return done;
}

void daemon_request_sweep(struct daemon *d)
{
	pthread_mutex_lock(&d->mon.lock);
	d->mon.sweep_requested = true;
	pthread_cond_signal(&d->mon.cond);
	pthread_mutex_unlock(&d->mon.lock);
}

void daemon_stop(struct daemon *d)
{
	unsigned int i;

	pthread_mutex_lock(&d->intake.lock);
	d->intake.stopping = true;
	pthread_cond_broadcast(&d->intake.cond);
	pthread_mutex_unlock(&d->intake.lock);
	for (i = 0; i < d->intake.n_started; i++)
		pthread_join(d->intake.workers[i], NULL);
	d->intake.n_started = 0;
	/* The workers' answers: written out before the writer stops. */
	pthread_mutex_lock(&d->cwriter.lock);
	d->cwriter.stop = true;
	pthread_cond_signal(&d->cwriter.cond);
	pthread_mutex_unlock(&d->cwriter.lock);
	if (d->cwriter.started)
		pthread_join(d->cwriter.thread, NULL);
	d->cwriter.started = false;
	pthread_mutex_lock(&d->inst.lock);
	d->inst.stop = true;
	pthread_cond_signal(&d->inst.cond);
	pthread_mutex_unlock(&d->inst.lock);
	if (d->inst.started)
		pthread_join(d->inst.thread, NULL);
	d->inst.started = false;
	pthread_mutex_lock(&d->mon.lock);
	d->mon.stop = true;
	pthread_cond_signal(&d->mon.cond);
	pthread_mutex_unlock(&d->mon.lock);
	if (d->mon.started)
		pthread_join(d->mon.thread, NULL);
	d->mon.started = false;
}

void daemon_free(struct daemon *d)
{
	struct job *j, *n;
	struct ijob *ij, *in;

	if (!d)
		return;
	for (ij = d->inst.head; ij; ij = in) {
		in = ij->next;
		pending_release(d, ij->p);
		ijob_free(ij);
	}
	for (j = d->intake.head; j; j = n) {
		n = j->next;
		if (j->type == JOB_FETCHED)
			pending_release(d, j->f->p);
		job_free(j);
	}
	lanes_clear(d);
	pending_free_all(d);
	budget_free(d);
	free(d->dups.slots);
	daemon_cookie_free(d);
	revalidate_free_all(d);
	cwriter_free_all(d);
	installer_release(d);
	ptab_free(d->peers);
	free(d->mon.watches);
	free(d->intake.workers);
	free(d);
}

void daemon_get_stats(struct daemon *d, struct daemon_stats *o)
{
#define X(name, metric, labels, help, stop) \
	o->name = atomic_load(&d->counters.name);
	DAEMON_COUNTERS(X)
#undef X
}

unsigned int daemon_workers(const struct daemon *d)
{
	return d->intake.n_workers;
}
