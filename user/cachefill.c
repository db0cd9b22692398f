// SPDX-License-Identifier: MIT
/*
 * jitwg-cachefill DIR N [SEED [NET]]: add N synthetic positive entries (one
 * /32 each, long TTL) to the cache in DIR, for the benchmark of jitwgd's
 * memory and start-up time with a large cache. Keys are random, or with SEED
 * the load generator's clients 0..N-1 (user/synth.h) with the allowed IPs
 * `jitwg-loadgen keys --net NET` lists. Writes go through
 * cache_put_peer() like the daemon's; fine for a benchmark set-up, even if
 * a million synced transactions take a while on a slow disk.
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
	struct cache *c;
	struct api_peer p;
	unsigned long n, i;
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
	for (i = 0; i < n; i++) {
		memset(&p, 0, sizeof(p));
		if (seed) {
			uint8_t priv[32];

			synth_key(priv, p.public_key, seed, (uint32_t)i);
			sodium_memzero(priv, sizeof(priv));
		} else {
			randombytes_buf(p.public_key, 32);
		}
		p.flags = API_PEER_HAS_TTL;
		p.ttl = 86400;
		p.n_allowed_ips = 1;
		p.allowed_ips[0].family = AF_INET;
		p.allowed_ips[0].cidr = 32;
		p.allowed_ips[0].ip4.s_addr = seed ?
			htonl(ntohl(net.s_addr) + (uint32_t)i + 1) :
			htonl(0x0a000000u | (uint32_t)(i & 0xffffff));
		ret = cache_put_peer(c, &p, now);
		if (ret) {
			fprintf(stderr, "cachefill: put %lu: %s\n", i, strerror(-ret));
			cache_close(c);
			return 1;
		}
	}
	cache_close(c);
	return 0;
}
