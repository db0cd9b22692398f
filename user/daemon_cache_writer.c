// SPDX-License-Identifier: MIT
/*
 * The cache writer: what the control plane answered (200s and 404s) is
 * cached by this one thread, a batch per transaction. On a worker, each
 * answer was its own synced transaction under LMDB's single write lock: a
 * flood of fresh keys answered 404 held every worker to one answer per
 * fsync, and the timestamps of installed peers' rekeys (the workers' own
 * transactions) waited behind them. An answer is installed from memory at
 * once; caching it is not on anyone's path (a crash loses at most the last
 * batch of a cache, which is asked again).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "daemon_internal.h"

/* Queued answer: peer sized to its allowed IPs (NULL-like when negative). */
struct cwrite {
	struct cwrite *next;
	uint64_t now;
	bool negative;
	uint8_t key[32];
	struct api_peer peer; /* secret (PSK); last, sized */
};

static void push(struct daemon *d, struct cwrite *w)
{
	struct cache_writer *cw = &d->cwriter;

	w->next = NULL;
	pthread_mutex_lock(&cw->lock);
	if (cw->len >= CWRITER_MAX) {
		/* A cache: losing an answer costs one more request later. */
		pthread_mutex_unlock(&cw->lock);
		sodium_memzero(&w->peer, api_peer_len(w->peer.n_allowed_ips));
		free(w);
		INC(d, cache_write_dropped);
		return;
	}
	if (cw->tail)
		cw->tail->next = w;
	else
		cw->head = w;
	cw->tail = w;
	cw->len++;
	pthread_cond_signal(&cw->cond);
	pthread_mutex_unlock(&cw->lock);
}

void cwriter_put(struct daemon *d, const uint8_t key[static 32], const struct api_peer *peer,
		 uint64_t now)
{
	size_t plen = api_peer_len(peer ? peer->n_allowed_ips : 0);
	struct cwrite *w = calloc(1, offsetof(struct cwrite, peer) + plen);

	if (!w) {
		INC(d, cache_write_dropped);
		return;
	}
	w->now = now;
	w->negative = !peer;
	memcpy(w->key, key, 32);
	if (peer)
		memcpy(&w->peer, peer, plen);
	push(d, w);
}

/* One batch: everything queued now, in one transaction. Returns its size. */
static size_t write_batch(struct daemon *d)
{
	struct cache_writer *cw = &d->cwriter;
	struct cache_answer a[CWRITER_BATCH];
	struct cwrite *batch, *w, *next;
	size_t n = 0;
	uint64_t now = 0;
	int ret;

	pthread_mutex_lock(&cw->lock);
	batch = cw->head;
	for (w = batch; w && n < CWRITER_BATCH; w = w->next)
		n++;
	if (n) {
		struct cwrite *last = batch;

		for (size_t i = 1; i < n; i++)
			last = last->next;
		cw->head = last->next;
		last->next = NULL;
		if (!cw->head)
			cw->tail = NULL;
		cw->len -= n;
	}
	pthread_mutex_unlock(&cw->lock);
	if (!n)
		return 0;
	n = 0;
	for (w = batch; w; w = w->next) {
		memcpy(a[n].key, w->key, 32);
		a[n].peer = w->negative ? NULL : &w->peer;
		if (w->now > now)
			now = w->now;
		n++;
	}
	ret = d->cache_ops.put_answers(d->env.cache, a, n, now);
	if (ret)
		dlog(LOG_WARN, "cache", "op=put_answers error=%s answers=%zu", strerror(-ret), n);
	for (w = batch; w; w = next) {
		next = w->next;
		sodium_memzero(&w->peer, api_peer_len(w->negative ? 0 : w->peer.n_allowed_ips));
		free(w);
	}
	return n;
}

void *cwriter_thread(void *arg)
{
	struct daemon *d = arg;
	struct cache_writer *cw = &d->cwriter;

	for (;;) {
		pthread_mutex_lock(&cw->lock);
		while (!cw->head && !cw->stop)
			pthread_cond_wait(&cw->cond, &cw->lock);
		if (!cw->head && cw->stop) {
			pthread_mutex_unlock(&cw->lock);
			return NULL;
		}
		pthread_mutex_unlock(&cw->lock);
		write_batch(d);
	}
}

size_t cwriter_drain(struct daemon *d)
{
	size_t done = 0, n;

	while ((n = write_batch(d)))
		done += n;
	return done;
}

void cwriter_free_all(struct daemon *d)
{
	struct cwrite *w = d->cwriter.head, *next;

	for (; w; w = next) {
		next = w->next;
		sodium_memzero(&w->peer, api_peer_len(w->negative ? 0 : w->peer.n_allowed_ips));
		free(w);
	}
	d->cwriter.head = d->cwriter.tail = NULL;
	d->cwriter.len = 0;
}
