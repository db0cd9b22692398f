/* SPDX-License-Identifier: MIT */
/*
 * Persistent cache (user/cache.c), LMDB in one directory (--cache-dir),
 * files created mode 0600: the cache holds preshared keys, which are
 * secrets. Four kinds of records, all keyed by the 32-byte public key, in
 * three named LMDB databases:
 *   "peers"    positive entries (the control plane's answer, with a TTL) and
 *              negative entries (404, with their own shorter TTL); a 404
 *              replaces a positive entry, a 200 replaces a negative one
 *   "ts"       the last accepted TAI64N timestamp of each key (12 bytes), so
 *              that replay protection survives restarts (WireGuard paper §5.1)
 *   "managed"  peers jitwgd installed: when, from which endpoint, last seen;
 *              in a file of its own, <dir>/managed.mdb (Durability, below)
 * and three bookkeeping databases: "meta" (the floor below), and two indexes
 * ordered by time, "tsage" (timestamp ‖ key) and "exp" (due time ‖ key), so
 * that expiry walks the oldest rows first instead of scanning.
 *
 * Bounded (docs/security.md): rows of keys the control plane does not know
 * (a timestamp row with neither an answer nor a managed record, a negative
 * entry, a positive entry past its maximum stale age that no managed peer
 * uses) are deleted by a janitor thread, oldest first: timestamp rows once
 * their timestamp is older than ts_keep, and sooner when the map passes
 * CACHE_PRESSURE_PCT of its size. Deleting a timestamp row raises the
 * cache's floor to that timestamp: a key with no row is fresh only with a
 * timestamp newer than the floor, so no initiation older than a deleted row
 * ever becomes fresh again. A new cache's floor is its creation time (an
 * emptied cache directory does not reopen the door to captured initiations).
 *
 * Durability: every write is one LMDB transaction. By default it is
 * committed with LMDB's durable sync (no MDB_NOSYNC), so a kill -9 or a crash
 * at any moment leaves the last committed state; reopening never needs a
 * repair. That costs an fsync per write (~0.5 ms on the dev VM, see
 * `make bench-cache`); enum cache_sync trades some of it away, see there.
 * The managed records are the exception, in every mode: committed without
 * a sync (a kill -9 loses none of them; an OS crash, which empties the
 * WireGuard device too, may), in <dir>/managed.mdb, which is trusted only
 * in the boot of the OS that wrote it and deleted at the first open in
 * another (docs/security.md, "Managed records"). Opening is O(1) in the
 * cache size (nothing is scanned), except once after an upgrade: records
 * an older version kept in the main file move to managed.mdb.
 *
 * Threads: one cache handle is shared by all threads. Every call runs its own
 * transaction (MDB_NOTLS: read transactions are not bound to a thread); write
 * transactions are serialised by LMDB. No call holds a transaction when it
 * returns, and callbacks run outside any transaction.
 *
 * Times are wall-clock Unix seconds (they are persisted across restarts),
 * passed in by the caller so tests can move time.
 *
 * All functions return 0 (or a state >= 0 where said) or -errno:
 *   -ENOENT  no such record      -ENOSPC  map full (raise map_size)
 *   -EIO     LMDB error (corruption, I/O)   -ENOMEM
 */
#ifndef JITWG_CACHE_H
#define JITWG_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api.h"
#include "wgdev.h"

enum {
	CACHE_TS_LEN = 12,                  /* TAI64N */
	CACHE_BOOT_ID_LEN = 36,             /* /proc/sys/kernel/random/boot_id */
	CACHE_DEFAULT_TTL = 300,            /* positive entries, seconds */
	CACHE_DEFAULT_NEGATIVE_TTL = 30,    /* 404 entries, seconds */
};

/* 4 GiB of address space (sparse file): > 1,000,000 entries of each kind. */
#define CACHE_DEFAULT_MAP_SIZE (4ULL << 30)

enum {
	/* A timestamp row of an unknown key is kept at least this long after
	 * its timestamp (in the gateway's clock) under no pressure. */
	CACHE_DEFAULT_TS_KEEP = 600,
	/* A positive answer is used (and kept) at most this long past its
	 * expiry, and only while the control plane fails (--max-stale). */
	CACHE_DEFAULT_MAX_STALE = 3600,
	/* Timestamp rows kept in memory when the map cannot take them. */
	CACHE_DEFAULT_MEM_TS = 65536,
	/* Expiry deletes younger rows too once the map is this full. */
	CACHE_PRESSURE_PCT = 60,
	CACHE_PRESSURE_TARGET_PCT = 45,
};

/*
 * Commit durability. Every mode survives kill -9 of the process at any
 * moment with nothing lost: a commit has written its pages to the kernel
 * before it returns, and the kernel outlives the process. The modes differ
 * only on an OS crash or power loss.
 */
enum cache_sync {
	CACHE_SYNC_FULL,     /* default: data and meta pages synced per commit;
			      * an OS crash loses nothing acknowledged */
	CACHE_SYNC_NOMETA,   /* MDB_NOMETASYNC: data synced per commit, the meta
			      * page at the next commit: an OS crash can undo
			      * the last commit, never damage the file; ~2x */
	CACHE_SYNC_PERIODIC, /* MDB_NOSYNC | MDB_WRITEMAP + a thread syncing
			      * every sync_interval_ms: commits are stores
			      * into the shared map, no system call (~15x
			      * cheaper than pwrite). An OS crash loses up to
			      * one interval of writes and, as the kernel
			      * writes dirty pages back in any order, can
			      * damage the file (then delete the cache dir:
			      * it is a cache, managed peers are reconciled
			      * from the device). The data file's apparent
			      * size is the map size (sparse), and a full disk
			      * stops the process with SIGBUS instead of
			      * failing a write. */
};

/* Zero fields take the defaults. */
struct cache_options {
	uint64_t map_size;       /* bytes [CACHE_DEFAULT_MAP_SIZE] */
	uint32_t default_ttl;    /* positive TTL when the answer has none [300] */
	uint32_t negative_ttl;   /* 404 TTL [30] */
	enum cache_sync sync;    /* [CACHE_SYNC_FULL] */
	uint32_t sync_interval_ms; /* CACHE_SYNC_PERIODIC [1000] */
	uint32_t ts_keep;        /* s [CACHE_DEFAULT_TS_KEEP] */
	uint32_t max_stale;      /* s [CACHE_DEFAULT_MAX_STALE] */
	uint32_t expire_interval_ms; /* janitor period [1000]; UINT32_MAX: no
				      * janitor (tests call cache_expire) */
	int32_t mem_ts_max;      /* [CACHE_DEFAULT_MEM_TS]; < 0: none */
	/* Wall clock, ns since the Unix epoch [CLOCK_REALTIME]: the floor of
	 * a new cache, the arrival time stored with each timestamp. */
	uint64_t (*now_ns)(void);
	/* This boot's id, CACHE_BOOT_ID_LEN characters [the kernel's]: tests
	 * pass another to play a reboot. Anything else: unknown, and then the
	 * managed records are synced per commit. */
	const char *boot_id;
};

enum cache_state {
	CACHE_MISS,      /* no entry, or an expired negative entry */
	CACHE_FRESH,     /* positive, now < expires_at */
	CACHE_STALE,     /* positive, expired less than max_stale ago: use only
			  * while the control plane fails; older: CACHE_MISS */
	CACHE_NEGATIVE,  /* 404 cached and not expired: do not ask again */
};

/* A positive entry as stored. peer.preshared_key is a secret: wipe it. */
struct cache_entry {
	struct api_peer peer;
	uint64_t fetched_at;  /* when the answer arrived */
	uint64_t expires_at;  /* fetched_at + ttl */
};

/* One managed-peer record. */
struct cache_managed {
	uint8_t public_key[32];
	uint64_t installed_at;          /* when jitwgd installed the peer */
	uint64_t last_seen;             /* last sighting or handshake */
	union wgdev_endpoint endpoint;  /* where the initiation came from */
	uint32_t flags;                 /* free for the daemon, stored as is */
};

struct cache;

/*
 * Open (creating dir's files 0600 if needed; dir itself must exist).
 * opts may be NULL. One handle per process per directory (LMDB rule).
 * cache_close() syncs whatever a non-FULL mode left unsynced.
 */
int cache_open(struct cache **out, const char *dir,
	       const struct cache_options *opts);
void cache_close(struct cache *c);

/* Store a 200 answer; expires_at = now + (peer ttl if given, else default). */
int cache_put_peer(struct cache *c, const struct api_peer *peer, uint64_t now);

/* Store n answers in one transaction (one sync): bulk loads, benchmarks. */
int cache_put_peers(struct cache *c, const struct api_peer *peers, size_t n,
		    uint64_t now);

/* One control-plane answer: peer for a 200, NULL for a 404 (negative). */
struct cache_answer {
	uint8_t key[32];
	const struct api_peer *peer;
};

/*
 * Store n answers (200s and 404s) in one transaction, so one sync: the
 * daemon's cache writer batches what the control plane answered.
 */
int cache_put_answers(struct cache *c, const struct cache_answer *a, size_t n,
		      uint64_t now);

/* Store a 404 for key; expires at now + negative_ttl. */
int cache_put_negative(struct cache *c, const uint8_t key[static 32],
		       uint64_t now);

/*
 * Look key up. Returns a cache_state (>= 0) or -errno. out (may be NULL) is
 * filled for CACHE_FRESH and CACHE_STALE; for CACHE_NEGATIVE only its
 * fetched_at and expires_at are set.
 */
int cache_get_peer(struct cache *c, const uint8_t key[static 32], uint64_t now,
		   struct cache_entry *out);

/* Remove the positive or negative entry (-ENOENT if none). */
int cache_del_peer(struct cache *c, const uint8_t key[static 32]);

/*
 * Replay check and update in one write transaction: if ts is greater than
 * the stored timestamp (or, with none stored, than the cache's floor), store
 * it with the time it arrived and return 0; otherwise return -ESTALE and
 * change nothing. TAI64N compares as big-endian bytes. Call only after the
 * initiation authenticated (its timestamp decrypted).
 */
int cache_ts_accept(struct cache *c, const uint8_t key[static 32],
		    const uint8_t ts[static CACHE_TS_LEN]);
/*
 * The same for n initiations in one transaction, so one sync (with
 * CACHE_SYNC_FULL an fsync per client made a burst disk-bound): res[i] gets
 * 0 or -ESTALE, as above, in order, so a key twice is checked against its
 * own earlier timestamp. When the map is full, expiry runs at once and the
 * batch is tried again; if it still fails nothing is stored on disk: rows
 * stale against what is stored still get -ESTALE, the fresh ones are kept in
 * a bounded in-memory table (and count as stored: they are checked against
 * it, and written out once the map has room) while it has room, the rest get
 * the error: the caller must refuse them (a cache that cannot be written
 * lets no replay through). Returns 0 or that error.
 */
int cache_ts_accept_many(struct cache *c, const uint8_t (*keys)[32],
			 const uint8_t (*ts)[CACHE_TS_LEN], int *res, size_t n);
/*
 * The same verdicts, read-only: what cache_ts_accept_many() would answer
 * now, storing nothing (no sync: microseconds, where a durable write costs
 * an fsync). A caller may start work on a fresh verdict (a control-plane
 * request: replays are refused before it) but must act on nothing before
 * cache_ts_accept_many() recorded the timestamp, whose verdict is the one
 * that counts (two initiations of one key may both look fresh here).
 * On a read error every row not found stale gets it; returns 0 or it.
 */
int cache_ts_check_many(struct cache *c, const uint8_t (*keys)[32],
			const uint8_t (*ts)[CACHE_TS_LEN], int *res, size_t n);
int cache_ts_get(struct cache *c, const uint8_t key[static 32],
		 uint8_t ts[static CACHE_TS_LEN]);

/*
 * The key's peer left the device (evicted, revoked, removed): raise its row
 * so that no initiation made before now is fresh again, including ones
 * jitwgd never saw. The client's clock is learned from its last accepted
 * initiation (its timestamp against the gateway's clock when it arrived):
 * row = last timestamp + (now - its arrival) + margin_ns. The margin covers
 * the network delay of that initiation and the clients' 2^24 ns timestamp
 * granularity; a client's own next initiation passes once it is at least
 * margin_ns after now (docs/security.md). A key with no row: nothing to do.
 */
int cache_ts_seal(struct cache *c, const uint8_t key[static 32],
		  uint64_t margin_ns);

/* The floor: the timestamp a key with no row must exceed. */
int cache_ts_floor(struct cache *c, uint8_t ts[static CACHE_TS_LEN]);

/*
 * One expiry pass at now (wall s), at most max deletions (0: default),
 * as the janitor thread runs it; force: as under pressure. Returns the
 * number of rows deleted or -errno.
 */
long cache_expire(struct cache *c, uint64_t now, size_t max, bool force);

/* Insert or replace the record of m->public_key. */
int cache_managed_put(struct cache *c, const struct cache_managed *m);
/* The same for n records in one transaction, never synced (see Durability
 * above): a burst of installs. */
int cache_managed_put_many(struct cache *c, const struct cache_managed *m, size_t n);
int cache_managed_get(struct cache *c, const uint8_t key[static 32],
		      struct cache_managed *out);
/* Update last_seen, and the endpoint unless ep is NULL; -ENOENT if absent. */
int cache_managed_touch(struct cache *c, const uint8_t key[static 32],
			uint64_t last_seen, const union wgdev_endpoint *ep);
int cache_managed_del(struct cache *c, const uint8_t key[static 32]);
/* Number of managed records, O(1) (LMDB keeps the count). */
int cache_managed_count(struct cache *c, size_t *n);

/*
 * Cursor iteration over managed records in key order. Records are read in
 * batches, each batch in its own short read transaction, and cb runs outside
 * any transaction, so cb may call any cache function (e.g. delete the record
 * it is given). Records added or deleted during the walk may or may not be
 * seen; no record present throughout is missed or seen twice. cb returns 0
 * to continue, anything else stops the walk and is returned.
 */
typedef int (*cache_managed_fn)(const struct cache_managed *m, void *arg);
int cache_managed_foreach(struct cache *c, cache_managed_fn cb, void *arg);

/* Entry counts per database, O(1). */
struct cache_stats {
	size_t peers;    /* positive + negative */
	size_t ts;
	size_t managed;
	uint64_t map_size, used_bytes;
	uint64_t data_bytes;     /* pages in use by the databases (the file's
				  * high-water mark is used_bytes) */
	uint64_t disk_bytes;     /* blocks the files use, data.mdb and
				  * managed.mdb (sparse with CACHE_SYNC_PERIODIC) */
	size_t mem_ts;           /* timestamp rows held in memory now */
	uint64_t mem_ts_refused; /* fresh rows refused: memory full too */
	uint64_t expired;        /* rows deleted by expiry since open */
	uint64_t pressure_expired; /* ... of which before ts_keep (pressure) */
	uint64_t sealed;         /* cache_ts_seal() that raised a row */
};
int cache_stats(struct cache *c, struct cache_stats *out);

#endif
