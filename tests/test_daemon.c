// SPDX-License-Identifier: MIT
/*
 * Unit tests of jitwgd's pure logic: the eviction policy, the installer's
 * turn, allowed-IP overlap, the peer table (never evicting unmanaged
 * peers), the options and config file, logfmt quoting, the counter list.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "allowed_ip.h"
#include "check.h"
#include "../user/daemon.h"

static void test_evict_decide(void)
{
	static const struct {
		const char *name;
		bool on_device;
		uint64_t now, installed_at, last_handshake;
		enum evict_verdict want;
	} rows[] = {
		/* handshake 10 s ago, idle 300: keep */
		{ "evict: recent handshake kept", true, 1000, 500, 990, EVICT_KEEP },
		/* exactly at the idle timeout: evict */
		{ "evict: idle at timeout", true, 1300, 500, 1000, EVICT_IDLE },
		{ "evict: idle long ago", true, 5000, 500, 1000, EVICT_IDLE },
		/* installed 5 s ago, no handshake yet, window 30: keep */
		{ "evict: new peer inside window kept", true, 1005, 1000, 0, EVICT_KEEP },
		{ "evict: no handshake within window", true, 1030, 1000, 0, EVICT_NEVER },
		/* installed long ago but handshake recent: the window no longer applies */
		{ "evict: old install, live handshake", true, 9000, 100, 8990, EVICT_KEEP },
		/* removed by hand meanwhile: forget, never remove */
		{ "evict: gone from device", false, 1000, 500, 990, EVICT_GONE },
		/* wall clock stepped backwards: keep */
		{ "evict: clock went back", true, 500, 900, 1000, EVICT_KEEP },
		{ "evict: clock went back, no handshake", true, 500, 900, 0, EVICT_KEEP },
	};
	struct evict_policy p = { .idle_timeout = 300, .handshake_window = 30 };
	size_t i;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		enum evict_verdict v = evict_decide(&p, rows[i].now, rows[i].on_device,
						    rows[i].installed_at,
						    rows[i].last_handshake);

		CHECK(rows[i].name, v == rows[i].want, "got %s want %s",
		      evict_verdict_str(v), evict_verdict_str(rows[i].want));
	}
}

/*
 * The installer's turn (user/daemon_sched.c). Times in ms of monotonic
 * clock; "quiet" = no install for 20 ms (initiating back) or 100 ms
 * (--consume); "overdue" = the oldest waited 1 s / 3 s; answers leave one
 * chunk per 10 ms. prev is the install before the last: 0 = long ago.
 */
static void test_sched_turn(void)
{
	static const struct {
		const char *name;
		uint64_t now, last_install, prev, last_start, oldest; /* ms */
		size_t waiting;
		bool queued, stopping, answering, started_last;
		enum sched_turn want;
		uint64_t want_until; /* ms, 0: none */
	} rows[] = {
		{ "sched: nothing waiting, installs queued", 10000, 9990, 9980, 0, 0, 0, true, false, false, false, SCHED_INSTALL, 0 },
		{ "sched: installs before handshakes", 10000, 9999, 9990, 0, 9500, 500, true, false, false, false, SCHED_INSTALL, 0 },
		{ "sched: installs before answers", 10000, 9999, 9990, 0, 9500, 500, true, false, true, false, SCHED_INSTALL, 0 },
		/* The installer idle for an instant mid-burst: wait for quiet. */
		{ "sched: idle 5 ms mid-burst, initiate waits until quiet", 10000, 9995, 9990, 0, 9900, 10, false, false, false, false, SCHED_WAIT, 10015 },
		{ "sched: idle 5 ms mid-burst, answers wait until quiet", 10000, 9995, 9990, 0, 9900, 10, false, false, true, false, SCHED_WAIT, 10095 },
		{ "sched: quiet, initiate starts", 10000, 9979, 9970, 0, 9900, 300, false, false, false, false, SCHED_START, 0 },
		{ "sched: idle 50 ms, answers still wait", 10000, 9950, 9940, 0, 9900, 300, false, false, true, false, SCHED_WAIT, 10050 },
		{ "sched: quiet, answers start", 10000, 9900, 9890, 0, 9800, 300, false, false, true, false, SCHED_START, 0 },
		{ "sched: quiet wait ends when overdue", 10000, 9995, 9990, 0, 9010, 300, false, false, false, false, SCHED_WAIT, 10010 },
		/* Two clients at once after a quiet spell: no burst, no wait. */
		{ "sched: a few after a quiet spell, initiate at once", 10000, 9999, 0, 0, 9999, 2, false, false, false, false, SCHED_START, 0 },
		{ "sched: a few after a quiet spell, answers at once", 10000, 9999, 5000, 0, 9999, 8, false, false, true, false, SCHED_START, 0 },
		{ "sched: a few, but in a stream of installs, wait", 10000, 9999, 9990, 0, 9999, 2, false, false, false, false, SCHED_WAIT, 10019 },
		{ "sched: nine after a quiet spell, wait", 10000, 9999, 0, 0, 9999, 9, false, false, false, false, SCHED_WAIT, 10019 },
		/* Answers: one chunk per 10 ms, installs meanwhile. */
		{ "sched: answers' gap, installs go", 10000, 9800, 9700, 9995, 9000, 500, true, false, true, true, SCHED_INSTALL, 0 },
		{ "sched: answers' gap, nothing queued, wait it out", 10000, 9800, 9700, 9995, 9000, 500, false, false, true, true, SCHED_WAIT, 10005 },
		{ "sched: answers' gap over", 10000, 9800, 9700, 9990, 9000, 500, false, false, true, true, SCHED_START, 0 },
		{ "sched: overdue answers within their gap, installs go", 10000, 9999, 9990, 9995, 6000, 50, true, false, true, false, SCHED_INSTALL, 0 },
		{ "sched: initiate has no gap", 10000, 9800, 9700, 9999, 9000, 500, false, false, false, true, SCHED_START, 0 },
		/* Overdue under a steady stream of installs: take turns. */
		{ "sched: overdue, handshakes' turn", 10000, 9999, 9990, 0, 9000, 5000, true, false, false, false, SCHED_START, 0 },
		{ "sched: overdue, installs' turn after a chunk", 10000, 9999, 9990, 0, 9000, 5000, true, false, false, true, SCHED_INSTALL, 0 },
		{ "sched: overdue answers, installs' turn after a chunk", 10000, 9999, 9990, 0, 7000, 50, true, false, true, true, SCHED_INSTALL, 0 },
		{ "sched: answers not overdue at 2.9 s", 10000, 9999, 9990, 0, 7100, 50, true, false, true, false, SCHED_INSTALL, 0 },
		{ "sched: not overdue, installs after a chunk too", 10000, 9999, 9990, 0, 9900, 50, true, false, false, true, SCHED_INSTALL, 0 },
		{ "sched: overdue, nothing queued", 10000, 9999, 9990, 0, 9000, 50, false, false, false, true, SCHED_START, 0 },
		/* Stopping: keepalive switches still go out; answers are
		 * dropped (the lease is given back); queued installs are not
		 * started. */
		{ "sched: stopping, switches go out", 10000, 9999, 9990, 0, 9900, 10, true, true, false, true, SCHED_START, 0 },
		{ "sched: stopping, answers dropped", 10000, 9999, 9990, 9999, 9900, 10, false, true, true, false, SCHED_DROP, 0 },
		{ "sched: stopping, nothing waiting", 10000, 9999, 9990, 0, 0, 0, true, true, false, false, SCHED_EXIT, 0 },
		{ "sched: stopping with --consume, installs queued, nothing waiting", 10000, 9999, 9990, 0, 0, 0, true, true, true, false, SCHED_EXIT, 0 },
		{ "sched: nothing at all", 10000, 0, 0, 0, 0, 0, false, false, false, false, SCHED_WAIT, 0 },
	};
	size_t i;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct sched_state st = {
			.now = rows[i].now * 1000000ull,
			.last_install = rows[i].last_install * 1000000ull,
			.prev_install = rows[i].prev * 1000000ull,
			.last_start = rows[i].last_start * 1000000ull,
			.oldest = rows[i].oldest * 1000000ull,
			.waiting = rows[i].waiting,
			.queued = rows[i].queued,
			.stopping = rows[i].stopping,
			.answering = rows[i].answering,
			.started_last = rows[i].started_last,
		};
		uint64_t until = 1;
		enum sched_turn t = sched_turn(&st, &until);

		CHECK(rows[i].name, t == rows[i].want && until == rows[i].want_until * 1000000ull,
		      "got %s until %llu ms, want %s until %llu ms", sched_turn_str(t),
		      (unsigned long long)(until / 1000000ull), sched_turn_str(rows[i].want),
		      (unsigned long long)rows[i].want_until);
	}
}

static struct wgdev_allowed_ip ip(const char *s)
{
	struct wgdev_allowed_ip a;
	char buf[64], *slash;

	memset(&a, 0, sizeof(a));
	snprintf(buf, sizeof(buf), "%s", s);
	slash = strchr(buf, '/');
	*slash = '\0';
	a.cidr = (uint8_t)atoi(slash + 1);
	if (strchr(buf, ':')) {
		a.family = AF_INET6;
		inet_pton(AF_INET6, buf, &a.ip6);
	} else {
		a.family = AF_INET;
		inet_pton(AF_INET, buf, &a.ip4);
	}
	return a;
}

static void test_overlap(void)
{
	static const struct {
		const char *a, *b;
		bool want;
	} rows[] = {
		{ "10.0.0.2/32", "10.0.0.2/32", true },   /* same host */
		{ "10.0.0.2/32", "10.0.0.3/32", false },  /* neighbours */
		{ "10.0.0.0/24", "10.0.0.77/32", true },  /* host inside net */
		{ "10.0.1.0/24", "10.0.0.77/32", false },
		{ "0.0.0.0/0", "192.168.1.1/32", true },  /* default route */
		{ "10.0.0.0/23", "10.0.1.0/24", true },   /* bits beyond a byte */
		{ "10.0.2.0/23", "10.0.1.0/24", false },
		{ "fd00::2/128", "fd00::2/128", true },
		{ "fd00::/64", "fd00::1:2/128", true },
		{ "fd00:1::/64", "fd00::2/128", false },
		{ "10.0.0.2/32", "::ffff:10.0.0.2/128", false }, /* families differ */
	};
	size_t i;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct wgdev_allowed_ip a = ip(rows[i].a), b = ip(rows[i].b);
		char name[128];

		snprintf(name, sizeof(name), "overlap: %s vs %s", rows[i].a, rows[i].b);
		CHECK(name, allowed_ip_overlaps(&a, &b) == rows[i].want &&
		      allowed_ip_overlaps(&b, &a) == rows[i].want,
		      "want %d", rows[i].want);
	}
}

static void test_table(void)
{
	struct peer_table *t;
	struct wgdev_peer dev[3];
	struct wgdev_allowed_ip hand_ip = ip("10.0.0.9/32"), m_ip = ip("10.0.0.2/32");
	struct wgdev_allowed_ip want;
	struct managed_peer mp, *snap;
	uint8_t k_hand[32], k_m[32], k_new[32], other[32];
	size_t n, i;
	bool ok;

	memset(k_hand, 0x11, 32);
	memset(k_m, 0x22, 32);
	memset(k_new, 0x33, 32);
	CHECK("table: create", ptab_new(&t) == 0, "ptab_new");

	/* The device has a peer added by hand. */
	memset(dev, 0, sizeof(dev));
	memcpy(dev[0].public_key, k_hand, 32);
	dev[0].allowed_ips = &hand_ip;
	dev[0].n_allowed_ips = 1;
	ptab_refresh_device(t, dev, 1, UINT64_MAX);
	CHECK("table: hand-added peer on device, not managed",
	      ptab_on_device(t, k_hand) && !ptab_is_managed(t, k_hand), "state");

	memset(&mp, 0, sizeof(mp));
	memcpy(mp.key, k_m, 32);
	mp.installed_at = 100;
	mp.ips = &m_ip;
	mp.n_ips = 1;
	CHECK("table: add managed", ptab_add_managed(t, &mp) == 0 &&
	      ptab_is_managed(t, k_m) && ptab_on_device(t, k_m), "state");

	want = ip("10.0.0.2/32");
	CHECK("table: overlap with a managed peer refused",
	      ptab_overlap(t, k_new, &want, 1, other) && !memcmp(other, k_m, 32),
	      "no overlap found");
	want = ip("10.0.0.0/28");
	CHECK("table: overlap with a hand-added peer refused",
	      ptab_overlap(t, k_new, &want, 1, other), "no overlap found");
	want = ip("10.0.0.2/32");
	CHECK("table: a peer does not overlap itself",
	      !ptab_overlap(t, k_m, &want, 1, other), "self overlap");
	want = ip("10.0.0.3/32");
	CHECK("table: disjoint allowed IP accepted",
	      !ptab_overlap(t, k_new, &want, 1, other), "overlap");

	/* Only managed peers are ever candidates for eviction. */
	CHECK("table: snapshot holds only managed peers",
	      ptab_snapshot_managed(t, &snap, &n) == 0 && n == 1 &&
	      !memcmp(snap[0].key, k_m, 32), "n=%zu", n);
	free(snap);

	/* Reserved: managed, but not on the device until its install is done. */
	{
		struct managed_peer r = mp;
		uint8_t k_r[32], o[32];
		struct wgdev_allowed_ip r_ip = ip("10.0.5.9/32");

		memset(k_r, 0x5a, 32);
		memcpy(r.key, k_r, 32);
		r.ips = &r_ip;
		r.installed_ns = UINT64_MAX;
		ok = ptab_reserve(t, &r, o) == 0 && ptab_is_managed(t, k_r) &&
		     !ptab_on_device(t, k_r);
		ptab_set_installed(t, k_r, 7000);
		ok = ok && ptab_on_device(t, k_r);
		ptab_remove(t, k_r);
		CHECK("table: a reserved peer is on the device once installed", ok, "state");
	}

	/* A refresh without the managed peer: it stays managed (the sweep
	 * forgets it), and the hand-added one stays unmanaged. */
	ptab_refresh_device(t, dev, 1, UINT64_MAX);
	CHECK("table: refresh keeps managed record",
	      ptab_is_managed(t, k_m) && !ptab_on_device(t, k_m), "state");
	/* Installed while a listing ran (after it began): still present. */
	mp.installed_ns = 5000;
	ptab_add_managed(t, &mp);
	ptab_refresh_device(t, dev, 1, 4000);
	CHECK("table: peer installed during a listing stays on the device",
	      ptab_on_device(t, k_m), "marked absent");
	ptab_refresh_device(t, dev, 1, 6000);
	CHECK("table: peer installed before a listing that lacks it is absent",
	      !ptab_on_device(t, k_m) && ptab_is_managed(t, k_m), "state");
	ptab_remove(t, k_m);
	CHECK("table: remove", !ptab_is_managed(t, k_m) && ptab_count_managed(t) == 0,
	      "still there");

	/* Growth past the initial bucket count keeps every key findable. */
	ok = true;
	for (i = 0; i < 5000; i++) {
		memset(mp.key, 0, 32);
		memcpy(mp.key, &i, sizeof(i));
		mp.key[31] = 0x77;
		mp.n_ips = 0;
		ok &= ptab_add_managed(t, &mp) == 0;
	}
	for (i = 0; i < 5000; i++) {
		memset(mp.key, 0, 32);
		memcpy(mp.key, &i, sizeof(i));
		mp.key[31] = 0x77;
		ok &= ptab_is_managed(t, mp.key);
	}
	CHECK("table: 5000 managed peers", ok && ptab_count_managed(t) == 5000,
	      "count %zu", ptab_count_managed(t));
	ptab_free(t);
}

/*
 * The overlap check is indexed (a point lookup per prefix length in use);
 * it must agree with the plain rule, allowed_ip_overlaps() against every
 * other peer's IPs, through adds, removals and device refreshes. Random
 * prefixes from a small space so that overlaps (both ways) are common.
 */
struct model_peer {
	uint8_t key[32];
	struct wgdev_allowed_ip ips[3];
	size_t n;
	bool managed, listed;
};

static struct wgdev_allowed_ip rand_prefix(void)
{
	struct wgdev_allowed_ip a;
	unsigned int r = (unsigned int)random();

	memset(&a, 0, sizeof(a));
	if (r & 1) {
		uint32_t v = 0x0a000000u | ((r >> 1) & 0xfff); /* in 10.0.0.0/20 */

		a.family = AF_INET;
		a.cidr = (r >> 13) % 8 ? 32 : (uint8_t)(24 + (r >> 16) % 9);
		if (a.cidr < 32)
			v &= ~((1u << (32 - a.cidr)) - 1);
		a.ip4.s_addr = htonl(v);
	} else {
		a.family = AF_INET6;
		a.ip6.s6_addr[0] = 0xfd;
		a.ip6.s6_addr[14] = (uint8_t)((r >> 1) & 0x0f);
		a.ip6.s6_addr[15] = (uint8_t)((r >> 5) & 0xff);
		a.cidr = (r >> 13) % 8 ? 128 : (uint8_t)(120 + (r >> 16) % 9);
		if (a.cidr < 128) {
			a.ip6.s6_addr[15] &= (uint8_t)(0xff << (128 - a.cidr));
		}
	}
	return a;
}

static bool model_overlap(const struct model_peer *m, size_t n, const uint8_t key[32],
			  const struct wgdev_allowed_ip *q)
{
	size_t i, j;

	for (i = 0; i < n; i++) {
		if (!(m[i].managed || m[i].listed) || !memcmp(m[i].key, key, 32))
			continue;
		for (j = 0; j < m[i].n; j++)
			if (allowed_ip_overlaps(q, &m[i].ips[j]))
				return true;
	}
	return false;
}

static void test_table_overlap_index(void)
{
	enum { PEERS = 300, QUERIES = 4000 };
	struct model_peer *m = calloc(PEERS, sizeof(*m));
	struct wgdev_peer *dev = calloc(PEERS, sizeof(*dev));
	struct peer_table *t;
	struct managed_peer mp;
	uint8_t other[32], qkey[32];
	size_t i, j, nd, bad = 0, hits = 0, q;
	unsigned int round;

	srandom(7);
	if (!m || !dev || ptab_new(&t)) {
		CHECK("table: overlap index agrees with the rule", false, "setup");
		goto out;
	}
	for (i = 0; i < PEERS; i++) {
		memset(m[i].key, 0x40, 32);
		memcpy(m[i].key, &i, sizeof(i));
		m[i].n = 1 + (size_t)random() % 3;
		for (j = 0; j < m[i].n; j++)
			m[i].ips[j] = rand_prefix();
	}
	for (round = 0; round < 4; round++) {
		/* A listing: a third of the keys, hand-added or managed. */
		nd = 0;
		for (i = 0; i < PEERS; i++) {
			m[i].listed = random() % 3 == 0;
			if (!m[i].listed)
				continue;
			memset(&dev[nd], 0, sizeof(dev[nd]));
			memcpy(dev[nd].public_key, m[i].key, 32);
			dev[nd].allowed_ips = m[i].ips;
			dev[nd].n_allowed_ips = m[i].n;
			nd++;
		}
		ptab_refresh_device(t, dev, nd, UINT64_MAX);
		/* Adds and removals of managed peers. */
		for (i = 0; i < PEERS; i++) {
			long r = random() % 4;

			if (r == 0 && !m[i].managed) {
				memset(&mp, 0, sizeof(mp));
				memcpy(mp.key, m[i].key, 32);
				mp.ips = m[i].ips;
				mp.n_ips = m[i].n;
				/* After a listing that lacked it, the peer
				 * counts as on the device again. */
				if (!ptab_add_managed(t, &mp))
					m[i].managed = true;
			} else if (r == 1 && m[i].managed) {
				ptab_remove(t, m[i].key);
				m[i].managed = false;
				m[i].listed = false;
			}
		}
		for (q = 0; q < QUERIES / 4; q++) {
			struct wgdev_allowed_ip a = rand_prefix();
			bool want, got;

			if (random() % 2)
				memcpy(qkey, m[(size_t)random() % PEERS].key, 32);
			else
				memset(qkey, 0xee, 32);
			want = model_overlap(m, PEERS, qkey, &a);
			got = ptab_overlap(t, qkey, &a, 1, other);
			hits += want;
			if (want != got) {
				char s[64];

				inet_ntop(a.family, a.family == AF_INET ? (void *)&a.ip4 :
					  (void *)&a.ip6, s, sizeof(s));
				if (!bad)
					printf("# mismatch round %u: %s/%u want %d got %d\n",
					       round, s, a.cidr, want, got);
				bad++;
			} else if (got && (!memcmp(other, qkey, 32))) {
				bad++;
			}
		}
	}
	CHECK("table: overlap index agrees with the rule", bad == 0 && hits > 100 &&
	      hits < QUERIES - 100, "%zu mismatches, %zu overlaps in %d queries", bad,
	      hits, QUERIES);
	ptab_free(t);
out:
	free(m);
	free(dev);
}

static int parse(struct daemon_opts *o, char *err, size_t len, ...)
{
	char *argv[32];
	int argc = 0;
	va_list ap;
	char *a;

	argv[argc++] = "jitwgd";
	va_start(ap, len);
	while ((a = va_arg(ap, char *)))
		argv[argc++] = a;
	va_end(ap);
	argv[argc] = NULL;
	opts_init(o);
	return opts_parse(o, argc, argv, err, len);
}

static void test_opts(void)
{
	struct daemon_opts o;
	char err[256], path[] = "/tmp/jitwgd-test-XXXXXX";
	FILE *f;
	int fd, r;

	r = parse(&o, err, sizeof(err), "--wg-dev", "wg0", "--xdp-dev", "eth0",
		  "--api", "http://127.0.0.1:8080", NULL);
	CHECK("opts: minimal command line",
	      r == 0 && opts_validate(&o, err, sizeof(err)) == 0 &&
	      !strcmp(o.wg_dev, "wg0") && o.idle_timeout >= 180 &&
	      o.initiate_back && o.backend == WGDEV_AUTO, "r=%d err=%s", r, err);
	opts_free(&o);

	r = parse(&o, err, sizeof(err), "--wg-dev", "wg0", "--xdp-dev", "eth0",
		  "--api", "http://x", "--idle-timeout", "5", "--evict-interval", "1",
		  "--backend", "uapi", "--xdp-mode", "native", "--no-initiate-back",
		  "--workers", "3", "--log-level", "debug", "--cache-sync", "periodic", NULL);
	CHECK("opts: every kind of value",
	      r == 0 && o.idle_timeout == 5 && o.evict_interval == 1 &&
	      o.backend == WGDEV_UAPI && o.xdp_mode == CAPTURE_NATIVE &&
	      !o.initiate_back && o.workers == 3 && o.log_level == LOG_DEBUG &&
	      o.cache_sync == 2,
	      "r=%d err=%s", r, err);
	opts_free(&o);

	r = parse(&o, err, sizeof(err), "--wg-dev", "wg0", "--bogus", NULL);
	CHECK("opts: unknown option rejected", r == -EINVAL && strstr(err, "--bogus"),
	      "r=%d err=%s", r, err);
	opts_free(&o);
	r = parse(&o, err, sizeof(err), "--idle-timeout", "soon", NULL);
	CHECK("opts: non-numeric value rejected", r == -EINVAL && strstr(err, "idle-timeout"),
	      "r=%d err=%s", r, err);
	opts_free(&o);
	r = parse(&o, err, sizeof(err), "--workers", "0", NULL);
	CHECK("opts: out-of-range value rejected", r == -EINVAL, "r=%d", r);
	opts_free(&o);
	r = parse(&o, err, sizeof(err), "--backend", "kernel", NULL);
	CHECK("opts: bad enum rejected", r == -EINVAL, "r=%d", r);
	opts_free(&o);
	/* --cookie: auto by default, the three words, nothing else. */
	r = parse(&o, err, sizeof(err), NULL);
	CHECK("opts: --cookie defaults to auto", r == 0 && o.cookie == COOKIE_AUTO, "r=%d", r);
	opts_free(&o);
	r = parse(&o, err, sizeof(err), "--cookie", "always", NULL);
	CHECK("opts: --cookie always", r == 0 && o.cookie == COOKIE_ALWAYS, "r=%d", r);
	opts_free(&o);
	r = parse(&o, err, sizeof(err), "--cookie", "never", NULL);
	CHECK("opts: --cookie never", r == 0 && o.cookie == COOKIE_NEVER, "r=%d", r);
	opts_free(&o);
	r = parse(&o, err, sizeof(err), "--cookie", "sometimes", NULL);
	CHECK("opts: --cookie sometimes rejected", r == -EINVAL && strstr(err, "cookie"),
	      "r=%d err=%s", r, err);
	opts_free(&o);
	/* --consume: auto by default; bare (and a config's "true", from when
	 * it was a flag) means always. */
	r = parse(&o, err, sizeof(err), NULL);
	CHECK("opts: --consume defaults to auto", r == 0 && o.consume == CONSUME_AUTO, "r=%d", r);
	opts_free(&o);
	r = parse(&o, err, sizeof(err), "--consume", "--workers", "2", NULL);
	CHECK("opts: a bare --consume is always",
	      r == 0 && o.consume == CONSUME_ALWAYS && o.workers == 2, "r=%d err=%s", r, err);
	opts_free(&o);
	r = parse(&o, err, sizeof(err), "--consume=never", NULL);
	CHECK("opts: --consume=never", r == 0 && o.consume == CONSUME_NEVER, "r=%d", r);
	opts_free(&o);
	r = parse(&o, err, sizeof(err), "--consume=sometimes", NULL);
	CHECK("opts: --consume=sometimes rejected", r == -EINVAL && strstr(err, "consume"),
	      "r=%d err=%s", r, err);
	opts_free(&o);
	opts_init(&o);
	r = opts_load_string(&o, "consume\n", 8, "t", err, sizeof(err));
	CHECK("opts: a bare consume line is always", r == 0 && o.consume == CONSUME_ALWAYS,
	      "r=%d err=%s", r, err);
	r = opts_load_string(&o, "consume = auto\n", 15, "t", err, sizeof(err));
	CHECK("opts: consume = auto", r == 0 && o.consume == CONSUME_AUTO, "r=%d err=%s", r, err);
	r = opts_load_string(&o, "consume = false\n", 16, "t", err, sizeof(err));
	CHECK("opts: consume = false is never", r == 0 && o.consume == CONSUME_NEVER,
	      "r=%d err=%s", r, err);
	opts_free(&o);
	r = parse(&o, err, sizeof(err), "--wg-dev", NULL);
	CHECK("opts: missing value rejected", r == -EINVAL, "r=%d err=%s", r, err);
	opts_free(&o);
	r = parse(&o, err, sizeof(err), "--xdp-dev", "eth0", "--api", "http://x", NULL);
	CHECK("opts: missing --wg-dev fails validation",
	      r == 0 && opts_validate(&o, err, sizeof(err)) == -EINVAL &&
	      strstr(err, "--wg-dev"), "err=%s", err);
	opts_free(&o);
	r = parse(&o, err, sizeof(err), "--wg-dev", "wg0", "--xdp-dev", "e",
		  "--api", "ftp://x", NULL);
	CHECK("opts: non-http api rejected",
	      r == 0 && opts_validate(&o, err, sizeof(err)) == -EINVAL, "err=%s", err);
	opts_free(&o);

	r = parse(&o, err, sizeof(err), "--wg-dev", "wg0", "--api", "http://x",
		  "--pin-dir", "/sys/fs/bpf/jitwg", NULL);
	CHECK("opts: --pin-dir makes --xdp-dev optional",
	      r == 0 && opts_validate(&o, err, sizeof(err)) == 0, "err=%s", err);
	opts_free(&o);
	r = parse(&o, err, sizeof(err), "--wg-dev", "wg0", "--api", "http://x",
		  "--pin-dir", "/sys/fs/bpf/jitwg", "--xdp-mode", "native", NULL);
	CHECK("opts: --pin-dir with --xdp-mode native rejected",
	      r == 0 && opts_validate(&o, err, sizeof(err)) == -EINVAL &&
	      strstr(err, "pin-dir"), "err=%s", err);
	opts_free(&o);

	/* Config file: every option settable; the command line wins. */
	fd = mkstemp(path);
	f = fdopen(fd, "w");
	fprintf(f, "# jitwgd config\n"
		   "wg-dev = wgfile\n"
		   "xdp-dev = ethfile\n"
		   "api = \"http://127.0.0.1:9\"\n"
		   "idle-timeout = 600\n"
		   "no-initiate-back\n"
		   "\n"
		   "log-level = warn\n");
	fclose(f);
	r = parse(&o, err, sizeof(err), "--config", path, "--idle-timeout", "200", NULL);
	CHECK("opts: config file read, command line overrides",
	      r == 0 && !strcmp(o.wg_dev, "wgfile") && !strcmp(o.api_url, "http://127.0.0.1:9") &&
	      o.idle_timeout == 200 && !o.initiate_back && o.log_level == LOG_WARN,
	      "r=%d err=%s", r, err);
	opts_free(&o);

	f = fopen(path, "w");
	fprintf(f, "wg-dev = a\nfrobnicate = 1\n");
	fclose(f);
	r = parse(&o, err, sizeof(err), "--config", path, NULL);
	CHECK("opts: unknown config setting names file and line",
	      r == -EINVAL && strstr(err, ":2:") && strstr(err, "frobnicate"),
	      "r=%d err=%s", r, err);
	opts_free(&o);

	f = fopen(path, "w");
	fprintf(f, "no-initiate-back = maybe\n");
	fclose(f);
	r = parse(&o, err, sizeof(err), "--config", path, NULL);
	CHECK("opts: bad boolean in config rejected", r == -EINVAL, "r=%d", r);
	opts_free(&o);
	unlink(path);

	r = parse(&o, err, sizeof(err), "--config", "/nonexistent/jitwgd.conf", NULL);
	CHECK("opts: missing config file rejected",
	      r == -EINVAL && strstr(err, "/nonexistent"), "r=%d err=%s", r, err);
	opts_free(&o);
}

static void test_log(void)
{
	char out[64];
	uint8_t key[32];
	char fp[9];

	CHECK("log: plain value unquoted", !strcmp(log_quote(out, sizeof(out), "abc"), "abc"),
	      "%s", out);
	CHECK("log: spaces quoted",
	      !strcmp(log_quote(out, sizeof(out), "a b"), "\"a b\""), "%s", out);
	CHECK("log: quotes escaped",
	      !strcmp(log_quote(out, sizeof(out), "say \"x\""), "\"say \\\"x\\\"\""), "%s", out);
	CHECK("log: newline cannot split a line",
	      !strchr(log_quote(out, sizeof(out), "a\nb"), '\n'), "%s", out);
	CHECK("log: empty value quoted", !strcmp(log_quote(out, sizeof(out), ""), "\"\""),
	      "%s", out);
	memset(key, 0, sizeof(key));
	log_fingerprint(fp, key);
	CHECK("log: fingerprint is 8 characters of base64", !strcmp(fp, "AAAAAAAA"), "%s", fp);
}

/*
 * The counter list: the stop line keeps its old words and order (tests and
 * operators read it), and the list can be rendered as Prometheus metrics.
 */
static void test_counters(void)
{
	struct daemon_stats st;
	char line[1024];
	size_t i, j;
	bool ok = true;

	memset(&st, 0, sizeof(st));
	st.events = 1;
	st.installed = 2;
	st.handshakes = 3;
	st.evicted = 4;
	st.unknown = 5;
	st.refused = 6;
	st.errors = 7;
	st.bad_auth = 8;
	st.replays = 9;
	st.sightings = 10;
	st.queue_full = 11;
	st.redelivered = 12;
	st.redeliver_errors = 13;
	st.answers_stale = 14;
	st.budget_refused = 15;
	st.fetch_shed = 16;
	st.giveback_skipped = 18;
	st.consume_engaged = 17;
	st.bad_shape = st.bad_mac1 = st.bad_identity = st.waiting = 99;
	daemon_stats_format(&st, line, sizeof(line));
	CHECK("counters: stop line", !strcmp(line,
	      "events=1 installed=2 handshakes=3 evicted=4 unknown=5 refused=6 "
	      "errors=7 bad_auth=8 replays=9 sightings=10 queue_full=11 "
	      "redelivered=12 redeliver_errors=13 answers_stale=14 "
	      "budget_refused=15 fetch_shed=16 giveback_skipped=18 consume_engaged=17"), "%s", line);
	CHECK("counters: stop line cut short stays terminated",
	      daemon_stats_format(&st, line, 10) > 10 && strlen(line) == 9, "%s", line);
	CHECK("counters: every field listed",
	      daemon_n_counters * sizeof(uint64_t) == sizeof(struct daemon_stats),
	      "%zu counters, struct of %zu bytes", daemon_n_counters,
	      sizeof(struct daemon_stats));
	for (i = 0; i < daemon_n_counters; i++) {
		const struct daemon_counter_def *c = &daemon_counter_defs[i];
		const char *m = c->metric;

		/* Prometheus: [a-zA-Z_:][a-zA-Z0-9_:]*, counters end in _total. */
		ok &= !strncmp(m, "jitwg_", 6) &&
		      strspn(m, "abcdefghijklmnopqrstuvwxyz0123456789_") == strlen(m) &&
		      strlen(m) > 6 && !strcmp(m + strlen(m) - 6, "_total") &&
		      c->help[0] != '\0';
		for (j = 0; j < i; j++) {
			const struct daemon_counter_def *o = &daemon_counter_defs[j];

			/* One HELP per family; no two series alike. */
			if (!strcmp(o->metric, m))
				ok &= !strcmp(o->help, c->help) && strcmp(o->labels, c->labels);
		}
	}
	CHECK("counters: metric names, help texts and labels", ok, "bad entry");
}

/*
 * --consume auto: engaged by a rate of events of at least
 * CONSUME_AUTO_RATE over at least a window, or by the global budget
 * refusing any; held CONSUME_AUTO_HOLD_MS past the last such look.
 */
static void test_consume_auto(void)
{
	const uint64_t ms = 1000000ull, t0 = 5000 * ms;
	struct consume_auto a = { 0 };
	uint64_t ev = 777, lim = 3;
	bool on;

	on = consume_auto_step(&a, t0, ev, lim);
	CHECK("consume auto: the first look only takes a baseline", !on, "on");
	/* 99 events in 100 ms: under 1,000/s. */
	on = consume_auto_step(&a, t0 + 100 * ms, ev += 99, lim);
	CHECK("consume auto: 990/s is not load", !on, "on");
	/* 50 events in 10 ms would be 5,000/s, but a window is 100 ms. */
	on = consume_auto_step(&a, t0 + 110 * ms, ev += 50, lim);
	CHECK("consume auto: a rate over less than a window is not taken", !on, "on");
	on = consume_auto_step(&a, t0 + 200 * ms, ev += 60, lim);
	CHECK("consume auto: 1,100/s over the window engages", on, "off");
	on = consume_auto_step(&a, t0 + 300 * ms, ev, lim);
	CHECK("consume auto: held through a quiet look", on, "off");
	on = consume_auto_step(&a, t0 + 200 * ms + CONSUME_AUTO_HOLD_MS * ms - ms, ev, lim);
	CHECK("consume auto: held until the hold ends", on, "off");
	on = consume_auto_step(&a, t0 + 200 * ms + CONSUME_AUTO_HOLD_MS * ms, ev + 1, lim);
	CHECK("consume auto: released once the hold ends", !on, "on");
	ev++;
	on = consume_auto_step(&a, t0 + 20000 * ms, ev + 1, lim + 1);
	CHECK("consume auto: one refusal of the global budget engages", on, "off");
	a = (struct consume_auto){ 0 };
	consume_auto_step(&a, t0, 100000, 500);
	on = consume_auto_step(&a, t0 + 500 * ms, 10, 0);
	CHECK("consume auto: counters that went back are a new baseline, not load", !on, "on");
	on = consume_auto_step(&a, t0 + 1000 * ms, 20, 0);
	CHECK("consume auto: ... and the next look measures from it", !on, "on");
}

int main(void)
{
	test_evict_decide();
	test_sched_turn();
	test_overlap();
	test_table();
	test_table_overlap_index();
	test_opts();
	test_consume_auto();
	test_log();
	test_counters();
	CHECK_EXIT();
}
