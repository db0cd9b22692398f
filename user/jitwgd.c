// SPDX-License-Identifier: MIT
/*
 * jitwgd: just-in-time WireGuard peer provisioning.
 *
 * main() in named steps: open the device (private key, listen port) → the
 * cache (and, with --consume, the re-delivery socket) → the daemon → the
 * XDP capture (loaded on its own thread meanwhile) → the control-plane
 * client → reconcile with the device → start the threads → capture ready
 * → run (ring buffer, signals, the --consume lease) → stop.
 * Each step logs its own "msg=start stage=…" line on failure and returns
 * -errno (docs/daemon.md#errors).
 * Exit status: 0 clean stop, 1 runtime failure, 2 bad usage.
 */
#include <errno.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "api.h"
#include "cache.h"
#include "capture.h"
#include "daemon.h"
#include "version.h"
#include "keys.h"
#include "noise.h"
#include "redeliver.h"
#include "wgdev.h"

#define DEFAULT_CACHE_DIR "/var/lib/jitwg"

/* Everything main opens, in the order it opens them; stop() closes it. */
struct jitwgd {
	struct daemon_opts o;
	int sfd;                        /* signals */
	struct wgdev *dev, *mon_dev;
	struct noise_responder *resp;
	uint16_t port;                  /* the device's listen port */
	struct cache *cache;
	struct redeliver *rd;           /* --consume always or auto */
	struct daemon *d;
	struct capture_job cj;              /* the capture, opened on its thread */
	pthread_t cap_thread;
	bool cap_started;
	pthread_t probe_thread;         /* the control plane's start-up probe */
	bool probe_started;
	struct capture *cap;
	struct api_client *api;
	struct daemon_ops *ops;          /* /metrics, control socket */
	size_t n_dev, n_managed;        /* reconciled */
	uint64_t t_start, t_dev, t_cache, t_api, t_rec, t_cap; /* start-up */
	struct lease_keeper lease;      /* --consume */
	char err[512], q[600];
};

/*
 * The process: sodium, and signals through a signalfd (the threads started
 * later inherit the blocked mask).
 */
static int setup_process(struct jitwgd *j)
{
	sigset_t mask;

	struct rlimit none = { 0, 0 };

	if (!j->o.cache_dir || sodium_init() < 0) {
		dlog(LOG_ERROR, "start", "error=\"sodium_init or out of memory\"");
		return -ENOMEM;
	}
	/*
	 * The process holds the device's private key, preshared keys and the
	 * bearer token: no core file, no ptrace by others of the same uid
	 * (docs/security.md).
	 */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) || setrlimit(RLIMIT_CORE, &none))
		dlog(LOG_WARN, "start", "error=\"cannot make the process non-dumpable: %s\"",
		     strerror(errno));
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	j->sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (j->sfd < 0) {
		dlog(LOG_ERROR, "start", "error=signalfd:%s", strerror(errno));
		return -errno;
	}
	return 0;
}

/*
 * Two handles on the WireGuard device (installs; listings and eviction),
 * its private key (for the Noise responder; never from a file) and its
 * listen port.
 */
static int open_device(struct jitwgd *j)
{
	const struct daemon_opts *o = &j->o;
	struct wgdev_info info;
	int ret;

	ret = wgdev_open(&j->dev, o->wg_dev, o->backend, j->err, sizeof(j->err));
	if (!ret)
		ret = wgdev_open(&j->mon_dev, o->wg_dev, o->backend, j->err, sizeof(j->err));
	if (ret) {
		dlog(LOG_ERROR, "start", "stage=device device=%s error=%s", o->wg_dev,
		     log_quote(j->q, sizeof(j->q), j->err));
		return ret;
	}
	/* The monitor lists the device at every sweep and watch poll: it
	 * needs no preshared key, so it never holds one. */
	wgdev_drop_secrets(j->mon_dev, true);
	ret = wgdev_get_info(j->dev, &info);
	if (!ret && key_is_zero(info.private_key))
		ret = -ENOKEY;
	if (!ret)
		ret = noise_responder_new(&j->resp, info.private_key);
	sodium_memzero(info.private_key, sizeof(info.private_key));
	if (ret) {
		dlog(LOG_ERROR, "start", "stage=device device=%s error=%s", o->wg_dev,
		     log_quote(j->q, sizeof(j->q), ret == -ENOKEY ?
			       "the device has no private key: set one with wg set DEV private-key FILE" :
			       wgdev_error(j->dev)));
		return ret;
	}
	j->port = info.listen_port ? info.listen_port : WG_DEFAULT_PORT;
	j->t_dev = now_mono_ns();
	return 0;
}

static int open_cache(struct jitwgd *j)
{
	struct cache_options copts = {
		.sync = j->o.cache_sync,
		.map_size = (uint64_t)j->o.cache_max_mib << 20,
		.max_stale = j->o.max_stale,
	};
	int ret;

	ret = daemon_cache_dir(j->o.cache_dir, j->q, sizeof(j->q));
	if (!ret)
		ret = cache_open(&j->cache, j->o.cache_dir, &copts);
	if (ret)
		dlog(LOG_ERROR, "start", "stage=cache dir=%s error=%s",
		     log_quote(j->q, sizeof(j->q), j->o.cache_dir), strerror(-ret));
	return ret;
}

/*
 * The raw socket that gives consumed initiations back to WireGuard. auto
 * does without when it cannot have one (capturing on the loopback device,
 * which re-delivery goes through, or no raw sockets): it then never
 * consumes.
 */
static int open_redeliver(struct jitwgd *j)
{
	int ret;

	if (j->o.consume == CONSUME_AUTO && j->o.xdp_dev && !strcmp(j->o.xdp_dev, "lo"))
		j->o.consume = CONSUME_NEVER;
	if (j->o.consume == CONSUME_NEVER)
		return 0;
	ret = redeliver_open(&j->rd, j->err, sizeof(j->err));
	if (ret && j->o.consume == CONSUME_AUTO) {
		dlog(LOG_WARN, "consume", "state=off reason=no_redelivery error=%s",
		     log_quote(j->q, sizeof(j->q), j->err));
		j->o.consume = CONSUME_NEVER;
		return 0;
	}
	if (ret)
		dlog(LOG_ERROR, "start", "stage=redeliver error=%s",
		     log_quote(j->q, sizeof(j->q), j->err));
	return ret;
}

static int new_daemon(struct jitwgd *j)
{
	struct daemon_env env;

	j->t_cache = now_mono_ns();
	memset(&env, 0, sizeof(env));
	env.opts = &j->o;
	env.dev = j->dev;
	env.mon_dev = j->mon_dev;
	env.responder = j->resp;
	env.cache = j->cache;
	env.redeliver = j->rd;
	env.listen_port = j->port;
	return daemon_new(&j->d, &env);
}

/* Loading and attaching XDP is the slowest step: it runs meanwhile. */
static int start_capture(struct jitwgd *j)
{
	int ret;

	memset(&j->cj, 0, sizeof(j->cj));
	j->cj.co.ifname = j->o.xdp_dev;
	j->cj.co.mode = j->o.xdp_mode;
	j->cj.co.pin_dir = j->o.pin_dir;
	j->cj.co.ports = &j->port;
	j->cj.co.n_ports = 1;
	j->cj.o = &j->o;
	j->cj.d = j->d;
	ret = pthread_create(&j->cap_thread, NULL, daemon_capture_thread, &j->cj);
	if (ret) {
		dlog(LOG_ERROR, "start", "stage=capture error=%s", strerror(ret));
		return -ret;
	}
	j->cap_started = true;
	return 0;
}

/*
 * The start-up probe, on its own thread (it may wait for the timeouts):
 * say at once, loudly, what would otherwise show only as every key
 * "unknown" or every request failing. It never stops jitwgd: a control
 * plane that is down now may be up in a minute, and cached answers serve
 * meanwhile.
 */
static void *probe_thread(void *arg)
{
	struct jitwgd *j = arg;
	struct api_probe p;
	char q[API_REASON_LEN + 8], url[300];

	if (api_probe(j->api, &p))
		return NULL;
	log_quote(url, sizeof(url), j->o.api_url);
	if (p.err)
		dlog(LOG_WARN, "probe", "api=%s outcome=unreachable error=%s reason=%s", url,
		     strerrorname_np(-p.err) ? strerrorname_np(-p.err) : "?",
		     log_quote(q, sizeof(q), p.reason));
	else if (p.http_status == 401 || p.http_status == 403)
		dlog(LOG_ERROR, "probe",
		     "api=%s outcome=token_refused http_status=%ld hint=\"check --api-token-file: "
		     "every request will fail\"", url, p.http_status);
	else if ((p.http_status == 404 || p.http_status == 200) && p.json)
		dlog(LOG_INFO, "probe", "api=%s outcome=ok http_status=%ld", url, p.http_status);
	else
		dlog(LOG_WARN, "probe",
		     "api=%s outcome=unexpected http_status=%ld content_type=%s hint=\"check "
		     "--api: GET <api>/peers/<key> should answer 200 or 404 in JSON\"",
		     url, p.http_status, log_quote(q, sizeof(q), p.content_type));
	return NULL;
}

static int open_control_plane(struct jitwgd *j)
{
	struct api_config ac;
	int ret;

	memset(&ac, 0, sizeof(ac));
	ac.url = j->o.api_url;
	ac.token_file = j->o.api_token_file;
	ac.ca_file = j->o.ca_file;
	ac.done = daemon_api_done;
	ac.arg = j->d;
	ret = api_create(&j->api, &ac, j->err, sizeof(j->err));
	if (ret) {
		dlog(LOG_ERROR, "start", "stage=api error=%s",
		     log_quote(j->q, sizeof(j->q), j->err));
		return ret;
	}
	daemon_set_api(j->d, j->api);
	j->t_api = now_mono_ns();
	j->probe_started = !pthread_create(&j->probe_thread, NULL, probe_thread, j);
	return 0;
}

/* The device's peers ∩ the cache's managed records. */
static int reconcile(struct jitwgd *j)
{
	int ret;

	ret = daemon_reconcile(j->d, &j->n_dev, &j->n_managed);
	if (ret) {
		dlog(LOG_ERROR, "start", "stage=reconcile error=%s",
		     log_quote(j->q, sizeof(j->q), wgdev_error(j->mon_dev)));
		return ret;
	}
	j->t_rec = now_mono_ns();
	return 0;
}

static int start_threads(struct jitwgd *j)
{
	int ret;

	ret = daemon_start(j->d);
	if (ret)
		dlog(LOG_ERROR, "start", "stage=threads error=%s", strerror(-ret));
	return ret;
}

/* The capture opened meanwhile; with --consume, the lease. */
static int finish_capture(struct jitwgd *j)
{
	int ret;

	ret = pthread_join(j->cap_thread, NULL);
	j->cap_started = false;
	if (ret || j->cj.ret) {
		dlog(LOG_ERROR, "start", "stage=capture xdp_dev=%s error=%s",
		     j->o.xdp_dev ? j->o.xdp_dev : "-",
		     log_quote(j->q, sizeof(j->q), j->cj.err));
		return ret ? -ret : j->cj.ret;
	}
	j->cap = j->cj.cap;
	daemon_set_capture(j->d, j->cap);
	j->t_cap = j->cj.t_done;
	ret = lease_keeper_start(&j->lease, j->d, j->cap, j->rd ? j->o.consume : CONSUME_NEVER,
				 j->err, sizeof(j->err));
	if (ret)
		dlog(LOG_ERROR, "start", "stage=lease error=%s",
		     log_quote(j->q, sizeof(j->q), j->err));
	return ret;
}

/* /metrics and the control socket, once the daemon runs (user/daemon_ops.c). */
static int start_ops(struct jitwgd *j)
{
	int ret = daemon_ops_start(&j->ops, j->d, j->err, sizeof(j->err));

	if (ret)
		dlog(LOG_ERROR, "start", "stage=ops error=%s",
		     log_quote(j->q, sizeof(j->q), j->err));
	return ret;
}

static void log_ready(struct jitwgd *j)
{
	const struct daemon_opts *o = &j->o;

	dlog(LOG_INFO, "ready",
	     "wg_dev=%s backend=%s listen_port=%u xdp_dev=%s xdp_mode=%s device_peers=%zu "
	     "managed=%zu workers=%u initiate_back=%s consume=%s idle_timeout_s=%u startup_ms=%.3f "
	     "device_ms=%.3f cache_ms=%.3f api_ms=%.3f reconcile_ms=%.3f capture_ms=%.3f "
	     "capture_parallel=true",
	     o->wg_dev, wgdev_backend(j->dev) == WGDEV_UAPI ? "uapi" : "netlink", j->port,
	     o->xdp_dev ? o->xdp_dev : "-", o->xdp_mode == CAPTURE_PINNED ? "pinned" :
	     capture_is_native(j->cap) ? "native" : "generic", j->n_dev, j->n_managed,
	     daemon_workers(j->d), o->initiate_back ? "true" : "false",
	     consume_mode_str(j->lease.mode), o->idle_timeout,
	     (double)(now_mono_ns() - j->t_start) / 1e6,
	     ((double)j->t_dev - j->t_start) / 1e6, ((double)j->t_cache - j->t_dev) / 1e6,
	     ((double)j->t_api - j->t_cache) / 1e6, ((double)j->t_rec - j->t_api) / 1e6,
	     ((double)j->t_cap - j->t_cache) / 1e6);
}

/*
 * SIGHUP: sweep now, re-read the token. SIGUSR1: ask the control plane
 * about every managed peer now (an operator pushing a revocation; not
 * SIGHUP: a token rotation must not become a request per peer). Returns
 * false on SIGTERM/SIGINT.
 */
static bool handle_signals(struct jitwgd *j)
{
	struct signalfd_siginfo si;
	bool running = true;
	int ret;

	while (read(j->sfd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGHUP) {
			dlog(LOG_INFO, "signal", "signal=HUP action=%s",
			     j->api && j->o.api_token_file ? "sweep,reload_token" : "sweep");
			daemon_request_sweep(j->d);
			/* Token rotation without a restart; on error
			 * the old token stays in use. */
			if (j->api && j->o.api_token_file) {
				ret = api_reload_token(j->api, j->o.api_token_file,
						       j->err, sizeof(j->err));
				if (ret)
					dlog(LOG_WARN, "api", "op=reload_token error=%s",
					     log_quote(j->q, sizeof(j->q), j->err));
				else
					dlog(LOG_INFO, "api", "op=reload_token outcome=ok");
			}
		} else if (si.ssi_signo == SIGUSR1) {
			dlog(LOG_INFO, "signal", "signal=USR1 action=revalidate");
			daemon_revalidate(j->d, NULL);
		} else {
			dlog(LOG_INFO, "signal", "signal=%s action=stop",
			     si.ssi_signo == SIGTERM ? "TERM" : "INT");
			running = false;
		}
	}
	return running;
}

/*
 * Until SIGTERM or SIGINT (returns 0) or a failure (1).
 *
 * While events keep coming (capture_busy()), the loop takes them
 * CAPTURE_COALESCE_US apart instead of sleeping in poll: the XDP program
 * then finds data pending and skips the wakeup, and a poll's events wake
 * the workers once (daemon_events_flush()). Under a flood admitting
 * ~25,000 initiations a second, a wakeup per event and a worker's per job
 * were most of jitwgd's CPU, in thread switches (bench-flood,
 * docs/bench.md). An event after a quiet spell wakes the loop at once: a
 * lone client's first contact waits for nothing.
 */
static int run(struct jitwgd *j)
{
	bool running = true, busy;
	int ret;

	while (running) {
		struct pollfd pfd[2] = {
			{ .fd = capture_fd(j->cap), .events = POLLIN },
			{ .fd = j->sfd, .events = POLLIN },
		};

		busy = capture_busy(j->cap);
		if (busy)
			usleep(CAPTURE_COALESCE_US);
		ret = poll(pfd, 2, busy ? 0 : lease_keeper_timeout_ms(&j->lease));
		if (ret < 0) {
			if (errno == EINTR)
				continue;
			dlog(LOG_ERROR, "loop", "error=poll:%s", strerror(errno));
			break;
		}
		lease_keeper_tick(&j->lease);
		/* Busy, it consumes even with nothing waiting: that ends it. */
		if (pfd[0].revents || busy) {
			ret = capture_poll(j->cap, 0);
			daemon_events_flush(j->d);
			if (ret < 0 && ret != -EINTR) {
				dlog(LOG_ERROR, "loop", "error=capture_poll:%s",
				     strerror(-ret));
				break;
			}
		}
		if (pfd[1].revents && !handle_signals(j))
			running = false;
	}
	return running ? 1 : 0;
}

/*
 * Stop order: no new events, no new work, no more callbacks, then the
 * stores they write to. Also the unwinding of a failed start: each object
 * is closed if it was opened.
 */
static void stop(struct jitwgd *j, int status)
{
	struct daemon_stats st;

	if (j->cap_started) {
		pthread_join(j->cap_thread, NULL);
		if (!j->cj.ret)
			j->cap = j->cj.cap;
	}
	/* Scrapes and control requests read the daemon: they stop first. */
	daemon_ops_stop(j->ops);
	/* The threads first: a sweep may still use the capture (the listen
	 * port follow). No event arrives meanwhile: only run() polls it. */
	if (j->d)
		daemon_stop(j->d);
	if (j->cap)
		capture_close(j->cap);
	if (j->probe_started)
		pthread_join(j->probe_thread, NULL);
	if (j->api)
		api_destroy(j->api);
	if (j->d) {
		daemon_get_stats(j->d, &st);
		if (status == 0) {
			char line[900];

			daemon_stats_format(&st, line, sizeof(line));
			dlog(LOG_INFO, "stop", "%s", line);
		}
		daemon_free(j->d);
	}
	if (j->cache)
		cache_close(j->cache);
	redeliver_close(j->rd);
	noise_responder_free(j->resp);
	if (j->dev)
		wgdev_close(j->dev);
	if (j->mon_dev)
		wgdev_close(j->mon_dev);
	if (j->sfd >= 0)
		close(j->sfd);
	opts_free(&j->o);
}

int main(int argc, char **argv)
{
	static struct jitwgd j = { .sfd = -1 };
	int ret, status = 1;

	j.t_start = now_mono_ns();
	/*
	 * A burst allocates and frees thousands of small records a second
	 * across threads (queue entries, LMDB transactions). glibc's default
	 * gives a thread's arena back to the kernel as soon as 128 KiB at its
	 * top are free, and faults it in again a moment later (docs/daemon.md
	 * has the cost). Keep up to 8 MiB per arena. Fixing the trim
	 * threshold also fixes the mmap threshold, at 128 KiB unless set:
	 * LMDB's page lists (~1 MiB, resized per write transaction) would then
	 * be mapped and unmapped each time, so raise it too.
	 */
	mallopt(M_TRIM_THRESHOLD, 8 << 20);
	mallopt(M_MMAP_THRESHOLD, 4 << 20);
	if (argc == 2 && !strcmp(argv[1], "--version")) {
		printf("jitwgd %s\n", JITWG_VERSION);
		return 0;
	}
	opts_init(&j.o);
	ret = opts_parse(&j.o, argc, argv, j.err, sizeof(j.err));
	if (ret == 1) {
		opts_free(&j.o);
		return 0;
	}
	if (ret || opts_validate(&j.o, j.err, sizeof(j.err)) ||
	    daemon_ops_check(&j.o, j.err, sizeof(j.err))) {
		fprintf(stderr, "jitwgd: %s\n", j.err);
		opts_free(&j.o);
		return 2;
	}
	log_level_current = j.o.log_level;
	/* --pin-dir: bpftool owns the program; jitwgd only uses its maps. */
	if (j.o.pin_dir)
		j.o.xdp_mode = CAPTURE_PINNED;
	if (!j.o.cache_dir)
		j.o.cache_dir = strdup(DEFAULT_CACHE_DIR);

	if (setup_process(&j) || open_device(&j) || open_cache(&j) ||
	    open_redeliver(&j) || new_daemon(&j) || start_capture(&j) ||
	    open_control_plane(&j) || reconcile(&j) || start_threads(&j) ||
	    finish_capture(&j) || start_ops(&j))
		goto out;
	log_ready(&j);
	status = run(&j);
out:
	stop(&j, status);
	return status;
}

/* --cache-sync stores the enum's values (user/daemon_opts.c). */
_Static_assert(CACHE_SYNC_FULL == 0 && CACHE_SYNC_NOMETA == 1 && CACHE_SYNC_PERIODIC == 2,
	       "cache-sync values");
