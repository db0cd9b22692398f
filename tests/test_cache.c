// SPDX-License-Identifier: MIT
/*
 * Unit tests of the LMDB cache: entries and their TTLs, negative and stale
 * entries, replay timestamps, managed records and their iteration, reopen,
 * concurrent workers, and consistency after a writer is killed with SIGKILL.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <lmdb.h>
#include <sodium.h>

#include "cache.h"
#include "check.h"
#include "keys.h"

static char dir[64];

static void key_of(uint8_t key[32], uint32_t i, uint8_t tag)
{
	memset(key, tag, 32);
	memcpy(key, &i, sizeof(i));
}

/* A peer whose whole content derives from i, so a reader can verify it. */
static void peer_of(struct api_peer *p, uint32_t i)
{
	memset(p, 0, sizeof(*p));
	key_of(p->public_key, i, 0xaa);
	memset(p->preshared_key, (int)(i & 0xff), 32);
	p->flags = API_PEER_HAS_PSK | API_PEER_HAS_KEEPALIVE | API_PEER_HAS_TTL;
	p->persistent_keepalive = (uint16_t)(i % 60);
	p->ttl = 100;
	p->n_allowed_ips = 2 + i % 3;
	for (size_t j = 0; j < p->n_allowed_ips; j++) {
		struct wgdev_allowed_ip *a = &p->allowed_ips[j];

		if (j % 2 == 0) {
			a->family = AF_INET;
			a->cidr = 32;
			a->ip4.s_addr = htonl(0x0a000000u + i * 4 + (uint32_t)j);
		} else {
			a->family = AF_INET6;
			a->cidr = 128;
			memset(&a->ip6, 0, 16);
			a->ip6.s6_addr[0] = 0xfd;
			memcpy(&a->ip6.s6_addr[8], &i, 4);
			a->ip6.s6_addr[15] = (uint8_t)j;
		}
	}
}

static int peer_eq(const struct api_peer *a, const struct api_peer *b)
{
	if (memcmp(a->public_key, b->public_key, 32) || a->flags != b->flags ||
	    a->persistent_keepalive != b->persistent_keepalive ||
	    a->n_allowed_ips != b->n_allowed_ips)
		return 0;
	if ((a->flags & API_PEER_HAS_PSK) &&
	    memcmp(a->preshared_key, b->preshared_key, 32))
		return 0;
	for (size_t j = 0; j < a->n_allowed_ips; j++) {
		const struct wgdev_allowed_ip *x = &a->allowed_ips[j];
		const struct wgdev_allowed_ip *y = &b->allowed_ips[j];

		if (x->family != y->family || x->cidr != y->cidr ||
		    memcmp(&x->ip6, &y->ip6, x->family == AF_INET ? 4 : 16))
			return 0;
	}
	return 1;
}

static void ts_of(uint8_t ts[12], uint64_t sec, uint32_t nsec)
{
	for (int i = 0; i < 8; i++)
		ts[i] = (uint8_t)(sec >> (56 - 8 * i));
	for (int i = 0; i < 4; i++)
		ts[8 + i] = (uint8_t)(nsec >> (24 - 8 * i));
}

/* TAI64N seconds label of Unix second s. */
#define T(s) (0x400000000000000aull + (s))

/* The tests' wall clock: the Unix epoch, so a new cache's floor is T(0)
 * and the small timestamps below are newer than it. */
static uint64_t epoch_clock(void)
{
	return 0;
}

static void rm_dir(const char *d)
{
	char p[512];
	DIR *dh = opendir(d);
	struct dirent *e;

	if (!dh)
		return;
	while ((e = readdir(dh))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", d, e->d_name);
		unlink(p);
	}
	closedir(dh);
	rmdir(d);
}

static void test_modes(void)
{
	struct cache_options o = { .now_ns = epoch_clock };
	struct cache *c;
	struct stat st;
	char p[128];
	int ok = 1, ret;

	ret = cache_open(&c, dir, &o);
	CHECK("cache_open", ret == 0, "ret %d", ret);
	if (ret)
		exit(1);
	cache_close(c);
	snprintf(p, sizeof(p), "%s/data.mdb", dir);
	ok &= EXPECT(stat(p, &st) == 0, "data.mdb exists");
	ok &= EXPECT((st.st_mode & 0777) == 0600, "data.mdb mode %o",
		     st.st_mode & 0777);
	snprintf(p, sizeof(p), "%s/lock.mdb", dir);
	ok &= EXPECT(stat(p, &st) == 0, "lock.mdb exists");
	ok &= EXPECT((st.st_mode & 0777) == 0600, "lock.mdb mode %o",
		     st.st_mode & 0777);
	snprintf(p, sizeof(p), "%s/managed.mdb", dir);
	ok &= EXPECT(stat(p, &st) == 0 && (st.st_mode & 0777) == 0600,
		     "managed.mdb mode %o", st.st_mode & 0777);
	CHECK("cache_files_mode_0600", ok, "modes");

	ret = cache_open(&c, "/nonexistent/jitwg-cache", NULL);
	CHECK("cache_open_missing_dir", ret == -ENOENT, "ret %d", ret);
}

static void test_entries(struct cache *c)
{
	struct api_peer p, q;
	struct cache_entry e;
	uint8_t key[32];
	int ok, ret;

	peer_of(&p, 7);
	ret = cache_put_peer(c, &p, 1000);
	ok = EXPECT(ret == 0, "put %d", ret);
	ret = cache_get_peer(c, p.public_key, 1000, &e);
	ok &= EXPECT(ret == CACHE_FRESH, "state %d", ret);
	ok &= EXPECT(peer_eq(&p, &e.peer), "same content");
	ok &= EXPECT(e.fetched_at == 1000 && e.expires_at == 1100,
		     "times %llu %llu", (unsigned long long)e.fetched_at,
		     (unsigned long long)e.expires_at);
	CHECK("cache_positive_roundtrip", ok, "see above");

	/* Row: just before expiry fresh, at expiry and after stale but whole. */
	ok = EXPECT(cache_get_peer(c, p.public_key, 1099, NULL) == CACHE_FRESH,
		    "1099");
	ret = cache_get_peer(c, p.public_key, 1100, &e);
	ok &= EXPECT(ret == CACHE_STALE, "1100 state %d", ret);
	ret = cache_get_peer(c, p.public_key, 1100 + CACHE_DEFAULT_MAX_STALE - 1, &e);
	ok &= EXPECT(ret == CACHE_STALE, "max stale - 1 state %d", ret);
	ok &= EXPECT(peer_eq(&p, &e.peer), "stale content intact");
	/* Past the maximum stale age an answer is not used any more. */
	ret = cache_get_peer(c, p.public_key, 1100 + CACHE_DEFAULT_MAX_STALE, NULL);
	ok &= EXPECT(ret == CACHE_MISS, "max stale state %d", ret);
	CHECK("cache_stale_entry_retrievable", ok, "see above");

	/* No ttl in the answer: the default (options: 50). */
	peer_of(&q, 8);
	q.flags &= ~API_PEER_HAS_TTL;
	q.flags &= ~API_PEER_HAS_PSK;
	cache_put_peer(c, &q, 2000);
	ret = cache_get_peer(c, q.public_key, 2000, &e);
	ok = EXPECT(ret == CACHE_FRESH, "state %d", ret);
	ok &= EXPECT(e.expires_at == 2050, "expires %llu",
		     (unsigned long long)e.expires_at);
	ok &= EXPECT(!(e.peer.flags & API_PEER_HAS_PSK), "no psk");
	ok &= EXPECT(key_is_zero(e.peer.preshared_key), "psk zero");
	CHECK("cache_default_ttl", ok, "see above");

	/* Negative: own ttl (options: 10), replaces the positive entry. */
	ret = cache_put_negative(c, p.public_key, 3000);
	ok = EXPECT(ret == 0, "put %d", ret);
	ret = cache_get_peer(c, p.public_key, 3000, &e);
	ok &= EXPECT(ret == CACHE_NEGATIVE, "state %d", ret);
	ok &= EXPECT(e.expires_at == 3010, "expires %llu",
		     (unsigned long long)e.expires_at);
	ret = cache_get_peer(c, p.public_key, 3009, NULL);
	ok &= EXPECT(ret == CACHE_NEGATIVE, "3009 state %d", ret);
	ret = cache_get_peer(c, p.public_key, 3010, NULL);
	ok &= EXPECT(ret == CACHE_MISS, "expired negative state %d", ret);
	CHECK("cache_negative_ttl", ok, "see above");

	/* A 200 replaces the negative entry. */
	cache_put_peer(c, &p, 4000);
	ret = cache_get_peer(c, p.public_key, 4000, &e);
	ok = EXPECT(ret == CACHE_FRESH, "state %d", ret);
	ok &= EXPECT(peer_eq(&p, &e.peer), "content");
	CHECK("cache_positive_replaces_negative", ok, "see above");

	key_of(key, 12345, 0x55);
	ret = cache_get_peer(c, key, 0, &e);
	ok = EXPECT(ret == CACHE_MISS, "state %d", ret);
	ret = cache_del_peer(c, key);
	ok &= EXPECT(ret == -ENOENT, "del missing %d", ret);
	ret = cache_del_peer(c, p.public_key);
	ok &= EXPECT(ret == 0, "del %d", ret);
	ok &= EXPECT(cache_get_peer(c, p.public_key, 0, NULL) == CACHE_MISS,
		     "gone");
	CHECK("cache_miss_and_delete", ok, "see above");

	/* The most allowed IPs an answer may carry round-trip too. */
	peer_of(&p, 9);
	p.n_allowed_ips = API_MAX_ALLOWED_IPS;
	for (size_t j = 0; j < p.n_allowed_ips; j++) {
		p.allowed_ips[j].family = AF_INET;
		p.allowed_ips[j].cidr = 32;
		p.allowed_ips[j].ip4.s_addr = htonl(0x0b000000u + (uint32_t)j);
	}
	ret = cache_put_peer(c, &p, 10);
	ok = EXPECT(ret == 0, "put %d", ret);
	ret = cache_get_peer(c, p.public_key, 10, &e);
	ok &= EXPECT(ret == CACHE_FRESH && peer_eq(&p, &e.peer), "state %d", ret);
	CHECK("cache_max_allowed_ips", ok, "see above");

	/* A batch in one transaction. */
	{
		struct api_peer batch[50];

		for (uint32_t i = 0; i < 50; i++)
			peer_of(&batch[i], 5000 + i);
		ret = cache_put_peers(c, batch, 50, 20);
		ok = EXPECT(ret == 0, "put_peers %d", ret);
		for (uint32_t i = 0; i < 50; i++) {
			ret = cache_get_peer(c, batch[i].public_key, 20, &e);
			ok &= EXPECT(ret == CACHE_FRESH &&
					     peer_eq(&batch[i], &e.peer),
				     "batch %u: %d", i, ret);
		}
		batch[7].n_allowed_ips = API_MAX_ALLOWED_IPS + 1;
		ret = cache_put_peers(c, batch, 50, 20);
		ok &= EXPECT(ret == -EINVAL, "oversized refused %d", ret);
		CHECK("cache_put_peers_batch", ok, "see above");
	}
}

static void test_ts(struct cache *c)
{
	/* Rows: (sec, nsec, expected result) in order, for one key. */
	static const struct {
		uint64_t sec;
		uint32_t nsec;
		int want;
		const char *name;
	} rows[] = {
		{ 0x400000006000000aull, 5, 0, "first timestamp accepted" },
		{ 0x400000006000000aull, 5, -ESTALE, "same timestamp replayed" },
		{ 0x400000006000000aull, 4, -ESTALE, "older nanoseconds" },
		{ 0x4000000060000009ull, 999, -ESTALE, "older seconds" },
		{ 0x400000006000000aull, 6, 0, "newer nanoseconds" },
		{ 0x400000006000000bull, 0, 0, "newer seconds" },
	};
	uint8_t key[32], ts[12], got[12], other[32];
	int ok = 1, ret;

	key_of(key, 1, 0x77);
	key_of(other, 2, 0x77);
	ret = cache_ts_get(c, key, got);
	ok &= EXPECT(ret == -ENOENT, "no ts yet: %d", ret);
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		ts_of(ts, rows[i].sec, rows[i].nsec);
		ret = cache_ts_accept(c, key, ts);
		ok &= EXPECT(ret == rows[i].want, "%s: %d", rows[i].name, ret);
	}
	ret = cache_ts_get(c, key, got);
	ts_of(ts, 0x400000006000000bull, 0);
	ok &= EXPECT(ret == 0 && !memcmp(got, ts, 12), "stored is the newest");
	/* Keys are independent. */
	ts_of(ts, T(1), 0);
	ok &= EXPECT(cache_ts_accept(c, other, ts) == 0, "other key");
	CHECK("cache_timestamps", ok, "see above");
}

/*
 * A batch (one transaction for a worker's initiations): verdicts in order,
 * a key twice checked against its own earlier timestamp; a transaction
 * that fails (map full) stores nothing and gives the rows the error, except
 * replays, which stay refused.
 */
static void test_ts_many(struct cache *c)
{
	enum { N = 6, BIG = 20000 };
	static const struct {
		int key;
		uint32_t nsec;
		int want;
	} rows[N] = {
		{ 10, 5, 0 },       /* new key */
		{ 11, 1, 0 },       /* another */
		{ 10, 5, -ESTALE }, /* same initiation twice in the batch */
		{ 10, 6, 0 },       /* its retry, newer */
		{ 10, 4, -ESTALE }, /* older than the batch's own write */
		{ 12, 0, -ESTALE }, /* older than what is stored */
	};
	uint8_t keys[N][32], ts[N][12], got[12];
	uint8_t (*bk)[32] = NULL, (*bt)[12] = NULL;
	int res[N], *bres = NULL, ok = 1, ret, bad = 0;
	struct cache_options small = { .map_size = 256 * 1024, .now_ns = epoch_clock,
				       .mem_ts_max = -1,
				       .expire_interval_ms = UINT32_MAX };
	struct cache *sc;
	char sdir[64];
	size_t i;

	key_of(keys[0], 12, 0x55);
	ts_of(ts[0], 0x4000000060000000ull, 1);
	ok &= EXPECT(cache_ts_accept(c, keys[0], ts[0]) == 0, "stored for key 12");
	for (i = 0; i < N; i++) {
		key_of(keys[i], rows[i].key, 0x55);
		ts_of(ts[i], 0x4000000060000000ull, rows[i].nsec);
	}
	ret = cache_ts_accept_many(c, (const uint8_t(*)[32])keys,
				   (const uint8_t(*)[12])ts, res, N);
	ok &= EXPECT(ret == 0, "batch: %d", ret);
	for (i = 0; i < N; i++)
		ok &= EXPECT(res[i] == rows[i].want, "row %zu: %d, want %d", i, res[i],
			     rows[i].want);
	ok &= EXPECT(cache_ts_get(c, keys[0], got) == 0 && !memcmp(got, ts[3], 12),
		     "key 10 keeps its newest");
	ok &= EXPECT(cache_ts_accept_many(c, NULL, NULL, NULL, 0) == 0, "empty batch");
	CHECK("cache_ts_batch", ok, "see above");

	/* Read-only verdicts: the same as a write's, nothing stored. */
	ok = 1;
	key_of(keys[0], 10, 0x55);
	ts_of(ts[0], 0x4000000060000000ull, 6); /* key 10's newest */
	key_of(keys[1], 10, 0x55);
	ts_of(ts[1], 0x4000000060000000ull, 7);
	key_of(keys[2], 13, 0x55);              /* a new key */
	ts_of(ts[2], 0x4000000060000000ull, 1);
	ret = cache_ts_check_many(c, (const uint8_t(*)[32])keys, (const uint8_t(*)[12])ts,
				  res, 3);
	ok &= EXPECT(ret == 0 && res[0] == -ESTALE && res[1] == 0 && res[2] == 0,
		     "check: %d, %d %d %d", ret, res[0], res[1], res[2]);
	ok &= EXPECT(cache_ts_get(c, keys[2], got) == -ENOENT, "check stored nothing");
	ok &= EXPECT(cache_ts_get(c, keys[0], got) == 0 && !memcmp(got, ts[0], 12),
		     "check left key 10 alone");
	CHECK("cache_ts_check_many", ok, "see above");

	ok = 1;
	snprintf(sdir, sizeof(sdir), "/tmp/jitwg-cache-XXXXXX");
	bk = calloc(BIG, sizeof(*bk));
	bt = calloc(BIG, sizeof(*bt));
	bres = calloc(BIG, sizeof(*bres));
	if (!bk || !bt || !bres || !mkdtemp(sdir) || cache_open(&sc, sdir, &small)) {
		CHECK("cache_ts_batch_map_full", 0, "setup");
		goto out;
	}
	for (i = 0; i < BIG; i++) {
		key_of(bk[i], (int)i + 1, 0x66);
		ts_of(bt[i], 0x4000000060000000ull, 1);
	}
	/* Replays of key 1 (stored at nsec 9): first in the batch, and last,
	 * after the row where the map fills. */
	ts_of(got, 0x4000000060000000ull, 9);
	ok &= EXPECT(cache_ts_accept(sc, bk[0], got) == 0, "key 1 stored");
	memcpy(bk[BIG - 1], bk[0], 32);
	ts_of(bt[BIG - 1], 0x4000000060000000ull, 2);
	ret = cache_ts_accept_many(sc, (const uint8_t(*)[32])bk, (const uint8_t(*)[12])bt,
				   bres, BIG);
	for (i = 1; i < BIG - 1; i++)
		bad += bres[i] != -ENOSPC;
	ok &= EXPECT(ret == -ENOSPC, "map full: %d", ret);
	ok &= EXPECT(!bad, "%d rows without the error", bad);
	ok &= EXPECT(bres[0] == -ESTALE, "replay before the failure: %d", bres[0]);
	ok &= EXPECT(bres[BIG - 1] == -ESTALE, "replay after the failure: %d", bres[BIG - 1]);
	ok &= EXPECT(cache_ts_get(sc, bk[1], got) == -ENOENT, "nothing stored");
	cache_close(sc);
	rm_dir(sdir);
	CHECK("cache_ts_batch_map_full", ok, "see above");
out:
	free(bk);
	free(bt);
	free(bres);
}

struct walk {
	size_t n;
	int sorted;
	uint8_t prev[32];
	struct cache *c;
	int del_every; /* delete every n-th record while walking */
	int stop_at;
};

static int walk_cb(const struct cache_managed *m, void *arg)
{
	struct walk *w = arg;

	if (w->n && memcmp(w->prev, m->public_key, 32) >= 0)
		w->sorted = 0;
	memcpy(w->prev, m->public_key, 32);
	w->n++;
	if (w->del_every && w->n % (size_t)w->del_every == 0)
		cache_managed_del(w->c, m->public_key);
	if (w->stop_at && w->n == (size_t)w->stop_at)
		return 42;
	return 0;
}

static void test_managed(struct cache *c)
{
	struct cache_managed m, g;
	union wgdev_endpoint ep = { 0 };
	struct walk w;
	size_t n;
	int ok, ret;

	memset(&m, 0, sizeof(m));
	key_of(m.public_key, 1, 0x11);
	m.installed_at = 500;
	m.last_seen = 501;
	m.flags = 3;
	m.endpoint.addr4.sin_family = AF_INET;
	m.endpoint.addr4.sin_port = htons(51820);
	inet_pton(AF_INET, "192.0.2.7", &m.endpoint.addr4.sin_addr);
	ret = cache_managed_put(c, &m);
	ok = EXPECT(ret == 0, "put %d", ret);
	ret = cache_managed_get(c, m.public_key, &g);
	ok &= EXPECT(ret == 0, "get %d", ret);
	ok &= EXPECT(g.installed_at == 500 && g.last_seen == 501 &&
			     g.flags == 3,
		     "fields");
	ok &= EXPECT(g.endpoint.addr4.sin_family == AF_INET &&
			     g.endpoint.addr4.sin_port == htons(51820) &&
			     g.endpoint.addr4.sin_addr.s_addr ==
				     m.endpoint.addr4.sin_addr.s_addr,
		     "endpoint v4");
	CHECK("cache_managed_roundtrip", ok, "see above");

	ep.addr6.sin6_family = AF_INET6;
	ep.addr6.sin6_port = htons(4000);
	inet_pton(AF_INET6, "2001:db8::9", &ep.addr6.sin6_addr);
	ret = cache_managed_touch(c, m.public_key, 900, &ep);
	ok = EXPECT(ret == 0, "touch %d", ret);
	cache_managed_get(c, m.public_key, &g);
	ok &= EXPECT(g.last_seen == 900 && g.installed_at == 500, "times");
	ok &= EXPECT(g.endpoint.addr6.sin6_family == AF_INET6 &&
			     g.endpoint.addr6.sin6_port == htons(4000) &&
			     !memcmp(&g.endpoint.addr6.sin6_addr,
				     &ep.addr6.sin6_addr, 16),
		     "endpoint v6");
	ret = cache_managed_touch(c, m.public_key, 901, NULL);
	cache_managed_get(c, m.public_key, &g);
	ok &= EXPECT(ret == 0 && g.last_seen == 901 &&
			     g.endpoint.addr6.sin6_family == AF_INET6,
		     "touch without endpoint keeps it");
	key_of(g.public_key, 99, 0x11);
	ret = cache_managed_touch(c, g.public_key, 1, NULL);
	ok &= EXPECT(ret == -ENOENT, "touch missing %d", ret);
	ret = cache_managed_get(c, g.public_key, &g);
	ok &= EXPECT(ret == -ENOENT, "get missing %d", ret);
	CHECK("cache_managed_touch", ok, "see above");

	ret = cache_managed_del(c, m.public_key);
	ok = EXPECT(ret == 0, "del %d", ret);
	ret = cache_managed_del(c, m.public_key);
	ok &= EXPECT(ret == -ENOENT, "del again %d", ret);
	CHECK("cache_managed_delete", ok, "see above");

	/* 1000 records: several batches of the walk. */
	for (uint32_t i = 0; i < 1000; i++) {
		memset(&m, 0, sizeof(m));
		key_of(m.public_key, i * 2654435761u, 0x22);
		m.installed_at = i;
		if (cache_managed_put(c, &m))
			break;
	}
	ret = cache_managed_count(c, &n);
	CHECK("cache_managed_count", ret == 0 && n == 1000, "%d %zu", ret, n);

	/* Many in one transaction: new records and a replaced one. */
	{
		struct cache_managed many[3];

		memset(many, 0, sizeof(many));
		for (uint32_t i = 0; i < 3; i++) {
			key_of(many[i].public_key, 7000 + i, 0x33);
			many[i].installed_at = 70 + i;
			many[i].flags = i << 16;
		}
		key_of(many[2].public_key, 5 * 2654435761u, 0x22); /* exists */
		ret = cache_managed_put_many(c, many, 3);
		ok = EXPECT(ret == 0, "put_many %d", ret);
		for (uint32_t i = 0; i < 3; i++) {
			ret = cache_managed_get(c, many[i].public_key, &g);
			ok &= EXPECT(ret == 0 && g.installed_at == 70 + i &&
				     g.flags == i << 16, "record %u: %d", i, ret);
		}
		ret = cache_managed_count(c, &n);
		ok &= EXPECT(ret == 0 && n == 1002, "count %zu", n);
		ret = cache_managed_put_many(c, many, 0);
		ok &= EXPECT(ret == 0, "empty put_many %d", ret);
		for (uint32_t i = 0; i < 2; i++)
			cache_managed_del(c, many[i].public_key);
		CHECK("cache_managed_put_many", ok, "see above");
	}

	memset(&w, 0, sizeof(w));
	w.sorted = 1;
	ret = cache_managed_foreach(c, walk_cb, &w);
	CHECK("cache_managed_foreach_all_sorted",
	      ret == 0 && w.n == 1000 && w.sorted, "ret %d n %zu sorted %d",
	      ret, w.n, w.sorted);

	memset(&w, 0, sizeof(w));
	w.sorted = 1;
	w.stop_at = 300;
	ret = cache_managed_foreach(c, walk_cb, &w);
	CHECK("cache_managed_foreach_stop", ret == 42 && w.n == 300,
	      "ret %d n %zu", ret, w.n);

	/* The callback may delete records, including the one it was given. */
	memset(&w, 0, sizeof(w));
	w.sorted = 1;
	w.c = c;
	w.del_every = 2;
	ret = cache_managed_foreach(c, walk_cb, &w);
	cache_managed_count(c, &n);
	CHECK("cache_managed_foreach_delete_during_walk",
	      ret == 0 && w.n == 1000 && w.sorted && n == 500,
	      "ret %d seen %zu left %zu", ret, w.n, n);
}

static void test_reopen(void)
{
	struct cache_options o = { .default_ttl = 50, .negative_ttl = 10,
				   .now_ns = epoch_clock };
	struct cache *c;
	struct cache_entry e;
	struct cache_stats st;
	struct api_peer p;
	uint8_t ts[12], got[12];
	int ok, ret;

	ret = cache_open(&c, dir, &o);
	if (ret) {
		CHECK("cache_reopen", 0, "open %d", ret);
		return;
	}
	peer_of(&p, 4242);
	ok = EXPECT(cache_put_peer(c, &p, 7) == 0, "put");
	ts_of(ts, T(77), 7);
	ok &= EXPECT(cache_ts_accept(c, p.public_key, ts) == 0, "ts");
	cache_close(c);

	ret = cache_open(&c, dir, &o);
	ok &= EXPECT(ret == 0, "reopen %d", ret);
	if (ret) {
		CHECK("cache_reopen", 0, "see above");
		return;
	}
	ret = cache_get_peer(c, p.public_key, 8, &e);
	ok &= EXPECT(ret == CACHE_FRESH && peer_eq(&p, &e.peer), "peer %d", ret);
	ok &= EXPECT(cache_ts_get(c, p.public_key, got) == 0 &&
			     !memcmp(got, ts, 12),
		     "timestamp survived");
	ok &= EXPECT(cache_ts_accept(c, p.public_key, ts) == -ESTALE,
		     "replay refused after restart");
	ok &= EXPECT(cache_stats(c, &st) == 0 && st.managed == 500 &&
			     st.map_size == CACHE_DEFAULT_MAP_SIZE,
		     "stats managed %zu", st.managed);
	/* The disk space is both files' blocks: the answers and timestamps
	 * (data.mdb) and the managed records' own file. */
	{
		uint64_t want = 0;
		struct stat sb;
		char f[300];
		const char *names[] = { "data.mdb", "managed.mdb" };

		for (size_t i = 0; i < 2; i++) {
			snprintf(f, sizeof(f), "%s/%s", dir, names[i]);
			ok &= EXPECT(!stat(f, &sb) && sb.st_blocks > 0, "%s", f);
			want += (uint64_t)sb.st_blocks * 512;
		}
		ok &= EXPECT(st.disk_bytes == want, "disk %llu, the files %llu",
			     (unsigned long long)st.disk_bytes, (unsigned long long)want);
	}
	CHECK("cache_reopen", ok, "see above");
	cache_close(c);
}

struct worker {
	struct cache *c;
	uint32_t id;
	int errors;
	int accepted;
};

static void *worker(void *arg)
{
	struct worker *w = arg;
	struct api_peer p;
	struct cache_entry e;
	uint8_t ts[12], shared[32];

	key_of(shared, 0xfeed, 0x33);
	for (uint32_t i = 0; i < 200; i++) {
		uint32_t k = w->id * 100000 + i;

		peer_of(&p, k);
		if (cache_put_peer(w->c, &p, 1))
			w->errors++;
		if (cache_get_peer(w->c, p.public_key, 1, &e) != CACHE_FRESH ||
		    !peer_eq(&p, &e.peer))
			w->errors++;
		/* Every thread offers the same timestamps for one key. */
		ts_of(ts, T(100 + i), 0);
		if (cache_ts_accept(w->c, shared, ts) == 0)
			w->accepted++;
	}
	return NULL;
}

static void test_threads(struct cache *c)
{
	enum { N = 4 };
	pthread_t t[N];
	struct worker w[N];
	int errors = 0, accepted = 0;

	for (int i = 0; i < N; i++) {
		w[i] = (struct worker){ .c = c, .id = (uint32_t)i + 1 };
		pthread_create(&t[i], NULL, worker, &w[i]);
	}
	for (int i = 0; i < N; i++) {
		pthread_join(t[i], NULL);
		errors += w[i].errors;
		accepted += w[i].accepted;
	}
	CHECK("cache_threads_consistent", errors == 0, "%d errors", errors);
	/* 200 distinct increasing timestamps: each accepted exactly once. */
	CHECK("cache_threads_ts_accepted_once", accepted == 200,
	      "accepted %d of 200", accepted);
}

/*
 * Child: write in a loop, each iteration a positive entry, a timestamp and a
 * managed record derived from i, and report i on the pipe after it committed.
 */
static void writer(int fd, uint32_t base, enum cache_sync sync)
{
	struct cache_options o = { .sync = sync, .sync_interval_ms = 20,
				   .now_ns = epoch_clock };
	struct cache *c;
	struct api_peer p;
	struct cache_managed m;
	uint8_t ts[12];

	if (cache_open(&c, dir, &o))
		_exit(2);
	for (uint32_t i = base;; i++) {
		peer_of(&p, i);
		if (cache_put_peer(c, &p, 1000 + i))
			_exit(3);
		ts_of(ts, T(1000 + i), i);
		if (cache_ts_accept(c, p.public_key, ts))
			_exit(4);
		memset(&m, 0, sizeof(m));
		memcpy(m.public_key, p.public_key, 32);
		m.installed_at = 1000 + i;
		m.last_seen = 1000 + i;
		if (cache_managed_put(c, &m))
			_exit(5);
		if (write(fd, &i, sizeof(i)) != sizeof(i))
			_exit(6);
	}
}

struct verify {
	struct cache *c;
	uint32_t max_seen;
	int bad;
};

static int verify_cb(const struct cache_managed *m, void *arg)
{
	struct verify *v = arg;
	struct cache_entry e;
	struct api_peer p;
	uint8_t ts[12], got[12];
	uint32_t i;

	if (m->public_key[31] != 0xaa)
		return 0; /* not a writer record */
	memcpy(&i, m->public_key, 4);
	if (i > v->max_seen)
		v->max_seen = i;
	peer_of(&p, i);
	/* The managed record is written last: the others must be complete. */
	ts_of(ts, T(1000 + i), i);
	if (m->installed_at != 1000 + i ||
	    cache_get_peer(v->c, p.public_key, 0, &e) != CACHE_FRESH ||
	    !peer_eq(&p, &e.peer) || cache_ts_get(v->c, p.public_key, got) ||
	    memcmp(got, ts, 12))
		v->bad++;
	return 0;
}

static void test_kill9(void)
{
	/* Every durability mode must survive the death of the process. */
	static const int delays_ms[] = { 30, 77, 150, 45, 60, 100 };
	static const enum cache_sync modes[] = {
		CACHE_SYNC_FULL,   CACHE_SYNC_FULL,     CACHE_SYNC_FULL,
		CACHE_SYNC_NOMETA, CACHE_SYNC_PERIODIC, CACHE_SYNC_PERIODIC,
	};
	size_t total = 0;
	int ok = 1;

	for (size_t r = 0; r < sizeof(delays_ms) / sizeof(delays_ms[0]); r++) {
		struct timespec d = { 0, delays_ms[r] * 1000000L };
		struct cache *c;
		struct verify v = { 0 };
		uint32_t i, last = 0;
		size_t n = 0;
		int fds[2], st, got = 0, ret;
		pid_t pid;

		if (pipe(fds))
			break;
		pid = fork();
		if (pid == 0) {
			close(fds[0]);
			writer(fds[1], (uint32_t)r * 1000000, modes[r]);
		}
		close(fds[1]);
		/* Wait for the first commit, then kill at an arbitrary moment. */
		if (read(fds[0], &i, sizeof(i)) == sizeof(i))
			got = 1;
		nanosleep(&d, NULL);
		kill(pid, SIGKILL);
		waitpid(pid, &st, 0);
		while (read(fds[0], &i, sizeof(i)) == sizeof(i))
			last = i;
		close(fds[0]);
		ok &= EXPECT(got && WIFSIGNALED(st) &&
				     WTERMSIG(st) == SIGKILL,
			     "round %zu: writer ran and was killed", r);

		ret = cache_open(&c, dir, NULL);
		ok &= EXPECT(ret == 0, "round %zu: reopen %d", r, ret);
		if (ret)
			break;
		v.c = c;
		ret = cache_managed_foreach(c, verify_cb, &v);
		ok &= EXPECT(ret == 0 && v.bad == 0, "round %zu: %d bad records",
			     r, v.bad);
		/* Every write acknowledged before the kill is there. */
		ok &= EXPECT(v.max_seen >= last, "round %zu: acked %u seen %u",
			     r, last, v.max_seen);
		cache_managed_count(c, &n);
		total += last + 1 - (uint32_t)r * 1000000;
		ok &= EXPECT(n >= total, "round %zu: count %zu < acked %zu", r,
			     n, total);
		printf("  kill -9 round %zu (sync mode %d): %u writes acknowledged, %zu managed\n",
		       r, modes[r], last + 1 - (uint32_t)r * 1000000, n);
		cache_close(c);
	}
	CHECK("cache_kill9_consistent", ok, "see above");
}

/* ---- bounds and floors (a clock the test moves) ---- */

static uint64_t fake_ns;

static uint64_t fake_clock(void)
{
	return fake_ns;
}

enum { NOW = 1700000000 };

static int open_fresh(struct cache **c, char *d, size_t dlen,
		      const struct cache_options *o)
{
	snprintf(d, dlen, "/tmp/jitwg-cache-XXXXXX");
	if (!mkdtemp(d))
		return -errno;
	return cache_open(c, d, o);
}

/*
 * A new (or emptied) cache refuses, for keys it has no row of, timestamps
 * older than its creation: initiations captured before the cache directory
 * was deleted stay dead.
 */
static void test_floor_new_cache(void)
{
	struct cache_options o = { .now_ns = fake_clock, .expire_interval_ms = UINT32_MAX };
	char d[64];
	struct cache *c;
	uint8_t key[32], ts[12];
	int ok = 1;

	fake_ns = (uint64_t)NOW * 1000000000ull;
	if (open_fresh(&c, d, sizeof(d), &o)) {
		CHECK("cache_floor_new_cache", 0, "open");
		return;
	}
	key_of(key, 1, 0x21);
	ts_of(ts, T(NOW - 1), 0);
	ok &= EXPECT(cache_ts_accept(c, key, ts) == -ESTALE, "captured before creation");
	ts_of(ts, T(NOW + 1), 0);
	ok &= EXPECT(cache_ts_accept(c, key, ts) == 0, "made after creation");
	cache_close(c);
	rm_dir(d);
	/* The directory deleted (the README's advice after damage) and made
	 * again an hour later: the old initiation is still refused. */
	fake_ns += 3600ull * 1000000000ull;
	if (open_fresh(&c, d, sizeof(d), &o)) {
		CHECK("cache_floor_new_cache", 0, "reopen");
		return;
	}
	ts_of(ts, T(NOW + 1), 0);
	ok &= EXPECT(cache_ts_accept(c, key, ts) == -ESTALE, "after the cache was emptied");
	ts_of(ts, T(NOW + 3601), 0);
	ok &= EXPECT(cache_ts_accept(c, key, ts) == 0, "the client's next");
	cache_close(c);
	rm_dir(d);
	CHECK("cache_floor_new_cache", ok, "see above");
}

/*
 * Sealing at eviction: a client whose clock is 5 s ahead of the gateway's;
 * every initiation it made before the seal is refused afterwards, including
 * ones never seen, and its own next one (margin later) passes.
 */
static void test_seal(void)
{
	struct cache_options o = { .now_ns = fake_clock, .expire_interval_ms = UINT32_MAX };
	const uint64_t s = 1000000000ull;
	char d[64];
	struct cache *c;
	struct cache_stats st;
	uint8_t key[32], other[32], ts[12];
	int ok = 1;

	fake_ns = (uint64_t)NOW * s;
	if (open_fresh(&c, d, sizeof(d), &o)) {
		CHECK("cache_seal", 0, "open");
		return;
	}
	key_of(key, 2, 0x21);
	key_of(other, 3, 0x21);
	ts_of(ts, T(NOW + 5), 0); /* installed: the client's clock +5 s */
	ok &= EXPECT(cache_ts_accept(c, key, ts) == 0, "install");
	fake_ns += 100 * s; /* evicted 100 s later */
	ok &= EXPECT(cache_ts_seal(c, key, 2 * s) == 0, "seal");
	ok &= EXPECT(cache_ts_seal(c, other, 2 * s) == 0, "no row: nothing to do");
	ts_of(ts, T(NOW + 5 + 99), 0); /* a rekey captured before eviction */
	ok &= EXPECT(cache_ts_accept(c, key, ts) == -ESTALE, "captured rekey");
	ts_of(ts, T(NOW + 5 + 100), 500000000); /* sent at the eviction */
	ok &= EXPECT(cache_ts_accept(c, key, ts) == -ESTALE, "at the eviction");
	ts_of(ts, T(NOW + 5 + 100 + 2), 600000000); /* its retry, later */
	ok &= EXPECT(cache_ts_accept(c, key, ts) == 0, "the client's next");
	ok &= EXPECT(cache_stats(c, &st) == 0 && st.sealed == 1, "sealed %llu",
		     (unsigned long long)st.sealed);
	cache_close(c);
	rm_dir(d);
	CHECK("cache_seal", ok, "see above");
}

/*
 * Expiry: rows of keys the control plane does not know go once older than
 * ts_keep, and their timestamps stay refused (the floor); rows of managed
 * or answered keys stay; negative entries go after their ttl, positive ones
 * after max_stale unless a managed peer uses them.
 */
static void test_expiry(void)
{
	struct cache_options o = { .now_ns = fake_clock, .expire_interval_ms = UINT32_MAX,
				   .ts_keep = 600, .max_stale = 1000, .negative_ttl = 30,
				   .default_ttl = 100 };
	const uint64_t s = 1000000000ull;
	char d[64];
	struct cache *c;
	struct cache_stats st;
	struct cache_managed m = { 0 };
	struct api_peer pk, pm;
	uint8_t u[32], n[32], ts[12], got[12];
	int ok = 1;
	long r;

	fake_ns = (uint64_t)NOW * s;
	if (open_fresh(&c, d, sizeof(d), &o)) {
		CHECK("cache_expiry", 0, "open");
		return;
	}
	key_of(u, 10, 0x31);
	key_of(n, 11, 0x31);
	peer_of(&pk, 12);
	peer_of(&pm, 13);
	pk.flags &= ~API_PEER_HAS_TTL;
	pm.flags &= ~API_PEER_HAS_TTL;
	ts_of(ts, T(NOW + 1), 0);
	ok &= EXPECT(cache_ts_accept(c, u, ts) == 0 && cache_ts_accept(c, n, ts) == 0 &&
			     cache_ts_accept(c, pk.public_key, ts) == 0 &&
			     cache_ts_accept(c, pm.public_key, ts) == 0,
		     "rows");
	ok &= EXPECT(cache_put_negative(c, n, NOW) == 0, "negative");
	ok &= EXPECT(cache_put_peer(c, &pk, NOW) == 0 && cache_put_peer(c, &pm, NOW) == 0,
		     "answers");
	memcpy(m.public_key, pm.public_key, 32);
	ok &= EXPECT(cache_managed_put(c, &m) == 0, "managed");

	r = cache_expire(c, NOW + 10, 0, false);
	ok &= EXPECT(r == 0, "nothing young goes: %ld", r);
	r = cache_expire(c, NOW + 100, 0, false);
	ok &= EXPECT(r == 1 && cache_get_peer(c, n, NOW, NULL) == CACHE_MISS,
		     "the negative entry after its ttl: %ld", r);
	r = cache_expire(c, NOW + 602, 0, false);
	ok &= EXPECT(r == 2, "old unknown rows go (u, n): %ld", r);
	ok &= EXPECT(cache_ts_get(c, u, got) == -ENOENT, "u's row gone");
	ok &= EXPECT(cache_ts_get(c, pk.public_key, got) == 0, "answered key kept");
	ok &= EXPECT(cache_ts_get(c, pm.public_key, got) == 0, "managed key kept");
	ok &= EXPECT(cache_ts_accept(c, u, ts) == -ESTALE, "u's old timestamp still refused");
	ts_of(ts, T(NOW + 603), 0);
	ok &= EXPECT(cache_ts_accept(c, u, ts) == 0, "u's new one accepted");

	/* Past ttl + max_stale: the unused answer goes, then its row. */
	r = cache_expire(c, NOW + 1101, 0, false);
	ok &= EXPECT(cache_get_peer(c, pk.public_key, NOW, NULL) == CACHE_MISS,
		     "unused answer gone");
	ok &= EXPECT(cache_get_peer(c, pm.public_key, NOW, NULL) == CACHE_FRESH,
		     "managed answer kept");
	ok &= EXPECT(cache_ts_get(c, pk.public_key, got) == -ENOENT, "its row gone");
	ok &= EXPECT(cache_ts_get(c, pm.public_key, got) == 0, "managed row kept");
	/* Evicted: its rows become candidates. */
	ok &= EXPECT(cache_managed_del(c, pm.public_key) == 0, "evict");
	cache_expire(c, NOW + 1102, 0, false);
	ok &= EXPECT(cache_get_peer(c, pm.public_key, NOW, NULL) == CACHE_MISS &&
			     cache_ts_get(c, pm.public_key, got) == -ENOENT,
		     "evicted key's rows gone");
	ok &= EXPECT(cache_stats(c, &st) == 0 && st.peers == 0 && st.ts == 1,
		     "left: %zu answers, %zu rows", st.peers, st.ts);
	cache_close(c);
	rm_dir(d);
	CHECK("cache_expiry", ok, "see above");
}

/*
 * A flood of fresh keys into a small map (4 MiB, ~25,000 rows): the map never
 * refuses a write (the oldest unknown rows go first, under pressure), every
 * replay stays refused, and managed records are still written.
 */
static void test_bounded_flood(void)
{
	enum { KEYS = 60000, B = 32 };
	struct cache_options o = { .now_ns = fake_clock, .expire_interval_ms = UINT32_MAX,
				   .map_size = 4 << 20, .mem_ts_max = -1,
				   .sync = CACHE_SYNC_NOMETA };
	char d[64];
	struct cache *c;
	struct cache_stats st;
	uint8_t keys[B][32], ts[B][12], first[32], first_ts[12];
	int res[B], ok = 1, errors = 0, refused = 0, ret;

	fake_ns = (uint64_t)NOW * 1000000000ull;
	if (open_fresh(&c, d, sizeof(d), &o)) {
		CHECK("cache_bounded_flood", 0, "open");
		return;
	}
	for (int i = 0; i < KEYS / B; i++) {
		for (int j = 0; j < B; j++) {
			randombytes_buf(keys[j], 32);
			ts_of(ts[j], T(NOW + 1), (uint32_t)(i * B + j));
		}
		if (!i) {
			memcpy(first, keys[0], 32);
			memcpy(first_ts, ts[0], 12);
		}
		fake_ns += 1000000; /* 1 ms a batch: all young */
		ret = cache_ts_accept_many(c, (const uint8_t(*)[32])keys,
					   (const uint8_t(*)[12])ts, res, B);
		errors += ret != 0;
		for (int j = 0; j < B; j++)
			refused += res[j] != 0;
	}
	ok &= EXPECT(!errors && !refused, "%d failed batches, %d rows refused", errors, refused);
	ok &= EXPECT(cache_ts_accept(c, first, first_ts) == -ESTALE,
		     "the first key's initiation replayed");
	for (uint32_t i = 0; i < 100; i++) {
		struct cache_managed m = { 0 };

		key_of(m.public_key, i, 0x44);
		ok &= EXPECT(cache_managed_put(c, &m) == 0, "managed %u", i);
	}
	ok &= EXPECT(cache_stats(c, &st) == 0 && st.pressure_expired > 0 && st.managed == 100,
		     "pressure %llu managed %zu", (unsigned long long)st.pressure_expired,
		     st.managed);
	printf("  %d fresh keys into 4 MiB: %zu rows kept, %llu expired early, %llu KiB data\n",
	       KEYS, st.ts, (unsigned long long)st.pressure_expired,
	       (unsigned long long)st.data_bytes / 1024);
	cache_close(c);
	rm_dir(d);
	CHECK("cache_bounded_flood", ok, "see above");
}

/*
 * A map full of what cannot expire (the timestamps of managed peers): fresh
 * timestamps go to the bounded in-memory table and replays of them stay
 * refused; once it is full they get the error (the caller refuses them,
 * never lets them through). (Writing them out once the map has room is not
 * tested: a full LMDB map cannot even delete, as copy-on-write needs free
 * pages.) The managed records have a file of their own; periodic sync:
 * thousands of commits, none of them about durability.
 */
static void test_mem_fallback(void)
{
	struct cache_options o = { .now_ns = fake_clock, .expire_interval_ms = UINT32_MAX,
				   .map_size = 256 * 1024, .mem_ts_max = 4,
				   .sync = CACHE_SYNC_PERIODIC };
	char d[64];
	struct cache *c;
	struct cache_stats st;
	struct cache_managed m = { 0 };
	uint8_t key[32], ts[12];
	uint32_t filled = 0, k;
	int ok = 1, ret;

	fake_ns = (uint64_t)NOW * 1000000000ull;
	if (open_fresh(&c, d, sizeof(d), &o)) {
		CHECK("cache_mem_fallback", 0, "open");
		return;
	}
	for (; filled < 20000; filled++) {
		key_of(m.public_key, filled, 0x45);
		if (cache_managed_put(c, &m))
			break;
	}
	/* Fresh timestamps of the managed keys (their rows cannot expire) until
	 * the map is full and then the memory table too. */
	ts_of(ts, T(NOW + 1), 0);
	for (k = 0; k < filled; k++) {
		key_of(key, k, 0x45);
		ok &= EXPECT(cache_ts_accept(c, key, ts) == 0, "key %u accepted", k);
		if (cache_stats(c, &st) || st.mem_ts == 4)
			break;
	}
	ok &= EXPECT(st.mem_ts == 4, "memory table used: %zu", st.mem_ts);
	for (uint32_t i = 0; i <= k; i++) {
		key_of(key, i, 0x45);
		ok &= EXPECT(cache_ts_accept(c, key, ts) == -ESTALE, "replay %u", i);
	}
	key_of(key, k + 1, 0x45);
	ret = cache_ts_accept(c, key, ts);
	ok &= EXPECT(ret == -ENOSPC, "memory full too: %d", ret);
	ok &= EXPECT(cache_stats(c, &st) == 0 && st.mem_ts == 4 && st.mem_ts_refused == 1,
		     "mem %zu refused %llu", st.mem_ts, (unsigned long long)st.mem_ts_refused);
	cache_close(c);
	rm_dir(d);
	CHECK("cache_mem_fallback", ok, "see above");
}

/* Whether the cache holds a managed record of key_of(i, 0x46). */
static bool has_managed(struct cache *c, uint32_t i)
{
	struct cache_managed m;
	uint8_t key[32];

	key_of(key, i, 0x46);
	return cache_managed_get(c, key, &m) == 0;
}

static int put_managed(struct cache *c, uint32_t i)
{
	struct cache_managed m = { .installed_at = NOW, .last_seen = NOW };

	key_of(m.public_key, i, 0x46);
	return cache_managed_put(c, &m);
}

/*
 * The managed records are committed unsynced, so their file is trusted
 * only in the boot that wrote it: reopened in the same boot they are all
 * there (a process crash: test_kill9), in another one (the OS went down,
 * and the device lost its peers with it) the file is gone. A boot id the
 * cache cannot know means synced commits, and such a file is trusted in
 * any boot.
 */
static void test_managed_boot(void)
{
	static const char boot_a[] = "11111111-2222-3333-4444-555555555555";
	static const char boot_b[] = "66666666-7777-8888-9999-000000000000";
	struct cache_options o = { .now_ns = epoch_clock, .expire_interval_ms = UINT32_MAX };
	struct cache *c = NULL;
	size_t n = 99;
	char d[64];
	int ok = 1;

	o.boot_id = boot_a;
	if (open_fresh(&c, d, sizeof(d), &o)) {
		CHECK("cache_managed_boot", 0, "open");
		return;
	}
	ok &= EXPECT(put_managed(c, 1) == 0, "put 1");
	cache_close(c);
	ok &= EXPECT(cache_open(&c, d, &o) == 0 && has_managed(c, 1), "same boot: kept");
	cache_close(c);
	o.boot_id = boot_b;
	ok &= EXPECT(cache_open(&c, d, &o) == 0, "reopen in boot b");
	ok &= EXPECT(!has_managed(c, 1) && cache_managed_count(c, &n) == 0 && n == 0,
		     "another boot: gone (%zu left)", n);
	ok &= EXPECT(put_managed(c, 2) == 0, "put 2");
	cache_close(c);
	ok &= EXPECT(cache_open(&c, d, &o) == 0 && has_managed(c, 2), "boot b again: kept");
	cache_close(c);
	o.boot_id = "unknown";
	ok &= EXPECT(cache_open(&c, d, &o) == 0 && !has_managed(c, 2),
		     "boot unknown: the unsynced file is gone");
	ok &= EXPECT(put_managed(c, 3) == 0, "put 3");
	cache_close(c);
	o.boot_id = boot_a;
	ok &= EXPECT(cache_open(&c, d, &o) == 0 && has_managed(c, 3),
		     "synced records: kept in any boot");
	cache_close(c);
	rm_dir(d);
	CHECK("cache_managed_boot", ok, "see above");
}

/*
 * Records an older version kept in the main file (its "managed" database)
 * move to managed.mdb at the first open, and leave the main file.
 */
static void test_managed_migrate(void)
{
	struct cache_options o = { .now_ns = epoch_clock, .expire_interval_ms = UINT32_MAX };
	struct cache_managed m;
	struct cache *c = NULL;
	MDB_env *env = NULL;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k, v;
	MDB_stat st = { 0 };
	uint8_t key[32], val[256];
	char d[64], p[128];
	size_t vlen = 0, n = 0;
	int ok = 1;

	if (open_fresh(&c, d, sizeof(d), &o)) {
		CHECK("cache_managed_migrate", 0, "open");
		return;
	}
	ok &= EXPECT(put_managed(c, 7) == 0, "put");
	cache_close(c);
	/* Its record as an older version wrote it: in data.mdb. */
	key_of(key, 7, 0x46);
	k.mv_size = 32;
	k.mv_data = key;
	snprintf(p, sizeof(p), "%s/managed.mdb", d);
	if (!mdb_env_create(&env) && !mdb_env_set_maxdbs(env, 2) &&
	    !mdb_env_open(env, p, MDB_NOSUBDIR | MDB_RDONLY, 0600) &&
	    !mdb_txn_begin(env, NULL, MDB_RDONLY, &txn)) {
		if (!mdb_dbi_open(txn, "managed", 0, &dbi) && !mdb_get(txn, dbi, &k, &v) &&
		    v.mv_size <= sizeof(val)) {
			memcpy(val, v.mv_data, v.mv_size);
			vlen = v.mv_size;
		}
		mdb_txn_abort(txn);
	}
	mdb_env_close(env);
	unlink(p);
	snprintf(p, sizeof(p), "%s/managed.mdb-lock", d);
	unlink(p);
	ok &= EXPECT(vlen > 0, "record read back");
	if (!mdb_env_create(&env) && !mdb_env_set_maxdbs(env, 8) &&
	    !mdb_env_set_mapsize(env, CACHE_DEFAULT_MAP_SIZE) &&
	    !mdb_env_open(env, d, 0, 0600) && !mdb_txn_begin(env, NULL, 0, &txn)) {
		v.mv_size = vlen;
		v.mv_data = val;
		if (mdb_dbi_open(txn, "managed", MDB_CREATE, &dbi) ||
		    mdb_put(txn, dbi, &k, &v, 0))
			mdb_txn_abort(txn);
		else
			ok &= EXPECT(mdb_txn_commit(txn) == 0, "legacy record written");
	}
	mdb_env_close(env);

	ok &= EXPECT(cache_open(&c, d, &o) == 0, "open the older cache");
	ok &= EXPECT(cache_managed_get(c, key, &m) == 0 && m.installed_at == NOW,
		     "record moved");
	ok &= EXPECT(cache_managed_count(c, &n) == 0 && n == 1, "count %zu", n);
	cache_close(c);
	st.ms_entries = 99;
	if (!mdb_env_create(&env) && !mdb_env_set_maxdbs(env, 8) &&
	    !mdb_env_set_mapsize(env, CACHE_DEFAULT_MAP_SIZE) &&
	    !mdb_env_open(env, d, MDB_RDONLY, 0600) &&
	    !mdb_txn_begin(env, NULL, MDB_RDONLY, &txn)) {
		if (!mdb_dbi_open(txn, "managed", 0, &dbi))
			mdb_stat(txn, dbi, &st);
		mdb_txn_abort(txn);
	}
	mdb_env_close(env);
	ok &= EXPECT(st.ms_entries == 0, "left in data.mdb: %zu", (size_t)st.ms_entries);
	rm_dir(d);
	CHECK("cache_managed_migrate", ok, "see above");
}

int main(void)
{
	struct cache_options o = { .default_ttl = 50, .negative_ttl = 10,
				   .now_ns = epoch_clock };
	struct cache *c;
	int ret;

	if (sodium_init() < 0)
		return 1;
	snprintf(dir, sizeof(dir), "/tmp/jitwg-cache-XXXXXX");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	test_modes();
	ret = cache_open(&c, dir, &o);
	if (ret) {
		CHECK("cache_open_options", 0, "ret %d", ret);
		rm_dir(dir);
		CHECK_EXIT();
	}
	test_entries(c);
	test_ts(c);
	test_ts_many(c);
	test_managed(c);
	test_threads(c);
	cache_close(c);
	test_reopen();
	rm_dir(dir);

	snprintf(dir, sizeof(dir), "/tmp/jitwg-cache-XXXXXX");
	if (!mkdtemp(dir))
		return 1;
	test_kill9();
	rm_dir(dir);
	test_floor_new_cache();
	test_seal();
	test_expiry();
	test_bounded_flood();
	test_mem_fallback();
	test_managed_boot();
	test_managed_migrate();
	CHECK_EXIT();
}
