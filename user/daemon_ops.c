// SPDX-License-Identifier: MIT
/*
 * Operating a running daemon: the Prometheus /metrics endpoint
 * (--metrics-listen, user/metrics.c) and the control socket
 * (--control-socket, user/control.c) with its verbs.
 *
 * A scrape reads what the daemon already keeps: the counters (the one list
 * in daemon.h), the histograms its stages observe, the device's peer count
 * from the monitor's last listing, queue lengths, the XDP program's per-CPU
 * counters and the cache's O(1) statistics. It never lists the device and
 * never waits on the packet path (the locks it takes are held by their
 * owners for a few instructions).
 *
 * The control verbs run on the control thread, one at a time. evict and
 * revalidate hand their work to the monitor thread (daemon_evict(),
 * daemon_revalidate()); peers lists the device through a handle of its own,
 * never shared with the installer or the monitor (a handle is not
 * thread-safe).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "control.h"
#include "daemon_internal.h"
#include "keys.h"
#include "metrics.h"
#include "version.h"

struct daemon_ops {
	struct daemon *d;
	struct wgdev *dev; /* the control verbs' own handle */
	struct metrics_server *metrics;
	struct control_server *control;
};

static const char *const stage_names[STAGE_MAX] = {
    [STAGE_QUEUE] = "queue",
    [STAGE_IDENTIFY] = "identify",
    [STAGE_AUTHENTICATE] = "authenticate",
    [STAGE_FETCH] = "fetch",
    [STAGE_INSTALL] = "install",
};

/* The XDP program's counters (include/jitwg.h), as metric families. */
static const struct {
	enum jitwg_counter ctr;
	const char *metric, *labels, *help;
} xdp_counters[] = {
    {JITWG_CTR_PACKETS, "jitwg_xdp_packets_total", NULL,
     "Packets the XDP program saw"},
    {JITWG_CTR_WG_UDP, "jitwg_xdp_wireguard_packets_total", NULL,
     "UDP packets to the WireGuard port"},
    {JITWG_CTR_MATCHED, "jitwg_xdp_initiations_total", NULL,
     "Handshake initiations the XDP program matched"},
    {JITWG_CTR_EVENTS, "jitwg_xdp_events_total", NULL,
     "Initiations put in the ring buffer for jitwgd"},
    {JITWG_CTR_LIMITED_SRC, "jitwg_xdp_lost_total",
     "reason=\"rate_limit_source\"",
     "Initiations not handed to jitwgd (they still reach WireGuard)"},
    {JITWG_CTR_LIMITED_GLOBAL, "jitwg_xdp_lost_total",
     "reason=\"rate_limit_global\"", NULL},
    {JITWG_CTR_RINGBUF_FULL, "jitwg_xdp_lost_total", "reason=\"ringbuf_full\"",
     NULL},
    {JITWG_CTR_LIMITED_VERIFIED, "jitwg_xdp_lost_total",
     "reason=\"rate_limit_verified\"", NULL},
    {JITWG_CTR_LIMITED_COOKIE, "jitwg_xdp_lost_total",
     "reason=\"rate_limit_cookie\"", NULL},
    {JITWG_CTR_MALFORMED, "jitwg_xdp_malformed_total", NULL,
     "Packets with truncated or inconsistent headers"},
    {JITWG_CTR_CONSUMED, "jitwg_xdp_consumed_total", NULL,
     "Initiations dropped by XDP under the --consume lease"},
    {JITWG_CTR_VERIFIED, "jitwg_xdp_verified_initiations_total", NULL,
     "Initiations from a verified source (a recent handshake), on its own budget"},
    {JITWG_CTR_SRC_NEW, "jitwg_xdp_new_sources_total", NULL,
     "Initiations admitted with their source's bucket full (an idle or new source)"},
    {JITWG_CTR_PREFIX_RESERVE, "jitwg_xdp_prefix_reserve_total", NULL,
     "Initiations admitted from their prefix's reserve while the global budget was spent"},
    {JITWG_CTR_COOKIE_RETRY, "jitwg_xdp_cookie_retries_total", NULL,
     "Initiations carrying mac2 from a source jitwgd sent a cookie, on their own budget"},
};

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static size_t locked_len(pthread_mutex_t *lock, const size_t *len)
{
	size_t n;

	pthread_mutex_lock(lock);
	n = *len;
	pthread_mutex_unlock(lock);
	return n;
}

static void render_counters(struct metrics_buf *b,
			    const struct daemon_stats *st)
{
	size_t i, j;

	/* Entries sharing a metric may be apart in the list: group them. */
	for (i = 0; i < daemon_n_counters; i++) {
		const struct daemon_counter_def *c = &daemon_counter_defs[i];

		for (j = 0; j < i; j++)
			if (!strcmp(daemon_counter_defs[j].metric, c->metric))
				break;
		if (j < i)
			continue;
		metrics_family(b, c->metric, METRICS_COUNTER, c->help);
		for (j = i; j < daemon_n_counters; j++) {
			const struct daemon_counter_def *e =
			    &daemon_counter_defs[j];

			if (strcmp(e->metric, c->metric))
				continue;
			metrics_u64_raw(
			    b, e->metric, e->labels,
			    *(const uint64_t *)((const char *)st + e->offset));
		}
	}
}

static void render_xdp(struct metrics_buf *b, struct capture *cap)
{
	uint64_t v[JITWG_CTR_MAX] = {0};
	size_t i;

	/* Before the program is attached (or if reading fails): zeros. */
	if (cap && capture_read_counters(cap, v))
		memset(v, 0, sizeof(v));
	for (i = 0; i < ARRAY_SIZE(xdp_counters); i++) {
		if (xdp_counters[i].help)
			metrics_family(b, xdp_counters[i].metric,
				       METRICS_COUNTER, xdp_counters[i].help);
		metrics_u64_raw(b, xdp_counters[i].metric,
				xdp_counters[i].labels, v[xdp_counters[i].ctr]);
	}
}

static int render(struct metrics_buf *b, void *ctx)
{
	struct daemon_ops *ops = ctx;
	struct daemon *d = ops->d;
	struct daemon_stats st;
	struct cache_stats cs;
	size_t i;

	metrics_family(b, "jitwg_build_info", METRICS_GAUGE,
		       "The running jitwgd's version (value 1)");
	metrics_u64(b, "jitwg_build_info",
		    (const char *[]){"version", JITWG_VERSION, NULL}, 1);
	metrics_gauge1(b, "jitwg_start_time_seconds",
		       "When jitwgd started, Unix time", (double)d->started_at);

	daemon_get_stats(d, &st);
	render_counters(b, &st);

	metrics_gauge1(b, "jitwg_device_peers",
		       "Peers on the WireGuard device, managed or not (the "
		       "monitor's last listing)",
		       (double)atomic_load(&d->mon.device_peers));
	metrics_gauge1(b, "jitwg_managed_peers",
		       "Peers jitwgd installed and tracks",
		       (double)ptab_count_managed(d->peers));
	metrics_gauge1(b, "jitwg_consuming",
		       "1 while XDP drops the initiations it hands to jitwgd "
		       "(--consume always, or auto under load)",
		       daemon_consuming(d) ? 1 : 0);

	metrics_family(b, "jitwg_queue_depth", METRICS_GAUGE,
		       "Jobs waiting: initiations for the workers (intake), "
		       "peers for the installer (install), new peers awaiting "
		       "their handshake (handshake)");
	metrics_u64(b, "jitwg_queue_depth",
		    (const char *[]){"queue", "intake", NULL},
		    locked_len(&d->intake.lock, &d->intake.len));
	metrics_u64(b, "jitwg_queue_depth",
		    (const char *[]){"queue", "install", NULL},
		    locked_len(&d->inst.lock, &d->inst.len));
	metrics_u64(b, "jitwg_queue_depth",
		    (const char *[]){"queue", "handshake", NULL},
		    locked_len(&d->mon.lock, &d->mon.n_watches));

	metrics_family(b, "jitwg_first_contact_seconds", METRICS_HISTOGRAM,
		       "From XDP seeing a new peer's initiation to its "
		       "handshake completing");
	metrics_histogram(b, "jitwg_first_contact_seconds", NULL,
			  &d->hists.first_contact);
	metrics_family(b, "jitwg_stage_seconds", METRICS_HISTOGRAM,
		       "Time per provisioning stage: queue (XDP to worker), "
		       "identify, authenticate (with the freshness check), "
		       "fetch (cache or control plane), install (device call)");
	for (i = 0; i < STAGE_MAX; i++)
		metrics_histogram(
		    b, "jitwg_stage_seconds",
		    (const char *[]){"stage", stage_names[i], NULL},
		    &d->hists.stage[i]);
	metrics_family(
	    b, "jitwg_api_request_seconds", METRICS_HISTOGRAM,
	    "Control-plane requests, from submit to answer (retries included)");
	metrics_histogram(b, "jitwg_api_request_seconds", NULL, &d->hists.api);

	render_xdp(b, d->env.capture);

	memset(&cs, 0, sizeof(cs));
	if (d->env.cache)
		cache_stats(d->env.cache, &cs);
	metrics_gauge1(
	    b, "jitwg_cache_entries",
	    "Control-plane answers in the cache (positive and negative)",
	    (double)cs.peers);
	metrics_gauge1(b, "jitwg_cache_managed_records",
		       "Managed-peer records in the cache", (double)cs.managed);
	metrics_gauge1(b, "jitwg_cache_disk_bytes",
		       "Disk space the cache's files use (data.mdb, managed.mdb)",
		       (double)cs.disk_bytes);
	return b->err;
}

/* ---- control verbs ---- */

static void add_str(struct json_object *o, const char *k, const char *v)
{
	json_object_object_add(o, k, json_object_new_string(v ? v : ""));
}

static void add_int(struct json_object *o, const char *k, int64_t v)
{
	json_object_object_add(o, k, json_object_new_int64(v));
}

static int ctl_status(void *ctx, struct json_object *r)
{
	struct daemon_ops *ops = ctx;
	struct daemon *d = ops->d;
	const struct daemon_opts *o = d->env.opts;
	struct json_object *peers = json_object_new_object();
	struct json_object *queues = json_object_new_object();
	struct json_object *ctrs = json_object_new_object();
	struct daemon_stats st;
	size_t i;

	add_str(r, "device", o->wg_dev);
	add_str(r, "backend",
		wgdev_backend(d->env.dev) == WGDEV_UAPI ? "uapi" : "netlink");
	add_int(r, "listen_port", d->env.listen_port);
	add_str(r, "xdp_dev", o->xdp_dev ? o->xdp_dev : "-");
	add_str(r, "xdp_mode",
		o->xdp_mode == CAPTURE_PINNED	    ? "pinned"
		: !d->env.capture		    ? "-"
		: capture_is_native(d->env.capture) ? "native"
						    : "generic");
	add_str(r, "version", JITWG_VERSION);
	json_object_object_add(r, "consuming", json_object_new_boolean(daemon_consuming(d)));
	add_int(r, "uptime_s", (int64_t)(now_wall_s() - d->started_at));
	add_int(peers, "device", (int64_t)atomic_load(&d->mon.device_peers));
	add_int(peers, "managed", (int64_t)ptab_count_managed(d->peers));
	json_object_object_add(r, "peers", peers);
	add_int(queues, "intake",
		(int64_t)locked_len(&d->intake.lock, &d->intake.len));
	add_int(queues, "install",
		(int64_t)locked_len(&d->inst.lock, &d->inst.len));
	add_int(queues, "handshake",
		(int64_t)locked_len(&d->mon.lock, &d->mon.n_watches));
	json_object_object_add(r, "queues", queues);
	daemon_get_stats(d, &st);
	for (i = 0; i < daemon_n_counters; i++)
		if (daemon_counter_defs[i].stop)
			add_int(ctrs, daemon_counter_defs[i].name,
				(int64_t) *
				    (const uint64_t *)((const char *)&st +
						       daemon_counter_defs[i]
							   .offset));
	json_object_object_add(r, "counters", ctrs);
	return 0;
}

static int cmp_peer(const void *a, const void *b)
{
	return memcmp(((const struct wgdev_peer *)a)->public_key,
		      ((const struct wgdev_peer *)b)->public_key, 32);
}


static struct json_object *ips_json(const struct wgdev_allowed_ip *ips,
				    size_t n)
{
	struct json_object *a = json_object_new_array();
	char s[INET6_ADDRSTRLEN + 8];
	size_t i;

	for (i = 0; i < n; i++) {
		inet_ntop(ips[i].family, &ips[i].ip6, s, sizeof(s));
		snprintf(s + strlen(s), sizeof(s) - strlen(s), "/%u",
			 ips[i].cidr);
		json_object_array_add(a, json_object_new_string(s));
	}
	return a;
}

/* Managed peers, with what the device says of them now (one listing). */
static int ctl_peers(void *ctx, struct json_object *r)
{
	struct daemon_ops *ops = ctx;
	struct daemon *d = ops->d;
	struct managed_peer *mps = NULL;
	struct wgdev_peer *dev = NULL, key, *p;
	struct json_object *a;
	size_t n_mps = 0, n_dev = 0, i;
	char b64[KEY_B64_LEN], ep[64];
	int ret;

	ret = wgdev_list_peers(ops->dev, &dev, &n_dev);
	if (ret) {
		add_str(r, "error", wgdev_error(ops->dev));
		return ret;
	}
	qsort(dev, n_dev, sizeof(*dev), cmp_peer);
	ret = ptab_snapshot_managed(d->peers, &mps, &n_mps);
	if (ret)
		goto out;
	a = json_object_new_array();
	for (i = 0; i < n_mps; i++) {
		struct json_object *o = json_object_new_object();

		memcpy(key.public_key, mps[i].key, 32);
		p = bsearch(&key, dev, n_dev, sizeof(*dev), cmp_peer);
		key_to_base64(b64, mps[i].key);
		add_str(o, "public_key", b64);
		ep[0] = '\0';
		if (p)
			log_endpoint(ep, sizeof(ep), &p->endpoint, "");
		json_object_object_add(o, "endpoint",
				       *ep ? json_object_new_string(ep) : NULL);
		json_object_object_add(
		    o, "allowed_ips",
		    p ? ips_json(p->allowed_ips, p->n_allowed_ips)
		      : json_object_new_array());
		add_int(o, "installed_at", (int64_t)mps[i].installed_at);
		add_int(o, "last_handshake",
			p ? (int64_t)p->last_handshake.tv_sec : 0);
		add_str(o, "source", mps[i].source ? mps[i].source : "-");
		json_object_object_add(o, "on_device",
				       json_object_new_boolean(p != NULL));
		json_object_array_add(a, o);
	}
	add_int(r, "now", (int64_t)now_wall_s());
	add_int(r, "device_peers", (int64_t)n_dev);
	json_object_object_add(r, "peers", a);
out:
	free(mps);
	wgdev_peers_free(dev, n_dev);
	return ret;
}

/* Done by the monitor thread, which owns the device handle for removals. */
static int ctl_evict(void *ctx, const uint8_t key[CONTROL_KEY_LEN],
		     struct json_object *r)
{
	struct daemon_ops *ops = ctx;
	int ret = daemon_evict(ops->d, key);

	if (ret == -ENOENT)
		add_str(r, "error",
			"not a peer jitwgd manages (hand-made peers are never "
			"touched)");
	if (!ret)
		json_object_object_add(r, "eviction_requested",
				       json_object_new_boolean(1));
	return ret;
}

/* The control plane is asked again now (one key) or at a sweep started now. */
static int ctl_revalidate(void *ctx, const uint8_t *key, struct json_object *r)
{
	struct daemon_ops *ops = ctx;
	int ret = daemon_revalidate(ops->d, key);

	switch (ret) {
	case 0:
		json_object_object_add(r, "revalidation_requested",
				       json_object_new_boolean(1));
		break;
	case -ENOENT:
		add_str(r, "error", "not a peer jitwgd manages");
		break;
	case -EAGAIN:
		add_str(
		    r, "error",
		    "asked less than 4.5 s ago: try again in a few seconds");
		break;
	case -ENOTCONN:
		add_str(r, "error", "no control plane");
		break;
	}
	return ret;
}

static int ctl_sweep(void *ctx, struct json_object *r)
{
	struct daemon_ops *ops = ctx;

	daemon_request_sweep(ops->d);
	json_object_object_add(r, "sweep_requested",
			       json_object_new_boolean(1));
	return 0;
}

static int ctl_log_level(void *ctx, const char *level, struct json_object *r)
{
	enum log_level l;

	(void)ctx;
	if (log_level_parse(level, &l)) {
		add_str(r, "error", "not a level: error, warn, info, debug");
		return -EINVAL;
	}
	log_level_current = l;
	dlog(LOG_INFO, "log_level", "level=%s", level);
	add_str(r, "log_level", level);
	return 0;
}

static const struct control_ops verbs = {
    .status = ctl_status,
    .peers = ctl_peers,
    .evict = ctl_evict,
    .revalidate = ctl_revalidate,
    .sweep = ctl_sweep,
    .log_level = ctl_log_level,
};

int daemon_ops_check(const struct daemon_opts *o, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t len;

	if (o->metrics_listen &&
	    metrics_listen_parse(o->metrics_listen, &ss, &len)) {
		snprintf(err, errlen,
			 "--metrics-listen wants ADDR:PORT, [V6ADDR]:PORT or "
			 "an address (numeric), not '%s'",
			 o->metrics_listen);
		return -EINVAL;
	}
	return 0;
}

int daemon_ops_start(struct daemon_ops **out, struct daemon *d, char *err,
		     size_t errlen)
{
	const struct daemon_opts *o = d->env.opts;
	struct daemon_ops *ops;
	char path[108], q[256];
	int ret;

	*out = NULL;
	ops = calloc(1, sizeof(*ops));
	if (!ops)
		return -ENOMEM;
	ops->d = d;
	if (o->metrics_listen) {
		ret = metrics_server_start(&ops->metrics, o->metrics_listen,
					   render, ops);
		if (ret) {
			snprintf(err, errlen, "metrics on %s: %s",
				 o->metrics_listen, strerror(-ret));
			goto err;
		}
	}
	if (o->control_socket && !strcmp(o->control_socket, "none"))
		goto done;
	ret = wgdev_open(&ops->dev, o->wg_dev, o->backend, q, sizeof(q));
	if (ret) {
		snprintf(err, errlen, "control socket's device handle: %s", q);
		goto err;
	}
	if (o->control_socket)
		ret = snprintf(path, sizeof(path), "%s", o->control_socket) >=
			      (int)sizeof(path)
			  ? -ENAMETOOLONG
			  : 0;
	else
		ret = control_default_path(path, sizeof(path), o->wg_dev);
	if (!ret)
		ret = control_server_start(&ops->control, path, &verbs, ops);
	/*
	 * The default place may be out of reach (not root, no
	 * RuntimeDirectory): run without it, and say so. A socket the
	 * operator named, or one a running daemon holds, stops the start.
	 */
	if (ret && !o->control_socket && ret != -EADDRINUSE) {
		dlog(LOG_WARN, "control", "socket=%s error=%s outcome=disabled",
		     path, strerror(-ret));
		ret = 0;
		goto done;
	}
	if (ret) {
		snprintf(err, errlen, "control socket %s: %s", path,
			 ret == -EADDRINUSE ? "a running jitwgd answers on it"
					    : strerror(-ret));
		goto err;
	}
done:
	*out = ops;
	return 0;
err:
	daemon_ops_stop(ops);
	return ret;
}

void daemon_ops_stop(struct daemon_ops *ops)
{
	if (!ops)
		return;
	control_server_stop(ops->control);
	metrics_server_stop(ops->metrics);
	if (ops->dev)
		wgdev_close(ops->dev);
	free(ops);
}
