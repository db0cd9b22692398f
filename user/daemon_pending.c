// SPDX-License-Identifier: MIT
/*
 * The pending table: one provisioning per key at a time. A worker claims
 * a key once it authenticated; later sightings of the same key only move
 * its endpoint (and, with --consume, the initiation to give back) until
 * the provisioning ends in pending_end(), which also hands WireGuard its
 * latest initiation back (re-delivery, --consume).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "daemon_internal.h"
#include "redeliver.h"

static struct pending **pslot(struct daemon *d, const uint8_t key[static 32])
{
	uint8_t h[crypto_shorthash_BYTES];
	uint64_t v;

	/* Keys are the sender's choice: a prefix would let a few thousand
	 * keygens fill one chain, scanned under the lock. SipHash, keyed. */
	crypto_shorthash(h, key, 32, d->pending.hash_key);
	memcpy(&v, h, sizeof(v));
	return &d->pending.buckets[v % PENDING_BUCKETS];
}

/*
 * Claim key for provisioning. Returns NULL when it is already in progress
 * (after moving its endpoint to ep: the latest authenticated source wins).
 */
struct pending *pending_claim(struct daemon *d, const uint8_t key[static 32],
			      const struct jitwg_event *ev,
			      const union wgdev_endpoint *ep, bool *busy)
{
	struct pending **slot, *p;

	*busy = false;
	pthread_mutex_lock(&d->pending.lock);
	slot = pslot(d, key);
	for (p = *slot; p; p = p->next) {
		if (!memcmp(p->key, key, 32)) {
			p->ep = *ep;
			/* The client only awaits an answer to its latest. */
			p->last = *ev;
			*busy = true;
			pthread_mutex_unlock(&d->pending.lock);
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
	pthread_mutex_unlock(&d->pending.lock);
	return p;
}

/*
 * The endpoint of the key's latest authenticated sighting: pending_claim()
 * moves it at any time, so copy it under the lock.
 */
void pending_ep(struct daemon *d, const struct pending *p,
		union wgdev_endpoint *out)
{
	pthread_mutex_lock(&d->pending.lock);
	*out = p->ep;
	pthread_mutex_unlock(&d->pending.lock);
}

/* Its latest initiation (--consume), which pending_claim() also moves. */
void pending_last(struct daemon *d, const struct pending *p,
		  struct jitwg_event *out)
{
	pthread_mutex_lock(&d->pending.lock);
	*out = p->last;
	pthread_mutex_unlock(&d->pending.lock);
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

	pthread_mutex_lock(&d->pending.lock);
	for (pp = pslot(d, p->key); *pp; pp = &(*pp)->next) {
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	}
	if (last)
		*last = p->last;
	pthread_mutex_unlock(&d->pending.lock);
}

void pending_release(struct daemon *d, struct pending *p)
{
	pending_unlink(d, p, NULL);
	pending_free(p);
}

/* Re-delivery (--consume): give WireGuard the initiation XDP dropped. */
void redeliver_one(struct daemon *d, const struct jitwg_event *ev)
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
	n = atomic_fetch_add(&d->counters.redeliver_errors, 1) + 1;
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
void pending_end(struct daemon *d, struct pending *p)
{
	struct jitwg_event ev;

	pending_unlink(d, p, &ev);
	pending_free(p);
	redeliver_one(d, &ev);
}

/* One token of the give-back budget, if any is left. */
static bool giveback_token(struct daemon *d)
{
	bool ok;

	pthread_mutex_lock(&d->pending.lock);
	ok = rate_bucket_take(&d->pending.giveback, mono(d), GIVEBACK_UNUSED_RATE,
			      GIVEBACK_UNUSED_RATE);
	pthread_mutex_unlock(&d->pending.lock);
	return ok;
}

void giveback_unused(struct daemon *d, const uint8_t key[static 32],
		     const struct jitwg_event *ev)
{
	/* Not consumed: nothing to give back, no token spent. */
	if (!d->env.redeliver || !(ev->flags & JITWG_EV_CONSUMED))
		return;
	if (ptab_on_device(d->peers, key) || giveback_token(d))
		redeliver_one(d, ev);
	else
		INC(d, giveback_skipped);
}

void pending_unused(struct daemon *d, struct pending *p)
{
	struct jitwg_event ev;
	uint8_t key[32];

	memcpy(key, p->key, 32);
	pending_unlink(d, p, &ev);
	pending_free(p);
	giveback_unused(d, key, &ev);
}

/* At the end: only keys whose fetch never completed (api destroyed first). */
void pending_free_all(struct daemon *d)
{
	size_t i;

	for (i = 0; i < PENDING_BUCKETS; i++) {
		struct pending *p = d->pending.buckets[i], *next;

		for (; p; p = next) {
			next = p->next;
			pending_free(p);
		}
		d->pending.buckets[i] = NULL;
	}
}
