// SPDX-License-Identifier: MIT
/*
 * The persistent cache on LMDB. See include/cache.h for the model.
 *
 * Why LMDB fits: a copy-on-write B+tree whose commit is atomic (the meta
 * page flip), so a kill -9 at any instant leaves either the old or the new
 * state and opening never scans or repairs; readers never block writers,
 * which matters with several worker threads reading while one writes.
 *
 * Records are stored in host byte order with a version byte: the cache is a
 * local file, never shipped between machines.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <lmdb.h>
#include <sodium.h>

#include "cache.h"

enum {
	REC_VERSION = 1,
	REC_POSITIVE = 1,
	REC_NEGATIVE = 2,
	FOREACH_BATCH = 256,
	MAX_READERS = 256,
};

/* On-disk positive/negative entry; followed by n_ips struct disk_ip. */
struct disk_peer {
	uint8_t version;
	uint8_t kind;          /* REC_POSITIVE or REC_NEGATIVE */
	uint16_t keepalive;
	uint32_t flags;        /* api_peer_flags */
	uint32_t ttl;
	uint32_t n_ips;
	uint64_t fetched_at;
	uint64_t expires_at;
	uint8_t psk[32];
};

struct disk_ip {
	uint8_t family;        /* 4 or 6 */
	uint8_t cidr;
	uint8_t addr[16];
};

struct disk_managed {
	uint8_t version;
	uint8_t family;        /* 0 none, 4 or 6 */
	uint16_t port;         /* host order */
	uint32_t flags;
	uint64_t installed_at;
	uint64_t last_seen;
	uint32_t scope_id;
	uint32_t flowinfo;
	uint8_t addr[16];
};

struct cache {
	MDB_env *env;
	MDB_dbi peers, ts, managed;
	uint32_t default_ttl, negative_ttl;
	/* CACHE_SYNC_PERIODIC: the syncing thread */
	uint32_t sync_interval_ms;
	bool syncer;
	bool stop;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
};

static int err(int rc)
{
	switch (rc) {
	case 0:
		return 0;
	case MDB_NOTFOUND:
		return -ENOENT;
	case MDB_MAP_FULL:
	case MDB_TXN_FULL:
		return -ENOSPC;
	case MDB_READERS_FULL:
		return -EAGAIN;
	default:
		/* LMDB passes system errors through as positive errno values. */
		if (rc > 0 && rc < 1000)
			return -rc;
		return -EIO;
	}
}

/*
 * End write transaction txn: commit it if ret is 0, else abort it. Returns
 * ret, or the commit's error as -errno. Either way txn is freed.
 */
static int commit_or_abort(MDB_txn *txn, int ret)
{
	if (ret) {
		mdb_txn_abort(txn);
		return ret;
	}
	return err(mdb_txn_commit(txn));
}

/* CACHE_SYNC_PERIODIC: flush committed pages every interval. */
static void *syncer(void *arg)
{
	struct cache *c = arg;
	struct timespec t;

	pthread_mutex_lock(&c->mu);
	while (!c->stop) {
		clock_gettime(CLOCK_MONOTONIC, &t);
		t.tv_sec += c->sync_interval_ms / 1000;
		t.tv_nsec += (long)(c->sync_interval_ms % 1000) * 1000000;
		if (t.tv_nsec >= 1000000000) {
			t.tv_sec++;
			t.tv_nsec -= 1000000000;
		}
		while (!c->stop &&
		       pthread_cond_timedwait(&c->cv, &c->mu, &t) != ETIMEDOUT)
			;
		if (c->stop)
			break;
		pthread_mutex_unlock(&c->mu);
		mdb_env_sync(c->env, 1);
		pthread_mutex_lock(&c->mu);
	}
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

int cache_open(struct cache **out, const char *dir,
	       const struct cache_options *opts)
{
	enum cache_sync sync = CACHE_SYNC_FULL;
	unsigned flags = MDB_NOTLS | MDB_NORDAHEAD;
	struct cache *c;
	MDB_txn *txn = NULL;
	uint64_t map_size = CACHE_DEFAULT_MAP_SIZE;
	pthread_condattr_t ca;
	int dead, rc;

	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->default_ttl = CACHE_DEFAULT_TTL;
	c->negative_ttl = CACHE_DEFAULT_NEGATIVE_TTL;
	if (opts) {
		if (opts->map_size)
			map_size = opts->map_size;
		if (opts->default_ttl)
			c->default_ttl = opts->default_ttl;
		if (opts->negative_ttl)
			c->negative_ttl = opts->negative_ttl;
		sync = opts->sync;
		c->sync_interval_ms = opts->sync_interval_ms;
	}
	if (!c->sync_interval_ms)
		c->sync_interval_ms = 1000;
	if (sync == CACHE_SYNC_NOMETA)
		flags |= MDB_NOMETASYNC;
	else if (sync == CACHE_SYNC_PERIODIC)
		flags |= MDB_NOSYNC | MDB_WRITEMAP;
	pthread_mutex_init(&c->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c->cv, &ca);
	pthread_condattr_destroy(&ca);

	rc = mdb_env_create(&c->env);
	if (rc)
		goto err_free;
	rc = mdb_env_set_mapsize(c->env, map_size);
	if (rc)
		goto err_env;
	rc = mdb_env_set_maxdbs(c->env, 4);
	if (rc)
		goto err_env;
	rc = mdb_env_set_maxreaders(c->env, MAX_READERS);
	if (rc)
		goto err_env;
	/*
	 * MDB_NOTLS: read transactions own a reader slot per transaction, not
	 * per thread, so any worker may read at any time. MDB_NORDAHEAD: lookups
	 * are random, readahead would only inflate the resident set of a large
	 * cache. By default durable commits (no MDB_NOSYNC / MDB_NOMETASYNC):
	 * a crash never loses an acknowledged write; the price is one fsync per
	 * write. See enum cache_sync for the other modes.
	 */
	rc = mdb_env_open(c->env, dir, flags, 0600);
	if (rc)
		goto err_env;
	/* Reader slots left behind by a killed process would pin old pages. */
	mdb_reader_check(c->env, &dead);

	rc = mdb_txn_begin(c->env, NULL, 0, &txn);
	if (rc)
		goto err_env;
	rc = mdb_dbi_open(txn, "peers", MDB_CREATE, &c->peers);
	if (!rc)
		rc = mdb_dbi_open(txn, "ts", MDB_CREATE, &c->ts);
	if (!rc)
		rc = mdb_dbi_open(txn, "managed", MDB_CREATE, &c->managed);
	if (rc) {
		mdb_txn_abort(txn);
		goto err_env;
	}
	rc = mdb_txn_commit(txn);
	if (rc)
		goto err_env;
	if (sync == CACHE_SYNC_PERIODIC) {
		rc = pthread_create(&c->thread, NULL, syncer, c);
		if (rc)
			goto err_env;
		c->syncer = true;
	}
	*out = c;
	return 0;

err_env:
	mdb_env_close(c->env);
err_free:
	pthread_cond_destroy(&c->cv);
	pthread_mutex_destroy(&c->mu);
	free(c);
	return err(rc);
}

void cache_close(struct cache *c)
{
	if (!c)
		return;
	if (c->syncer) {
		pthread_mutex_lock(&c->mu);
		c->stop = true;
		pthread_cond_signal(&c->cv);
		pthread_mutex_unlock(&c->mu);
		pthread_join(c->thread, NULL);
	}
	/* Whatever NOMETA or PERIODIC left in the page cache goes to disk. */
	mdb_env_sync(c->env, 1);
	mdb_env_close(c->env);
	pthread_cond_destroy(&c->cv);
	pthread_mutex_destroy(&c->mu);
	free(c);
}

/* One put in its own write transaction. */
static int put(struct cache *c, MDB_dbi dbi, const uint8_t key[32],
	       const void *val, size_t len)
{
	MDB_txn *txn;
	MDB_val k = { .mv_size = 32, .mv_data = (void *)key };
	MDB_val v = { .mv_size = len, .mv_data = (void *)val };
	int rc;

	rc = mdb_txn_begin(c->env, NULL, 0, &txn);
	if (rc)
		return err(rc);
	rc = mdb_put(txn, dbi, &k, &v, 0);
	return commit_or_abort(txn, err(rc));
}

static int del(struct cache *c, MDB_dbi dbi, const uint8_t key[32])
{
	MDB_txn *txn;
	MDB_val k = { .mv_size = 32, .mv_data = (void *)key };
	int rc;

	rc = mdb_txn_begin(c->env, NULL, 0, &txn);
	if (rc)
		return err(rc);
	rc = mdb_del(txn, dbi, &k, NULL);
	return commit_or_abort(txn, err(rc));
}

/*
 * Copy the value of key into buf (at most cap bytes) in a read transaction.
 * Returns the value's length or -errno; -EIO if it does not fit.
 */
static long get(struct cache *c, MDB_dbi dbi, const uint8_t key[32],
		void *buf, size_t cap)
{
	MDB_txn *txn;
	MDB_val k = { .mv_size = 32, .mv_data = (void *)key };
	MDB_val v;
	long ret;
	int rc;

	rc = mdb_txn_begin(c->env, NULL, MDB_RDONLY, &txn);
	if (rc)
		return err(rc);
	rc = mdb_get(txn, dbi, &k, &v);
	if (rc) {
		ret = err(rc);
	} else if (v.mv_size > cap) {
		ret = -EIO;
	} else {
		memcpy(buf, v.mv_data, v.mv_size);
		ret = (long)v.mv_size;
	}
	mdb_txn_abort(txn);
	return ret;
}

enum { PEER_REC_MAX = sizeof(struct disk_peer) +
		      API_MAX_ALLOWED_IPS * sizeof(struct disk_ip) };

/* Serialise p into buf; returns the length. The caller wipes buf. */
static size_t encode_peer(struct cache *c, uint8_t buf[PEER_REC_MAX],
			  const struct api_peer *p, uint64_t now)
{
	struct disk_peer d = { 0 };
	size_t i, len;

	d.version = REC_VERSION;
	d.kind = REC_POSITIVE;
	d.keepalive = p->persistent_keepalive;
	d.flags = p->flags;
	d.ttl = (p->flags & API_PEER_HAS_TTL) ? p->ttl : c->default_ttl;
	d.n_ips = (uint32_t)p->n_allowed_ips;
	d.fetched_at = now;
	d.expires_at = now + d.ttl;
	if (p->flags & API_PEER_HAS_PSK)
		memcpy(d.psk, p->preshared_key, 32);
	memcpy(buf, &d, sizeof(d));
	len = sizeof(d);
	for (i = 0; i < p->n_allowed_ips; i++) {
		const struct wgdev_allowed_ip *a = &p->allowed_ips[i];
		struct disk_ip ip = { 0 };

		ip.family = a->family == AF_INET ? 4 : 6;
		ip.cidr = a->cidr;
		if (a->family == AF_INET)
			memcpy(ip.addr, &a->ip4, 4);
		else
			memcpy(ip.addr, &a->ip6, 16);
		memcpy(buf + len, &ip, sizeof(ip));
		len += sizeof(ip);
	}
	sodium_memzero(&d, sizeof(d));
	return len;
}

int cache_put_peer(struct cache *c, const struct api_peer *p, uint64_t now)
{
	uint8_t buf[PEER_REC_MAX];
	int ret;

	if (p->n_allowed_ips > API_MAX_ALLOWED_IPS)
		return -EINVAL;
	ret = put(c, c->peers, p->public_key, buf, encode_peer(c, buf, p, now));
	sodium_memzero(buf, sizeof(buf));
	return ret;
}

int cache_put_peers(struct cache *c, const struct api_peer *peers, size_t n,
		    uint64_t now)
{
	uint8_t buf[PEER_REC_MAX];
	MDB_txn *txn;
	MDB_val k, v;
	int rc = 0;

	for (size_t i = 0; i < n; i++)
		if (peers[i].n_allowed_ips > API_MAX_ALLOWED_IPS)
			return -EINVAL;
	rc = mdb_txn_begin(c->env, NULL, 0, &txn);
	if (rc)
		return err(rc);
	for (size_t i = 0; i < n && !rc; i++) {
		k.mv_size = 32;
		k.mv_data = (void *)peers[i].public_key;
		v.mv_size = encode_peer(c, buf, &peers[i], now);
		v.mv_data = buf;
		rc = mdb_put(txn, c->peers, &k, &v, 0);
	}
	sodium_memzero(buf, sizeof(buf));
	return commit_or_abort(txn, err(rc));
}

int cache_put_negative(struct cache *c, const uint8_t key[static 32],
		       uint64_t now)
{
	struct disk_peer d = { 0 };

	d.version = REC_VERSION;
	d.kind = REC_NEGATIVE;
	d.ttl = c->negative_ttl;
	d.fetched_at = now;
	d.expires_at = now + c->negative_ttl;
	return put(c, c->peers, key, &d, sizeof(d));
}

int cache_get_peer(struct cache *c, const uint8_t key[static 32], uint64_t now,
		   struct cache_entry *out)
{
	uint8_t buf[PEER_REC_MAX];
	struct disk_peer d;
	long len;
	size_t i;
	int ret;

	len = get(c, c->peers, key, buf, sizeof(buf));
	if (len == -ENOENT)
		return CACHE_MISS;
	if (len < 0)
		return (int)len;
	ret = -EIO;
	if ((size_t)len < sizeof(d))
		goto out;
	memcpy(&d, buf, sizeof(d));
	if (d.version != REC_VERSION)
		goto out;
	if (d.kind == REC_NEGATIVE) {
		if (now >= d.expires_at) {
			ret = CACHE_MISS;
			goto out;
		}
		if (out) {
			memset(out, 0, sizeof(*out));
			memcpy(out->peer.public_key, key, 32);
			out->fetched_at = d.fetched_at;
			out->expires_at = d.expires_at;
		}
		ret = CACHE_NEGATIVE;
		goto out;
	}
	if (d.kind != REC_POSITIVE || d.n_ips > API_MAX_ALLOWED_IPS ||
	    (size_t)len != sizeof(d) + d.n_ips * sizeof(struct disk_ip))
		goto out;
	ret = now < d.expires_at ? CACHE_FRESH : CACHE_STALE;
	if (!out)
		goto out;
	memset(out, 0, sizeof(*out));
	memcpy(out->peer.public_key, key, 32);
	out->peer.flags = d.flags;
	out->peer.persistent_keepalive = d.keepalive;
	out->peer.ttl = d.ttl;
	if (d.flags & API_PEER_HAS_PSK)
		memcpy(out->peer.preshared_key, d.psk, 32);
	out->peer.n_allowed_ips = d.n_ips;
	for (i = 0; i < d.n_ips; i++) {
		struct wgdev_allowed_ip *a = &out->peer.allowed_ips[i];
		struct disk_ip ip;

		memcpy(&ip, buf + sizeof(d) + i * sizeof(ip), sizeof(ip));
		a->cidr = ip.cidr;
		if (ip.family == 4) {
			a->family = AF_INET;
			memcpy(&a->ip4, ip.addr, 4);
		} else {
			a->family = AF_INET6;
			memcpy(&a->ip6, ip.addr, 16);
		}
	}
	out->fetched_at = d.fetched_at;
	out->expires_at = d.expires_at;
out:
	sodium_memzero(&d, sizeof(d));
	sodium_memzero(buf, (size_t)len); /* only what get() copied */
	return ret;
}

int cache_del_peer(struct cache *c, const uint8_t key[static 32])
{
	return del(c, c->peers, key);
}

/* -ESTALE if txn holds a timestamp for key at least as new as ts, else 0 or -errno. */
static int ts_check(MDB_txn *txn, MDB_dbi dbi, const uint8_t key[32],
		    const uint8_t ts[CACHE_TS_LEN])
{
	MDB_val k = { .mv_size = 32, .mv_data = (void *)key }, v;
	int rc = mdb_get(txn, dbi, &k, &v);

	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc)
		return err(rc);
	return v.mv_size == CACHE_TS_LEN && memcmp(ts, v.mv_data, CACHE_TS_LEN) <= 0 ?
		       -ESTALE : 0;
}

int cache_ts_accept_many(struct cache *c, const uint8_t (*keys)[32],
			 const uint8_t (*ts)[CACHE_TS_LEN], int *res, size_t n)
{
	MDB_txn *txn;
	MDB_val k = { .mv_size = 32 }, v = { .mv_size = CACHE_TS_LEN };
	size_t i;
	int rc;

	if (!n)
		return 0;
	for (i = 0; i < n; i++)
		res[i] = 0;
	/*
	 * Read and write in one write transaction: two workers racing with the
	 * same initiation cannot both see "newer" (WireGuard paper §5.1: an
	 * initiation is accepted only with a timestamp greater than the last).
	 * The same key twice in one batch: the second reads the first's write.
	 */
	rc = mdb_txn_begin(c->env, NULL, 0, &txn);
	if (rc) {
		rc = err(rc);
		goto fail;
	}
	for (i = 0; i < n && !rc; i++) {
		res[i] = ts_check(txn, c->ts, keys[i], ts[i]);
		if (res[i] == -ESTALE)
			continue;
		rc = res[i];
		if (!rc) {
			k.mv_data = (void *)keys[i];
			v.mv_data = (void *)ts[i];
			rc = err(mdb_put(txn, c->ts, &k, &v, 0));
		}
	}
	rc = commit_or_abort(txn, rc);
	if (!rc)
		return 0;
fail:
	/*
	 * Nothing was stored. A cache that cannot be written (map full, disk
	 * error) must not let a replay through: every row not already found
	 * stale is checked again, read-only, against what is stored, and the
	 * rest get the error.
	 */
	if (mdb_txn_begin(c->env, NULL, MDB_RDONLY, &txn))
		txn = NULL;
	for (i = 0; i < n; i++) {
		if (res[i] == -ESTALE)
			continue;
		res[i] = txn && ts_check(txn, c->ts, keys[i], ts[i]) == -ESTALE ? -ESTALE : rc;
	}
	if (txn)
		mdb_txn_abort(txn);
	return rc;
}

int cache_ts_accept(struct cache *c, const uint8_t key[static 32],
		    const uint8_t ts[static CACHE_TS_LEN])
{
	int res;

	cache_ts_accept_many(c, (const uint8_t(*)[32])key,
			     (const uint8_t(*)[CACHE_TS_LEN])ts, &res, 1);
	return res;
}

int cache_ts_get(struct cache *c, const uint8_t key[static 32],
		 uint8_t ts[static CACHE_TS_LEN])
{
	uint8_t buf[CACHE_TS_LEN];
	long len = get(c, c->ts, key, buf, sizeof(buf));

	if (len < 0)
		return (int)len;
	if (len != CACHE_TS_LEN)
		return -EIO;
	memcpy(ts, buf, CACHE_TS_LEN);
	return 0;
}

static void managed_encode(struct disk_managed *d, const struct cache_managed *m)
{
	memset(d, 0, sizeof(*d));
	d->version = REC_VERSION;
	d->flags = m->flags;
	d->installed_at = m->installed_at;
	d->last_seen = m->last_seen;
	if (m->endpoint.addr.sa_family == AF_INET) {
		d->family = 4;
		d->port = ntohs(m->endpoint.addr4.sin_port);
		memcpy(d->addr, &m->endpoint.addr4.sin_addr, 4);
	} else if (m->endpoint.addr.sa_family == AF_INET6) {
		d->family = 6;
		d->port = ntohs(m->endpoint.addr6.sin6_port);
		d->scope_id = m->endpoint.addr6.sin6_scope_id;
		d->flowinfo = m->endpoint.addr6.sin6_flowinfo;
		memcpy(d->addr, &m->endpoint.addr6.sin6_addr, 16);
	}
}

static int managed_decode(struct cache_managed *m, const uint8_t key[32],
			  const void *val, size_t len)
{
	struct disk_managed d;

	if (len != sizeof(d))
		return -EIO;
	memcpy(&d, val, sizeof(d));
	if (d.version != REC_VERSION)
		return -EIO;
	memset(m, 0, sizeof(*m));
	memcpy(m->public_key, key, 32);
	m->installed_at = d.installed_at;
	m->last_seen = d.last_seen;
	m->flags = d.flags;
	if (d.family == 4) {
		m->endpoint.addr4.sin_family = AF_INET;
		m->endpoint.addr4.sin_port = htons(d.port);
		memcpy(&m->endpoint.addr4.sin_addr, d.addr, 4);
	} else if (d.family == 6) {
		m->endpoint.addr6.sin6_family = AF_INET6;
		m->endpoint.addr6.sin6_port = htons(d.port);
		m->endpoint.addr6.sin6_scope_id = d.scope_id;
		m->endpoint.addr6.sin6_flowinfo = d.flowinfo;
		memcpy(&m->endpoint.addr6.sin6_addr, d.addr, 16);
	} else {
		m->endpoint.addr.sa_family = AF_UNSPEC;
	}
	return 0;
}

int cache_managed_put(struct cache *c, const struct cache_managed *m)
{
	struct disk_managed d;

	managed_encode(&d, m);
	return put(c, c->managed, m->public_key, &d, sizeof(d));
}

int cache_managed_put_many(struct cache *c, const struct cache_managed *m, size_t n)
{
	struct disk_managed d;
	MDB_txn *txn;
	MDB_val k, v;
	int rc;

	rc = mdb_txn_begin(c->env, NULL, 0, &txn);
	if (rc)
		return err(rc);
	for (size_t i = 0; i < n && !rc; i++) {
		managed_encode(&d, &m[i]);
		k.mv_size = 32;
		k.mv_data = (void *)m[i].public_key;
		v.mv_size = sizeof(d);
		v.mv_data = &d;
		rc = mdb_put(txn, c->managed, &k, &v, 0);
	}
	return commit_or_abort(txn, err(rc));
}

int cache_managed_get(struct cache *c, const uint8_t key[static 32],
		      struct cache_managed *out)
{
	struct disk_managed d;
	long len = get(c, c->managed, key, &d, sizeof(d));

	if (len < 0)
		return (int)len;
	return managed_decode(out, key, &d, (size_t)len);
}

int cache_managed_touch(struct cache *c, const uint8_t key[static 32],
			uint64_t last_seen, const union wgdev_endpoint *ep)
{
	MDB_txn *txn;
	MDB_val k = { .mv_size = 32, .mv_data = (void *)key };
	MDB_val v;
	struct cache_managed m;
	struct disk_managed d;
	int rc, ret;

	/* Read-modify-write in one write transaction: no lost update. */
	rc = mdb_txn_begin(c->env, NULL, 0, &txn);
	if (rc)
		return err(rc);
	ret = err(mdb_get(txn, c->managed, &k, &v));
	if (ret)
		goto out;
	ret = managed_decode(&m, key, v.mv_data, v.mv_size);
	if (ret)
		goto out;
	m.last_seen = last_seen;
	if (ep)
		m.endpoint = *ep;
	managed_encode(&d, &m);
	v.mv_size = sizeof(d);
	v.mv_data = &d;
	ret = err(mdb_put(txn, c->managed, &k, &v, 0));
out:
	return commit_or_abort(txn, ret);
}

int cache_managed_del(struct cache *c, const uint8_t key[static 32])
{
	return del(c, c->managed, key);
}

static int count(struct cache *c, MDB_dbi dbi, size_t *n)
{
	MDB_txn *txn;
	MDB_stat st;
	int rc;

	rc = mdb_txn_begin(c->env, NULL, MDB_RDONLY, &txn);
	if (rc)
		return err(rc);
	rc = mdb_stat(txn, dbi, &st);
	mdb_txn_abort(txn);
	if (rc)
		return err(rc);
	*n = st.ms_entries;
	return 0;
}

int cache_managed_count(struct cache *c, size_t *n)
{
	return count(c, c->managed, n);
}

int cache_managed_foreach(struct cache *c, cache_managed_fn cb, void *arg)
{
	struct cache_managed *batch;
	uint8_t last[32];
	bool have_last = false, done = false;
	int ret = 0;

	batch = malloc(FOREACH_BATCH * sizeof(*batch));
	if (!batch)
		return -ENOMEM;
	while (!done) {
		MDB_txn *txn;
		MDB_cursor *cur;
		MDB_val k, v;
		size_t n = 0, i;
		int rc;

		rc = mdb_txn_begin(c->env, NULL, MDB_RDONLY, &txn);
		if (rc) {
			ret = err(rc);
			break;
		}
		rc = mdb_cursor_open(txn, c->managed, &cur);
		if (rc) {
			mdb_txn_abort(txn);
			ret = err(rc);
			break;
		}
		/* Resume after the last key of the previous batch. */
		if (have_last) {
			k.mv_size = 32;
			k.mv_data = last;
			rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
			if (!rc && k.mv_size == 32 && !memcmp(k.mv_data, last, 32))
				rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
		} else {
			rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
		}
		while (!rc && n < FOREACH_BATCH) {
			/* Skip foreign or damaged records rather than stop. */
			if (k.mv_size == 32 &&
			    !managed_decode(&batch[n], k.mv_data, v.mv_data,
					    v.mv_size))
				n++;
			memcpy(last, k.mv_data, k.mv_size < 32 ? k.mv_size : 32);
			have_last = true;
			rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
		}
		if (rc && rc != MDB_NOTFOUND)
			ret = err(rc);
		if (rc)
			done = true;
		mdb_cursor_close(cur);
		mdb_txn_abort(txn);
		for (i = 0; i < n && !ret; i++)
			ret = cb(&batch[i], arg);
		if (ret)
			break;
	}
	free(batch);
	return ret;
}

int cache_stats(struct cache *c, struct cache_stats *out)
{
	MDB_envinfo info;
	MDB_stat st;
	int ret;

	memset(out, 0, sizeof(*out));
	ret = count(c, c->peers, &out->peers);
	if (!ret)
		ret = count(c, c->ts, &out->ts);
	if (!ret)
		ret = count(c, c->managed, &out->managed);
	if (ret)
		return ret;
	mdb_env_info(c->env, &info);
	mdb_env_stat(c->env, &st);
	out->map_size = info.me_mapsize;
	out->used_bytes = (uint64_t)(info.me_last_pgno + 1) * st.ms_psize;
	return 0;
}
