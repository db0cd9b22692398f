// SPDX-License-Identifier: MIT
/*
 * make bench-cache: the LMDB cache's write cost per durability mode beside
 * the floor of one fdatasync on the same file system, lookup cost beside a
 * bare LMDB read transaction, and open time with an empty and a full cache.
 * BENCH_CACHE_N entries for the full cache [200000] (1000000: ~500 MB).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <lmdb.h>
#include <sodium.h>

#include "cache.h"
#include "../user/synth.h"

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void rm_rf(const char *d)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d);
	if (system(cmd))
		fprintf(stderr, "cannot remove %s\n", d);
}

static void new_dir(char *d, size_t len)
{
	snprintf(d, len, "/var/tmp/jitwg-bench-cache-XXXXXX");
	if (!mkdtemp(d)) {
		perror("mkdtemp");
		exit(1);
	}
}

/* Floor: one 4 KiB page written and fdatasync'ed, as a durable commit must. */
static double fsync_floor(const char *dir, int n)
{
	char path[128], page[4096] = { 1 };
	double t0;
	int fd;

	snprintf(path, sizeof(path), "%s/floor", dir);
	fd = open(path, O_CREAT | O_RDWR, 0600);
	if (fd < 0)
		return 0;
	t0 = now();
	for (int i = 0; i < n; i++) {
		if (pwrite(fd, page, sizeof(page), 0) != sizeof(page) ||
		    fdatasync(fd))
			break;
	}
	t0 = now() - t0;
	close(fd);
	unlink(path);
	return t0 / n * 1e6;
}

static double bench_put(enum cache_sync mode, int n, double *ts_us)
{
	struct cache_options o = { .sync = mode };
	struct api_peer p;
	struct cache *c;
	/* TAI64N of a second from now: a new cache refuses what predates its
	 * creation (its floor), and the loop adds at most n ns. */
	uint64_t tai = 0x400000000000000aull + (uint64_t)time(NULL) + 1;
	uint8_t ts[12] = { 0 };
	char dir[64];
	double t0, us;

	for (int i = 0; i < 8; i++)
		ts[i] = (uint8_t)(tai >> (56 - 8 * i));

	new_dir(dir, sizeof(dir));
	if (cache_open(&c, dir, &o))
		exit(1);
	t0 = now();
	for (int i = 0; i < n; i++) {
		synth_peer(&p, NULL, NULL, (uint32_t)i);
		if (cache_put_peer(c, &p, 1))
			exit(1);
	}
	us = (now() - t0) / n * 1e6;
	t0 = now();
	for (int i = 0; i < n; i++) {
		ts[11] = (uint8_t)i;
		ts[10] = (uint8_t)(i >> 8);
		ts[9] = (uint8_t)(i >> 16);
		if (cache_ts_accept(c, p.public_key, ts))
			exit(1);
	}
	*ts_us = (now() - t0) / n * 1e6;
	cache_close(c);
	rm_rf(dir);
	return us;
}

int main(void)
{
	const char *e = getenv("BENCH_CACHE_N");
	size_t big = e ? strtoul(e, NULL, 10) : 200000;
	struct cache_options fast = { .sync = CACHE_SYNC_PERIODIC };
	struct api_peer *batch;
	struct cache_stats st;
	struct cache_entry ce;
	struct cache *c;
	uint8_t (*keys)[32];
	char dir[64], empty[64];
	double t0, floor_us, us, ts_us, get_ns, open_empty, open_full, fill;
	enum { LOOKUPS = 200000, BATCH = 10000 };
	MDB_env *env;
	MDB_txn *txn;

	if (sodium_init() < 0)
		return 1;
	new_dir(dir, sizeof(dir));
	printf("cache benchmark (files in /var/tmp, %s)\n\n",
	       "ext4 on the VM disk");
	floor_us = fsync_floor(dir, 300);
	printf("%-44s %12s %14s\n", "writes, one transaction each", "us/write",
	       "writes/s");
	printf("%-44s %12.1f %14.0f\n", "floor: 4 KiB pwrite + fdatasync", floor_us,
	       1e6 / floor_us);
	us = bench_put(CACHE_SYNC_FULL, 300, &ts_us);
	printf("%-44s %12.1f %14.0f\n", "put_peer, CACHE_SYNC_FULL (default)", us,
	       1e6 / us);
	printf("%-44s %12.1f %14.0f\n", "ts_accept, CACHE_SYNC_FULL", ts_us,
	       1e6 / ts_us);
	us = bench_put(CACHE_SYNC_NOMETA, 300, &ts_us);
	printf("%-44s %12.1f %14.0f\n", "put_peer, CACHE_SYNC_NOMETA", us, 1e6 / us);
	us = bench_put(CACHE_SYNC_PERIODIC, 20000, &ts_us);
	printf("%-44s %12.1f %14.0f\n", "put_peer, CACHE_SYNC_PERIODIC (1 s)", us,
	       1e6 / us);
	printf("%-44s %12.1f %14.0f\n", "ts_accept, CACHE_SYNC_PERIODIC", ts_us,
	       1e6 / ts_us);

	/* Fill a cache with `big` entries in batches, then measure. */
	batch = calloc(BATCH, sizeof(*batch));
	keys = calloc(LOOKUPS, 32);
	if (!batch || !keys || cache_open(&c, dir, &fast))
		return 1;
	t0 = now();
	for (size_t i = 0; i < big; i += BATCH) {
		size_t n = big - i < BATCH ? big - i : BATCH;

		for (size_t j = 0; j < n; j++) {
			synth_peer(&batch[j], NULL, NULL, (uint32_t)(i + j));
			if (i + j < LOOKUPS)
				memcpy(keys[i + j], batch[j].public_key, 32);
		}
		if (cache_put_peers(c, batch, n, 1))
			return 1;
	}
	fill = now() - t0;
	cache_close(c);

	new_dir(empty, sizeof(empty));
	t0 = now();
	if (cache_open(&c, empty, NULL))
		return 1;
	open_empty = (now() - t0) * 1e3;
	cache_close(c);
	rm_rf(empty);
	t0 = now();
	if (cache_open(&c, dir, NULL))
		return 1;
	open_full = (now() - t0) * 1e3;
	cache_stats(c, &st);

	size_t nk = big < LOOKUPS ? big : LOOKUPS;
	t0 = now();
	for (size_t i = 0; i < LOOKUPS; i++)
		if (cache_get_peer(c, keys[(i * 7919) % nk], 1, &ce) != CACHE_FRESH)
			return 1;
	get_ns = (now() - t0) / LOOKUPS * 1e9;
	cache_close(c);

	/* Floor for a lookup: a bare read transaction begin + abort. */
	mdb_env_create(&env);
	mdb_env_set_maxdbs(env, 4);
	mdb_env_set_mapsize(env, CACHE_DEFAULT_MAP_SIZE);
	mdb_env_open(env, dir, MDB_NOTLS | MDB_RDONLY, 0600);
	t0 = now();
	for (size_t i = 0; i < LOOKUPS; i++) {
		mdb_txn_begin(env, NULL, MDB_RDONLY, &txn);
		mdb_txn_abort(txn);
	}
	us = (now() - t0) / LOOKUPS * 1e9;
	mdb_env_close(env);

	printf("\n%-44s %12s\n", "lookups (random keys, warm)", "ns/lookup");
	printf("%-44s %12.0f\n", "floor: LMDB read txn begin + abort", us);
	printf("%-44s %12.0f\n", "get_peer, hit", get_ns);
	printf("\n%-44s %12s\n", "open", "ms");
	printf("%-44s %12.3f\n", "cache_open, empty cache", open_empty);
	printf("%-44s %12.3f\n", "cache_open, full cache (below)", open_full);
	printf("\nfull cache: %zu entries, filled in %.1f s (%.0f/s, batches of %d),"
	       " %.1f MiB used, %.0f bytes/entry, map %llu MiB\n",
	       st.peers, fill, (double)big / fill, BATCH,
	       (double)st.used_bytes / 1048576.0,
	       (double)st.used_bytes / (double)(st.peers ? st.peers : 1),
	       (unsigned long long)(st.map_size >> 20));
	free(batch);
	free(keys);
	rm_rf(dir);
	return 0;
}
