// SPDX-License-Identifier: MIT
/*
 * jitwg-cachefill DIR N [SEED [NET]]: add N synthetic positive entries (one
 * /32 each, long TTL) to the cache in DIR, for the benchmark of jitwgd's
 * memory and start-up time with a large cache. Keys are random, or with SEED
 * the load generator's clients 0..N-1 (user/synth.h) with the allowed IPs
 * `jitwg-loadgen keys --net NET` lists. One transaction per 10,000 entries.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "cache.h"
#include "synth.h"

int main(int argc, char **argv)
{
	enum { BATCH = 10000 };
	struct cache *c;
	struct api_peer *batch;
	unsigned long n, i, k = 0;
	uint64_t now = (uint64_t)time(NULL);
	int ret;

	const char *seed = argc > 3 ? argv[3] : NULL;
	struct in_addr net = { htonl(0x0a800000u) };

	if (argc < 3 || (argc > 4 && inet_pton(AF_INET, argv[4], &net) != 1)) {
		fprintf(stderr, "usage: jitwg-cachefill DIR N [SEED [NET]]\n");
		return 2;
	}
	n = strtoul(argv[2], NULL, 10);
	if (sodium_init() < 0)
		return 1;
	ret = cache_open(&c, argv[1], NULL);
	if (ret) {
		fprintf(stderr, "cachefill: cannot open %s: %s\n", argv[1], strerror(-ret));
		return 1;
	}
	batch = calloc(BATCH, sizeof(*batch));
	if (!batch) {
		cache_close(c);
		return 1;
	}
	for (i = 0; i < n; i += k) {
		for (k = 0; k < BATCH && i + k < n; k++)
			synth_peer(&batch[k], seed, &net, (uint32_t)(i + k));
		/* One transaction per batch: a million entries in ~100 syncs. */
		ret = cache_put_peers(c, batch, k, now);
		if (ret) {
			fprintf(stderr, "cachefill: put at %lu: %s\n", i, strerror(-ret));
			free(batch);
			cache_close(c);
			return 1;
		}
	}
	free(batch);
	cache_close(c);
	return 0;
}
