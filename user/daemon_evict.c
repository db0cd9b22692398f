// SPDX-License-Identifier: MIT
/*
 * Eviction: every --evict-interval (or on SIGHUP) the monitor lists the
 * device and each managed peer gets a verdict from evict_decide(): kept,
 * evicted (idle, or no handshake within the window after its install),
 * or forgotten (someone else removed it). Only peers jitwgd installed are
 * ever considered: the peer table hands out managed entries only. The
 * sweep also lets the XDP port filter follow the device's listen port.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "daemon_internal.h"

enum evict_verdict evict_decide(const struct evict_policy *p, uint64_t now,
				bool on_device, uint64_t installed_at,
				uint64_t last_handshake)
{
	if (!on_device)
		return EVICT_GONE;
	if (last_handshake) {
		/* A clock step backwards must not evict: treat as fresh. */
		if (now > last_handshake && now - last_handshake >= p->idle_timeout)
			return EVICT_IDLE;
		return EVICT_KEEP;
	}
	if (now > installed_at && now - installed_at >= p->handshake_window)
		return EVICT_NEVER;
	return EVICT_KEEP;
}

const char *evict_verdict_str(enum evict_verdict v)
{
	switch (v) {
	case EVICT_KEEP:
		return "keep";
	case EVICT_IDLE:
		return "idle";
	case EVICT_NEVER:
		return "no_handshake";
	case EVICT_GONE:
		return "gone";
	}
	return "?";
}

/* The XDP port follows the device's listen port. */
void follow_listen_port(struct daemon *d)
{
	struct wgdev_info info;
	int ret;

	ret = wgdev_get_info(d->env.mon_dev, &info);
	sodium_memzero(info.private_key, sizeof(info.private_key));
	if (!ret && info.listen_port != d->env.listen_port && d->env.capture) {
		uint16_t port = info.listen_port;

		if (!capture_set_ports(d->env.capture, &port, 1)) {
			dlog(LOG_INFO, "port", "old=%u new=%u", d->env.listen_port, port);
			d->env.listen_port = port;
		}
	}
}

/* Raise the key's floor before it leaves the device (docs/security.md). */
static void seal(struct daemon *d, const uint8_t key[static 32])
{
	int ret = d->cache_ops.ts_seal(d->env.cache, key, SEAL_MARGIN_MS * 1000000ull);

	if (ret) {
		char fp[9];

		log_fingerprint(fp, key);
		dlog(LOG_ERROR, "cache", "op=ts_seal peer=%s error=%s", fp,
		     strerrorname_np(-ret) ? strerrorname_np(-ret) : "?");
	}
}

/* evict_one()'s reasons, each its own series of jitwg_evictions_total. */
static void count_eviction(struct daemon *d, const char *reason)
{
	if (!strcmp(reason, "operator"))
		INC(d, evicted_operator);
	else if (!strcmp(reason, "revoked"))
		INC(d, evicted_revoked);
	else if (!strcmp(reason, "stale"))
		INC(d, evicted_stale);
	else
		INC(d, evicted_overlap);
}

int evict_one(struct daemon *d, const uint8_t key[static 32], const char *reason,
	      const char *other)
{
	char fp[9];
	int ret;

	log_fingerprint(fp, key);
	seal(d, key);
	ret = wgdev_remove_peers(d->env.mon_dev, (const uint8_t(*)[32])key, 1);
	if (ret) {
		dlog(LOG_ERROR, "evict", "peer=%s outcome=error reason=%s error=%s", fp,
		     reason, wgdev_error(d->env.mon_dev));
		return ret;
	}
	ptab_remove(d->peers, key);
	d->cache_ops.managed_del(d->env.cache, key);
	count_eviction(d, reason);
	dlog(LOG_INFO, "evict", "peer=%s outcome=evicted reason=%s%s%s", fp, reason,
	     other ? " other=" : "", other ? other : "");
	return 0;
}

/*
 * peers: the device's listing, begun at t_list, sorted (list_sorted()).
 * The kept peers whose cached answer expired (all of them: revalidate_all)
 * are asked about again (daemon_revalidate.c).
 */
void evict_sweep(struct daemon *d, const struct wgdev_peer *peers, size_t n,
		 uint64_t t_list, bool revalidate_all)
{
	struct managed_peer *mps = NULL;
	uint8_t (*victims)[32] = NULL, (*kept)[32] = NULL;
	enum evict_verdict *why = NULL;
	size_t n_mps = 0, n_v = 0, n_kept = 0, i;
	uint64_t now = wall(d);
	int ret;

	ptab_refresh_device(d->peers, peers, n, t_list);
	if (ptab_snapshot_managed(d->peers, &mps, &n_mps))
		return;
	victims = calloc(n_mps ? n_mps : 1, sizeof(*victims));
	kept = calloc(n_mps ? n_mps : 1, sizeof(*kept));
	why = calloc(n_mps ? n_mps : 1, sizeof(*why));
	if (!victims || !kept || !why)
		goto out;
	for (i = 0; i < n_mps; i++) {
		const struct wgdev_peer *p = find_peer(peers, n, mps[i].key);
		uint64_t hs = p ? (uint64_t)p->last_handshake.tv_sec : 0;
		enum evict_verdict v;
		char fp[9];

		/* Installed while the listing ran: the listing cannot know. */
		if (!p && mps[i].installed_ns >= t_list)
			continue;
		v = evict_decide(&d->policy, now, p != NULL, mps[i].installed_at, hs);

		log_fingerprint(fp, mps[i].key);
		if (v == EVICT_GONE) {
			/* Removed by someone else: forget it, touch nothing but
			 * its floor (it left the device all the same). */
			seal(d, mps[i].key);
			ptab_remove(d->peers, mps[i].key);
			d->cache_ops.managed_del(d->env.cache, mps[i].key);
			INC(d, forgotten);
			dlog(LOG_INFO, "evict", "peer=%s outcome=forgotten reason=gone", fp);
			continue;
		}
		if (v == EVICT_KEEP) {
			/* A keepalive left at the initiate value (crash, failed
			 * restore) would keep the peer alive forever. */
			if (hs && mps[i].initiated &&
			    p->persistent_keepalive != mps[i].keepalive)
				restore_keepalive(d, mps[i].key, mps[i].keepalive);
			/* Installed, not still being installed. */
			if (mps[i].installed_ns != UINT64_MAX)
				memcpy(kept[n_kept++], mps[i].key, 32);
			/* A returning client's source keeps its own XDP budget
			 * while its handshakes are recent. */
			if (hs && now > hs && now - hs < JITWG_VERIFIED_TTL_NS / 1000000000ull)
				mark_verified(d, &p->endpoint);
			continue;
		}
		memcpy(victims[n_v], mps[i].key, 32);
		why[n_v++] = v;
	}
	if (n_v) {
		/* Sealed before they leave: no moment without the floor. */
		for (i = 0; i < n_v; i++)
			seal(d, victims[i]);
		ret = wgdev_remove_peers(d->env.mon_dev, (const uint8_t(*)[32])victims, n_v);
		if (ret)
			dlog(LOG_ERROR, "evict", "outcome=error error=%s",
			     wgdev_error(d->env.mon_dev));
		for (i = 0; i < n_v && !ret; i++) {
			const struct wgdev_peer *p = find_peer(peers, n, victims[i]);
			char fp[9];

			ptab_remove(d->peers, victims[i]);
			d->cache_ops.managed_del(d->env.cache, victims[i]);
			if (why[i] == EVICT_IDLE)
				INC(d, evicted);
			else
				INC(d, evicted_no_handshake);
			log_fingerprint(fp, victims[i]);
			dlog(LOG_INFO, "evict",
			     "peer=%s outcome=evicted reason=%s idle_s=%lld", fp,
			     evict_verdict_str(why[i]),
			     p && p->last_handshake.tv_sec ?
			     (long long)(now - p->last_handshake.tv_sec) : -1LL);
		}
	}
	revalidate_ask(d, (const uint8_t(*)[32])kept, n_kept, revalidate_all);
	reject_log_flush(d);
	budget_log(d, true);
	follow_listen_port(d);
out:
	free(victims);
	free(kept);
	free(why);
	free(mps);
}
