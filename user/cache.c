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
#include <unistd.h>

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

/*
 * The managed env's address space, apart from the main map (which fills
 * with what expires): a record takes about 100 bytes, so this holds
 * millions, far more than a device (wireguard-go: 65,536 peers). The file
 * grows with its records (no MDB_WRITEMAP).
 */
#define MANAGED_MAP_SIZE (1ULL << 30)

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

/*
 * A timestamp row: the last accepted TAI64N and when it arrived (gateway
 * wall clock, ns), from which cache_ts_seal() learns the client's clock.
 * Rows written before arrival times were kept are 12 bytes.
 */
struct disk_ts {
	uint8_t ts[CACHE_TS_LEN];
	uint64_t arrived_ns;
} __attribute__((packed));

enum { IDX_LEN = 8 + 32, TSAGE_LEN = CACHE_TS_LEN + 32 };

/* Fresh timestamps kept in memory while the map is full (chained, keyed hash). */
struct mem_ts {
	struct mem_ts *next;
	uint8_t key[32];
	struct disk_ts row;
};

enum { MEM_BUCKETS = 4096 };

struct cache {
	MDB_env *env;
	MDB_dbi peers, ts, meta, tsage, exp;
	/* "managed" in the main env: where older versions kept the managed
	 * records; emptied into menv at open (migrate_managed). */
	MDB_dbi legacy;
	/* The managed records, in an env of their own (managed_open). */
	MDB_env *menv;
	MDB_dbi managed;
	uint32_t default_ttl, negative_ttl;
	uint32_t ts_keep, max_stale, expire_interval_ms;
	uint64_t (*now_ns)(void);
	/* mem_lock: the in-memory timestamp table and the counters below */
	pthread_mutex_t mem_lock;
	struct mem_ts *mem[MEM_BUCKETS];
	uint8_t mem_hash_key[crypto_shorthash_KEYBYTES];
	size_t mem_n, mem_max;
	uint64_t mem_refused, expired, pressure_expired, sealed;
	/* janitor thread (expiry), under mu */
	bool janitor;
	pthread_t janitor_thread;
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

/* TAI64N label of the Unix epoch: 2^62 + 10 s, as WireGuard writes it. */
#define TAI64_EPOCH 0x400000000000000aULL

static uint64_t realtime_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_REALTIME, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

/* TAI64N of a wall-clock time in ns since the Unix epoch. */
static void tai_of_ns(uint8_t out[CACHE_TS_LEN], uint64_t ns)
{
	uint64_t sec = TAI64_EPOCH + ns / 1000000000ull;
	uint32_t nsec = (uint32_t)(ns % 1000000000ull);

	for (int i = 0; i < 8; i++)
		out[i] = (uint8_t)(sec >> (56 - 8 * i));
	for (int i = 0; i < 4; i++)
		out[8 + i] = (uint8_t)(nsec >> (24 - 8 * i));
}

/* ts + delta ns (saturating at the largest label). */
static void tai_add_ns(uint8_t out[CACHE_TS_LEN], const uint8_t ts[CACHE_TS_LEN],
		       uint64_t delta)
{
	uint64_t sec = 0, nsec = 0;

	for (int i = 0; i < 8; i++)
		sec = sec << 8 | ts[i];
	for (int i = 8; i < 12; i++)
		nsec = nsec << 8 | ts[i];
	if (nsec >= 1000000000ull)
		nsec = 999999999ull;
	nsec += delta % 1000000000ull;
	delta = delta / 1000000000ull + nsec / 1000000000ull;
	nsec %= 1000000000ull;
	sec = sec > UINT64_MAX - delta ? UINT64_MAX : sec + delta;
	for (int i = 0; i < 8; i++)
		out[i] = (uint8_t)(sec >> (56 - 8 * i));
	for (int i = 0; i < 4; i++)
		out[8 + i] = (uint8_t)(nsec >> (24 - 8 * i));
}

static void be64(uint8_t out[8], uint64_t v)
{
	for (int i = 0; i < 8; i++)
		out[i] = (uint8_t)(v >> (56 - 8 * i));
}

static uint64_t get_be64(const uint8_t in[8])
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | in[i];
	return v;
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

/*
 * A background thread's sleep: interval_ms, or until cache_close() (c->mu
 * held, as on return). Returns false when stopping.
 */
static bool sleep_interval(struct cache *c, uint32_t interval_ms)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	t.tv_sec += interval_ms / 1000;
	t.tv_nsec += (long)(interval_ms % 1000) * 1000000;
	if (t.tv_nsec >= 1000000000) {
		t.tv_sec++;
		t.tv_nsec -= 1000000000;
	}
	while (!c->stop && pthread_cond_timedwait(&c->cv, &c->mu, &t) != ETIMEDOUT)
		;
	return !c->stop;
}

/* CACHE_SYNC_PERIODIC: flush committed pages every interval. */
static void *syncer(void *arg)
{
	struct cache *c = arg;

	pthread_mutex_lock(&c->mu);
	while (sleep_interval(c, c->sync_interval_ms)) {
		pthread_mutex_unlock(&c->mu);
		mdb_env_sync(c->env, 1);
		pthread_mutex_lock(&c->mu);
	}
	pthread_mutex_unlock(&c->mu);
	return NULL;
}


static const char META_FLOOR[] = "floor";

/*
 * A new cache (no rows at all) starts with its floor at now: initiations
 * captured before the cache directory was emptied stay dead. An existing
 * one without a floor (made before floors existed) starts at zero: its rows
 * are all there.
 */
static int meta_init(struct cache *c, MDB_txn *txn)
{
	MDB_val k = { .mv_size = sizeof(META_FLOOR) - 1, .mv_data = (void *)META_FLOOR };
	MDB_val v;
	uint8_t floor[CACHE_TS_LEN] = { 0 };
	MDB_stat st;
	size_t rows = 0;
	int rc;

	rc = mdb_get(txn, c->meta, &k, &v);
	if (rc != MDB_NOTFOUND)
		return rc;
	if (!mdb_stat(txn, c->ts, &st))
		rows += st.ms_entries;
	if (!mdb_stat(txn, c->peers, &st))
		rows += st.ms_entries;
	if (!mdb_stat(txn, c->legacy, &st))
		rows += st.ms_entries;
	if (!rows)
		tai_of_ns(floor, c->now_ns());
	v.mv_size = sizeof(floor);
	v.mv_data = floor;
	return mdb_put(txn, c->meta, &k, &v, 0);
}

static int floor_get(MDB_txn *txn, struct cache *c, uint8_t floor[CACHE_TS_LEN])
{
	MDB_val k = { .mv_size = sizeof(META_FLOOR) - 1, .mv_data = (void *)META_FLOOR };
	MDB_val v;
	int rc = mdb_get(txn, c->meta, &k, &v);

	if (rc == MDB_NOTFOUND || (!rc && v.mv_size != CACHE_TS_LEN)) {
		memset(floor, 0, CACHE_TS_LEN);
		return 0;
	}
	if (rc)
		return err(rc);
	memcpy(floor, v.mv_data, CACHE_TS_LEN);
	return 0;
}

/* floor = max(floor, ts) */
static int floor_raise(MDB_txn *txn, struct cache *c, const uint8_t ts[CACHE_TS_LEN])
{
	MDB_val k = { .mv_size = sizeof(META_FLOOR) - 1, .mv_data = (void *)META_FLOOR };
	MDB_val v;
	uint8_t cur[CACHE_TS_LEN];
	int ret = floor_get(txn, c, cur);

	if (ret || memcmp(ts, cur, CACHE_TS_LEN) <= 0)
		return ret;
	v.mv_size = CACHE_TS_LEN;
	v.mv_data = (void *)ts;
	return err(mdb_put(txn, c->meta, &k, &v, 0));
}

int cache_ts_floor(struct cache *c, uint8_t ts[static CACHE_TS_LEN])
{
	MDB_txn *txn;
	int ret;

	ret = err(mdb_txn_begin(c->env, NULL, MDB_RDONLY, &txn));
	if (ret)
		return ret;
	ret = floor_get(txn, c, ts);
	mdb_txn_abort(txn);
	return ret;
}

/* ---- the in-memory timestamp table (map full) ---- */

static size_t mem_bucket(struct cache *c, const uint8_t key[32])
{
	uint8_t h[crypto_shorthash_BYTES];
	uint64_t v;

	/* Keys are chosen by whoever sends initiations: a keyed hash. */
	crypto_shorthash(h, key, 32, c->mem_hash_key);
	memcpy(&v, h, sizeof(v));
	return (size_t)(v % MEM_BUCKETS);
}

/* mem_lock held. */
static struct mem_ts *mem_find(struct cache *c, const uint8_t key[32])
{
	struct mem_ts *m;

	for (m = c->mem[mem_bucket(c, key)]; m; m = m->next)
		if (!memcmp(m->key, key, 32))
			return m;
	return NULL;
}

static void mem_clear(struct cache *c)
{
	for (size_t b = 0; b < MEM_BUCKETS; b++) {
		while (c->mem[b]) {
			struct mem_ts *m = c->mem[b];

			c->mem[b] = m->next;
			free(m);
		}
	}
	c->mem_n = 0;
}

/* ---- timestamp rows and their age index ---- */

/* Read the key's row (disk, then memory: the newer wins). 0, -ENOENT or -errno. */
static int ts_read(MDB_txn *txn, struct cache *c, const uint8_t key[32],
		   struct disk_ts *row)
{
	MDB_val k = { .mv_size = 32, .mv_data = (void *)key }, v;
	struct mem_ts *m;
	int rc = mdb_get(txn, c->ts, &k, &v), ret = -ENOENT;

	if (rc && rc != MDB_NOTFOUND)
		return err(rc);
	if (!rc) {
		memset(row, 0, sizeof(*row));
		if (v.mv_size == sizeof(*row))
			memcpy(row, v.mv_data, sizeof(*row));
		else if (v.mv_size == CACHE_TS_LEN)
			memcpy(row->ts, v.mv_data, CACHE_TS_LEN);
		else
			return -EIO;
		ret = 0;
	}
	pthread_mutex_lock(&c->mem_lock);
	if (c->mem_n && (m = mem_find(c, key)) &&
	    (ret || memcmp(m->row.ts, row->ts, CACHE_TS_LEN) > 0)) {
		*row = m->row;
		ret = 0;
	}
	pthread_mutex_unlock(&c->mem_lock);
	return ret;
}

static void tsage_key(uint8_t out[TSAGE_LEN], const uint8_t ts[CACHE_TS_LEN],
		      const uint8_t key[32])
{
	memcpy(out, ts, CACHE_TS_LEN);
	memcpy(out + CACHE_TS_LEN, key, 32);
}

static int tsage_put(MDB_txn *txn, struct cache *c, const uint8_t ts[CACHE_TS_LEN],
		     const uint8_t key[32])
{
	uint8_t ik[TSAGE_LEN], one = 1;
	MDB_val k = { .mv_size = sizeof(ik), .mv_data = ik };
	MDB_val v = { .mv_size = 1, .mv_data = &one };

	tsage_key(ik, ts, key);
	return err(mdb_put(txn, c->tsage, &k, &v, 0));
}

static int tsage_del(MDB_txn *txn, struct cache *c, const uint8_t ts[CACHE_TS_LEN],
		     const uint8_t key[32])
{
	uint8_t ik[TSAGE_LEN];
	MDB_val k = { .mv_size = sizeof(ik), .mv_data = ik };
	int rc;

	tsage_key(ik, ts, key);
	rc = mdb_del(txn, c->tsage, &k, NULL);
	return rc == MDB_NOTFOUND ? 0 : err(rc);
}

/* Store row for key (on disk), moving its age index entry. */
static int ts_write(MDB_txn *txn, struct cache *c, const uint8_t key[32],
		    const struct disk_ts *row)
{
	MDB_val k = { .mv_size = 32, .mv_data = (void *)key };
	MDB_val v;
	int rc, ret;

	rc = mdb_get(txn, c->ts, &k, &v);
	if (!rc && v.mv_size >= CACHE_TS_LEN) {
		uint8_t old[CACHE_TS_LEN];

		memcpy(old, v.mv_data, CACHE_TS_LEN);
		ret = tsage_del(txn, c, old, key);
		if (ret)
			return ret;
	} else if (rc && rc != MDB_NOTFOUND) {
		return err(rc);
	}
	v.mv_size = sizeof(*row);
	v.mv_data = (void *)row;
	ret = err(mdb_put(txn, c->ts, &k, &v, 0));
	if (!ret)
		ret = tsage_put(txn, c, row->ts, key);
	return ret;
}

/* ---- the expiry index of "peers" ---- */

static void exp_key(uint8_t out[IDX_LEN], uint64_t due, const uint8_t key[32])
{
	be64(out, due);
	memcpy(out + 8, key, 32);
}

static int exp_put(MDB_txn *txn, struct cache *c, uint64_t due, const uint8_t key[32])
{
	uint8_t ik[IDX_LEN], one = 1;
	MDB_val k = { .mv_size = sizeof(ik), .mv_data = ik };
	MDB_val v = { .mv_size = 1, .mv_data = &one };

	exp_key(ik, due, key);
	return err(mdb_put(txn, c->exp, &k, &v, 0));
}

/* When a peers entry becomes deletable: negative at expiry, positive once
 * too stale to be used. */
static uint64_t entry_due(struct cache *c, const struct disk_peer *d)
{
	return d->kind == REC_NEGATIVE ? d->expires_at : d->expires_at + c->max_stale;
}

/* Put a peers entry, with its expiry index entry (the old one, if any, is
 * left to the janitor, which drops index entries that no longer match). */
static int peer_put(MDB_txn *txn, struct cache *c, const uint8_t key[32],
		    const void *val, size_t len)
{
	MDB_val k = { .mv_size = 32, .mv_data = (void *)key };
	MDB_val v = { .mv_size = len, .mv_data = (void *)val };
	struct disk_peer d;
	int ret;

	memcpy(&d, val, sizeof(d));
	ret = err(mdb_put(txn, c->peers, &k, &v, 0));
	if (!ret)
		ret = exp_put(txn, c, entry_due(c, &d), key);
	sodium_memzero(&d, sizeof(d));
	return ret;
}

static bool has(MDB_txn *txn, MDB_dbi dbi, const uint8_t key[32])
{
	MDB_val k = { .mv_size = 32, .mv_data = (void *)key }, v;

	return mdb_get(txn, dbi, &k, &v) == 0;
}

/*
 * A managed record exists for key: a read transaction of the managed env,
 * beside the caller's of the main one. A record committed meanwhile is
 * seen by the caller's next pass (managed_put needs no main-env lock).
 */
static bool managed_has(struct cache *c, const uint8_t key[32])
{
	MDB_txn *txn;
	bool ret;

	if (mdb_txn_begin(c->menv, NULL, MDB_RDONLY, &txn))
		return true; /* unsure: keep the rows */
	ret = has(txn, c->managed, key);
	mdb_txn_abort(txn);
	return ret;
}

/* A positive answer (usable or not) is stored for key. */
static bool known(MDB_txn *txn, struct cache *c, const uint8_t key[32])
{
	MDB_val k = { .mv_size = 32, .mv_data = (void *)key }, v;

	if (managed_has(c, key))
		return true;
	return mdb_get(txn, c->peers, &k, &v) == 0 && v.mv_size >= 2 &&
	       ((const uint8_t *)v.mv_data)[1] == REC_POSITIVE;
}

/* Pages the databases use, against the map's. */
static bool under_pressure(MDB_txn *txn, struct cache *c, unsigned pct)
{
	MDB_dbi dbis[] = { c->peers, c->ts, c->legacy, c->meta, c->tsage, c->exp };
	MDB_envinfo info;
	MDB_stat st;
	uint64_t used = 0, total;

	mdb_env_info(c->env, &info);
	mdb_env_stat(c->env, &st);
	total = info.me_mapsize / st.ms_psize;
	for (size_t i = 0; i < sizeof(dbis) / sizeof(dbis[0]); i++)
		if (!mdb_stat(txn, dbis[i], &st))
			used += st.ms_branch_pages + st.ms_leaf_pages + st.ms_overflow_pages;
	return used * 100 >= total * pct;
}

/*
 * Delete expired peers entries: negative ones past expiry, positive ones past
 * max_stale that no managed peer uses. An index entry that no longer matches
 * its entry (replaced since) is dropped. The key's timestamp row, if any,
 * becomes an expiry candidate again.
 */
static int expire_peers(MDB_txn *txn, struct cache *c, uint64_t now, size_t *budget,
			size_t *done)
{
	MDB_cursor *cur;
	MDB_val k, v, pk, pv;
	int rc, ret = 0;

	rc = mdb_cursor_open(txn, c->exp, &cur);
	if (rc)
		return err(rc);
	rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	while (!rc && *budget) {
		uint8_t key[32];
		struct disk_peer d;
		uint64_t due;
		struct disk_ts row;

		if (k.mv_size != IDX_LEN) {
			ret = err(mdb_cursor_del(cur, 0));
			goto next;
		}
		due = get_be64(k.mv_data);
		if (due > now)
			break;
		memcpy(key, (uint8_t *)k.mv_data + 8, 32);
		ret = err(mdb_cursor_del(cur, 0));
		if (ret)
			break;
		(*budget)--;
		pk.mv_size = 32;
		pk.mv_data = key;
		rc = mdb_get(txn, c->peers, &pk, &pv);
		if (rc || pv.mv_size < sizeof(d))
			goto next;
		memcpy(&d, pv.mv_data, sizeof(d));
		due = entry_due(c, &d);
		sodium_memzero(d.psk, sizeof(d.psk));
		if (due > now || (d.kind == REC_POSITIVE && managed_has(c, key)))
			goto next; /* replaced, or in use: a later index entry or
				    * the managed record's deletion brings it back */
		ret = err(mdb_del(txn, c->peers, &pk, NULL));
		if (ret)
			break;
		(*done)++;
		if (d.kind == REC_POSITIVE && !ts_read(txn, c, key, &row))
			ret = tsage_put(txn, c, row.ts, key);
next:
		if (ret)
			break;
		/* Every entry visited is deleted: the next is the first. */
		rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	}
	mdb_cursor_close(cur);
	if (!ret && rc && rc != MDB_NOTFOUND)
		ret = err(rc);
	return ret;
}

static void *janitor(void *arg);
static void stop_threads(struct cache *c);

static const char META_MANAGED_BOOT[] = "managed_boot";

/* This boot of the OS: /proc/sys/kernel/random/boot_id, 36 characters. */
static int read_boot_id(char out[CACHE_BOOT_ID_LEN + 1])
{
	FILE *f = fopen("/proc/sys/kernel/random/boot_id", "re");
	size_t n;

	if (!f)
		return -errno;
	n = fread(out, 1, CACHE_BOOT_ID_LEN, f);
	fclose(f);
	if (n != CACHE_BOOT_ID_LEN)
		return -EIO;
	out[n] = 0;
	return 0;
}

/*
 * The marker in the main env's meta: the boot during which the managed env
 * was written without syncs. set: store boot (NULL: delete the marker), in
 * a durable commit of its own. Else read it into boot ("" when absent).
 */
static int boot_marker(struct cache *c, char boot[CACHE_BOOT_ID_LEN + 1], bool set)
{
	MDB_val k = { .mv_size = sizeof(META_MANAGED_BOOT) - 1,
		      .mv_data = (void *)META_MANAGED_BOOT };
	MDB_val v;
	MDB_txn *txn;
	int rc;

	rc = mdb_txn_begin(c->env, NULL, set ? 0 : MDB_RDONLY, &txn);
	if (rc)
		return err(rc);
	if (!set) {
		rc = mdb_get(txn, c->meta, &k, &v);
		boot[0] = 0;
		if (!rc && v.mv_size == CACHE_BOOT_ID_LEN) {
			memcpy(boot, v.mv_data, CACHE_BOOT_ID_LEN);
			boot[CACHE_BOOT_ID_LEN] = 0;
		}
		mdb_txn_abort(txn);
		return rc == MDB_NOTFOUND ? 0 : err(rc);
	}
	if (boot) {
		v.mv_size = CACHE_BOOT_ID_LEN;
		v.mv_data = boot;
		rc = mdb_put(txn, c->meta, &k, &v, 0);
	} else {
		rc = mdb_del(txn, c->meta, &k, NULL);
		if (rc == MDB_NOTFOUND)
			rc = 0;
	}
	return commit_or_abort(txn, err(rc));
}

/*
 * Records an older version kept in the main env move to the managed env,
 * once: copied and synced there before they leave the main one, so a
 * crash in between only copies them again.
 */
static int migrate_managed(struct cache *c)
{
	MDB_txn *rtxn = NULL, *wtxn = NULL;
	MDB_cursor *cur = NULL;
	MDB_val k, v;
	MDB_stat st;
	int rc;

	rc = mdb_txn_begin(c->env, NULL, MDB_RDONLY, &rtxn);
	if (rc)
		return err(rc);
	rc = mdb_stat(rtxn, c->legacy, &st);
	if (rc || !st.ms_entries)
		goto out;
	rc = mdb_txn_begin(c->menv, NULL, 0, &wtxn);
	if (!rc)
		rc = mdb_cursor_open(rtxn, c->legacy, &cur);
	for (rc = rc ? rc : mdb_cursor_get(cur, &k, &v, MDB_FIRST); !rc;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		rc = mdb_put(wtxn, c->managed, &k, &v, 0);
		if (rc)
			break;
	}
	if (cur)
		mdb_cursor_close(cur);
	mdb_txn_abort(rtxn);
	rtxn = NULL;
	if (rc != MDB_NOTFOUND) {
		if (wtxn)
			mdb_txn_abort(wtxn);
		return err(rc);
	}
	rc = mdb_txn_commit(wtxn);
	if (!rc)
		rc = mdb_env_sync(c->menv, 1);
	if (!rc)
		rc = mdb_txn_begin(c->env, NULL, 0, &wtxn);
	if (rc)
		return err(rc);
	return commit_or_abort(wtxn, err(mdb_drop(wtxn, c->legacy, 0)));
out:
	mdb_txn_abort(rtxn);
	return err(rc);
}

/*
 * The managed records live in an env of their own, <dir>/managed.mdb,
 * committed without a sync (MDB_NOSYNC): a commit is a write into the
 * page cache, which outlives a crash of the process, and only an OS crash
 * can lose it, when the device loses its peers too (docs/security.md,
 * "Managed records"). LMDB does not promise an intact file after an OS
 * crash without syncs, so the file is trusted only within the boot that
 * wrote it: the main env's meta holds that boot's id (durably, before the
 * first unsynced write), and in any other boot the file is deleted before
 * it is opened. Without a boot id (no /proc) the env syncs every commit,
 * as the main one does.
 */
static int managed_open(struct cache *c, const char *dir, const char *boot_opt)
{
	char path[PATH_MAX], lock[PATH_MAX + 8];
	char boot[CACHE_BOOT_ID_LEN + 1] = "", marker[CACHE_BOOT_ID_LEN + 1];
	unsigned flags = MDB_NOTLS | MDB_NORDAHEAD | MDB_NOSUBDIR;
	MDB_txn *txn;
	int dead, rc, ret;

	if ((size_t)snprintf(path, sizeof(path), "%s/managed.mdb", dir) >= sizeof(path))
		return -ENAMETOOLONG;
	snprintf(lock, sizeof(lock), "%s-lock", path);
	if (boot_opt)
		snprintf(boot, sizeof(boot), "%s", boot_opt);
	else if (read_boot_id(boot))
		boot[0] = 0;
	if (strlen(boot) != CACHE_BOOT_ID_LEN)
		boot[0] = 0;
	ret = boot_marker(c, marker, false);
	if (ret)
		return ret;
	/* Written unsynced in another boot (or this one's is unknown). */
	if (marker[0] && strcmp(marker, boot)) {
		if ((unlink(path) && errno != ENOENT) ||
		    (unlink(lock) && errno != ENOENT))
			return -errno;
		ret = boot_marker(c, NULL, true);
		if (ret)
			return ret;
		marker[0] = 0;
	}
	if (boot[0]) {
		flags |= MDB_NOSYNC;
		if (strcmp(marker, boot)) {
			ret = boot_marker(c, boot, true);
			if (ret)
				return ret;
		}
	}
	rc = mdb_env_create(&c->menv);
	if (rc)
		return err(rc);
	rc = mdb_env_set_mapsize(c->menv, MANAGED_MAP_SIZE);
	if (!rc)
		rc = mdb_env_set_maxdbs(c->menv, 2);
	if (!rc)
		rc = mdb_env_set_maxreaders(c->menv, MAX_READERS);
	if (!rc)
		rc = mdb_env_open(c->menv, path, flags, 0600);
	if (rc)
		goto err_env;
	mdb_reader_check(c->menv, &dead);
	rc = mdb_txn_begin(c->menv, NULL, 0, &txn);
	if (rc)
		goto err_env;
	rc = mdb_dbi_open(txn, "managed", MDB_CREATE, &c->managed);
	rc = commit_or_abort(txn, err(rc));
	if (!rc)
		rc = migrate_managed(c);
	if (!rc)
		return 0;
	goto close; /* rc is -errno already */
err_env:
	rc = err(rc);
close:
	mdb_env_close(c->menv);
	c->menv = NULL;
	return rc;
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
	int dead, rc, ret;

	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->default_ttl = CACHE_DEFAULT_TTL;
	c->negative_ttl = CACHE_DEFAULT_NEGATIVE_TTL;
	c->ts_keep = CACHE_DEFAULT_TS_KEEP;
	c->max_stale = CACHE_DEFAULT_MAX_STALE;
	c->expire_interval_ms = 1000;
	c->mem_max = CACHE_DEFAULT_MEM_TS;
	c->now_ns = realtime_ns;
	if (opts) {
		if (opts->ts_keep)
			c->ts_keep = opts->ts_keep;
		if (opts->max_stale)
			c->max_stale = opts->max_stale;
		if (opts->expire_interval_ms)
			c->expire_interval_ms = opts->expire_interval_ms;
		if (opts->mem_ts_max)
			c->mem_max = opts->mem_ts_max < 0 ? 0 : (size_t)opts->mem_ts_max;
		if (opts->now_ns)
			c->now_ns = opts->now_ns;
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
	pthread_mutex_init(&c->mem_lock, NULL);
	randombytes_buf(c->mem_hash_key, sizeof(c->mem_hash_key));
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c->cv, &ca);
	pthread_condattr_destroy(&ca);

	rc = mdb_env_create(&c->env);
	if (rc) {
		ret = err(rc);
		goto err_free;
	}
	rc = mdb_env_set_mapsize(c->env, map_size);
	if (rc)
		goto err_env;
	rc = mdb_env_set_maxdbs(c->env, 8);
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
		rc = mdb_dbi_open(txn, "managed", MDB_CREATE, &c->legacy);
	if (!rc)
		rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &c->meta);
	if (!rc)
		rc = mdb_dbi_open(txn, "tsage", MDB_CREATE, &c->tsage);
	if (!rc)
		rc = mdb_dbi_open(txn, "exp", MDB_CREATE, &c->exp);
	if (!rc)
		rc = meta_init(c, txn);
	if (rc) {
		mdb_txn_abort(txn);
		goto err_env;
	}
	rc = mdb_txn_commit(txn);
	if (rc)
		goto err_env;
	ret = managed_open(c, dir, opts ? opts->boot_id : NULL);
	if (ret)
		goto err_ret;
	if (sync == CACHE_SYNC_PERIODIC) {
		rc = pthread_create(&c->thread, NULL, syncer, c);
		if (rc)
			goto err_env;
		c->syncer = true;
	}
	if (c->expire_interval_ms != UINT32_MAX) {
		rc = pthread_create(&c->janitor_thread, NULL, janitor, c);
		if (rc)
			goto err_threads;
		c->janitor = true;
	}
	*out = c;
	return 0;

err_threads:
	stop_threads(c);
err_env:
	ret = err(rc);
err_ret:
	if (c->menv)
		mdb_env_close(c->menv);
	mdb_env_close(c->env);
err_free:
	pthread_cond_destroy(&c->cv);
	pthread_mutex_destroy(&c->mu);
	pthread_mutex_destroy(&c->mem_lock);
	free(c);
	return ret;
}

void cache_close(struct cache *c)
{
	if (!c)
		return;
	stop_threads(c);
	/* Whatever NOMETA or PERIODIC left in the page cache goes to disk. */
	mdb_env_sync(c->env, 1);
	mdb_env_close(c->env);
	/* A clean stop leaves nothing of the managed env to an OS crash. */
	mdb_env_sync(c->menv, 1);
	mdb_env_close(c->menv);
	pthread_cond_destroy(&c->cv);
	pthread_mutex_destroy(&c->mu);
	mem_clear(c);
	pthread_mutex_destroy(&c->mem_lock);
	free(c);
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
static long get(MDB_env *env, MDB_dbi dbi, const uint8_t key[32],
		void *buf, size_t cap)
{
	MDB_txn *txn;
	MDB_val k = { .mv_size = 32, .mv_data = (void *)key };
	MDB_val v;
	long ret;
	int rc;

	rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn);
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
	struct cache_answer a = { .peer = p };

	memcpy(a.key, p->public_key, 32);
	return cache_put_answers(c, &a, 1, now);
}

int cache_put_peers(struct cache *c, const struct api_peer *peers, size_t n,
		    uint64_t now)
{
	uint8_t buf[PEER_REC_MAX];
	MDB_txn *txn;
	int rc = 0;

	for (size_t i = 0; i < n; i++)
		if (peers[i].n_allowed_ips > API_MAX_ALLOWED_IPS)
			return -EINVAL;
	rc = mdb_txn_begin(c->env, NULL, 0, &txn);
	if (rc)
		return err(rc);
	for (size_t i = 0; i < n && !rc; i++)
		rc = peer_put(txn, c, peers[i].public_key, buf,
			      encode_peer(c, buf, &peers[i], now));
	sodium_memzero(buf, sizeof(buf));
	return commit_or_abort(txn, rc);
}

static void encode_negative(struct cache *c, struct disk_peer *d, uint64_t now)
{
	memset(d, 0, sizeof(*d));
	d->version = REC_VERSION;
	d->kind = REC_NEGATIVE;
	d->ttl = c->negative_ttl;
	d->fetched_at = now;
	d->expires_at = now + c->negative_ttl;
}

int cache_put_answers(struct cache *c, const struct cache_answer *a, size_t n,
		      uint64_t now)
{
	uint8_t buf[PEER_REC_MAX];
	struct disk_peer neg;
	MDB_txn *txn;
	int rc;

	for (size_t i = 0; i < n; i++)
		if (a[i].peer && a[i].peer->n_allowed_ips > API_MAX_ALLOWED_IPS)
			return -EINVAL;
	rc = err(mdb_txn_begin(c->env, NULL, 0, &txn));
	if (rc)
		return rc;
	encode_negative(c, &neg, now);
	for (size_t i = 0; i < n && !rc; i++)
		rc = a[i].peer ? peer_put(txn, c, a[i].key, buf,
					  encode_peer(c, buf, a[i].peer, now)) :
				 peer_put(txn, c, a[i].key, &neg, sizeof(neg));
	sodium_memzero(buf, sizeof(buf));
	return commit_or_abort(txn, rc);
}

int cache_put_negative(struct cache *c, const uint8_t key[static 32],
		       uint64_t now)
{
	struct cache_answer a = { .peer = NULL };

	memcpy(a.key, key, 32);
	return cache_put_answers(c, &a, 1, now);
}

int cache_get_peer(struct cache *c, const uint8_t key[static 32], uint64_t now,
		   struct cache_entry *out)
{
	uint8_t buf[PEER_REC_MAX];
	struct disk_peer d;
	long len;
	size_t i;
	int ret;

	len = get(c->env, c->peers, key, buf, sizeof(buf));
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
	ret = now < d.expires_at ? CACHE_FRESH :
	      now < d.expires_at + c->max_stale ? CACHE_STALE : CACHE_MISS;
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

/*
 * -ESTALE if ts is not newer than the key's row or, with no row, than the
 * floor (WireGuard paper §5.1: an initiation is accepted only with a
 * timestamp greater than the last); else 0 or -errno.
 */
static int ts_check(MDB_txn *txn, struct cache *c, const uint8_t floor[CACHE_TS_LEN],
		    const uint8_t key[32], const uint8_t ts[CACHE_TS_LEN])
{
	struct disk_ts row;
	int ret = ts_read(txn, c, key, &row);

	if (ret == -ENOENT)
		return memcmp(ts, floor, CACHE_TS_LEN) <= 0 ? -ESTALE : 0;
	if (ret)
		return ret;
	return memcmp(ts, row.ts, CACHE_TS_LEN) <= 0 ? -ESTALE : 0;
}

static int expire_ts(MDB_txn *txn, struct cache *c, uint64_t now, bool pressure,
		     size_t *budget, size_t *done, size_t *early);

/* One attempt at the batch in one write transaction. */
static int ts_accept_txn(struct cache *c, const uint8_t (*keys)[32],
			 const uint8_t (*ts)[CACHE_TS_LEN], int *res, size_t n,
			 uint64_t now_ns)
{
	uint8_t floor[CACHE_TS_LEN];
	struct disk_ts row = { .arrived_ns = now_ns };
	MDB_txn *txn;
	size_t i;
	int rc;

	for (i = 0; i < n; i++)
		res[i] = 0;
	/*
	 * Read and write in one write transaction: two workers racing with the
	 * same initiation cannot both see "newer". The same key twice in one
	 * batch: the second reads the first's write.
	 */
	rc = err(mdb_txn_begin(c->env, NULL, 0, &txn));
	if (rc)
		return rc;
	/*
	 * Under pressure, first make room: a flood of fresh keys must find
	 * the oldest unknown rows gone before the map is full, as deleting
	 * from a full map fails too (copy-on-write needs free pages).
	 */
	if (under_pressure(txn, c, CACHE_PRESSURE_PCT)) {
		size_t budget = 2 * n + 16, done = 0, early = 0;

		rc = expire_ts(txn, c, now_ns / 1000000000ull, true, &budget, &done, &early);
		pthread_mutex_lock(&c->mem_lock);
		c->expired += done;
		c->pressure_expired += early;
		pthread_mutex_unlock(&c->mem_lock);
	}
	if (!rc)
		rc = floor_get(txn, c, floor);
	for (i = 0; i < n && !rc; i++) {
		res[i] = ts_check(txn, c, floor, keys[i], ts[i]);
		if (res[i] == -ESTALE)
			continue;
		rc = res[i];
		if (!rc) {
			memcpy(row.ts, ts[i], CACHE_TS_LEN);
			rc = ts_write(txn, c, keys[i], &row);
		}
	}
	return commit_or_abort(txn, rc);
}

int cache_ts_accept_many(struct cache *c, const uint8_t (*keys)[32],
			 const uint8_t (*ts)[CACHE_TS_LEN], int *res, size_t n)
{
	uint8_t floor[CACHE_TS_LEN];
	uint64_t now_ns = c->now_ns();
	MDB_txn *txn;
	size_t i;
	int rc;

	if (!n)
		return 0;
	rc = ts_accept_txn(c, keys, ts, res, n, now_ns);
	if (rc == -ENOSPC && cache_expire(c, now_ns / 1000000000ull, 0, true) > 0)
		rc = ts_accept_txn(c, keys, ts, res, n, now_ns);
	if (!rc)
		return 0;
	/*
	 * Nothing was stored on disk. A cache that cannot be written (map
	 * full, disk error) must not let a replay through: every row not
	 * already found stale is checked again, read-only, against what is
	 * stored; a fresh one goes to the in-memory table while it has room,
	 * and otherwise gets the error (the caller refuses it).
	 */
	if (mdb_txn_begin(c->env, NULL, MDB_RDONLY, &txn))
		txn = NULL;
	if (txn && floor_get(txn, c, floor)) {
		mdb_txn_abort(txn);
		txn = NULL;
	}
	for (i = 0; i < n; i++) {
		struct mem_ts *m;
		int r;

		if (res[i] == -ESTALE)
			continue;
		r = txn ? ts_check(txn, c, floor, keys[i], ts[i]) : rc;
		if (r) {
			res[i] = r == -ESTALE ? -ESTALE : rc;
			continue;
		}
		pthread_mutex_lock(&c->mem_lock);
		m = mem_find(c, keys[i]);
		if (!m && c->mem_n < c->mem_max && (m = calloc(1, sizeof(*m)))) {
			size_t b = mem_bucket(c, keys[i]);

			memcpy(m->key, keys[i], 32);
			m->next = c->mem[b];
			c->mem[b] = m;
			c->mem_n++;
		}
		if (m) {
			memcpy(m->row.ts, ts[i], CACHE_TS_LEN);
			m->row.arrived_ns = now_ns;
			res[i] = 0;
		} else {
			c->mem_refused++;
			res[i] = rc;
		}
		pthread_mutex_unlock(&c->mem_lock);
	}
	if (txn)
		mdb_txn_abort(txn);
	return rc;
}

int cache_ts_check_many(struct cache *c, const uint8_t (*keys)[32],
			const uint8_t (*ts)[CACHE_TS_LEN], int *res, size_t n)
{
	uint8_t floor[CACHE_TS_LEN];
	MDB_txn *txn;
	size_t i;
	int rc;

	if (!n)
		return 0;
	rc = err(mdb_txn_begin(c->env, NULL, MDB_RDONLY, &txn));
	if (!rc) {
		rc = floor_get(txn, c, floor);
		for (i = 0; i < n && !rc; i++) {
			res[i] = ts_check(txn, c, floor, keys[i], ts[i]);
			if (res[i] != -ESTALE)
				rc = res[i];
		}
		mdb_txn_abort(txn);
	}
	if (rc)
		for (i = 0; i < n; i++)
			if (res[i] != -ESTALE)
				res[i] = rc;
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
	struct disk_ts row;
	MDB_txn *txn;
	int ret;

	ret = err(mdb_txn_begin(c->env, NULL, MDB_RDONLY, &txn));
	if (ret)
		return ret;
	ret = ts_read(txn, c, key, &row);
	mdb_txn_abort(txn);
	if (!ret)
		memcpy(ts, row.ts, CACHE_TS_LEN);
	return ret;
}

int cache_ts_seal(struct cache *c, const uint8_t key[static 32],
		  uint64_t margin_ns)
{
	uint64_t now = c->now_ns();
	struct disk_ts row, sealed = { .arrived_ns = now };
	struct mem_ts *m;
	MDB_txn *txn;
	int ret;

	ret = err(mdb_txn_begin(c->env, NULL, 0, &txn));
	if (ret)
		return ret;
	ret = ts_read(txn, c, key, &row);
	if (ret) {
		mdb_txn_abort(txn);
		return ret == -ENOENT ? 0 : ret;
	}
	/* The client's clock now, from its last initiation (none known: the
	 * row itself), plus the margin. */
	tai_add_ns(sealed.ts, row.ts,
		   (row.arrived_ns && now > row.arrived_ns ? now - row.arrived_ns : 0) +
			   margin_ns);
	if (memcmp(sealed.ts, row.ts, CACHE_TS_LEN) <= 0) {
		mdb_txn_abort(txn);
		return 0;
	}
	ret = commit_or_abort(txn, ts_write(txn, c, key, &sealed));
	pthread_mutex_lock(&c->mem_lock);
	m = c->mem_n ? mem_find(c, key) : NULL;
	if (ret && m) {
		/* The map is full and the row lives in memory: seal it there. */
		m->row = sealed;
		ret = 0;
	}
	if (!ret)
		c->sealed++;
	pthread_mutex_unlock(&c->mem_lock);
	return ret;
}

/*
 * Delete timestamp rows of unknown keys, oldest timestamp first: those older
 * than ts_keep, or any while the map is under pressure. Each deletion raises
 * the floor to the deleted timestamp. A known key's index entry is dropped
 * (deleting its managed record or positive entry brings it back).
 */
static int expire_ts(MDB_txn *txn, struct cache *c, uint64_t now, bool pressure,
		     size_t *budget, size_t *done, size_t *early)
{
	uint8_t limit[CACHE_TS_LEN], ts[CACHE_TS_LEN], key[32];
	MDB_cursor *cur;
	MDB_val k, v, rk;
	int rc, ret = 0;

	tai_of_ns(limit, (now > c->ts_keep ? now - c->ts_keep : 0) * 1000000000ull);
	rc = mdb_cursor_open(txn, c->tsage, &cur);
	if (rc)
		return err(rc);
	rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	while (!rc && *budget) {
		bool young;

		if (k.mv_size != TSAGE_LEN) {
			ret = err(mdb_cursor_del(cur, 0));
			goto next;
		}
		memcpy(ts, k.mv_data, CACHE_TS_LEN);
		memcpy(key, (uint8_t *)k.mv_data + CACHE_TS_LEN, 32);
		young = memcmp(ts, limit, CACHE_TS_LEN) >= 0;
		if (young) {
			/* Under pressure, a few at a time until back under the
			 * target. */
			if (!pressure || (*early % 64 == 0 &&
					  !under_pressure(txn, c, CACHE_PRESSURE_TARGET_PCT)))
				break;
		}
		ret = err(mdb_cursor_del(cur, 0));
		if (ret)
			break;
		(*budget)--;
		if (known(txn, c, key))
			goto next;
		rk.mv_size = 32;
		rk.mv_data = key;
		rc = mdb_get(txn, c->ts, &rk, &v);
		if (!rc && v.mv_size >= CACHE_TS_LEN &&
		    memcmp(v.mv_data, ts, CACHE_TS_LEN) > 0)
			memcpy(ts, v.mv_data, CACHE_TS_LEN);
		if (!rc)
			ret = err(mdb_del(txn, c->ts, &rk, NULL));
		else if (rc != MDB_NOTFOUND)
			ret = err(rc);
		if (!ret)
			ret = floor_raise(txn, c, ts);
		if (ret)
			break;
		(*done)++;
		if (young)
			(*early)++;
next:
		if (ret)
			break;
		/* Every entry visited is deleted: the next is the first. */
		rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	}
	mdb_cursor_close(cur);
	if (!ret && rc && rc != MDB_NOTFOUND)
		ret = err(rc);
	return ret;
}

/* Write the in-memory rows out once the map has room again. */
static void mem_flush(struct cache *c)
{
	MDB_txn *txn;
	int ret;

	pthread_mutex_lock(&c->mem_lock);
	if (!c->mem_n || mdb_txn_begin(c->env, NULL, 0, &txn)) {
		pthread_mutex_unlock(&c->mem_lock);
		return;
	}
	ret = 0;
	for (size_t b = 0; b < MEM_BUCKETS && !ret; b++)
		for (struct mem_ts *m = c->mem[b]; m && !ret; m = m->next) {
			MDB_val k = { .mv_size = 32, .mv_data = m->key }, v;

			/* Written unless the disk row is newer (ts_read would
			 * prefer ours: read the disk row alone). */
			if (!mdb_get(txn, c->ts, &k, &v) && v.mv_size >= CACHE_TS_LEN &&
			    memcmp(v.mv_data, m->row.ts, CACHE_TS_LEN) >= 0)
				continue;
			ret = ts_write(txn, c, m->key, &m->row);
		}
	if (!commit_or_abort(txn, ret))
		mem_clear(c);
	pthread_mutex_unlock(&c->mem_lock);
}

long cache_expire(struct cache *c, uint64_t now, size_t max, bool force)
{
	size_t budget = max ? max : 4096, done = 0, early = 0;
	MDB_txn *txn;
	bool pressure;
	int ret;

	ret = err(mdb_txn_begin(c->env, NULL, 0, &txn));
	if (ret)
		return ret;
	pressure = force || under_pressure(txn, c, CACHE_PRESSURE_PCT);
	ret = expire_peers(txn, c, now, &budget, &done);
	if (!ret)
		ret = expire_ts(txn, c, now, pressure, &budget, &done, &early);
	ret = commit_or_abort(txn, ret);
	if (ret)
		return ret;
	pthread_mutex_lock(&c->mem_lock);
	c->expired += done;
	c->pressure_expired += early;
	pthread_mutex_unlock(&c->mem_lock);
	mem_flush(c);
	return (long)done;
}

static void *janitor(void *arg)
{
	struct cache *c = arg;

	pthread_mutex_lock(&c->mu);
	while (sleep_interval(c, c->expire_interval_ms)) {
		pthread_mutex_unlock(&c->mu);
		/* Until a pass finds nothing more to do (a backlog after a
		 * flood goes in bounded transactions). */
		while (cache_expire(c, c->now_ns() / 1000000000ull, 0, false) >= 4096)
			;
		pthread_mutex_lock(&c->mu);
	}
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

static void stop_threads(struct cache *c)
{
	pthread_mutex_lock(&c->mu);
	c->stop = true;
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
	if (c->syncer)
		pthread_join(c->thread, NULL);
	if (c->janitor)
		pthread_join(c->janitor_thread, NULL);
	c->syncer = c->janitor = false;
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
	return cache_managed_put_many(c, m, 1);
}

int cache_managed_put_many(struct cache *c, const struct cache_managed *m, size_t n)
{
	struct disk_managed d;
	MDB_txn *txn;
	MDB_val k, v;
	int rc;

	rc = mdb_txn_begin(c->menv, NULL, 0, &txn);
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
	long len = get(c->menv, c->managed, key, &d, sizeof(d));

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
	rc = mdb_txn_begin(c->menv, NULL, 0, &txn);
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
	MDB_val k = { .mv_size = 32, .mv_data = (void *)key }, v;
	struct disk_ts row;
	struct disk_peer d;
	MDB_txn *txn;
	int ret;

	if (!managed_has(c, key))
		return -ENOENT;
	/*
	 * No longer in use: its rows become expiry candidates again. First,
	 * as the two envs commit apart: a crash in between leaves candidates
	 * that expiry skips while the record is there (and whose record's
	 * deletion queues them again), never rows that nothing expires.
	 */
	ret = err(mdb_txn_begin(c->env, NULL, 0, &txn));
	if (ret)
		return ret;
	if (!ts_read(txn, c, key, &row))
		ret = tsage_put(txn, c, row.ts, key);
	if (!ret && !mdb_get(txn, c->peers, &k, &v) && v.mv_size >= sizeof(d)) {
		memcpy(&d, v.mv_data, sizeof(d));
		sodium_memzero(d.psk, sizeof(d.psk));
		ret = exp_put(txn, c, entry_due(c, &d), key);
	}
	ret = commit_or_abort(txn, ret);
	if (ret)
		return ret;
	ret = err(mdb_txn_begin(c->menv, NULL, 0, &txn));
	if (ret)
		return ret;
	return commit_or_abort(txn, err(mdb_del(txn, c->managed, &k, NULL)));
}

static int count(MDB_env *env, MDB_dbi dbi, size_t *n)
{
	MDB_txn *txn;
	MDB_stat st;
	int rc;

	rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn);
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
	return count(c->menv, c->managed, n);
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

		rc = mdb_txn_begin(c->menv, NULL, MDB_RDONLY, &txn);
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

/* Pages in use by the databases dbis of env, in bytes (0 if unreadable). */
static uint64_t pages_bytes(MDB_env *env, const MDB_dbi *dbis, size_t n)
{
	uint64_t bytes = 0;
	MDB_txn *txn;
	MDB_stat st;

	if (mdb_txn_begin(env, NULL, MDB_RDONLY, &txn))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!mdb_stat(txn, dbis[i], &st))
			bytes += (uint64_t)st.ms_psize * (st.ms_branch_pages + st.ms_leaf_pages +
							  st.ms_overflow_pages);
	mdb_txn_abort(txn);
	return bytes;
}

/* Disk blocks path + suffix uses, in bytes (a sparse file less), or 0. */
static uint64_t file_bytes(const char *path, const char *suffix)
{
	char buf[PATH_MAX];
	struct stat sb;

	if ((size_t)snprintf(buf, sizeof(buf), "%s%s", path, suffix) >= sizeof(buf) ||
	    stat(buf, &sb))
		return 0;
	return (uint64_t)sb.st_blocks * 512;
}

int cache_stats(struct cache *c, struct cache_stats *out)
{
	MDB_envinfo info;
	MDB_stat st;
	int ret;

	memset(out, 0, sizeof(*out));
	ret = count(c->env, c->peers, &out->peers);
	if (!ret)
		ret = count(c->env, c->ts, &out->ts);
	if (!ret)
		ret = count(c->menv, c->managed, &out->managed);
	if (ret)
		return ret;
	mdb_env_info(c->env, &info);
	mdb_env_stat(c->env, &st);
	out->map_size = info.me_mapsize;
	out->used_bytes = (uint64_t)(info.me_last_pgno + 1) * st.ms_psize;
	{
		MDB_dbi dbis[] = { c->peers, c->ts, c->legacy, c->meta, c->tsage, c->exp };
		const char *path;

		out->data_bytes = pages_bytes(c->env, dbis, sizeof(dbis) / sizeof(dbis[0])) +
				  pages_bytes(c->menv, &c->managed, 1);
		/* The files: the main env's is data.mdb in its directory, the
		 * managed records' (MDB_NOSUBDIR) its own path. */
		if (!mdb_env_get_path(c->env, &path))
			out->disk_bytes += file_bytes(path, "/data.mdb");
		if (!mdb_env_get_path(c->menv, &path))
			out->disk_bytes += file_bytes(path, "");
	}
	pthread_mutex_lock(&c->mem_lock);
	out->mem_ts = c->mem_n;
	out->mem_ts_refused = c->mem_refused;
	out->expired = c->expired;
	out->pressure_expired = c->pressure_expired;
	out->sealed = c->sealed;
	pthread_mutex_unlock(&c->mem_lock);
	return 0;
}
