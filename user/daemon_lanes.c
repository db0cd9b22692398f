// SPDX-License-Identifier: MIT
/*
 * Control-plane lanes: which key's lookup goes to the control plane next.
 *
 * The HTTP client (user/api.c) runs 64 transfers and queues the rest in one
 * FIFO. A flood of valid initiations from fresh keypairs authenticates (its
 * sender holds each private key) and every one of them needs a lookup: in
 * one FIFO, a real client's would wait behind all of them. So jitwgd keeps
 * its lookups here and hands the client at most FETCH_INFLIGHT at a time,
 * which it starts at once; the rest wait in one of two lanes:
 *
 *   priority  keys with a cached answer gone stale (a returning client)
 *             and initiations from a source that completed a handshake in
 *             the last hour (budget_verified()): taken first, bounded
 *             only by FETCH_PRIO_MAX (a flood cannot put keys here: it
 *             would need a completed handshake or a registered key);
 *   fresh     everything else, at most FETCH_FRESH_INFLIGHT of the
 *             transfers (priority lookups always find a slot), and
 *             FETCH_FRESH_MAX waiting. Inside it, one FIFO per source
 *             prefix (an IPv4 /24, an IPv6 /48, keyed hash into
 *             FETCH_FRESH_BUCKETS), served round robin: a flood from a few
 *             prefixes takes their turns only. When it is full, the oldest
 *             request of the longest FIFO is dropped (fetch_shed): its
 *             client retries in 5 s, when the flood may have moved on.
 *
 * The lanes' lock is never held across a call into the HTTP client: its
 * callback (daemon_api_done()) takes it to free a slot.
 */
#include <errno.h>
#include <string.h>

#include <sodium.h>

#include "daemon_internal.h"

void lanes_init(struct daemon *d)
{
	pthread_mutex_init(&d->lanes.lock, NULL);
	randombytes_buf(d->lanes.hash_key, sizeof(d->lanes.hash_key));
}

/* The fresh lane's FIFO for a source: its prefix, through a keyed hash. */
unsigned int lanes_bucket(const struct daemon *d, const union wgdev_endpoint *ep)
{
	uint8_t k[16] = { 0 }, h[crypto_shorthash_BYTES];
	uint64_t v;

	if (ep->addr.sa_family == AF_INET) {
		memcpy(k, &ep->addr4.sin_addr, 3);
	} else if (ep->addr.sa_family == AF_INET6) {
		memcpy(k, &ep->addr6.sin6_addr, 6);
		k[15] = 6;
	}
	crypto_shorthash(h, k, sizeof(k), d->lanes.hash_key);
	memcpy(&v, h, sizeof(v));
	return (unsigned int)(v % FETCH_FRESH_BUCKETS);
}

static void fifo_push(struct pending **head, struct pending **tail, struct pending *p)
{
	p->lnext = NULL;
	if (*tail)
		(*tail)->lnext = p;
	else
		*head = p;
	*tail = p;
}

static struct pending *fifo_pop(struct pending **head, struct pending **tail)
{
	struct pending *p = *head;

	if (p) {
		*head = p->lnext;
		if (!*head)
			*tail = NULL;
	}
	return p;
}

/* With the lock held: the next request to start, or NULL. */
static struct pending *next_locked(struct fetch_lanes *l)
{
	struct pending *p;
	unsigned int i, b;

	if (l->inflight >= FETCH_INFLIGHT)
		return NULL;
	p = fifo_pop(&l->prio_head, &l->prio_tail);
	if (p) {
		l->n_prio--;
		return p;
	}
	if (!l->n_fresh || l->inflight_fresh >= FETCH_FRESH_INFLIGHT)
		return NULL;
	for (i = 0; i < FETCH_FRESH_BUCKETS; i++) {
		b = (l->cursor + i) % FETCH_FRESH_BUCKETS;
		p = fifo_pop(&l->fresh[b].head, &l->fresh[b].tail);
		if (p) {
			l->fresh[b].n--;
			l->n_fresh--;
			l->cursor = (b + 1) % FETCH_FRESH_BUCKETS;
			return p;
		}
	}
	return NULL;
}

/* With the lock held: the oldest request of the longest fresh FIFO. */
static struct pending *shed_locked(struct fetch_lanes *l)
{
	unsigned int i, longest = 0;
	struct pending *p;

	for (i = 1; i < FETCH_FRESH_BUCKETS; i++)
		if (l->fresh[i].n > l->fresh[longest].n)
			longest = i;
	p = fifo_pop(&l->fresh[longest].head, &l->fresh[longest].tail);
	if (p) {
		l->fresh[longest].n--;
		l->n_fresh--;
	}
	return p;
}

static void shed(struct daemon *d, struct pending *p)
{
	INC(d, fetch_shed);
	p->t_fetch = mono(d);
	if (LOG_ENABLED(LOG_DEBUG))
		log_outcome(d, p, "shed", "api", "reason=fresh_lane_full", LOG_DEBUG);
	pending_unused(d, p);
}

/* Start what the slots allow. On a worker (the failures it handles run the
 * provisioning stage). */
void lanes_pump(struct daemon *d)
{
	struct fetch_lanes *l = &d->lanes;
	struct pending *p;
	int ret;

	for (;;) {
		pthread_mutex_lock(&l->lock);
		p = next_locked(l);
		if (p) {
			l->inflight++;
			if (p->lane == LANE_FRESH)
				l->inflight_fresh++;
		}
		pthread_mutex_unlock(&l->lock);
		if (!p)
			return;
		ret = d->api ? d->api_ops.submit(d->api, p->key, p) : -ESHUTDOWN;
		if (ret == 0 || ret == API_ATTACHED)
			continue; /* daemon_api_done() frees the slot */
		lanes_done(d, p);
		fetch_failed(d, p, ret);
	}
}

/* p's lookup waits for a slot in its lane (lane: LANE_PRIO or LANE_FRESH). */
void lanes_submit(struct daemon *d, struct pending *p, enum fetch_lane lane)
{
	struct fetch_lanes *l = &d->lanes;
	struct pending *dropped = NULL;
	unsigned int b = 0;

	p->lane = lane;
	if (lane == LANE_FRESH) {
		union wgdev_endpoint ep;

		pending_ep(d, p, &ep);
		b = lanes_bucket(d, &ep);
	}
	pthread_mutex_lock(&l->lock);
	if (lane == LANE_PRIO) {
		if (l->n_prio >= FETCH_PRIO_MAX) {
			dropped = p;
		} else {
			fifo_push(&l->prio_head, &l->prio_tail, p);
			l->n_prio++;
		}
	} else {
		if (l->n_fresh >= FETCH_FRESH_MAX)
			dropped = shed_locked(l);
		fifo_push(&l->fresh[b].head, &l->fresh[b].tail, p);
		l->fresh[b].n++;
		l->n_fresh++;
	}
	pthread_mutex_unlock(&l->lock);
	if (dropped)
		shed(d, dropped);
	lanes_pump(d);
}

/* p's lookup ended (its answer is on the intake queue): its slot is free. */
void lanes_done(struct daemon *d, const struct pending *p)
{
	struct fetch_lanes *l = &d->lanes;

	pthread_mutex_lock(&l->lock);
	if (l->inflight)
		l->inflight--;
	if (p->lane == LANE_FRESH && l->inflight_fresh)
		l->inflight_fresh--;
	pthread_mutex_unlock(&l->lock);
}

/* Waiting and running lookups, for a test or a scrape. */
void lanes_stats(struct daemon *d, struct lanes_stats *s)
{
	struct fetch_lanes *l = &d->lanes;

	pthread_mutex_lock(&l->lock);
	s->prio = l->n_prio;
	s->fresh = l->n_fresh;
	s->inflight = l->inflight;
	s->inflight_fresh = l->inflight_fresh;
	pthread_mutex_unlock(&l->lock);
}

/* At daemon_free(): the waiting requests' pendings are freed with the
 * table (pending_free_all()); only the lists go. */
void lanes_clear(struct daemon *d)
{
	struct fetch_lanes *l = &d->lanes;

	pthread_mutex_lock(&l->lock);
	l->prio_head = l->prio_tail = NULL;
	memset(l->fresh, 0, sizeof(l->fresh));
	l->n_prio = l->n_fresh = 0;
	pthread_mutex_unlock(&l->lock);
}
