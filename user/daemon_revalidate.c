// SPDX-License-Identifier: MIT
/*
 * Revalidation: keeping a managed peer only as long as the control plane
 * says so (docs/security.md, "Revocation"). At every sweep, each managed
 * peer whose cached answer expired (its ttl) is asked about again, in the
 * background: the request goes through the control-plane client's thread
 * like any other, its answer comes back to the monitor thread, which owns
 * the device handle for removals and updates. Nothing here is on the packet
 * path.
 *
 *   200 → the answer cached; a changed one (allowed IPs, preshared key,
 *         keepalive) applied in place, the overlap check run again
 *   404, 410, other final 4xx → removed at once, sealed, cached as unknown
 *   401/403 (our token), transport, TLS, 5xx, 429, malformed → kept while
 *         the cached answer is younger than its ttl + --max-stale, then
 *         removed
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "daemon_internal.h"

/* The control-plane context of a revalidation (a pending entry otherwise). */
const char revalidate_ctx[1];

enum reval_action revalidate_decide(const struct api_result *res, int cache_state)
{
	if (res->status == API_FOUND)
		return REVAL_UPDATE;
	if (api_result_revokes(res))
		return REVAL_REVOKE;
	/* Failing (or a malformed answer): the cached answer stands in for
	 * as long as the cache still hands it out (ttl + max_stale). */
	return cache_state == CACHE_FRESH || cache_state == CACHE_STALE ? REVAL_KEEP :
									   REVAL_EXPIRE;
}

const char *reval_action_str(enum reval_action a)
{
	switch (a) {
	case REVAL_UPDATE:
		return "update";
	case REVAL_REVOKE:
		return "revoke";
	case REVAL_KEEP:
		return "keep";
	case REVAL_EXPIRE:
		return "expire";
	}
	return "?";
}

/* For the monitor: a request (answer or operator eviction), never blocking. */
static void push(struct daemon *d, struct mon_req *r)
{
	pthread_mutex_lock(&d->mon.lock);
	r->next = d->mon.reqs;
	d->mon.reqs = r;
	pthread_cond_signal(&d->mon.cond);
	pthread_mutex_unlock(&d->mon.lock);
}

static void req_free(struct mon_req *r)
{
	sodium_memzero(&r->peer, api_peer_len(r->peer.n_allowed_ips));
	free(r);
}

/* Control-plane thread: a revalidation's answer. */
void revalidate_done(struct daemon *d, const uint8_t key[32], const struct api_result *res)
{
	size_t plen = api_peer_len(res->status == API_FOUND && res->peer ?
					   res->peer->n_allowed_ips : 0);
	/* Whole (~3 KiB): answers come one per managed peer and sweep. */
	struct mon_req *r = calloc(1, sizeof(*r));

	if (!r)
		return; /* asked again at the next sweep */
	r->kind = MON_REQ_ANSWER;
	memcpy(r->key, key, 32);
	r->status = res->status;
	r->err = res->err;
	r->http_status = res->http_status;
	if (res->status == API_FOUND && res->peer)
		memcpy(&r->peer, res->peer, plen);
	push(d, r);
}

int daemon_evict(struct daemon *d, const uint8_t key[static 32])
{
	struct mon_req *r;

	if (!ptab_is_managed(d->peers, key))
		return -ENOENT;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->kind = MON_REQ_EVICT;
	memcpy(r->key, key, 32);
	push(d, r);
	return 0;
}

int daemon_revalidate(struct daemon *d, const uint8_t *key)
{
	int ret;

	if (!key) {
		pthread_mutex_lock(&d->mon.lock);
		d->mon.revalidate_all = true;
		d->mon.sweep_requested = true;
		pthread_cond_signal(&d->mon.cond);
		pthread_mutex_unlock(&d->mon.lock);
		return 0;
	}
	if (!ptab_is_managed(d->peers, key))
		return -ENOENT;
	if (!d->api)
		return -ENOTCONN;
	ret = d->api_ops.submit(d->api, key, (void *)revalidate_ctx);
	return ret == API_ATTACHED ? 0 : ret;
}

/* Monitor, at a sweep: ask about the kept peers whose answer expired. */
void revalidate_ask(struct daemon *d, const uint8_t (*keys)[32], size_t n, bool all)
{
	uint64_t now = wall(d);
	size_t asked = 0, i;

	if (!d->api)
		return;
	for (i = 0; i < n; i++) {
		int state = d->cache_ops.get_peer(d->env.cache, keys[i], now, NULL);
		int ret;

		if (!all && state == CACHE_FRESH)
			continue;
		/* -EAGAIN: asked less than 4.5 s ago; the next sweep asks. */
		ret = d->api_ops.submit(d->api, keys[i], (void *)revalidate_ctx);
		if (ret == 0 || ret == API_ATTACHED)
			asked++;
	}
	if (asked)
		dlog(LOG_DEBUG, "revalidate", "asked=%zu all=%s", asked, all ? "true" : "false");
}

static bool same_answer(const struct api_peer *a, const struct api_peer *b)
{
	uint32_t f = API_PEER_HAS_PSK | API_PEER_HAS_KEEPALIVE;

	if ((a->flags & f) != (b->flags & f) || a->n_allowed_ips != b->n_allowed_ips)
		return false;
	if ((a->flags & API_PEER_HAS_KEEPALIVE) &&
	    a->persistent_keepalive != b->persistent_keepalive)
		return false;
	if ((a->flags & API_PEER_HAS_PSK) &&
	    sodium_memcmp(a->preshared_key, b->preshared_key, 32))
		return false;
	for (size_t i = 0; i < a->n_allowed_ips; i++) {
		const struct wgdev_allowed_ip *x = &a->allowed_ips[i], *y = &b->allowed_ips[i];

		if (x->family != y->family || x->cidr != y->cidr ||
		    memcmp(&x->ip6, &y->ip6, x->family == AF_INET ? 4 : 16))
			return false;
	}
	return true;
}

/* A changed answer for an installed peer: overlap check, then the device. */
static void update(struct daemon *d, const uint8_t key[32], const struct api_peer *ap)
{
	struct managed_peer mp;
	struct wgdev_peer wp;
	uint8_t other[32];
	char fp[9], ofp[9];
	int ret;

	log_fingerprint(fp, key);
	if (ptab_get_managed(d->peers, key, &mp))
		return; /* evicted meanwhile */
	mp.keepalive = (ap->flags & API_PEER_HAS_KEEPALIVE) ? ap->persistent_keepalive : 0;
	mp.ips = (struct wgdev_allowed_ip *)ap->allowed_ips;
	mp.n_ips = ap->n_allowed_ips;
	ret = ptab_reserve(d->peers, &mp, other);
	if (ret == -EEXIST) {
		log_fingerprint(ofp, other);
		evict_one(d, key, "allowed_ip_overlap", ofp);
		return;
	}
	if (ret)
		return;
	memset(&wp, 0, sizeof(wp));
	memcpy(wp.public_key, key, 32);
	wp.flags = WGDEV_PEER_REPLACE_IPS | WGDEV_PEER_HAS_PSK | WGDEV_PEER_HAS_KEEPALIVE;
	if (ap->flags & API_PEER_HAS_PSK)
		memcpy(wp.preshared_key, ap->preshared_key, 32); /* else zero: cleared */
	wp.persistent_keepalive = mp.keepalive;
	wp.allowed_ips = (struct wgdev_allowed_ip *)ap->allowed_ips;
	wp.n_allowed_ips = ap->n_allowed_ips;
	ret = wgdev_set_peers(d->env.mon_dev, &wp, 1);
	sodium_memzero(wp.preshared_key, 32);
	if (ret)
		dlog(LOG_ERROR, "revalidate", "peer=%s outcome=error error=%s", fp,
		     wgdev_error(d->env.mon_dev));
	else
		dlog(LOG_INFO, "revalidate", "peer=%s outcome=updated allowed_ips=%zu", fp,
		     ap->n_allowed_ips);
}

static void answer(struct daemon *d, struct mon_req *r)
{
	struct api_result res = { .status = r->status, .err = r->err,
				  .http_status = r->http_status };
	struct cache_entry old;
	uint64_t now = wall(d);
	enum reval_action a;
	char fp[9];
	int state, ret;

	if (!ptab_is_managed(d->peers, r->key))
		return; /* evicted meanwhile */
	log_fingerprint(fp, r->key);
	state = d->cache_ops.get_peer(d->env.cache, r->key, now, &old);
	a = revalidate_decide(&res, state);
	switch (a) {
	case REVAL_UPDATE:
		ret = d->cache_ops.put_peer(d->env.cache, &r->peer, now);
		if (ret)
			dlog(LOG_WARN, "cache", "op=put_peer error=%s", strerror(-ret));
		if ((state == CACHE_FRESH || state == CACHE_STALE) && same_answer(&old.peer, &r->peer))
			dlog(LOG_DEBUG, "revalidate", "peer=%s outcome=unchanged", fp);
		else
			update(d, r->key, &r->peer);
		break;
	case REVAL_REVOKE:
		ret = d->cache_ops.put_negative(d->env.cache, r->key, now);
		if (ret)
			dlog(LOG_WARN, "cache", "op=put_negative error=%s", strerror(-ret));
		evict_one(d, r->key, "revoked", NULL);
		break;
	case REVAL_KEEP:
		/* 401/403: the gateway's token, loudly: every peer depends on it. */
		INC(d, revalidate_failed);
		dlog(r->err == -EACCES ? LOG_ERROR : LOG_WARN, "revalidate",
		     "peer=%s outcome=kept reason=control_plane_failing http_status=%ld error=%s",
		     fp, r->http_status, strerrorname_np(-r->err) ? strerrorname_np(-r->err) : "?");
		break;
	case REVAL_EXPIRE:
		INC(d, revalidate_failed);
		evict_one(d, r->key, "stale", NULL);
		break;
	}
	sodium_memzero(&old, sizeof(old));
}

/* Monitor thread: everything queued for it. */
void revalidate_apply(struct daemon *d)
{
	struct mon_req *r, *next;

	pthread_mutex_lock(&d->mon.lock);
	r = d->mon.reqs;
	d->mon.reqs = NULL;
	pthread_mutex_unlock(&d->mon.lock);
	for (; r; r = next) {
		next = r->next;
		if (r->kind == MON_REQ_EVICT) {
			if (ptab_is_managed(d->peers, r->key))
				evict_one(d, r->key, "operator", NULL);
		} else {
			answer(d, r);
		}
		req_free(r);
	}
}

void revalidate_free_all(struct daemon *d)
{
	struct mon_req *r = d->mon.reqs, *next;

	for (; r; r = next) {
		next = r->next;
		req_free(r);
	}
	d->mon.reqs = NULL;
}
