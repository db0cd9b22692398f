// SPDX-License-Identifier: MIT
/*
 * jitwgd: just-in-time WireGuard peer provisioning.
 *
 * open device (private key, listen port) → cache → api client → reconcile
 * → workers → XDP capture → main loop (ring buffer, signals, the --consume
 * lease) → clean stop.
 * Exit status: 0 clean stop, 1 runtime failure, 2 bad usage.
 */
#include <errno.h>
#include <ifaddrs.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <sodium.h>

#include "api.h"
#include "cache.h"
#include "capture.h"
#include "daemon.h"
#include "keys.h"
#include "noise.h"
#include "redeliver.h"
#include "wgdev.h"

#define DEFAULT_CACHE_DIR "/var/lib/jitwg"

/*
 * An XDP program attached through netlink outlives its process: after a
 * kill -9 or a crash the next start finds jitwg's own program still on the
 * device. Replace it when, and only when, it is jitwg's (by program name);
 * anything else on the device is someone else's and is left alone.
 */
static int detach_stale_program(const char *ifname)
{
	LIBBPF_OPTS(bpf_xdp_query_opts, q);
	struct bpf_prog_info info;
	__u32 len = sizeof(info);
	unsigned int ifindex = if_nametoindex(ifname);
	__u32 flags;
	int fd, ret;

	if (!ifindex || bpf_xdp_query(ifindex, 0, &q) || !q.prog_id)
		return -ENOENT;
	fd = bpf_prog_get_fd_by_id(q.prog_id);
	if (fd < 0)
		return -errno;
	memset(&info, 0, sizeof(info));
	ret = bpf_obj_get_info_by_fd(fd, &info, &len);
	close(fd);
	if (ret)
		return ret;
	if (strcmp(info.name, "jitwg_xdp"))
		return -EEXIST;
	flags = q.attach_mode == XDP_ATTACHED_DRV ? XDP_FLAGS_DRV_MODE :
		q.attach_mode == XDP_ATTACHED_SKB ? XDP_FLAGS_SKB_MODE :
		q.attach_mode == XDP_ATTACHED_HW ? XDP_FLAGS_HW_MODE : 0;
	ret = bpf_xdp_detach(ifindex, flags, NULL);
	if (!ret)
		dlog(LOG_WARN, "start",
		     "stage=capture action=replaced_stale_program xdp_dev=%s prog_id=%u",
		     ifname, q.prog_id);
	return ret;
}

struct cap_job {
	struct capture_opts co;
	const struct daemon_opts *o;
	struct daemon *d;
	struct capture *cap;
	int ret;
	char err[400];
	uint64_t t_done;
};

static void *open_capture(void *arg)
{
	struct cap_job *j = arg;

	j->ret = capture_open(&j->cap, &j->co, daemon_on_event, j->d);
	if ((j->ret == -EBUSY || j->ret == -EEXIST) && !j->o->pin_dir &&
	    j->o->xdp_mode != CAPTURE_PINNED && !detach_stale_program(j->o->xdp_dev))
		j->ret = capture_open(&j->cap, &j->co, daemon_on_event, j->d);
	if (j->ret) {
		snprintf(j->err, sizeof(j->err), "%s", capture_open_error());
		j->cap = NULL;
	}
	j->t_done = now_mono_ns();
	return NULL;
}

static int mkdir_p(const char *path)
{
	char buf[4096], *s;

	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
		return -ENAMETOOLONG;
	for (s = buf + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(buf, 0700) && errno != EEXIST)
			return -errno;
		*s = '/';
	}
	if (mkdir(buf, 0700) && errno != EEXIST)
		return -errno;
	return 0;
}

/*
 * --consume takes only initiations sent to this host: give the XDP program
 * the namespace's addresses (refreshed every second: one added meanwhile
 * only means its initiations pass to WireGuard directly, as without).
 */
static int set_local_addrs(struct capture *cap, char *err, size_t errlen)
{
	uint8_t (*a)[16] = calloc(JITWG_LOCAL_ADDRS_MAX, 16);
	struct ifaddrs *ifa, *i;
	size_t n = 0;
	int ret;

	if (!a || getifaddrs(&ifa)) {
		ret = a ? -errno : -ENOMEM;
		snprintf(err, errlen, "local addresses: %s", strerror(-ret));
		free(a);
		return ret;
	}
	for (i = ifa; i && n < JITWG_LOCAL_ADDRS_MAX; i = i->ifa_next) {
		if (!i->ifa_addr)
			continue;
		if (i->ifa_addr->sa_family == AF_INET) {
			a[n][10] = a[n][11] = 0xff;
			memcpy(a[n] + 12, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, 4);
			n++;
		} else if (i->ifa_addr->sa_family == AF_INET6) {
			memcpy(a[n], &((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr, 16);
			n++;
		}
	}
	freeifaddrs(ifa);
	ret = capture_set_local_addrs(cap, a, n);
	if (ret)
		snprintf(err, errlen, "%s", capture_error(cap));
	free(a);
	return ret;
}

int main(int argc, char **argv)
{
	uint64_t t_start = now_mono_ns();
	double t_dev = 0, t_cache = 0, t_api = 0, t_rec = 0, t_cap = 0;
	struct daemon_opts o;
	struct wgdev *dev = NULL, *mon_dev = NULL;
	struct wgdev_info info;
	struct noise_responder *resp = NULL;
	struct cache *cache = NULL;
	struct api_client *api = NULL;
	struct daemon *d = NULL;
	struct capture *cap = NULL;
	struct redeliver *rd = NULL;
	struct daemon_env env;
	struct api_config ac;
	struct daemon_stats st;
	char err[512], q[600];
	size_t n_dev = 0, n_managed = 0;
	sigset_t mask;
	int sfd = -1, ret, status = 1;
	bool running = true, cap_started = false, lapsed = false;
	uint64_t renewed = 0, renewals = 0;
	struct cap_job cj;
	pthread_t cap_thread;
	uint16_t port;

	/*
	 * A burst allocates and frees thousands of small records a second
	 * across threads (queue entries, LMDB transactions). glibc's default
	 * gives a thread's arena back to the kernel as soon as 128 KiB at its
	 * top are free, and faults it in again a moment later: that was a
	 * tenth of jitwgd's CPU in a burst. Keep up to 8 MiB per arena. Fixing
	 * the trim threshold also fixes the mmap threshold, at 128 KiB unless
	 * set: LMDB's page lists (~1 MiB, resized per write transaction) would
	 * then be mapped and unmapped each time, so raise it too.
	 */
	mallopt(M_TRIM_THRESHOLD, 8 << 20);
	mallopt(M_MMAP_THRESHOLD, 4 << 20);
	opts_init(&o);
	ret = opts_parse(&o, argc, argv, err, sizeof(err));
	if (ret == 1) {
		opts_free(&o);
		return 0;
	}
	if (ret || opts_validate(&o, err, sizeof(err))) {
		fprintf(stderr, "jitwgd: %s\n", err);
		opts_free(&o);
		return 2;
	}
	log_level_current = o.log_level;
	/* --pin-dir: bpftool owns the program; jitwgd only uses its maps. */
	if (o.pin_dir)
		o.xdp_mode = CAPTURE_PINNED;
	if (!o.cache_dir)
		o.cache_dir = strdup(DEFAULT_CACHE_DIR);
	if (!o.cache_dir || sodium_init() < 0) {
		dlog(LOG_ERROR, "start", "error=\"sodium_init or out of memory\"");
		goto out;
	}

	/* Signals go through a signalfd; threads inherit the blocked mask. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0) {
		dlog(LOG_ERROR, "start", "error=signalfd:%s", strerror(errno));
		goto out;
	}

	ret = wgdev_open(&dev, o.wg_dev, o.backend);
	if (ret) {
		dlog(LOG_ERROR, "start", "stage=device device=%s error=%s", o.wg_dev,
		     log_quote(q, sizeof(q), wgdev_error(dev)));
		goto out;
	}
	ret = wgdev_open(&mon_dev, o.wg_dev, o.backend);
	if (ret) {
		dlog(LOG_ERROR, "start", "stage=device device=%s error=%s", o.wg_dev,
		     log_quote(q, sizeof(q), wgdev_error(mon_dev)));
		goto out;
	}
	/* The key comes from the device, never from a file. */
	ret = wgdev_get_info(dev, &info);
	if (!ret && key_is_zero(info.private_key))
		ret = -ENOKEY;
	if (!ret)
		ret = noise_responder_new(&resp, info.private_key);
	sodium_memzero(info.private_key, sizeof(info.private_key));
	if (ret) {
		dlog(LOG_ERROR, "start", "stage=device device=%s error=%s", o.wg_dev,
		     log_quote(q, sizeof(q), ret == -ENOKEY ?
			       "the device has no private key: set one with wg set DEV private-key FILE" :
			       wgdev_error(dev)));
		goto out;
	}
	port = info.listen_port ? info.listen_port : WG_DEFAULT_PORT;
	t_dev = now_mono_ns();

	ret = mkdir_p(o.cache_dir);
	if (!ret) {
		struct cache_options copts = { .sync = o.cache_sync };

		ret = cache_open(&cache, o.cache_dir, &copts);
	}
	if (ret) {
		dlog(LOG_ERROR, "start", "stage=cache dir=%s error=%s",
		     log_quote(q, sizeof(q), o.cache_dir), strerror(-ret));
		goto out;
	}

	if (o.consume) {
		ret = redeliver_open(&rd, err, sizeof(err));
		if (ret) {
			dlog(LOG_ERROR, "start", "stage=redeliver error=%s",
			     log_quote(q, sizeof(q), err));
			goto out;
		}
	}

	t_cache = now_mono_ns();
	memset(&env, 0, sizeof(env));
	env.opts = &o;
	env.dev = dev;
	env.mon_dev = mon_dev;
	env.responder = resp;
	env.cache = cache;
	env.redeliver = rd;
	env.listen_port = port;
	ret = daemon_new(&d, &env);
	if (ret)
		goto out;

	/* Loading and attaching XDP is the slowest step: it runs meanwhile. */
	memset(&cj, 0, sizeof(cj));
	cj.co.ifname = o.xdp_dev;
	cj.co.mode = o.xdp_mode;
	cj.co.pin_dir = o.pin_dir;
	cj.co.ports = &port;
	cj.co.n_ports = 1;
	cj.o = &o;
	cj.d = d;
	ret = pthread_create(&cap_thread, NULL, open_capture, &cj);
	if (ret) {
		dlog(LOG_ERROR, "start", "stage=capture error=%s", strerror(ret));
		goto out;
	}
	cap_started = true;

	memset(&ac, 0, sizeof(ac));
	ac.url = o.api_url;
	ac.token_file = o.api_token_file;
	ac.ca_file = o.ca_file;
	ac.done = daemon_api_done;
	ac.arg = d;
	ret = api_create(&api, &ac, err, sizeof(err));
	if (ret) {
		dlog(LOG_ERROR, "start", "stage=api error=%s",
		     log_quote(q, sizeof(q), err));
		goto out;
	}
	daemon_set_api(d, api);
	t_api = now_mono_ns();

	ret = daemon_reconcile(d, &n_dev, &n_managed);
	if (ret) {
		dlog(LOG_ERROR, "start", "stage=reconcile error=%s",
		     log_quote(q, sizeof(q), wgdev_error(mon_dev)));
		goto out;
	}
	t_rec = now_mono_ns();
	ret = daemon_start(d);
	if (ret) {
		dlog(LOG_ERROR, "start", "stage=threads error=%s", strerror(-ret));
		goto out;
	}

	ret = pthread_join(cap_thread, NULL);
	cap_started = false;
	if (ret || cj.ret) {
		dlog(LOG_ERROR, "start", "stage=capture xdp_dev=%s error=%s",
		     o.xdp_dev ? o.xdp_dev : "-", log_quote(q, sizeof(q), cj.err));
		goto out;
	}
	cap = cj.cap;
	daemon_set_capture(d, cap);
	t_cap = cj.t_done;
	if (o.consume) {
		renewed = now_mono_ns();
		ret = set_local_addrs(cap, err, sizeof(err));
		if (!ret && (ret = capture_set_lease(cap, renewed + JITWG_LEASE_NS)))
			snprintf(err, sizeof(err), "%s", capture_error(cap));
		if (ret) {
			dlog(LOG_ERROR, "start", "stage=lease error=%s",
			     log_quote(q, sizeof(q), err));
			goto out;
		}
	}

	dlog(LOG_INFO, "ready",
	     "wg_dev=%s backend=%s listen_port=%u xdp_dev=%s xdp_mode=%s device_peers=%zu "
	     "managed=%zu workers=%u initiate_back=%s consume=%s idle_timeout_s=%u startup_ms=%.3f "
	     "device_ms=%.3f cache_ms=%.3f api_ms=%.3f reconcile_ms=%.3f capture_ms=%.3f "
	     "capture_parallel=true",
	     o.wg_dev, wgdev_backend(dev) == WGDEV_UAPI ? "uapi" : "netlink", port,
	     o.xdp_dev ? o.xdp_dev : "-", o.xdp_mode == CAPTURE_PINNED ? "pinned" :
	     capture_is_native(cap) ? "native" : "generic", n_dev, n_managed,
	     daemon_workers(d), o.initiate_back && !o.consume ? "true" : "false",
	     o.consume ? "true" : "false", o.idle_timeout,
	     (double)(now_mono_ns() - t_start) / 1e6, (t_dev - t_start) / 1e6,
	     (t_cache - t_dev) / 1e6, (t_api - t_cache) / 1e6, (t_rec - t_api) / 1e6,
	     (t_cap - t_cache) / 1e6);

	while (running) {
		struct pollfd pfd[2] = {
			{ .fd = capture_fd(cap), .events = POLLIN },
			{ .fd = sfd, .events = POLLIN },
		};

		ret = poll(pfd, 2, o.consume ? JITWG_LEASE_RENEW_MS : -1);
		if (ret < 0) {
			if (errno == EINTR)
				continue;
			dlog(LOG_ERROR, "loop", "error=poll:%s", strerror(errno));
			break;
		}
		/*
		 * The lease: renewed while the workers keep up, so that stuck
		 * workers hand initiations back to WireGuard within
		 * JITWG_LEASE_NS instead of swallowing them.
		 */
		if (o.consume && now_mono_ns() - renewed >= JITWG_LEASE_RENEW_MS * 1000000ull) {
			bool ok = daemon_keeping_up(d);

			renewed = now_mono_ns();
			if (++renewals % 10 == 0 && set_local_addrs(cap, err, sizeof(err)))
				dlog(LOG_WARN, "lease", "op=local_addrs error=%s",
				     log_quote(q, sizeof(q), err));
			if (ok && capture_set_lease(cap, renewed + JITWG_LEASE_NS))
				dlog(LOG_WARN, "lease", "error=%s",
				     log_quote(q, sizeof(q), capture_error(cap)));
			if (ok == lapsed)
				dlog(ok ? LOG_INFO : LOG_WARN, "lease",
				     ok ? "outcome=renewed" :
					  "outcome=lapsed reason=workers_not_keeping_up");
			lapsed = !ok;
		}
		if (pfd[0].revents) {
			ret = capture_poll(cap, 0);
			if (ret < 0 && ret != -EINTR) {
				dlog(LOG_ERROR, "loop", "error=capture_poll:%s",
				     strerror(-ret));
				break;
			}
		}
		if (pfd[1].revents) {
			struct signalfd_siginfo si;

			while (read(sfd, &si, sizeof(si)) == sizeof(si)) {
				if (si.ssi_signo == SIGHUP) {
					dlog(LOG_INFO, "signal", "signal=HUP action=%s",
					     api && o.api_token_file ? "sweep,reload_token" : "sweep");
					daemon_request_sweep(d);
					/* Token rotation without a restart; on error
					 * the old token stays in use. */
					if (api && o.api_token_file) {
						ret = api_reload_token(api, o.api_token_file,
								       err, sizeof(err));
						if (ret)
							dlog(LOG_WARN, "api", "op=reload_token error=%s",
							     log_quote(q, sizeof(q), err));
						else
							dlog(LOG_INFO, "api", "op=reload_token outcome=ok");
					}
				} else {
					dlog(LOG_INFO, "signal", "signal=%s action=stop",
					     si.ssi_signo == SIGTERM ? "TERM" : "INT");
					running = false;
				}
			}
		}
	}
	status = running ? 1 : 0;

out:
	/* Stop order: no new events, no new work, no more callbacks, then
	 * the stores they write to. */
	if (cap_started) {
		pthread_join(cap_thread, NULL);
		if (!cj.ret)
			cap = cj.cap;
	}
	if (cap)
		capture_close(cap);
	if (d)
		daemon_stop(d);
	if (api)
		api_destroy(api);
	if (d) {
		daemon_get_stats(d, &st);
		if (status == 0) {
			char line[900];

			daemon_stats_format(&st, line, sizeof(line));
			dlog(LOG_INFO, "stop", "%s", line);
		}
		daemon_free(d);
	}
	if (cache)
		cache_close(cache);
	redeliver_close(rd);
	noise_responder_free(resp);
	if (dev)
		wgdev_close(dev);
	if (mon_dev)
		wgdev_close(mon_dev);
	if (sfd >= 0)
		close(sfd);
	opts_free(&o);
	return status;
}

/* --cache-sync stores the enum's values (user/daemon_opts.c). */
_Static_assert(CACHE_SYNC_FULL == 0 && CACHE_SYNC_NOMETA == 1 && CACHE_SYNC_PERIODIC == 2,
	       "cache-sync values");
