// SPDX-License-Identifier: MIT
/*
 * Provisioning: what a worker decides for each initiation, in order.
 *
 *   shape, mac1 → identify (1 DH: who claims to be calling)
 *   already on the device? → note the sighting, stop (WireGuard answers)
 *   authenticate (2nd DH); freshness against the cached timestamp, for the
 *   worker's whole batch at once (daemon_intake.c)
 *   one provisioning per key at a time (daemon_pending.c)
 *   cache: fresh → reserve │ negative → stop │ miss/stale → control plane,
 *   whose answer comes back through the intake queue (provision_fetched())
 *   reserve: refuse overlapping allowed IPs, record the peer as managed,
 *   hand it to the installer (daemon_installer.c)
 *
 * A new key is fetched and installed only once it authenticated: anyone
 * can encrypt a victim's public key under an ephemeral key of their own
 * (docs/protocol.md).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "daemon_internal.h"

static void reserve(struct daemon *d, struct pending *p,
		    const struct api_peer *ap, const char *source);


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

/* The stage times of one provisioning decision, as log_outcome logs them. */
static void observe_stages(struct daemon *d, const struct pending *p)
{
	struct metrics_hist *h = d->hists.stage;

	if (p->t_seen > p->t_event)
		metrics_hist_observe_ns(&h[STAGE_QUEUE], p->t_seen - p->t_event);
	if (p->t_ident > p->t_seen)
		metrics_hist_observe_ns(&h[STAGE_IDENTIFY], p->t_ident - p->t_seen);
	if (p->t_auth > p->t_ident)
		metrics_hist_observe_ns(&h[STAGE_AUTHENTICATE], p->t_auth - p->t_ident);
	if (p->t_fetch > p->t_auth)
		metrics_hist_observe_ns(&h[STAGE_FETCH], p->t_fetch - p->t_auth);
}

void log_outcome(struct daemon *d, struct pending *p, const char *outcome,
		 const char *source, const char *extra, enum log_level lvl)
{
	char fp[9], ep[64];
	union wgdev_endpoint e;
	uint64_t now = mono(d);

	observe_stages(d, p);
	log_fingerprint(fp, p->key);
	pending_ep(d, p, &e);
	log_endpoint(ep, sizeof(ep), &e, "none");
	dlog(lvl, "provision",
	     "peer=%s outcome=%s source=%s endpoint=%s queue_ms=%.3f identify_ms=%.3f "
	     "auth_ms=%.3f fetch_ms=%.3f total_ms=%.3f%s%s",
	     fp, outcome, source, ep, ms(p->t_event, p->t_seen),
	     ms(p->t_seen, p->t_ident), ms(p->t_ident, p->t_auth),
	     ms(p->t_auth, p->t_fetch ? p->t_fetch : now),
	     ms(p->t_event, now), extra && *extra ? " " : "", extra ? extra : "");
}

/*
 * The log cannot be flooded: beyond REJECT_LOG_PER_S lines a second,
 * rejections are counted, and said in one summary line per second that had
 * any (and at the next sweep after a flood stops). Debug lines (the
 * operator asked for them) are not limited. Returns whether to log.
 */
static bool reject_log_ok(struct daemon *d, const char *stage)
{
	struct reject_log *r = &d->rejlog;
	uint64_t now = mono(d);
	bool ok;

	pthread_mutex_lock(&r->lock);
	if (now - r->window >= 1000000000ull) {
		if (r->suppressed)
			dlog(LOG_WARN, "reject", "outcome=suppressed lines=%lu authenticate=%lu freshness=%lu window_s=1 unknown=%lu",
			     (unsigned long)r->suppressed, (unsigned long)r->by_auth,
			     (unsigned long)r->by_fresh, (unsigned long)r->by_unknown);
		r->window = now;
		r->lines = r->suppressed = r->by_auth = r->by_fresh = r->by_unknown = 0;
	}
	ok = r->lines < REJECT_LOG_PER_S;
	if (ok) {
		r->lines++;
	} else {
		r->suppressed++;
		if (!strcmp(stage, "authenticate"))
			r->by_auth++;
		else if (!strcmp(stage, "unknown"))
			r->by_unknown++;
		else
			r->by_fresh++;
	}
	pthread_mutex_unlock(&r->lock);
	return ok;
}

void reject_log_flush(struct daemon *d)
{
	struct reject_log *r = &d->rejlog;

	pthread_mutex_lock(&r->lock);
	if (r->suppressed && mono(d) - r->window >= 1000000000ull) {
		dlog(LOG_WARN, "reject", "outcome=suppressed lines=%lu authenticate=%lu freshness=%lu window_s=1 unknown=%lu",
		     (unsigned long)r->suppressed, (unsigned long)r->by_auth,
		     (unsigned long)r->by_fresh, (unsigned long)r->by_unknown);
		r->lines = r->suppressed = r->by_auth = r->by_fresh = r->by_unknown = 0;
	}
	pthread_mutex_unlock(&r->lock);
}

/*
 * An unknown key's decision: a flood of fresh keys is one each, so its
 * lines share the rejections' limit (the stage times are observed anyway).
 */
static void log_unknown(struct daemon *d, struct pending *p, const char *source,
			const char *extra)
{
	if (LOG_ENABLED(LOG_INFO) && reject_log_ok(d, "unknown"))
		log_outcome(d, p, "unknown", source, extra, LOG_INFO);
	else
		observe_stages(d, p);
}

static void reject(struct daemon *d, struct jitwg_event *ev, const char *stage,
		   enum noise_status st, const uint8_t *key, enum log_level lvl)
{
	char fp[9] = "-", ep[64];
	union wgdev_endpoint e;

	if (!LOG_ENABLED(lvl))
		return;
	if (lvl < LOG_DEBUG && !reject_log_ok(d, stage))
		return;
	if (key)
		log_fingerprint(fp, key);
	event_endpoint(ev, &e);
	log_endpoint(ep, sizeof(ep), &e, "none");
	dlog(lvl, "reject", "peer=%s stage=%s reason=%s endpoint=%s", fp, stage,
	     noise_status_str(st), ep);
}

static struct dup_slot *dup_slot(struct daemon *d, const uint8_t mac1[static 16])
{
	uint8_t h[crypto_shorthash_BYTES];
	uint64_t v;

	crypto_shorthash(h, mac1, 16, d->dups.hash_key);
	memcpy(&v, h, sizeof(v));
	return &d->dups.slots[v % DUP_SLOTS];
}

/*
 * Whether these mac1 bytes were seen within DUP_WINDOW_S (and note them);
 * key gets the sender's key if the first copy was identified.
 */
static bool dup_seen(struct daemon *d, const uint8_t mac1[static 16], uint8_t key[static 32],
		     bool *has_key)
{
	struct dup_slot *s = dup_slot(d, mac1);
	uint64_t now = mono(d);
	bool seen;

	pthread_mutex_lock(&d->dups.lock);
	seen = s->at && now - s->at < DUP_WINDOW_S * 1000000000ull &&
	       !memcmp(s->mac1, mac1, 16);
	if (seen) {
		*has_key = s->has_key;
		memcpy(key, s->key, 32);
	} else {
		memcpy(s->mac1, mac1, 16);
		s->at = now ? now : 1;
		s->has_key = false;
	}
	pthread_mutex_unlock(&d->dups.lock);
	return seen;
}

/* The initiation with these mac1 bytes came from key. */
static void dup_identified(struct daemon *d, const uint8_t mac1[static 16],
			   const uint8_t key[static 32])
{
	struct dup_slot *s = dup_slot(d, mac1);

	pthread_mutex_lock(&d->dups.lock);
	if (!memcmp(s->mac1, mac1, 16)) {
		memcpy(s->key, key, 32);
		s->has_key = true;
	}
	pthread_mutex_unlock(&d->dups.lock);
}

/*
 * A key the control plane said it does not know (a 404, cached for 30 s):
 * stopped right after identify, before the second Diffie-Hellman, the
 * freshness write and any pending or lookup work. Its timestamp is then
 * not recorded (reading it takes that DH): docs/security.md says what that
 * leaves open. Logged as the decision it was, within the rejection lines'
 * limit.
 */
static void unknown_key(struct daemon *d, const struct authed *a)
{
	char fp[9], ep[64];
	union wgdev_endpoint e;

	INC(d, unknown);
	/* As any key that ends unknown (--consume): a peer added by hand
	 * since the last listing is still answered, within a budget. */
	giveback_unused(d, a->key, a->ev);
	if (!LOG_ENABLED(LOG_INFO) || !reject_log_ok(d, "unknown"))
		return;
	log_fingerprint(fp, a->key);
	event_endpoint(a->ev, &e);
	log_endpoint(ep, sizeof(ep), &e, "none");
	dlog(LOG_INFO, "provision", "peer=%s outcome=unknown source=cache stage=identify endpoint=%s",
	     fp, ep);
}

/* The cache's state for key (enum cache_state or -errno), nothing kept. */
static int cache_state(struct daemon *d, const uint8_t key[static 32])
{
	struct cache_entry ce;
	int state = d->cache_ops.get_peer(d->env.cache, key, wall(d), &ce);

	sodium_memzero(&ce, sizeof(ce));
	return state;
}

/*
 * The first half of an event: shape, mac1, identity, authentication. True
 * when a has an initiation to check for freshness (provision_fresh() next).
 * Each Diffie-Hellman is paid from the CPU share (daemon_budget.c):
 * priority for a verified source, and after identify for a rekey or a key
 * with a cached answer.
 */
bool provision_event(struct daemon *d, struct jitwg_event *ev, struct authed *a)
{
	struct noise_state ns;
	enum noise_status st;
	bool known_key = false;
	uint64_t t_cpu;

	a->ev = ev;
	a->rekey = false;
	a->prio = false;
	a->given_back = false;
	a->t_seen = mono(d);
	st = noise_check_shape(ev->msg, sizeof(ev->msg));
	if (st) {
		INC(d, bad_shape);
		reject(d, ev, "shape", st, NULL, LOG_DEBUG);
		return false;
	}
	st = noise_check_mac1(d->env.responder, ev->msg);
	if (st) {
		INC(d, bad_mac1);
		reject(d, ev, "mac1", st, NULL, LOG_DEBUG);
		return false;
	}
	/*
	 * A byte-identical copy of an initiation seen in the last minutes is
	 * a replay, whatever its source: refused before any Diffie-Hellman
	 * (a replay flood costs a hash lookup per copy). A client's own retry
	 * is never identical: a new ephemeral key, a new timestamp. mac1 is a
	 * MAC over everything before it, so it stands for the bytes.
	 */
	if (dup_seen(d, ev->msg + WG_MAC1_OFF, a->key, &known_key)) {
		/* Logged as the replay it is (rate-limited), with its sender
		 * if the first copy was identified. */
		INC(d, replays);
		reject(d, ev, "freshness", NOISE_ERR_REPLAY, known_key ? a->key : NULL, LOG_INFO);
		return false;
	}
	a->prio = budget_verified(d, ev->saddr);
	if (!budget_take(d, a->prio, 1))
		return false;
	t_cpu = budget_clock();
	st = noise_identify(d->env.responder, ev->msg, &ns, a->key);
	budget_spent(d, t_cpu);
	if (st) {
		noise_state_wipe(&ns);
		if (st == NOISE_ERR_LOW_ORDER)
			INC(d, low_order);
		else
			INC(d, bad_identity);
		reject(d, ev, "identify", st, NULL, LOG_DEBUG);
		return false;
	}
	a->t_ident = mono(d);
	dup_identified(d, ev->msg + WG_MAC1_OFF, a->key);
	/*
	 * Authenticated even when installed already (a rekey, every two
	 * minutes while the client is active): its timestamp is recorded, so
	 * that a captured rekey never becomes fresh again, and its arrival
	 * teaches the key's clock to the seal at eviction (docs/security.md).
	 * Freshness is checked once, by ts_accept_many() in the worker:
	 * atomically against the stored timestamp, which a read here would
	 * only repeat (one LMDB transaction per client less in a burst).
	 */
	a->rekey = ptab_on_device(d->peers, a->key);
	if (!a->rekey) {
		int state = cache_state(d, a->key);

		if (state == CACHE_NEGATIVE) {
			noise_state_wipe(&ns);
			unknown_key(d, a);
			return false;
		}
		/* A returning client, from wherever it calls now. */
		if (state == CACHE_FRESH || state == CACHE_STALE)
			a->prio = true;
	}
	if (!budget_take(d, a->prio || a->rekey, 1)) {
		noise_state_wipe(&ns);
		return false;
	}
	t_cpu = budget_clock();
	st = noise_authenticate(d->env.responder, ev->msg, &ns, NULL, a->ts);
	budget_spent(d, t_cpu);
	if (st) {
		/* Someone encrypted this key without its private key. */
		if (st == NOISE_ERR_LOW_ORDER)
			INC(d, low_order);
		else
			INC(d, bad_auth);
		reject(d, ev, "authenticate", st, a->key, LOG_INFO);
		return false;
	}
	return true;
}

/*
 * A sighting soon after the last one is a client retrying: its handshakes
 * do not complete. Most likely the device lost the peer (another tool
 * removed it) and our view is a sweep old: ask the monitor to look now, so
 * that the next retry is provisioned again instead of counted as a
 * sighting until the sweep.
 */
static void retry_check(struct daemon *d, const uint8_t key[static 32])
{
	uint64_t now = mono(d), prev = ptab_sighting(d->peers, key, now);
	bool ask = false;

	if (!prev || now - prev > RETRY_GAP_MS * 1000000ull)
		return;
	pthread_mutex_lock(&d->mon.lock);
	if (!d->mon.last_check || now - d->mon.last_check > CHECK_MIN_GAP_MS * 1000000ull) {
		d->mon.last_check = now;
		d->mon.sweep_requested = true;
		pthread_cond_signal(&d->mon.cond);
		ask = true;
	}
	pthread_mutex_unlock(&d->mon.lock);
	if (ask && LOG_ENABLED(LOG_DEBUG)) {
		char fp[9];

		log_fingerprint(fp, key);
		dlog(LOG_DEBUG, "sighting", "peer=%s retry_after_ms=%.0f action=check_device", fp,
		     ms(prev, now));
	}
}

/*
 * An installed peer's initiation (a rekey), its freshness decided: WireGuard
 * answers it (given back with --consume), unless it is a replay, which
 * WireGuard refuses too. A cache that cannot record it does not stop an
 * installed peer's rekey: WireGuard keeps its own timestamp for the peer.
 */
static void sighting(struct daemon *d, const struct authed *a, int fresh)
{
	if (fresh == -ESTALE) {
		INC(d, replays);
		reject(d, a->ev, "freshness", NOISE_ERR_REPLAY, a->key, LOG_INFO);
		return;
	}
	if (fresh)
		dlog(LOG_WARN, "cache", "op=ts_accept error=%s", strerror(-fresh));
	INC(d, sightings);
	if (!a->given_back)
		redeliver_one(d, a->ev);
	retry_check(d, a->key);
	if (LOG_ENABLED(LOG_DEBUG)) {
		char fp[9];

		log_fingerprint(fp, a->key);
		dlog(LOG_DEBUG, "sighting", "peer=%s identify_ms=%.3f recorded=%s", fp,
		     ms(a->t_seen, a->t_ident), fresh ? "false" : "true");
	}
}

/*
 * The second half: fresh is the cache's verdict on a->ts, given at t_auth
 * for the worker's whole batch (so auth_ms covers the batch's checks).
 */
void provision_fresh(struct daemon *d, const struct authed *a, int fresh,
		     uint64_t t_auth)
{
	struct jitwg_event *ev = a->ev;
	const uint8_t *key = a->key;
	struct pending *p;
	struct cache_entry ce;
	union wgdev_endpoint ep;
	bool busy;
	int state;

	if (a->rekey) {
		sighting(d, a, fresh);
		return;
	}
	if (fresh == -ESTALE) {
		INC(d, replays);
		reject(d, ev, "freshness", NOISE_ERR_REPLAY, key, LOG_INFO);
		return;
	}
	if (fresh) {
		/* Not recorded, not even in memory: going on would let this
		 * initiation's replays through. Refused (docs/security.md). */
		char fp[9];

		INC(d, errors);
		log_fingerprint(fp, key);
		dlog(LOG_WARN, "provision",
		     "peer=%s outcome=error source=cache reason=ts_write error=%s", fp,
		     strerrorname_np(-fresh) ? strerrorname_np(-fresh) : "?");
		return;
	}

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
	/*
	 * Installed since this initiation was identified (the client's own
	 * initiation crossing ours, or a retry in a burst): WireGuard answers
	 * it now. Provisioning it again installed the peer twice.
	 */
	if (ptab_on_device(d->peers, key)) {
		INC(d, sightings);
		pending_end(d, p);
		return;
	}
	p->t_event = ev->ts_ns ? ev->ts_ns : a->t_seen;
	p->t_seen = a->t_seen;
	p->t_ident = a->t_ident;
	p->t_auth = t_auth;

	state = d->cache_ops.get_peer(d->env.cache, key, wall(d), &ce);
	if (state == CACHE_FRESH) {
		reserve(d, p, &ce.peer, "cache");
		sodium_memzero(&ce, sizeof(ce));
		return;
	}
	if (state == CACHE_NEGATIVE) {
		p->t_fetch = mono(d);
		INC(d, unknown);
		log_unknown(d, p, "cache", NULL);
		pending_unused(d, p);
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
	if (!d->api) {
		fetch_failed(d, p, -ESHUTDOWN);
		return;
	}
	/* daemon_api_done() continues, once the lanes start it. */
	lanes_submit(d, p, p->stale || a->prio ? LANE_PRIO : LANE_FRESH);
}

void fetch_failed(struct daemon *d, struct pending *p, int ret)
{
	if (p->stale) {
		reserve(d, p, p->stale, "stale_cache");
		return;
	}
	p->t_fetch = mono(d);
	if (ret == -EAGAIN) {
		INC(d, rate_limited);
		log_outcome(d, p, "rate_limited", "api", NULL, LOG_INFO);
	} else {
		char extra[64];

		INC(d, api_errors);
		snprintf(extra, sizeof(extra), "reason=submit_failed error=%s",
			 strerrorname_np(-ret) ? strerrorname_np(-ret) : "?");
		log_outcome(d, p, "api_error", "api", extra, LOG_WARN);
	}
	pending_unused(d, p);
}

/* A control-plane answer, back through the intake queue. */
static void fetched(struct daemon *d, struct job *j)
{
	struct pending *p = j->f->p;
	char extra[API_REASON_LEN + 96], q[API_REASON_LEN + 8];
	uint64_t now = wall(d);

	p->t_fetch = mono(d);
	switch (j->f->status) {
	case API_FOUND:
		/* Cached by the writer thread, installed from memory now. */
		cwriter_put(d, p->key, &j->f->peer, now);
		reserve(d, p, &j->f->peer, "api");
		return;
	case API_NOT_FOUND:
		cwriter_put(d, p->key, NULL, now);
		INC(d, unknown);
		log_unknown(d, p, "api", "http_status=404");
		break;
	case API_ERROR:
		/* Unreachable or failing control plane: a stale answer (within
		 * --max-stale: the cache decides) beats none. A final answer
		 * about the key (410, …) revokes it: never the stale one. */
		if (api_result_failing(&(struct api_result){ .status = API_ERROR,
							    .err = j->f->err,
							    .http_status = j->f->http_status })) {
			if (p->stale) {
				reserve(d, p, p->stale, "stale_cache");
				return;
			}
		} else {
			cwriter_put(d, p->key, NULL, now);
		}
		INC(d, api_errors);
		snprintf(extra, sizeof(extra), "reason=%s error=%s http_status=%ld attempts=%u",
			 log_quote(q, sizeof(q), j->f->reason),
			 strerrorname_np(-j->f->err) ? strerrorname_np(-j->f->err) : "?",
			 j->f->http_status, j->f->attempts);
		log_outcome(d, p, "api_error", "api", extra, LOG_WARN);
		break;
	}
	pending_unused(d, p);
}

/* ... whose slot (freed by daemon_api_done()) starts the next lookup. */
void provision_fetched(struct daemon *d, struct job *j)
{
	fetched(d, j);
	lanes_pump(d);
}

/*
 * Worker side of an install: reserve the allowed IPs (refusing overlaps
 * atomically, so two new peers cannot both claim an address) and hand the
 * peer to the installer thread, which batches device calls.
 */
static void reserve(struct daemon *d, struct pending *p,
		    const struct api_peer *ap, const char *source)
{
	struct managed_peer mp;
	struct cache_managed *cm;
	union wgdev_endpoint ep;
	struct jitwg_event last;
	struct ijob *j;
	uint8_t other[32];
	char extra[160], fp[9];
	int ret;

	p->t_fetch = mono(d);
	memset(&mp, 0, sizeof(mp));
	memcpy(mp.key, p->key, 32);
	mp.installed_at = wall(d);
	mp.installed_ns = UINT64_MAX; /* in progress: sweeps leave it alone */
	mp.source = source;
	pending_ep(d, p, &ep);
	mp.keepalive = (ap->flags & API_PEER_HAS_KEEPALIVE) ? ap->persistent_keepalive : 0;
	/*
	 * A new peer whose initiation XDP consumed (WireGuard has not seen
	 * it) is answered: that initiation goes back after the install, and
	 * the client's handshake needs nothing more from it, where initiating
	 * back needs its response to come in too. Under a flood the way in is
	 * what loses packets (a full receive ring drops them before any
	 * program runs; docs/bench.md), so one message fewer to lose there is
	 * a 5 s retry less. Per key: one whose initiation passed (no lease) is
	 * initiated back. auto answers only while no installs are queued: it
	 * consumes under load, and in a burst of new clients answers wait
	 * behind WireGuard's own under-load threshold (of 10,000, 4 in 10
	 * answered in time against every one initiated back).
	 */
	mp.initiated = d->initiate;
	if (mp.initiated && d->env.redeliver) {
		pending_last(d, p, &last);
		mp.initiated = !(last.flags & JITWG_EV_CONSUMED) ||
			       (d->env.opts->consume == CONSUME_AUTO && installer_backlog(d));
	}
	mp.ips = (struct wgdev_allowed_ip *)ap->allowed_ips;
	mp.n_ips = ap->n_allowed_ips;
	/* Two peers with overlapping allowed IPs: WireGuard would move the
	 * addresses to the newer one and steal the other's traffic. */
	ret = ptab_reserve(d->peers, &mp, other);
	if (ret == -EEXIST) {
		INC(d, refused);
		log_fingerprint(fp, other);
		snprintf(extra, sizeof(extra), "reason=allowed_ip_overlap other=%s", fp);
		log_outcome(d, p, "refused", source, extra, LOG_WARN);
		pending_unused(d, p);
		return;
	}
	/* Sized to its allowed IPs: a burst queues thousands of these. */
	j = ret ? NULL : calloc(1, offsetof(struct ijob, peer) +
					   api_peer_len(ap->n_allowed_ips));
	if (!j) {
		if (!ret)
			ptab_remove(d->peers, p->key);
		INC(d, errors);
		log_outcome(d, p, "error", source, "reason=out_of_memory", LOG_ERROR);
		pending_unused(d, p);
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
	j->initiate = mp.initiated;
	memcpy(&j->peer, ap, api_peer_len(ap->n_allowed_ips));
	installer_submit(d, j);
}
