// SPDX-License-Identifier: MIT
/*
 * The index of allowed-IP prefixes behind the peer table's overlap check
 * (daemon_peer_table.c): a managed peer's prefixes, and a device peer's as
 * last listed, so that reserving a new peer does not scan every peer (a
 * burst of N new clients would cost O(N^2); docs/daemon.md has the
 * measurement). One node per (prefix, owner); a prefix's owners share a
 * hash chain. Prefixes are held masked to their length, as
 * allowed_ip_overlaps() only compares those bits. The caller serialises
 * (the peer table's lock).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "daemon_internal.h"

struct iprefix {
	struct iprefix *next;
	uint8_t addr[16];
	uint8_t owner[32];
	uint32_t refs;    /* managed and device IPs of one owner may coincide */
	uint16_t family;
	uint8_t cidr;
};

static unsigned int fam_idx(uint16_t family)
{
	return family == AF_INET ? 0 : 1;
}

static unsigned int fam_len(uint16_t family)
{
	return family == AF_INET ? 32 : 128;
}

/* addr: ip's address masked to len bits (len <= ip's family's length). */
static void mask_to(uint8_t addr[static 16], const struct wgdev_allowed_ip *ip,
		    unsigned int len)
{
	const uint8_t *a = ip->family == AF_INET ? (const uint8_t *)&ip->ip4 :
						   (const uint8_t *)&ip->ip6;
	unsigned int full = len / 8, rem = len % 8;

	memset(addr, 0, 16);
	memcpy(addr, a, full);
	if (rem)
		addr[full] = a[full] & (uint8_t)(0xff << (8 - rem));
}

static size_t prefix_hash(uint16_t family, unsigned int len, const uint8_t addr[static 16])
{
	uint64_t h = 1469598103934665603ull ^ ((uint64_t)family << 8 | len);
	unsigned int i;

	/* FNV-1a: addresses are not random (allocated in sequence). */
	for (i = 0; i < 16; i++) {
		h ^= addr[i];
		h *= 1099511628211ull;
	}
	return (size_t)(h ^ (h >> 29));
}

static void idx_grow(struct prefix_index *x)
{
	size_t n = x->n_buckets ? x->n_buckets * 2 : 1024, i;
	struct iprefix **b = calloc(n, sizeof(*b));

	if (!b)
		return; /* longer chains */
	for (i = 0; i < x->n_buckets; i++) {
		struct iprefix *e = x->buckets[i], *next;

		for (; e; e = next) {
			size_t h = prefix_hash(e->family, e->cidr, e->addr) & (n - 1);

			next = e->next;
			e->next = b[h];
			b[h] = e;
		}
	}
	free(x->buckets);
	x->buckets = b;
	x->n_buckets = n;
}

/* ip of owner added (delta +1) or removed (-1). */
void pidx_mod(struct prefix_index *x, const uint8_t owner[static 32],
	      const struct wgdev_allowed_ip *ip, int delta)
{
	struct iprefix **pp, *e;
	uint8_t addr[16];
	unsigned int len;

	if (ip->family != AF_INET && ip->family != AF_INET6)
		return;
	len = ip->cidr > fam_len(ip->family) ? fam_len(ip->family) : ip->cidr;
	mask_to(addr, ip, len);
	if (delta > 0 && x->n >= x->n_buckets)
		idx_grow(x);
	if (!x->n_buckets) {
		x->incomplete |= delta > 0;
		return;
	}
	pp = &x->buckets[prefix_hash(ip->family, len, addr) & (x->n_buckets - 1)];
	for (; (e = *pp); pp = &e->next) {
		if (e->family != ip->family || e->cidr != len ||
		    memcmp(e->addr, addr, 16) || memcmp(e->owner, owner, 32))
			continue;
		if (delta > 0) {
			e->refs++;
		} else if (!--e->refs) {
			*pp = e->next;
			x->n--;
			x->by_len[fam_idx(e->family)][len]--;
			free(e);
		}
		return;
	}
	if (delta < 0)
		return;
	e = calloc(1, sizeof(*e));
	if (!e) {
		x->incomplete = true;
		return;
	}
	memcpy(e->addr, addr, 16);
	memcpy(e->owner, owner, 32);
	e->refs = 1;
	e->family = ip->family;
	e->cidr = (uint8_t)len;
	e->next = *pp;
	*pp = e;
	x->n++;
	x->by_len[fam_idx(ip->family)][len]++;
}

void pidx_clear(struct prefix_index *x)
{
	size_t i;

	for (i = 0; i < x->n_buckets; i++) {
		struct iprefix *e = x->buckets[i], *n;

		for (; e; e = n) {
			n = e->next;
			free(e);
		}
		x->buckets[i] = NULL;
	}
	x->n = 0;
	x->incomplete = false;
	memset(x->by_len, 0, sizeof(x->by_len));
}

void pidx_free(struct prefix_index *x)
{
	pidx_clear(x);
	free(x->buckets);
	x->buckets = NULL;
	x->n_buckets = 0;
}

/*
 * A prefix P overlaps a held prefix Q iff Q contains P (a point lookup of P
 * cut to each length in use up to P's) or P contains a longer Q: only
 * then, when longer prefixes are held (a subnet asked for among host
 * routes), or after a failed insert, the caller must scan (PIDX_SCAN).
 */
enum pidx_result pidx_overlap(const struct prefix_index *x,
			      const uint8_t key[static 32],
			      const struct wgdev_allowed_ip *ips, size_t n,
			      uint8_t other[static 32])
{
	size_t i;
	unsigned int len;

	if (x->incomplete)
		return PIDX_SCAN;
	if (!x->n_buckets)
		return PIDX_NONE;
	for (i = 0; i < n; i++) {
		const struct wgdev_allowed_ip *ip = &ips[i];
		unsigned int f, max, cidr;

		if (ip->family != AF_INET && ip->family != AF_INET6)
			continue;
		f = fam_idx(ip->family);
		max = fam_len(ip->family);
		cidr = ip->cidr > max ? max : ip->cidr;
		for (len = 0; len <= cidr; len++) {
			uint8_t addr[16];
			struct iprefix *e;

			if (!x->by_len[f][len])
				continue;
			mask_to(addr, ip, len);
			e = x->buckets[prefix_hash(ip->family, len, addr) & (x->n_buckets - 1)];
			for (; e; e = e->next) {
				if (e->family == ip->family && e->cidr == len &&
				    !memcmp(e->addr, addr, 16) && memcmp(e->owner, key, 32)) {
					memcpy(other, e->owner, 32);
					return PIDX_FOUND;
				}
			}
		}
		for (len = cidr + 1; len <= max; len++)
			if (x->by_len[f][len])
				return PIDX_SCAN;
	}
	return PIDX_NONE;
}
