// SPDX-License-Identifier: MIT
/*
 * The provisioning pipeline without a network, root or threads: real
 * initiations (user/noise.c's initiator) go through daemon_on_event() and
 * daemon_drain() into a fake cache, a fake control-plane client and a fake
 * WireGuard device (a wgdev backend table), on a clock the test sets. Each
 * case checks the decision (counters), what reached the device and what
 * was asked of the control plane: spoof, replay, unknown key, overlap,
 * cache hit, stale answer, API error, and more. Then table tests of the
 * pending table and of handshake starts.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "check.h"
#include "cookie.h"
#include "noise.h"
#include "../user/daemon_internal.h"
#include "../user/wgdev_internal.h"

enum { MAX_ENTRIES = 512, MAX_DEV = 2048, PORT = 51820 };

/* ---- the fakes ---- */

struct entry {
	uint8_t key[32];
	int state;               /* enum cache_state */
	struct api_peer peer;
};

struct cache {
	struct entry e[MAX_ENTRIES];
	size_t n;
	uint8_t ts_key[MAX_DEV][32], ts[MAX_DEV][CACHE_TS_LEN];
	size_t n_ts;
	size_t managed_puts, put_peers, put_negatives, seals;
	int ts_fail;             /* ts_accept_many fails with it (map full, EIO) */
};

enum { MAX_SUBMITS = 256 };

struct api_client {
	uint8_t key[32];
	void *ctx;               /* the last submit's */
	size_t submits;
	int ret;                 /* what submit returns */
	void *ctxs[MAX_SUBMITS]; /* the first MAX_SUBMITS submits', in order */
};

struct devpeer {
	uint8_t key[32];
	union wgdev_endpoint ep;
	uint16_t keepalive;
	size_t n_ips;
	struct wgdev_allowed_ip ip; /* the first */
};

struct fakedev {
	struct devpeer p[MAX_DEV];
	size_t n;
	size_t set_calls, initiations, initiate_calls;
	int fail;                /* set_peers returns it */
};

struct rig {
	uint64_t mono, wall;
	struct cache cache;
	struct api_client api;
	struct fakedev fd;
	struct wgdev dev;
	struct daemon_opts o;
	struct noise_responder *resp;
	uint8_t gw_pub[32];
	struct daemon *d;
	struct daemon_stats st;
};

static uint64_t fake_mono(void *arg)
{
	return ((struct rig *)arg)->mono;
}

static uint64_t fake_wall(void *arg)
{
	return ((struct rig *)arg)->wall;
}

static struct entry *entry_find(struct cache *c, const uint8_t key[32])
{
	size_t i;

	for (i = 0; i < c->n; i++)
		if (!memcmp(c->e[i].key, key, 32))
			return &c->e[i];
	return NULL;
}

static int f_ts_accept_many(struct cache *c, const uint8_t (*keys)[32],
			    const uint8_t (*ts)[CACHE_TS_LEN], int *res, size_t n)
{
	size_t i, k;

	if (c->ts_fail) {
		for (i = 0; i < n; i++)
			res[i] = c->ts_fail;
		return c->ts_fail;
	}
	for (i = 0; i < n; i++) {
		for (k = 0; k < c->n_ts && memcmp(c->ts_key[k], keys[i], 32); k++)
			;
		if (k < c->n_ts && memcmp(ts[i], c->ts[k], CACHE_TS_LEN) <= 0) {
			res[i] = -ESTALE;
			continue;
		}
		if (k == c->n_ts) {
			if (k == MAX_DEV) {
				res[i] = -ENOSPC;
				continue;
			}
			memcpy(c->ts_key[c->n_ts++], keys[i], 32);
		}
		memcpy(c->ts[k], ts[i], CACHE_TS_LEN);
		res[i] = 0;
	}
	return 0;
}

static int f_get_peer(struct cache *c, const uint8_t key[static 32], uint64_t now,
		      struct cache_entry *out)
{
	struct entry *e = entry_find(c, key);

	(void)now;
	if (!e)
		return CACHE_MISS;
	if (out && (e->state == CACHE_FRESH || e->state == CACHE_STALE)) {
		memset(out, 0, sizeof(*out));
		out->peer = e->peer;
	}
	return e->state;
}

static int f_put_peer(struct cache *c, const struct api_peer *peer, uint64_t now)
{
	(void)now;
	(void)peer;
	c->put_peers++;
	return 0;
}

static int f_put_negative(struct cache *c, const uint8_t key[static 32], uint64_t now)
{
	(void)key;
	(void)now;
	c->put_negatives++;
	return 0;
}

static int f_managed_put_many(struct cache *c, const struct cache_managed *m, size_t n)
{
	(void)m;
	c->managed_puts += n;
	return 0;
}

static int f_managed_get(struct cache *c, const uint8_t key[static 32],
			 struct cache_managed *out)
{
	(void)c;
	(void)key;
	(void)out;
	return -ENOENT;
}

static int f_managed_del(struct cache *c, const uint8_t key[static 32])
{
	(void)c;
	(void)key;
	return 0;
}

static int f_ts_seal(struct cache *c, const uint8_t key[static 32], uint64_t margin_ns)
{
	(void)key;
	(void)margin_ns;
	c->seals++;
	return 0;
}

static int f_put_answers(struct cache *c, const struct cache_answer *a, size_t n,
			 uint64_t now)
{
	(void)now;
	for (size_t i = 0; i < n; i++) {
		if (a[i].peer)
			c->put_peers++;
		else
			c->put_negatives++;
	}
	return 0;
}

static const struct daemon_cache_ops fake_cache_ops = {
	.ts_seal = f_ts_seal,
	.put_answers = f_put_answers,
	.ts_accept_many = f_ts_accept_many,
	.get_peer = f_get_peer,
	.put_peer = f_put_peer,
	.put_negative = f_put_negative,
	.managed_put_many = f_managed_put_many,
	.managed_get = f_managed_get,
	.managed_del = f_managed_del,
};

static int f_submit(struct api_client *c, const uint8_t key[static 32], void *ctx)
{
	memcpy(c->key, key, 32);
	c->ctx = ctx;
	if (c->submits < MAX_SUBMITS)
		c->ctxs[c->submits] = ctx;
	c->submits++;
	return c->ret;
}

static const struct daemon_api_ops fake_api_ops = { .submit = f_submit };

static struct devpeer *dev_find(struct fakedev *f, const uint8_t key[32])
{
	size_t i;

	for (i = 0; i < f->n; i++)
		if (!memcmp(f->p[i].key, key, 32))
			return &f->p[i];
	return NULL;
}

static int fd_open(struct wgdev *dev)
{
	(void)dev;
	return 0;
}

static void fd_close(struct wgdev *dev)
{
	(void)dev;
}

static int fd_get_info(struct wgdev *dev, struct wgdev_info *info)
{
	(void)dev;
	memset(info, 0, sizeof(*info));
	info->listen_port = PORT;
	return 0;
}

static int fd_set_peers(struct wgdev *dev, const struct wgdev_peer *peers, size_t n)
{
	struct fakedev *f = dev->priv;
	size_t i;
	bool initiate = false;

	f->set_calls++;
	if (f->fail)
		return wgdev_fail(dev, f->fail, "fake failure");
	for (i = 0; i < n; i++) {
		const struct wgdev_peer *p = &peers[i];
		struct devpeer *dp = dev_find(f, p->public_key);

		if (p->flags & WGDEV_PEER_REMOVE) {
			if (dp)
				*dp = f->p[--f->n];
			continue;
		}
		if (!dp) {
			if (p->flags & WGDEV_PEER_UPDATE_ONLY)
				continue;
			dp = &f->p[f->n++];
			memset(dp, 0, sizeof(*dp));
			memcpy(dp->key, p->public_key, 32);
		}
		if (p->flags & WGDEV_PEER_HAS_ENDPOINT)
			dp->ep = p->endpoint;
		if (p->flags & WGDEV_PEER_REPLACE_IPS) {
			dp->n_ips = p->n_allowed_ips;
			if (p->n_allowed_ips)
				dp->ip = p->allowed_ips[0];
		}
		if (p->flags & WGDEV_PEER_HAS_KEEPALIVE) {
			/* 0 → non-zero: the device initiates (docs/protocol.md). */
			if (!dp->keepalive && p->persistent_keepalive == INITIATE_KEEPALIVE) {
				f->initiations++;
				initiate = true;
			}
			dp->keepalive = p->persistent_keepalive;
		}
	}
	f->initiate_calls += initiate;
	return 0;
}

static int fd_list_peers(struct wgdev *dev, struct wgdev_peer **out, size_t *n)
{
	struct fakedev *f = dev->priv;
	struct wgdev_peer *v = calloc(f->n ? f->n : 1, sizeof(*v));
	size_t i;

	if (!v)
		return -ENOMEM;
	for (i = 0; i < f->n; i++) {
		memcpy(v[i].public_key, f->p[i].key, 32);
		v[i].endpoint = f->p[i].ep;
		v[i].persistent_keepalive = f->p[i].keepalive;
	}
	*out = v;
	*n = f->n;
	return 0;
}

static const struct wgdev_ops fake_dev_ops = {
	.open = fd_open,
	.close = fd_close,
	.get_info = fd_get_info,
	.set_peers = fd_set_peers,
	.list_peers = fd_list_peers,
};

/* ---- the rig ---- */

/* What the next rig_new() sets: --cookie, and where replies go. */
static enum cookie_mode rig_cookie_mode = COOKIE_AUTO;
static const struct daemon_cookie_ops *rig_cookie_ops;

static struct rig *rig_new(bool initiate_back)
{
	struct rig *r = calloc(1, sizeof(*r));
	struct daemon_env env;
	struct daemon_clock clk;
	uint8_t gw_priv[32];

	if (!r)
		abort();
	r->mono = 1000ull * 1000000000ull;
	r->wall = 1800000000;
	r->dev.backend = WGDEV_UAPI;
	snprintf(r->dev.name, sizeof(r->dev.name), "fake0");
	r->dev.ops = &fake_dev_ops;
	r->dev.priv = &r->fd;
	opts_init(&r->o);
	r->o.initiate_back = initiate_back;
	r->o.cookie = rig_cookie_mode;
	randombytes_buf(gw_priv, 32);
	if (noise_responder_new(&r->resp, gw_priv))
		abort();
	noise_responder_public_key(r->resp, r->gw_pub);
	sodium_memzero(gw_priv, 32);
	clk = (struct daemon_clock){ .mono_ns = fake_mono, .wall_s = fake_wall, .arg = r };
	memset(&env, 0, sizeof(env));
	env.opts = &r->o;
	env.dev = &r->dev;
	env.mon_dev = &r->dev;
	env.responder = r->resp;
	env.cache = &r->cache;
	env.listen_port = PORT;
	env.cache_ops = &fake_cache_ops;
	env.api_ops = &fake_api_ops;
	env.clock = &clk;
	env.cookie_ops = rig_cookie_ops;
	if (daemon_new(&r->d, &env))
		abort();
	daemon_set_api(r->d, &r->api);
	return r;
}

static void rig_free(struct rig *r)
{
	daemon_free(r->d);
	noise_responder_free(r->resp);
	opts_free(&r->o);
	free(r);
}

static void rig_drain(struct rig *r)
{
	daemon_drain(r->d);
	daemon_get_stats(r->d, &r->st);
}

struct client {
	uint8_t priv[32], pub[32];
	struct noise_initiator *in;
};

static void client_new(struct rig *r, struct client *c, uint8_t first_byte)
{
	do {
		randombytes_buf(c->priv, 32);
		if (crypto_scalarmult_base(c->pub, c->priv))
			abort();
	} while (first_byte && c->pub[0] != first_byte);
	if (noise_initiator_new(&c->in, c->priv, r->gw_pub))
		abort();
}

static void client_free(struct client *c)
{
	noise_initiator_free(c->in);
}

/* TAI64N of second s, as a client's clock would write it. */
static void tai64n(uint8_t ts[12], uint64_t s)
{
	uint64_t v = 0x4000000000000000ull + s;
	int i;

	for (i = 0; i < 8; i++)
		ts[i] = (uint8_t)(v >> (56 - 8 * i));
	memset(ts + 8, 0, 4);
}

/* An initiation from 192.0.2.<host>:port, received now. */
static void make_event(struct rig *r, struct client *c, uint64_t s, uint8_t host,
		       struct jitwg_event *ev)
{
	uint8_t ts[12];

	memset(ev, 0, sizeof(*ev));
	tai64n(ts, s);
	if (noise_build_initiation(c->in, 7, ts, 0, ev->msg))
		abort();
	ev->ts_ns = r->mono;
	ev->family = 4;
	ev->saddr[10] = ev->saddr[11] = 0xff;
	ev->saddr[12] = 192;
	ev->saddr[13] = 0;
	ev->saddr[14] = 2;
	ev->saddr[15] = host;
	ev->sport = 40000 + host;
	ev->dport = PORT;
}

static void send_event(struct rig *r, const struct jitwg_event *ev)
{
	daemon_on_event(r->d, ev);
}

static void send_initiation(struct rig *r, struct client *c, uint64_t s, uint8_t host)
{
	struct jitwg_event ev;

	make_event(r, c, s, host, &ev);
	send_event(r, &ev);
}

static void cache_set(struct rig *r, const uint8_t key[32], int state,
		      uint32_t ip4 /* host order, 0: none */)
{
	struct entry *e = &r->cache.e[r->cache.n++];

	memset(e, 0, sizeof(*e));
	memcpy(e->key, key, 32);
	e->state = state;
	memcpy(e->peer.public_key, key, 32);
	if (ip4) {
		e->peer.n_allowed_ips = 1;
		e->peer.allowed_ips[0].family = AF_INET;
		e->peer.allowed_ips[0].cidr = 32;
		e->peer.allowed_ips[0].ip4.s_addr = htonl(ip4);
	}
}

/* The control plane answers the last submit. */
static void api_answer_http(struct rig *r, enum api_status status, int err, long http,
			    const struct api_peer *peer)
{
	struct api_result res;

	memset(&res, 0, sizeof(res));
	res.status = status;
	res.err = err;
	res.http_status = http;
	res.attempts = 1;
	res.peer = peer;
	snprintf(res.reason, sizeof(res.reason), "%s", status == API_ERROR ? "fake" : "");
	daemon_api_done(r->api.key, &res, r->api.ctx, r->d);
}

static void api_answer(struct rig *r, enum api_status status, int err,
		       const struct api_peer *peer)
{
	api_answer_http(r, status, err,
			status == API_FOUND ? 200 : status == API_NOT_FOUND ? 404 : 500, peer);
}

static bool on_device(struct rig *r, const uint8_t key[32], uint8_t host)
{
	struct devpeer *p = dev_find(&r->fd, key);

	return p && p->ep.addr4.sin_family == AF_INET &&
	       p->ep.addr4.sin_addr.s_addr == htonl(0xc0000200u | host) &&
	       p->ep.addr4.sin_port == htons(40000 + host);
}

/* ---- event → decision → install ---- */

static void test_cache_hit(void)
{
	struct rig *r = rig_new(true);
	struct client a;

	client_new(r, &a, 0);
	cache_set(r, a.pub, CACHE_FRESH, 0x0a000002);
	send_initiation(r, &a, 100, 1);
	rig_drain(r);
	CHECK("pipeline: cache hit installs at the initiation's endpoint",
	      r->st.installed == 1 && on_device(r, a.pub, 1) && r->api.submits == 0 &&
	      r->cache.managed_puts == 1 && r->fd.initiations == 1 &&
	      dev_find(&r->fd, a.pub)->n_ips == 1,
	      "installed %lu, on device %d, submits %zu, managed %zu, initiations %zu",
	      (unsigned long)r->st.installed, on_device(r, a.pub, 1), r->api.submits,
	      r->cache.managed_puts, r->fd.initiations);
	/* Installed: its next initiation is WireGuard's to answer. */
	send_initiation(r, &a, 101, 1);
	rig_drain(r);
	CHECK("pipeline: an installed key's initiation is a sighting",
	      r->st.sightings == 1 && r->st.installed == 1 && r->fd.set_calls == 1,
	      "sightings %lu installed %lu set calls %zu", (unsigned long)r->st.sightings,
	      (unsigned long)r->st.installed, r->fd.set_calls);
	client_free(&a);
	rig_free(r);
}

static void test_spoof(void)
{
	struct rig *r = rig_new(true);
	struct client victim, attacker;

	client_new(r, &victim, 0);
	client_new(r, &attacker, 0);
	cache_set(r, victim.pub, CACHE_FRESH, 0x0a000002);
	/* The victim's public key, the attacker's private key. */
	noise_initiator_forge_identity(attacker.in, victim.pub);
	send_initiation(r, &attacker, 100, 9);
	rig_drain(r);
	CHECK("pipeline: spoofed identity refused before any lookup",
	      r->st.bad_auth == 1 && r->st.installed == 0 && r->fd.n == 0 &&
	      r->api.submits == 0 && r->cache.n_ts == 0,
	      "bad_auth %lu installed %lu device %zu submits %zu timestamps %zu",
	      (unsigned long)r->st.bad_auth, (unsigned long)r->st.installed, r->fd.n,
	      r->api.submits, r->cache.n_ts);
	client_free(&victim);
	client_free(&attacker);
	rig_free(r);
}

static void test_replay(void)
{
	struct rig *r = rig_new(true);
	struct client a;
	struct jitwg_event ev, old;

	client_new(r, &a, 0);
	/* Known (an unknown key stops before its timestamp is read). */
	cache_set(r, a.pub, CACHE_FRESH, 0x0a000002);
	make_event(r, &a, 200, 1, &ev);
	make_event(r, &a, 150, 1, &old);
	send_event(r, &ev);
	rig_drain(r);
	send_event(r, &ev);  /* the same bytes again */
	send_event(r, &old); /* an older timestamp */
	rig_drain(r);
	CHECK("pipeline: replayed and older initiations refused",
	      r->st.installed == 1 && r->st.replays == 2 && r->api.submits == 0,
	      "installed %lu replays %lu submits %zu", (unsigned long)r->st.installed,
	      (unsigned long)r->st.replays, r->api.submits);
	client_free(&a);
	rig_free(r);
}

static void test_unknown_key(void)
{
	struct rig *r = rig_new(true);
	struct client a;

	client_new(r, &a, 0);
	send_initiation(r, &a, 100, 1);
	rig_drain(r);
	CHECK("pipeline: a cache miss asks the control plane once",
	      r->api.submits == 1 && !memcmp(r->api.key, a.pub, 32) && r->fd.n == 0,
	      "submits %zu device %zu", r->api.submits, r->fd.n);
	/* Another sighting while the request is in flight: waits for it. */
	send_initiation(r, &a, 101, 2);
	rig_drain(r);
	CHECK("pipeline: a key in flight is not asked for twice",
	      r->api.submits == 1 && r->st.waiting == 1, "submits %zu waiting %lu",
	      r->api.submits, (unsigned long)r->st.waiting);
	api_answer(r, API_NOT_FOUND, 0, NULL);
	rig_drain(r);
	CHECK("pipeline: 404 is cached and installs nothing",
	      r->st.unknown == 1 && r->cache.put_negatives == 1 && r->fd.n == 0 &&
	      r->st.installed == 0,
	      "unknown %lu negatives %zu device %zu", (unsigned long)r->st.unknown,
	      r->cache.put_negatives, r->fd.n);
	client_free(&a);
	rig_free(r);
}

static void test_api_found(void)
{
	struct rig *r = rig_new(true);
	struct client a;
	struct api_peer ap;

	client_new(r, &a, 0);
	send_initiation(r, &a, 100, 1);
	send_initiation(r, &a, 101, 3); /* the latest sighting's endpoint wins */
	rig_drain(r);
	memset(&ap, 0, sizeof(ap));
	memcpy(ap.public_key, a.pub, 32);
	ap.n_allowed_ips = 1;
	ap.allowed_ips[0].family = AF_INET;
	ap.allowed_ips[0].cidr = 32;
	ap.allowed_ips[0].ip4.s_addr = htonl(0x0a000005);
	api_answer(r, API_FOUND, 0, &ap);
	rig_drain(r);
	CHECK("pipeline: the control plane's answer is cached and installed",
	      r->st.installed == 1 && r->cache.put_peers == 1 && on_device(r, a.pub, 3),
	      "installed %lu put %zu on device %d", (unsigned long)r->st.installed,
	      r->cache.put_peers, on_device(r, a.pub, 3));
	client_free(&a);
	rig_free(r);
}

static void test_overlap(void)
{
	struct rig *r = rig_new(true);
	struct client a, b;

	client_new(r, &a, 0);
	client_new(r, &b, 0);
	cache_set(r, a.pub, CACHE_FRESH, 0x0a000002);
	cache_set(r, b.pub, CACHE_FRESH, 0x0a000002); /* the same address */
	send_initiation(r, &a, 100, 1);
	rig_drain(r);
	send_initiation(r, &b, 100, 2);
	rig_drain(r);
	CHECK("pipeline: an allowed IP held by another peer is refused",
	      r->st.installed == 1 && r->st.refused == 1 && r->fd.n == 1 &&
	      dev_find(&r->fd, a.pub) && !dev_find(&r->fd, b.pub),
	      "installed %lu refused %lu device %zu", (unsigned long)r->st.installed,
	      (unsigned long)r->st.refused, r->fd.n);
	client_free(&a);
	client_free(&b);
	rig_free(r);
}

/*
 * A stale cached answer is used when the control plane cannot answer (401
 * and 403 refuse the gateway's token: a failure, not an answer about the
 * key), never on a final answer about the key (410) nor a malformed one.
 */
static void test_stale(void)
{
	static const struct {
		const char *name;
		int err;        /* the control plane's error */
		long http;
		bool installed; /* from the stale answer */
	} rows[] = {
		{ "pipeline: stale answer used on timeout", -ETIMEDOUT, 0, true },
		{ "pipeline: stale answer used when refused", -ECONNREFUSED, 0, true },
		{ "pipeline: stale answer used on 503", -EPROTO, 503, true },
		{ "pipeline: stale answer used on 401 (our token)", -EACCES, 401, true },
		{ "pipeline: stale answer not used on 410 Gone", -EPROTO, 410, false },
		{ "pipeline: stale answer not used on a bad body", -EBADMSG, 200, false },
	};
	size_t i;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct rig *r = rig_new(true);
		struct client a;

		client_new(r, &a, 0);
		cache_set(r, a.pub, CACHE_STALE, 0x0a000002);
		send_initiation(r, &a, 100, 1);
		rig_drain(r);
		api_answer_http(r, API_ERROR, rows[i].err, rows[i].http, NULL);
		rig_drain(r);
		CHECK(rows[i].name,
		      r->api.submits == 1 && r->st.installed == rows[i].installed &&
		      r->st.api_errors == !rows[i].installed &&
		      (r->fd.n == 1) == rows[i].installed,
		      "submits %zu installed %lu errors %lu device %zu", r->api.submits,
		      (unsigned long)r->st.installed, (unsigned long)r->st.api_errors, r->fd.n);
		client_free(&a);
		rig_free(r);
	}
}

static void test_api_error(void)
{
	struct rig *r = rig_new(true);
	struct client a, b;

	client_new(r, &a, 0);
	send_initiation(r, &a, 100, 1);
	rig_drain(r);
	api_answer(r, API_ERROR, -EPROTO, NULL);
	rig_drain(r);
	CHECK("pipeline: API error installs nothing",
	      r->st.api_errors == 1 && r->st.installed == 0 && r->fd.n == 0 &&
	      r->cache.put_negatives == 0,
	      "api_errors %lu installed %lu device %zu", (unsigned long)r->st.api_errors,
	      (unsigned long)r->st.installed, r->fd.n);
	/* A submit the client refuses (its per-key rate limit). */
	client_new(r, &b, 0);
	r->api.ret = -EAGAIN;
	send_initiation(r, &b, 100, 2);
	rig_drain(r);
	CHECK("pipeline: a rate-limited key waits for its retry",
	      r->st.rate_limited == 1 && r->st.api_errors == 1 && r->fd.n == 0,
	      "rate_limited %lu api_errors %lu", (unsigned long)r->st.rate_limited,
	      (unsigned long)r->st.api_errors);
	client_free(&a);
	client_free(&b);
	rig_free(r);
}

static void test_install_failure(void)
{
	struct rig *r = rig_new(true);
	struct client a;

	client_new(r, &a, 0);
	cache_set(r, a.pub, CACHE_FRESH, 0x0a000002);
	r->fd.fail = -EIO;
	send_initiation(r, &a, 100, 1);
	rig_drain(r);
	CHECK("pipeline: a failed install is an error and not managed",
	      r->st.errors == 1 && r->st.installed == 0 &&
	      !ptab_is_managed(r->d->peers, a.pub),
	      "errors %lu installed %lu", (unsigned long)r->st.errors,
	      (unsigned long)r->st.installed);
	/* The next initiation tries again. */
	r->fd.fail = 0;
	send_initiation(r, &a, 101, 1);
	rig_drain(r);
	CHECK("pipeline: the next initiation installs", r->st.installed == 1 &&
	      on_device(r, a.pub, 1), "installed %lu", (unsigned long)r->st.installed);
	client_free(&a);
	rig_free(r);
}

static void test_malformed(void)
{
	struct rig *r = rig_new(true);
	struct client a;
	struct jitwg_event ev;

	client_new(r, &a, 0);
	make_event(r, &a, 100, 1, &ev);
	ev.msg[1] = 1; /* a reserved byte */
	send_event(r, &ev);
	make_event(r, &a, 100, 1, &ev);
	ev.msg[120] ^= 1; /* mac1 */
	send_event(r, &ev);
	rig_drain(r);
	CHECK("pipeline: malformed initiations stop at shape and mac1",
	      r->st.bad_shape == 1 && r->st.bad_mac1 == 1 && r->st.events == 2 &&
	      r->cache.n_ts == 0,
	      "bad_shape %lu bad_mac1 %lu", (unsigned long)r->st.bad_shape,
	      (unsigned long)r->st.bad_mac1);
	client_free(&a);
	rig_free(r);
}

/* ---- the pending table ---- */

static void test_pending_table(void)
{
	/*
	 * Keys 0-2; keys 0 and 1 share their first 4 bytes (one bucket).
	 * Each row: claim or end a key; want the claim to be new or busy.
	 */
	static const struct {
		const char *name;
		int op;   /* 'c' claim, 'e' end */
		int key;
		int host; /* the claim's source */
		bool busy;
	} rows[] = {
		{ "pending: first claim is new", 'c', 0, 1, false },
		{ "pending: second claim is busy", 'c', 0, 2, true },
		{ "pending: same bucket, other key is new", 'c', 1, 3, false },
		{ "pending: other key is new", 'c', 2, 4, false },
		{ "pending: same bucket, other key busy", 'c', 1, 5, true },
		{ "pending: ended key", 'e', 0, 0, false },
		{ "pending: claim after end is new", 'c', 0, 6, false },
		{ "pending: the chain's other key still busy", 'c', 1, 7, true },
	};
	struct rig *r = rig_new(true);
	struct pending *held[3] = { 0 };
	uint8_t keys[3][32];
	size_t i;

	memset(keys, 0, sizeof(keys));
	for (i = 0; i < 3; i++)
		randombytes_buf(keys[i], 32);
	memcpy(keys[1], keys[0], 4);
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		int k = rows[i].key;
		struct jitwg_event ev;
		union wgdev_endpoint ep, got;
		struct pending *p;
		bool busy;

		if (rows[i].op == 'e') {
			pending_end(r->d, held[k]);
			held[k] = NULL;
			CHECK(rows[i].name, true, "-");
			continue;
		}
		memset(&ev, 0, sizeof(ev));
		memset(&ep, 0, sizeof(ep));
		ep.addr4.sin_family = AF_INET;
		ep.addr4.sin_port = htons(40000 + rows[i].host);
		ev.sport = 40000 + rows[i].host;
		p = pending_claim(r->d, keys[k], &ev, &ep, &busy);
		if (p)
			held[k] = p;
		pending_ep(r->d, held[k], &got);
		CHECK(rows[i].name,
		      busy == rows[i].busy && !p == rows[i].busy &&
		      got.addr4.sin_port == ep.addr4.sin_port &&
		      held[k]->last.sport == ev.sport,
		      "busy %d, want %d; endpoint port %u", busy, rows[i].busy,
		      ntohs(got.addr4.sin_port));
	}
	for (i = 0; i < 3; i++)
		if (held[i])
			pending_release(r->d, held[i]);
	rig_free(r);
}

/*
 * One batch of fresh and stale starts: the stale ones left to their retry,
 * the fresh one switched, and each watched once (a peer watched twice
 * would be logged and counted twice when its handshake completes).
 */
static void test_handshake_starts_mixed(void)
{
	struct rig *r = rig_new(true);
	struct client c[3];
	size_t k;

	for (k = 0; k < 3; k++) {
		client_new(r, &c[k], 0);
		cache_set(r, c[k].pub, CACHE_FRESH, 0x0a000000u + 2 + (uint32_t)k);
	}
	/* Two received long ago (their XDP receive time), one now. */
	r->mono += (ANSWER_MAX_AGE_MS + 1) * 1000000ull;
	for (k = 0; k < 3; k++) {
		struct jitwg_event ev;

		make_event(r, &c[k], 100, (uint8_t)(1 + k), &ev);
		if (k < 2)
			ev.ts_ns -= (ANSWER_MAX_AGE_MS + 1) * 1000000ull;
		send_event(r, &ev);
	}
	while (intake_drain(r->d))
		;
	rig_drain(r);
	CHECK("starts: fresh and stale in one batch, each watched once",
	      r->st.installed == 3 && r->fd.initiations == 1 && r->st.answers_stale == 2 &&
	      r->d->mon.n_watches == 3,
	      "installed %lu initiations %zu stale %lu watches %zu",
	      (unsigned long)r->st.installed, r->fd.initiations,
	      (unsigned long)r->st.answers_stale, r->d->mon.n_watches);
	for (k = 0; k < 3; k++)
		client_free(&c[k]);
	rig_free(r);
}

/* ---- handshake starts ---- */

/*
 * A batch of new peers is installed with keepalive 0; their handshakes then
 * start in chunks (the keepalive switch, INITIATE_CHUNK per device call),
 * unless they waited longer than ANSWER_MAX_AGE_MS, the client's own
 * retry being as good by then.
 */
static void test_handshake_starts(void)
{
	static const struct {
		const char *name;
		size_t peers;
		uint64_t age_ms;  /* of their initiations when the batch installs */
		bool initiate;    /* initiating back (else --no-initiate-back) */
		size_t initiations, calls, stale;
	} rows[] = {
		{ "starts: one peer initiates with its install", 1, 0, true, 1, 1, 0 },
		{ "starts: a batch of 3, one switch call", 3, 0, true, 3, 1, 0 },
		{ "starts: 300 peers, two chunks", 300, 0, true, 300, 2, 0 },
		{ "starts: 3 peers past the answer age are left to their retry",
		  3, ANSWER_MAX_AGE_MS + 1, true, 0, 0, 3 },
		{ "starts: without initiating back nothing starts", 3, 0, false, 0, 0, 0 },
	};
	size_t i, k;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct rig *r = rig_new(rows[i].initiate);
		struct client *c = calloc(rows[i].peers, sizeof(*c));
		bool restored = true;

		if (!c)
			abort();
		for (k = 0; k < rows[i].peers; k++) {
			client_new(r, &c[k], 0);
			cache_set(r, c[k].pub, CACHE_FRESH, 0x0a000000u + 2 + (uint32_t)k);
		}
		for (k = 0; k < rows[i].peers; k++)
			send_initiation(r, &c[k], 100, (uint8_t)(1 + k % 200));
		r->mono += rows[i].age_ms * 1000000ull;
		/* Queue every install before the installer runs: one batch. */
		while (intake_drain(r->d))
			;
		rig_drain(r);
		for (k = 0; k < r->fd.n; k++)
			restored &= r->fd.p[k].keepalive ==
				    (r->fd.initiations && rows[i].initiate ? INITIATE_KEEPALIVE : 0);
		CHECK(rows[i].name,
		      r->st.installed == rows[i].peers &&
		      r->fd.initiations == rows[i].initiations &&
		      r->fd.initiate_calls == rows[i].calls &&
		      r->st.answers_stale == rows[i].stale && restored,
		      "installed %lu initiations %zu in %zu calls, stale %lu",
		      (unsigned long)r->st.installed, r->fd.initiations,
		      r->fd.initiate_calls, (unsigned long)r->st.answers_stale);
		for (k = 0; k < rows[i].peers; k++)
			client_free(&c[k]);
		free(c);
		rig_free(r);
	}
}

/*
 * An installed peer's rekeys are authenticated and recorded (the issue:
 * they passed unrecorded, so a captured one was fresh after eviction): a
 * replayed or older rekey is refused, even while the peer is installed.
 */
static void test_rekey_recorded(void)
{
	struct rig *r = rig_new(true);
	struct client a;
	struct jitwg_event m2, m15;

	client_new(r, &a, 0);
	cache_set(r, a.pub, CACHE_FRESH, 0x0a000002);
	send_initiation(r, &a, 100, 1);
	rig_drain(r);
	make_event(r, &a, 200, 1, &m2);
	make_event(r, &a, 150, 1, &m15);
	send_event(r, &m2); /* a rekey */
	rig_drain(r);
	send_event(r, &m2); /* captured and replayed, from another host */
	m15.saddr[15] = 9;
	send_event(r, &m15);
	rig_drain(r);
	CHECK("pipeline: rekeys recorded, replayed rekeys refused while installed",
	      r->st.installed == 1 && r->st.sightings == 1 && r->st.replays == 2,
	      "installed %lu sightings %lu replays %lu", (unsigned long)r->st.installed,
	      (unsigned long)r->st.sightings, (unsigned long)r->st.replays);
	client_free(&a);
	rig_free(r);
}

/* A timestamp the cache cannot record (not even in memory): refused, no
 * request, nothing installed (the issue: accepted, so its replays passed). */
static void test_ts_write_failure(void)
{
	struct rig *r = rig_new(true);
	struct client a;

	client_new(r, &a, 0);
	cache_set(r, a.pub, CACHE_FRESH, 0x0a000002);
	r->cache.ts_fail = -ENOSPC;
	send_initiation(r, &a, 100, 1);
	rig_drain(r);
	CHECK("pipeline: an unrecorded timestamp is refused (fail closed)",
	      r->st.errors == 1 && r->st.installed == 0 && r->api.submits == 0 && r->fd.n == 0,
	      "errors %lu installed %lu submits %zu device %zu", (unsigned long)r->st.errors,
	      (unsigned long)r->st.installed, r->api.submits, r->fd.n);
	client_free(&a);
	rig_free(r);
}

/* What a revalidation's answer does, by answer and cached state. */
static void test_revalidate_decide(void)
{
	static const struct {
		enum api_status status;
		int err;
		long http;
		int state;
		enum reval_action want;
		const char *name;
	} rows[] = {
		{ API_FOUND, 0, 200, CACHE_STALE, REVAL_UPDATE, "200: update" },
		{ API_NOT_FOUND, 0, 404, CACHE_STALE, REVAL_REVOKE, "404: revoke" },
		{ API_ERROR, -EPROTO, 410, CACHE_STALE, REVAL_REVOKE, "410: revoke" },
		{ API_ERROR, -EACCES, 401, CACHE_STALE, REVAL_KEEP, "401: our token, keep" },
		{ API_ERROR, -EACCES, 401, CACHE_MISS, REVAL_EXPIRE, "401 past max-stale" },
		{ API_ERROR, -ETIMEDOUT, 0, CACHE_STALE, REVAL_KEEP, "timeout: keep" },
		{ API_ERROR, -EPROTO, 503, CACHE_STALE, REVAL_KEEP, "503: keep" },
		{ API_ERROR, -EPROTO, 429, CACHE_STALE, REVAL_KEEP, "429: keep" },
		{ API_ERROR, -EPROTO, 503, CACHE_MISS, REVAL_EXPIRE, "503 past max-stale" },
		{ API_ERROR, -EBADMSG, 200, CACHE_STALE, REVAL_KEEP, "malformed: keep" },
		{ API_ERROR, -EBADMSG, 200, CACHE_MISS, REVAL_EXPIRE, "malformed past max-stale" },
	};
	bool ok = true;

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct api_result res = { .status = rows[i].status, .err = rows[i].err,
					  .http_status = rows[i].http };
		enum reval_action a = revalidate_decide(&res, rows[i].state);

		ok &= EXPECT(a == rows[i].want, "%s: %s", rows[i].name, reval_action_str(a));
	}
	CHECK("pipeline: revalidation decisions", ok, "see above");
}

/*
 * Revalidation end to end against the fakes: a managed peer asked about
 * again; 401 keeps it; 404 removes it at once, sealed and cached as
 * unknown; an operator's eviction removes another.
 */
static void test_revalidate(void)
{
	struct rig *r = rig_new(true);
	struct client a, b;
	int ret;

	client_new(r, &a, 0);
	client_new(r, &b, 1);
	cache_set(r, a.pub, CACHE_STALE, 0x0a000002);
	cache_set(r, b.pub, CACHE_FRESH, 0x0a000003);
	send_initiation(r, &a, 100, 1);
	rig_drain(r);
	api_answer_http(r, API_ERROR, -ETIMEDOUT, 0, NULL); /* installed from stale */
	send_initiation(r, &b, 100, 2);
	rig_drain(r);
	ret = daemon_revalidate(r->d, a.pub);
	api_answer_http(r, API_ERROR, -EACCES, 401, NULL);
	revalidate_apply(r->d);
	daemon_get_stats(r->d, &r->st);
	CHECK("pipeline: revalidation on 401 keeps the peer",
	      ret == 0 && r->api.ctx == revalidate_ctx && dev_find(&r->fd, a.pub) &&
	      r->st.revalidate_failed == 1 && r->cache.seals == 0,
	      "ret %d device %d failed %lu seals %zu", ret, dev_find(&r->fd, a.pub) != NULL,
	      (unsigned long)r->st.revalidate_failed, r->cache.seals);
	r->mono += 5000000000ull;
	daemon_revalidate(r->d, a.pub);
	api_answer_http(r, API_NOT_FOUND, 0, 404, NULL);
	revalidate_apply(r->d);
	daemon_get_stats(r->d, &r->st);
	CHECK("pipeline: revalidation on 404 removes the peer, sealed",
	      !dev_find(&r->fd, a.pub) && dev_find(&r->fd, b.pub) && r->st.evicted_revoked == 1 &&
	      r->cache.seals == 1 && r->cache.put_negatives == 1 &&
	      !ptab_is_managed(r->d->peers, a.pub),
	      "device a %d b %d evicted_revoked %lu seals %zu negatives %zu",
	      dev_find(&r->fd, a.pub) != NULL, dev_find(&r->fd, b.pub) != NULL,
	      (unsigned long)r->st.evicted_revoked, r->cache.seals, r->cache.put_negatives);
	ret = daemon_evict(r->d, b.pub);
	revalidate_apply(r->d);
	daemon_get_stats(r->d, &r->st);
	CHECK("pipeline: an operator's eviction", ret == 0 && !dev_find(&r->fd, b.pub) &&
	      r->st.evicted_operator == 1 && r->cache.seals == 2 &&
	      daemon_evict(r->d, b.pub) == -ENOENT,
	      "ret %d device %d evicted_operator %lu", ret,
	      dev_find(&r->fd, b.pub) != NULL, (unsigned long)r->st.evicted_operator);
	client_free(&a);
	client_free(&b);
	rig_free(r);
}

/*
 * --consume's lease: renewed only while the oldest queued job is young
 * (the issue: renewed whenever any job completed, so a daemon keeping up
 * only slowly never failed open).
 */
static void test_lease_age(void)
{
	struct rig *r = rig_new(true);
	struct client a;
	struct jitwg_event ev;
	bool first, slow;

	client_new(r, &a, 0);
	cache_set(r, a.pub, CACHE_NEGATIVE, 0);
	make_event(r, &a, 100, 1, &ev);
	daemon_on_event(r->d, &ev);
	first = daemon_keeping_up(r->d); /* queued, no progress yet */
	rig_drain(r);
	make_event(r, &a, 200, 1, &ev);
	daemon_on_event(r->d, &ev);
	r->mono += 300 * 1000000ull; /* progress made, but this one waits */
	slow = daemon_keeping_up(r->d);
	rig_drain(r);
	CHECK("pipeline: the lease lapses while the oldest queued job is 300 ms old",
	      !first && !slow && daemon_keeping_up(r->d), "first %d slow %d", first, slow);
	client_free(&a);
	rig_free(r);
}

/*
 * An initiation XDP admitted on a verified source's budget is served before
 * the queue's backlog (a returning client behind a flood), in the order such
 * initiations came, and the queue's age is still its oldest job's.
 */
static void test_verified_first(void)
{
	static const uint8_t want[] = { 11, 12, 1, 2, 3 };
	struct rig *r = rig_new(false);
	struct jitwg_event ev;
	struct client a;
	uint8_t order[8];
	uint64_t oldest;
	size_t n = 0;
	struct job *j;
	int i;

	client_new(r, &a, 0);
	for (i = 1; i <= 3; i++) {
		make_event(r, &a, 100 + i, i, &ev);
		daemon_on_event(r->d, &ev);
		r->mono += 1000000;
	}
	for (i = 11; i <= 12; i++) {
		make_event(r, &a, 100 + i, i, &ev);
		ev.flags = JITWG_EV_VERIFIED;
		daemon_on_event(r->d, &ev);
	}
	pthread_mutex_lock(&r->d->intake.lock);
	for (j = r->d->intake.head; j && n < sizeof(order); j = j->next)
		order[n++] = j->ev.saddr[15];
	oldest = intake_oldest_locked(&r->d->intake);
	pthread_mutex_unlock(&r->d->intake.lock);
	rig_drain(r);
	CHECK("intake: verified sources' initiations first, in their order; age from the oldest",
	      n == sizeof(want) && !memcmp(order, want, n) &&
		      oldest == r->mono - 3000000 &&
		      atomic_load(&r->d->counters.intake_first) == 2,
	      "%zu queued, first %u %u, oldest %llu", n, n ? order[0] : 0,
	      n > 1 ? order[1] : 0, (unsigned long long)oldest);

	/* Not past a full queue: verified budgets add up over addresses. */
	{
		uint64_t full0 = atomic_load(&r->d->counters.queue_full);
		bool queued;

		pthread_mutex_lock(&r->d->intake.lock);
		r->d->intake.len = QUEUE_MAX; /* as if full; nothing is queued */
		pthread_mutex_unlock(&r->d->intake.lock);
		make_event(r, &a, 200, 21, &ev);
		ev.flags = JITWG_EV_VERIFIED;
		daemon_on_event(r->d, &ev);
		pthread_mutex_lock(&r->d->intake.lock);
		queued = r->d->intake.head != NULL;
		r->d->intake.len = queued ? 1 : 0;
		pthread_mutex_unlock(&r->d->intake.lock);
		rig_drain(r);
		CHECK("intake: a verified source's initiation is dropped at a full queue",
		      !queued && atomic_load(&r->d->counters.queue_full) == full0 + 1,
		      "queued %d, dropped %llu", queued,
		      (unsigned long long)(atomic_load(&r->d->counters.queue_full) - full0));
	}
	client_free(&a);
	rig_free(r);
}

/* A replay flood: byte-identical copies are refused before any DH. */
static void test_duplicates(void)
{
	struct rig *r = rig_new(true);
	struct client a;
	struct jitwg_event ev;
	int i;

	client_new(r, &a, 0);
	cache_set(r, a.pub, CACHE_FRESH, 0x0a000002);
	make_event(r, &a, 100, 1, &ev);
	for (i = 0; i < 50; i++) {
		ev.saddr[15] = (uint8_t)i; /* from anywhere */
		send_event(r, &ev);
	}
	rig_drain(r);
	CHECK("pipeline: 50 copies of one initiation, one decision",
	      r->st.installed == 1 && r->st.replays == 49 && r->cache.n_ts == 1,
	      "installed %lu replays %lu timestamps %zu", (unsigned long)r->st.installed,
	      (unsigned long)r->st.replays, r->cache.n_ts);
	client_free(&a);
	rig_free(r);
}

/* Rejections cannot flood the log: 20 lines a second, then a summary. */
static void test_reject_log_limit(void)
{
	struct rig *r = rig_new(true);
	struct client victim, attacker;
	char path[] = "/tmp/jitwg-rejlog-XXXXXX", line[512];
	int fd = mkstemp(path), saved = dup(2), lines = 0, summary = 0, i;
	FILE *f;

	client_new(r, &victim, 0);
	client_new(r, &attacker, 0);
	noise_initiator_forge_identity(attacker.in, victim.pub);
	log_level_current = LOG_INFO;
	dup2(fd, 2);
	for (i = 0; i < 100; i++)
		send_initiation(r, &attacker, 100 + i, 9);
	rig_drain(r);
	r->mono += 1100000000ull;
	reject_log_flush(r->d);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	log_level_current = LOG_ERROR;
	f = fdopen(fd, "r");
	rewind(f);
	while (f && fgets(line, sizeof(line), f)) {
		lines += !!strstr(line, "stage=authenticate");
		summary += !!strstr(line, "outcome=suppressed lines=80 authenticate=80");
	}
	if (f)
		fclose(f);
	unlink(path);
	CHECK("pipeline: 100 rejections, 20 lines and one summary",
	      r->d && lines == REJECT_LOG_PER_S && summary == 1, "lines %d summary %d", lines,
	      summary);
	client_free(&victim);
	client_free(&attacker);
	rig_free(r);
}

/*
 * An initiation identified while its key was still being installed, and
 * decided after the install: a sighting, not a second install (the churn
 * simulation saw 666 double installs in 2,919: clients answering the
 * gateway's initiation with their own).
 */
static void test_installed_meanwhile(void)
{
	struct rig *r = rig_new(true);
	struct client a;
	struct jitwg_event e2;
	struct authed a2;
	bool authed;

	client_new(r, &a, 0);
	cache_set(r, a.pub, CACHE_FRESH, 0x0a000002);
	send_initiation(r, &a, 100, 1);
	make_event(r, &a, 200, 1, &e2);
	authed = provision_event(r->d, &e2, &a2); /* identified before the install */
	rig_drain(r);                              /* the first one installs */
	provision_fresh(r->d, &a2, 0, mono(r->d));
	rig_drain(r);
	CHECK("pipeline: installed meanwhile: a sighting, not a second install",
	      authed && r->st.installed == 1 && r->st.sightings == 1 && r->fd.set_calls == 1,
	      "authed %d installed %lu sightings %lu set calls %zu", authed,
	      (unsigned long)r->st.installed, (unsigned long)r->st.sightings, r->fd.set_calls);
	client_free(&a);
	rig_free(r);
}

/* ---- cookie replies and mac2 (daemon_cookie.c) ---- */

struct sent_replies {
	struct cookie_out out[1024];
	size_t n;
};

static int f_cookie_send(void *arg, const struct cookie_out *out, size_t n)
{
	struct sent_replies *s = arg;
	size_t i;

	for (i = 0; i < n && s->n < 1024; i++)
		s->out[s->n++] = out[i];
	return (int)n;
}

/* The cookie of the last reply, opened as the client does; its initiation ev. */
static bool last_cookie(struct rig *r, struct sent_replies *s, const struct jitwg_event *ev,
			uint8_t cookie[16])
{
	return s->n && !cookie_open_reply(s->out[s->n - 1].msg, 64, r->gw_pub, ev->msg, cookie);
}

static void test_cookie_path(void)
{
	static struct sent_replies sent;
	struct daemon_cookie_ops ops = { .send = f_cookie_send, .arg = &sent };
	struct rig *r;
	struct client a, b;
	struct jitwg_event e1, e2;
	uint8_t cookie[16];
	const struct cookie_out *o;

	rig_cookie_mode = COOKIE_ALWAYS;
	rig_cookie_ops = &ops;
	r = rig_new(true);
	client_new(r, &a, 0);
	client_new(r, &b, 0);
	cache_set(r, a.pub, CACHE_FRESH, 0x0a000002);
	cache_set(r, b.pub, CACHE_FRESH, 0x0a000003);

	/* --cookie always: the first initiation gets a reply, no DH. */
	make_event(r, &a, 100, 201, &e1);
	send_event(r, &e1);
	rig_drain(r);
	o = &sent.out[0];
	CHECK("cookie: a reply instead of a DH",
	      sent.n == 1 && r->st.cookie_replies == 1 && r->st.installed == 0 &&
		      r->st.bad_identity == 0 && r->st.sightings == 0 && r->fd.set_calls == 0,
	      "sent %zu replies %lu installed %lu", sent.n, (unsigned long)r->st.cookie_replies,
	      (unsigned long)r->st.installed);
	CHECK("cookie: the reply goes from the WireGuard port back to the source",
	      sent.n == 1 && o->family == 4 && o->sport == PORT && o->dport == 40201 &&
		      !memcmp(o->daddr, e1.saddr, 16) && !memcmp(o->saddr, e1.daddr, 16),
	      "family %d %u -> %u", o->family, o->sport, o->dport);
	CHECK("cookie: the client opens the reply", last_cookie(r, &sent, &e1, cookie),
	      "did not open");

	/* Its retry carries mac2: authenticated and installed. */
	make_event(r, &a, 105, 201, &e2);
	if (cookie_add_mac2(e2.msg, cookie))
		abort();
	send_event(r, &e2);
	rig_drain(r);
	CHECK("cookie: the retry with mac2 is installed",
	      r->st.mac2_valid == 1 && r->st.installed == 1 && on_device(r, a.pub, 201) &&
		      sent.n == 1,
	      "mac2 valid %lu installed %lu replies %zu", (unsigned long)r->st.mac2_valid,
	      (unsigned long)r->st.installed, sent.n);

	/* b's cookie, used from another address: invalid, another reply.
	 * (Hosts far from .1-.2: a source that is this machine's own
	 * address gets no reply, and CI hosts live in 192.0.2.0/24 too.) */
	make_event(r, &b, 100, 202, &e1);
	send_event(r, &e1);
	rig_drain(r);
	if (!last_cookie(r, &sent, &e1, cookie))
		abort();
	make_event(r, &b, 105, 203, &e2);
	if (cookie_add_mac2(e2.msg, cookie))
		abort();
	send_event(r, &e2);
	rig_drain(r);
	CHECK("cookie: a mac2 from another source is invalid and gets a reply",
	      r->st.mac2_invalid == 1 && r->st.mac2_valid == 1 && sent.n == 3 &&
		      r->st.installed == 1 && !dev_find(&r->fd, b.pub),
	      "invalid %lu replies %zu installed %lu", (unsigned long)r->st.mac2_invalid,
	      sent.n, (unsigned long)r->st.installed);

	/* Sources no client can have get no reply (a local socket would). */
	{
		size_t before = sent.n;

		make_event(r, &b, 120, 207, &e1);
		e1.saddr[12] = 127;
		send_event(r, &e1);
		make_event(r, &b, 121, 207, &e1);
		e1.saddr[12] = 224;
		send_event(r, &e1);
		make_event(r, &b, 122, 207, &e1);
		e1.sport = 0;
		send_event(r, &e1);
		rig_drain(r);
		CHECK("cookie: no reply to loopback, multicast or port 0",
		      sent.n == before && r->st.cookie_send_errors == 3 && r->st.installed == 1,
		      "replies %zu refused %lu", sent.n - before,
		      (unsigned long)r->st.cookie_send_errors);
	}

	/* A source that completed a handshake never needs one. */
	{
		uint8_t addr[16] = { [10] = 0xff, [11] = 0xff, 192, 0, 2, 204 };

		budget_mark_verified(r->d, addr);
		send_initiation(r, &b, 110, 204);
		rig_drain(r);
		CHECK("cookie: a verified source passes without one",
		      sent.n == 3 && r->st.installed == 2 && on_device(r, b.pub, 204),
		      "replies %zu installed %lu", sent.n, (unsigned long)r->st.installed);
	}
	client_free(&a);
	client_free(&b);
	rig_free(r);

	/* --cookie never: no replies, mac2 not even looked at. */
	sent.n = 0;
	rig_cookie_mode = COOKIE_NEVER;
	r = rig_new(true);
	client_new(r, &a, 0);
	cache_set(r, a.pub, CACHE_FRESH, 0x0a000002);
	send_initiation(r, &a, 100, 1);
	rig_drain(r);
	CHECK("cookie: never: installed on the first initiation",
	      sent.n == 0 && r->st.installed == 1, "replies %zu installed %lu", sent.n,
	      (unsigned long)r->st.installed);
	client_free(&a);
	rig_free(r);

	/* auto: none while the queue is short; under load, replies, and a
	 * valid mac2 goes to the head of the queue. */
	sent.n = 0;
	rig_cookie_mode = COOKIE_AUTO;
	r = rig_new(true);
	client_new(r, &a, 0);
	client_new(r, &b, 0);
	cache_set(r, a.pub, CACHE_FRESH, 0x0a000002);
	send_initiation(r, &a, 100, 1);
	rig_drain(r);
	CHECK("cookie: auto: no reply while the workers keep up",
	      sent.n == 0 && r->st.installed == 1, "replies %zu installed %lu", sent.n,
	      (unsigned long)r->st.installed);
	/* A mac2 jitwgd cannot verify (the device's cookie, say): not under
	 * load, decoded as usual, neither dropped nor put first. */
	{
		struct client x;

		client_new(r, &x, 0);
		cache_set(r, x.pub, CACHE_FRESH, 0x0a000009);
		make_event(r, &x, 100, 209, &e1);
		randombytes_buf(e1.msg + 132, 16);
		send_event(r, &e1);
		rig_drain(r);
		CHECK("cookie: auto: a mac2 jitwgd cannot verify is decoded as usual",
		      sent.n == 0 && r->st.mac2_invalid == 1 && r->st.mac2_valid == 0 &&
			      r->st.installed == 2 && on_device(r, x.pub, 209),
		      "replies %zu invalid %lu installed %lu", sent.n,
		      (unsigned long)r->st.mac2_invalid, (unsigned long)r->st.installed);
		client_free(&x);
	}
	{
		int i;

		/* Queued initiations of b (unknown: fetched once, the rest
		 * wait): no reply while the workers are less than a second
		 * behind, replies once the oldest has waited longer. */
		for (i = 0; i < 5; i++)
			send_initiation(r, &b, 200 + (uint64_t)i, 205);
		daemon_cookie_flush(r->d);
		CHECK("cookie: auto: none while the queue is young", sent.n == 0,
		      "replies %zu", sent.n);
		r->mono += 1500ull * 1000000ull;
		for (i = 0; i < 5; i++)
			send_initiation(r, &b, 300 + (uint64_t)i, 205);
		daemon_cookie_flush(r->d);
		daemon_get_stats(r->d, &r->st);
		CHECK("cookie: auto: replies once the workers are a second behind",
		      sent.n == 5 && r->st.cookie_replies == 5 && r->d->intake.len == 5,
		      "replies %zu queued %zu", sent.n, r->d->intake.len);
		make_event(r, &a, 400, 206, &e1);
		send_event(r, &e1);
		daemon_cookie_flush(r->d);
		if (!last_cookie(r, &sent, &e1, cookie))
			abort();
		make_event(r, &a, 405, 206, &e2);
		if (cookie_add_mac2(e2.msg, cookie))
			abort();
		send_event(r, &e2);
		daemon_get_stats(r->d, &r->st);
		CHECK("cookie: auto: a valid mac2 goes first, ahead of the flood",
		      r->st.mac2_valid == 1 && r->d->intake.head &&
			      !memcmp(r->d->intake.head->ev.msg, e2.msg, sizeof(e2.msg)),
		      "mac2 valid %lu, head is %s", (unsigned long)r->st.mac2_valid,
		      r->d->intake.head ? "another job" : "none");
		rig_drain(r);
	}
	client_free(&a);
	client_free(&b);
	rig_free(r);
	rig_cookie_ops = NULL;
}

/*
 * A key the control plane does not know (negative cache) stops right after
 * identify: no second DH (no timestamp read or recorded), no pending, no
 * lookup; its forgeries too. Rows: a genuine initiation, a forged one.
 */
static void test_unknown_after_identify(void)
{
	static const struct {
		const char *name;
		bool forged;
	} rows[] = {
		{ "pipeline: a negatively cached key stops after identify", false },
		{ "pipeline: a forgery of a negatively cached key stops after identify", true },
	};
	size_t i;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct rig *r = rig_new(true);
		struct client a, b;

		client_new(r, &a, 0);
		client_new(r, &b, 0);
		cache_set(r, a.pub, CACHE_NEGATIVE, 0);
		if (rows[i].forged)
			noise_initiator_forge_identity(b.in, a.pub);
		send_initiation(r, rows[i].forged ? &b : &a, 100, 1);
		send_initiation(r, rows[i].forged ? &b : &a, 101, 1);
		rig_drain(r);
		CHECK(rows[i].name,
		      r->st.unknown == 2 && r->st.bad_auth == 0 && r->cache.n_ts == 0 &&
		      r->api.submits == 0 && r->st.waiting == 0 && r->fd.n == 0,
		      "unknown %lu bad_auth %lu timestamps %zu submits %zu waiting %lu",
		      (unsigned long)r->st.unknown, (unsigned long)r->st.bad_auth,
		      r->cache.n_ts, r->api.submits, (unsigned long)r->st.waiting);
		client_free(&a);
		client_free(&b);
		rig_free(r);
	}
}

/* A pending provisioning of a random key from ip4:port, as a lookup needs. */
static struct pending *lane_pending(struct rig *r, uint32_t ip4)
{
	struct jitwg_event ev;
	union wgdev_endpoint ep;
	uint8_t key[32];
	struct pending *p;
	bool busy;

	memset(&ev, 0, sizeof(ev));
	memset(&ep, 0, sizeof(ep));
	ep.addr4.sin_family = AF_INET;
	ep.addr4.sin_addr.s_addr = htonl(ip4);
	ep.addr4.sin_port = htons(40000);
	randombytes_buf(key, sizeof(key));
	p = pending_claim(r->d, key, &ev, &ep, &busy);
	if (!p)
		abort();
	return p;
}

/* The control plane answers the lookup of pending p: 404. */
static void lane_answer(struct rig *r, struct pending *p)
{
	struct api_result res;

	memset(&res, 0, sizeof(res));
	res.status = API_NOT_FOUND;
	res.http_status = 404;
	res.attempts = 1;
	daemon_api_done(p->key, &res, p, r->d);
	rig_drain(r);
}

/*
 * Control-plane fairness, the control plane holding every request: 10,000
 * fresh keys from one /24 take the fresh lane's share of the transfers and
 * its bounded queue (the oldest shed); a returning client's lookup (a
 * stale cached answer: the priority lane) starts at once; a new client
 * from another prefix starts at the first slot the flood frees.
 */
static void test_lanes(void)
{
	struct rig *r = rig_new(true);
	struct pending *p, *ret, *fresh;
	union wgdev_endpoint ep;
	struct lanes_stats ls;
	unsigned int flood_bucket;
	uint32_t other = 0xcb007100u; /* 203.0.113.0 */
	int i;

	for (i = 0; i < 10000; i++) {
		p = lane_pending(r, 0xc6336400u | (uint32_t)(i & 0xff)); /* 198.51.100.x */
		lanes_submit(r->d, p, LANE_FRESH);
	}
	daemon_get_stats(r->d, &r->st);
	lanes_stats(r->d, &ls);
	CHECK("pipeline: a fresh-key flood takes the fresh lane's share, its queue bounded",
	      r->api.submits == FETCH_FRESH_INFLIGHT && ls.fresh == FETCH_FRESH_MAX &&
	      r->st.fetch_shed == 10000 - FETCH_FRESH_INFLIGHT - FETCH_FRESH_MAX,
	      "submits %zu waiting %zu shed %lu", r->api.submits, ls.fresh,
	      (unsigned long)r->st.fetch_shed);
	ret = lane_pending(r, 0xc0000207u);
	lanes_submit(r->d, ret, LANE_PRIO);
	CHECK("pipeline: a returning client's lookup starts at once during the flood",
	      r->api.submits == FETCH_FRESH_INFLIGHT + 1 && r->api.ctx == ret,
	      "submits %zu, last is the returning client's: %d", r->api.submits,
	      r->api.ctx == ret);
	/* A new client from a prefix of its own (its own FIFO: the keyed
	 * hash of the flood's /24 must not be its). */
	memset(&ep, 0, sizeof(ep));
	ep.addr4.sin_family = AF_INET;
	ep.addr4.sin_addr.s_addr = htonl(0xc6336400u);
	flood_bucket = lanes_bucket(r->d, &ep);
	do {
		other += 0x100;
		ep.addr4.sin_addr.s_addr = htonl(other | 7);
	} while (lanes_bucket(r->d, &ep) == flood_bucket);
	fresh = lane_pending(r, other | 7);
	lanes_submit(r->d, fresh, LANE_FRESH);
	lane_answer(r, r->api.ctxs[0]);
	CHECK("pipeline: a new client from another prefix starts at the flood's next freed slot",
	      r->api.submits == FETCH_FRESH_INFLIGHT + 2 && r->api.ctx == fresh,
	      "submits %zu, last is the new client's: %d", r->api.submits,
	      r->api.ctx == fresh);
	rig_free(r);
}

/*
 * The CPU share, its DH cost set so that the bucket holds 10 DHs, a
 * quarter of them kept for priority work, on a clock that stands still:
 * fresh sources get 3 initiations and one identify, the rest is refused;
 * a verified source's initiation still goes through; a second later the
 * bucket is full again.
 */
static void test_budget(void)
{
	struct rig *r = rig_new(true);
	struct client f[5], v;
	int i;

	budget_set_cost(r->d, (uint64_t)r->o.max_cpu * 10000000ull / 10);
	for (i = 0; i < 5; i++) {
		client_new(r, &f[i], 0);
		send_initiation(r, &f[i], 100, (uint8_t)(10 + i));
	}
	rig_drain(r);
	CHECK("pipeline: under the budget, fresh sources stop at the reserve",
	      r->st.budget_refused == 2 && r->api.submits == 3,
	      "refused %lu submits %zu", (unsigned long)r->st.budget_refused,
	      r->api.submits);
	client_new(r, &v, 0);
	cache_set(r, v.pub, CACHE_FRESH, 0x0a000002);
	budget_mark_verified(r->d, (const uint8_t[16]){ [10] = 0xff, [11] = 0xff,
						      192, 0, 2, 9 });
	send_initiation(r, &v, 100, 9);
	rig_drain(r);
	CHECK("pipeline: a verified source is served from the reserve",
	      r->st.budget_refused == 2 && r->st.installed == 1 && on_device(r, v.pub, 9),
	      "refused %lu installed %lu", (unsigned long)r->st.budget_refused,
	      (unsigned long)r->st.installed);
	r->mono += 1000000000ull;
	send_initiation(r, &f[4], 101, 14);
	rig_drain(r);
	CHECK("pipeline: the budget refills with time",
	      r->st.budget_refused == 2 && r->api.submits == 4,
	      "refused %lu submits %zu", (unsigned long)r->st.budget_refused,
	      r->api.submits);
	for (i = 0; i < 5; i++)
		client_free(&f[i]);
	client_free(&v);
	rig_free(r);
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	log_level_current = LOG_ERROR;
	test_cache_hit();
	test_spoof();
	test_replay();
	test_unknown_key();
	test_api_found();
	test_overlap();
	test_stale();
	test_api_error();
	test_install_failure();
	test_malformed();
	test_pending_table();
	test_handshake_starts();
	test_handshake_starts_mixed();
	test_rekey_recorded();
	test_ts_write_failure();
	test_revalidate_decide();
	test_revalidate();
	test_lease_age();
	test_verified_first();
	test_duplicates();
	test_reject_log_limit();
	test_installed_meanwhile();
	test_cookie_path();
	test_unknown_after_identify();
	test_lanes();
	test_budget();
	CHECK_EXIT();
}
