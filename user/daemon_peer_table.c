// SPDX-License-Identifier: MIT
/*
 * The peer table: the daemon's view of peers. It holds the ones jitwgd
 * installed (managed, with their allowed IPs for the overlap check) and the
 * keys the device had at the last listing (managed or not: "already
 * installed" means present on the device). A chained hash table on the
 * key's first 8 bytes, which are uniformly random, doubled as it fills; the
 * allowed IPs are indexed by daemon_prefix_index.c. Never touching a peer
 * jitwgd did not install is enforced here: only managed entries are ever
 * handed to eviction. Every function takes the table's lock itself.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "allowed_ip.h"
#include "daemon_internal.h"

struct pentry {
	struct pentry *next;
	bool managed;
	bool on_device;
	struct managed_peer mp; /* key always set; the rest when managed */
	struct wgdev_allowed_ip *dev_ips; /* from the device listing */
	size_t n_dev_ips;
	uint64_t last_sighting;           /* ptab_sighting() */
};

struct peer_table {
	pthread_mutex_t lock;  /* everything below, and the entries */
	struct pentry **buckets;
	size_t n_buckets; /* power of two */
	size_t n_entries;
	size_t n_managed;
	struct prefix_index idx;
};

/* The IPs of e the overlap check considers, added (+1) or removed (-1). */
static void idx_entry(struct peer_table *t, const struct pentry *e, int delta)
{
	size_t i;

	if (e->managed)
		for (i = 0; i < e->mp.n_ips; i++)
			pidx_mod(&t->idx, e->mp.key, &e->mp.ips[i], delta);
	if (e->on_device)
		for (i = 0; i < e->n_dev_ips; i++)
			pidx_mod(&t->idx, e->mp.key, &e->dev_ips[i], delta);
}

static size_t hash_key(const uint8_t key[static 32])
{
	uint64_t h;

	/* Public keys are uniformly random: their bytes are a hash already. */
	memcpy(&h, key, sizeof(h));
	return (size_t)h;
}

int ptab_new(struct peer_table **out)
{
	struct peer_table *t = calloc(1, sizeof(*t));

	if (!t)
		return -ENOMEM;
	t->n_buckets = 1024;
	t->buckets = calloc(t->n_buckets, sizeof(*t->buckets));
	if (!t->buckets) {
		free(t);
		return -ENOMEM;
	}
	pthread_mutex_init(&t->lock, NULL);
	*out = t;
	return 0;
}

static void entry_free(struct pentry *e)
{
	free(e->mp.ips);
	free(e->dev_ips);
	free(e);
}

void ptab_free(struct peer_table *t)
{
	size_t i;

	if (!t)
		return;
	for (i = 0; i < t->n_buckets; i++) {
		struct pentry *e = t->buckets[i], *n;

		for (; e; e = n) {
			n = e->next;
			entry_free(e);
		}
	}
	free(t->buckets);
	pidx_free(&t->idx);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

static struct pentry *find(struct peer_table *t, const uint8_t key[static 32])
{
	struct pentry *e = t->buckets[hash_key(key) & (t->n_buckets - 1)];

	for (; e; e = e->next)
		if (!memcmp(e->mp.key, key, 32))
			return e;
	return NULL;
}

static void grow(struct peer_table *t)
{
	size_t n = t->n_buckets * 2, i;
	struct pentry **b = calloc(n, sizeof(*b));

	if (!b)
		return; /* keep working with longer chains */
	for (i = 0; i < t->n_buckets; i++) {
		struct pentry *e = t->buckets[i], *next;

		for (; e; e = next) {
			size_t h = hash_key(e->mp.key) & (n - 1);

			next = e->next;
			e->next = b[h];
			b[h] = e;
		}
	}
	free(t->buckets);
	t->buckets = b;
	t->n_buckets = n;
}

static struct pentry *get_or_add(struct peer_table *t, const uint8_t key[static 32])
{
	struct pentry *e = find(t, key);
	size_t h;

	if (e)
		return e;
	if (t->n_entries >= t->n_buckets)
		grow(t);
	e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	memcpy(e->mp.key, key, 32);
	h = hash_key(key) & (t->n_buckets - 1);
	e->next = t->buckets[h];
	t->buckets[h] = e;
	t->n_entries++;
	return e;
}

static void unlink_entry(struct peer_table *t, struct pentry *victim)
{
	struct pentry **pp = &t->buckets[hash_key(victim->mp.key) & (t->n_buckets - 1)];

	for (; *pp; pp = &(*pp)->next) {
		if (*pp == victim) {
			idx_entry(t, victim, -1);
			*pp = victim->next;
			t->n_entries--;
			entry_free(victim);
			return;
		}
	}
}

bool ptab_on_device(struct peer_table *t, const uint8_t key[static 32])
{
	struct pentry *e;
	bool r;

	pthread_mutex_lock(&t->lock);
	e = find(t, key);
	/* A reserved peer is not there yet: its install is in progress. */
	r = e && e->on_device && !(e->managed && e->mp.installed_ns == UINT64_MAX);
	pthread_mutex_unlock(&t->lock);
	return r;
}

uint64_t ptab_sighting(struct peer_table *t, const uint8_t key[static 32], uint64_t now)
{
	struct pentry *e;
	uint64_t prev = 0;

	pthread_mutex_lock(&t->lock);
	e = find(t, key);
	if (e) {
		prev = e->last_sighting;
		e->last_sighting = now;
	}
	pthread_mutex_unlock(&t->lock);
	return prev;
}

bool ptab_is_managed(struct peer_table *t, const uint8_t key[static 32])
{
	struct pentry *e;
	bool r;

	pthread_mutex_lock(&t->lock);
	e = find(t, key);
	r = e && e->managed;
	pthread_mutex_unlock(&t->lock);
	return r;
}

static bool any_overlap(const struct wgdev_allowed_ip *a, size_t na,
			const struct wgdev_allowed_ip *b, size_t nb)
{
	return allowed_ips_overlap(a, na, b, nb) >= 0;
}

/* Caller holds t->lock. Every entry: the reference the index must match. */
static bool overlap_scan(struct peer_table *t, const uint8_t key[static 32],
			   const struct wgdev_allowed_ip *ips, size_t n,
			   uint8_t other[static 32])
{
	size_t i;
	bool r = false;

	for (i = 0; i < t->n_buckets && !r; i++) {
		struct pentry *e = t->buckets[i];

		for (; e && !r; e = e->next) {
			if (!memcmp(e->mp.key, key, 32))
				continue;
			if ((e->managed && any_overlap(ips, n, e->mp.ips, e->mp.n_ips)) ||
			    (e->on_device && any_overlap(ips, n, e->dev_ips, e->n_dev_ips))) {
				memcpy(other, e->mp.key, 32);
				r = true;
			}
		}
	}
	return r;
}

/* Caller holds t->lock. */
static bool overlap_locked(struct peer_table *t, const uint8_t key[static 32],
			   const struct wgdev_allowed_ip *ips, size_t n,
			   uint8_t other[static 32])
{
	switch (pidx_overlap(&t->idx, key, ips, n, other)) {
	case PIDX_FOUND:
		return true;
	case PIDX_SCAN:
		return overlap_scan(t, key, ips, n, other);
	case PIDX_NONE:
		break;
	}
	return false;
}

bool ptab_overlap(struct peer_table *t, const uint8_t key[static 32],
		  const struct wgdev_allowed_ip *ips, size_t n,
		  uint8_t other[static 32])
{
	bool r;

	pthread_mutex_lock(&t->lock);
	r = overlap_locked(t, key, ips, n, other);
	pthread_mutex_unlock(&t->lock);
	return r;
}

static int add_managed(struct peer_table *t, const struct managed_peer *mp,
		       bool check, uint8_t other[static 32])
{
	struct wgdev_allowed_ip *ips = NULL;
	struct pentry *e;
	int ret = -ENOMEM;

	if (mp->n_ips) {
		ips = malloc(mp->n_ips * sizeof(*ips));
		if (!ips)
			return -ENOMEM;
		memcpy(ips, mp->ips, mp->n_ips * sizeof(*ips));
	}
	pthread_mutex_lock(&t->lock);
	if (check && overlap_locked(t, mp->key, mp->ips, mp->n_ips, other)) {
		ret = -EEXIST;
		goto out;
	}
	e = get_or_add(t, mp->key);
	if (!e)
		goto out;
	idx_entry(t, e, -1);
	free(e->mp.ips);
	e->mp = *mp;
	e->mp.ips = ips;
	ips = NULL;
	if (!e->managed)
		t->n_managed++;
	e->managed = true;
	e->on_device = true;
	idx_entry(t, e, +1);
	ret = 0;
out:
	pthread_mutex_unlock(&t->lock);
	free(ips);
	return ret;
}

int ptab_add_managed(struct peer_table *t, const struct managed_peer *mp)
{
	uint8_t other[32];

	return add_managed(t, mp, false, other);
}

int ptab_reserve(struct peer_table *t, const struct managed_peer *mp,
		 uint8_t other[static 32])
{
	return add_managed(t, mp, true, other);
}

void ptab_remove(struct peer_table *t, const uint8_t key[static 32])
{
	struct pentry *e;

	pthread_mutex_lock(&t->lock);
	e = find(t, key);
	if (e) {
		if (e->managed)
			t->n_managed--;
		unlink_entry(t, e);
	}
	pthread_mutex_unlock(&t->lock);
}

int ptab_refresh_device(struct peer_table *t, const struct wgdev_peer *peers,
			size_t n, uint64_t listed_ns)
{
	size_t i;
	int ret = 0;

	pthread_mutex_lock(&t->lock);
	/* Mark everything absent, then mark what the listing holds. Peers we
	 * installed after the listing began stay present. */
	for (i = 0; i < t->n_buckets; i++) {
		struct pentry *e = t->buckets[i];

		for (; e; e = e->next)
			if (!(e->managed && e->mp.installed_ns >= listed_ns))
				e->on_device = false;
	}
	for (i = 0; i < n; i++) {
		struct pentry *e = get_or_add(t, peers[i].public_key);

		if (!e) {
			ret = -ENOMEM;
			break;
		}
		e->on_device = true;
		free(e->dev_ips);
		e->dev_ips = NULL;
		e->n_dev_ips = 0;
		if (peers[i].n_allowed_ips) {
			e->dev_ips = malloc(peers[i].n_allowed_ips * sizeof(*e->dev_ips));
			if (e->dev_ips) {
				memcpy(e->dev_ips, peers[i].allowed_ips,
				       peers[i].n_allowed_ips * sizeof(*e->dev_ips));
				e->n_dev_ips = peers[i].n_allowed_ips;
			}
		}
	}
	/* Entries neither managed nor on the device are dropped. */
	for (i = 0; i < t->n_buckets; i++) {
		struct pentry **pp = &t->buckets[i];

		while (*pp) {
			struct pentry *e = *pp;

			if (!e->managed && !e->on_device) {
				*pp = e->next;
				t->n_entries--;
				entry_free(e);
			} else {
				pp = &e->next;
			}
		}
	}
	/* Rebuilt: on_device and device IPs changed all over. */
	pidx_clear(&t->idx);
	for (i = 0; i < t->n_buckets; i++) {
		struct pentry *e = t->buckets[i];

		for (; e; e = e->next)
			idx_entry(t, e, +1);
	}
	pthread_mutex_unlock(&t->lock);
	return ret;
}

int ptab_snapshot_managed(struct peer_table *t, struct managed_peer **out,
			  size_t *n)
{
	struct managed_peer *v;
	size_t i, k = 0;

	pthread_mutex_lock(&t->lock);
	v = calloc(t->n_managed ? t->n_managed : 1, sizeof(*v));
	if (!v) {
		pthread_mutex_unlock(&t->lock);
		return -ENOMEM;
	}
	for (i = 0; i < t->n_buckets; i++) {
		struct pentry *e = t->buckets[i];

		for (; e; e = e->next) {
			if (!e->managed)
				continue;
			v[k] = e->mp;
			v[k].ips = NULL;
			v[k].n_ips = 0;
			k++;
		}
	}
	pthread_mutex_unlock(&t->lock);
	*out = v;
	*n = k;
	return 0;
}

int ptab_get_managed(struct peer_table *t, const uint8_t key[static 32],
		     struct managed_peer *out)
{
	struct pentry *e;
	int ret = -ENOENT;

	pthread_mutex_lock(&t->lock);
	e = find(t, key);
	if (e && e->managed) {
		*out = e->mp;
		out->ips = NULL; /* the table's; not valid once unlocked */
		out->n_ips = 0;
		ret = 0;
	}
	pthread_mutex_unlock(&t->lock);
	return ret;
}

size_t ptab_count_managed(struct peer_table *t)
{
	size_t n;

	pthread_mutex_lock(&t->lock);
	n = t->n_managed;
	pthread_mutex_unlock(&t->lock);
	return n;
}

void ptab_set_installed(struct peer_table *t, const uint8_t key[static 32],
			uint64_t installed_ns)
{
	struct pentry *e;

	pthread_mutex_lock(&t->lock);
	e = find(t, key);
	if (e && e->managed)
		e->mp.installed_ns = installed_ns;
	pthread_mutex_unlock(&t->lock);
}
