// SPDX-License-Identifier: MIT
/*
 * The metrics writer and server (user/metrics.c): exact text for labels,
 * escaping and histograms; Debian's promtool accepts what the writer
 * produces (and rejects a broken exposition, so the check is real); the
 * histogram under concurrent observers; the HTTP server on 127.0.0.1 with
 * an ephemeral port, fetched with libcurl.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <curl/curl.h>

#include "check.h"
#include "metrics.h"

static int contains(const struct metrics_buf *b, const char *s)
{
	return b->data && strstr(b->data, s) != NULL;
}

/* Families a daemon might write: every kind of line the writer makes. */
static int render_sample(struct metrics_buf *b, void *ctx)
{
	static const double bounds[] = { 0.001, 0.01, 0.1, 1 };
	struct metrics_hist h;
	const char *const outcomes[] = { "installed", "unknown", "refused" };
	size_t i;

	(void)ctx;
	metrics_family(b, "jitwg_provisions_total", METRICS_COUNTER,
		       "Provisioning decisions by outcome.");
	for (i = 0; i < 3; i++)
		metrics_u64(b, "jitwg_provisions_total",
			    (const char *[]){ "outcome", outcomes[i], NULL },
			    i * 7);
	metrics_family(b, "jitwg_rejections_total", METRICS_COUNTER,
		       "Rejections by reason.");
	metrics_u64_raw(b, "jitwg_rejections_total", "reason=\"replay\"", 2);
	metrics_u64_raw(b, "jitwg_rejections_total", NULL, 1);
	metrics_gauge1(b, "jitwg_device_peers",
		       "Peers on the WireGuard device (last listing).", 3);
	metrics_family(b, "jitwg_build_info", METRICS_GAUGE,
		       "Build version; value 1.\nSecond \\ line.");
	metrics_u64(b, "jitwg_build_info",
		    (const char *[]){ "version", "v0.1-\"x\"\\y\nz", NULL }, 1);
	metrics_hist_init(&h, bounds, 4);
	metrics_hist_observe(&h, 0.0005);
	metrics_hist_observe(&h, 0.05);
	metrics_hist_observe(&h, 5);
	metrics_family(b, "jitwg_first_contact_seconds", METRICS_HISTOGRAM,
		       "XDP saw the initiation -> handshake done.");
	metrics_histogram(b, "jitwg_first_contact_seconds", NULL, &h);
	metrics_family(b, "jitwg_stage_seconds", METRICS_HISTOGRAM,
		       "Per stage.");
	metrics_histogram(b, "jitwg_stage_seconds",
			  (const char *[]){ "stage", "fetch", NULL }, &h);
	return 0;
}

static void test_writer_text(void)
{
	struct metrics_buf b;

	metrics_buf_init(&b);
	render_sample(&b, NULL);
	CHECK("writer: no allocation error", !b.err && b.data, "err %d", b.err);
	CHECK("writer: HELP and TYPE lines",
	      contains(&b, "# HELP jitwg_provisions_total Provisioning decisions by outcome.\n"
			   "# TYPE jitwg_provisions_total counter\n"),
	      "%s", b.data);
	CHECK("writer: labelled counter",
	      contains(&b, "jitwg_provisions_total{outcome=\"refused\"} 14\n"),
	      "%s", b.data);
	CHECK("writer: labels given in exposition form",
	      contains(&b, "\njitwg_rejections_total{reason=\"replay\"} 2\n"
			   "jitwg_rejections_total 1\n"),
	      "%s", b.data);
	CHECK("writer: unlabelled gauge", contains(&b, "\njitwg_device_peers 3\n"),
	      "%s", b.data);
	CHECK("writer: HELP escapes newline and backslash",
	      contains(&b, "value 1.\\nSecond \\\\ line.\n"), "%s", b.data);
	CHECK("writer: label value escapes quote, backslash, newline",
	      contains(&b, "{version=\"v0.1-\\\"x\\\"\\\\y\\nz\"} 1\n"), "%s",
	      b.data);
	/* 0.0005 ≤ 0.001; 0.05 ≤ 0.1; 5 only in +Inf: cumulative counts. */
	CHECK("histogram: cumulative buckets",
	      contains(&b, "jitwg_first_contact_seconds_bucket{le=\"0.001\"} 1\n"
			   "jitwg_first_contact_seconds_bucket{le=\"0.01\"} 1\n"
			   "jitwg_first_contact_seconds_bucket{le=\"0.1\"} 2\n"
			   "jitwg_first_contact_seconds_bucket{le=\"1\"} 2\n"
			   "jitwg_first_contact_seconds_bucket{le=\"+Inf\"} 3\n"
			   "jitwg_first_contact_seconds_sum 5.0505\n"
			   "jitwg_first_contact_seconds_count 3\n"),
	      "%s", b.data);
	CHECK("histogram: le after the series' labels",
	      contains(&b, "jitwg_stage_seconds_bucket{stage=\"fetch\",le=\"+Inf\"} 3\n"
			   "jitwg_stage_seconds_sum{stage=\"fetch\"} 5.0505\n"
			   "jitwg_stage_seconds_count{stage=\"fetch\"} 3\n"),
	      "%s", b.data);
	metrics_buf_free(&b);
}

static void test_hist_bounds(void)
{
	static const double bad_order[] = { 0.1, 0.01 };
	static const double dup[] = { 0.1, 0.1 };
	struct metrics_hist h;
	double many[METRICS_HIST_MAX_BOUNDS + 1];
	unsigned int i;

	for (i = 0; i <= METRICS_HIST_MAX_BOUNDS; i++)
		many[i] = i + 1;
	CHECK("histogram: bounds must ascend",
	      metrics_hist_init(&h, bad_order, 2) == -EINVAL &&
		      metrics_hist_init(&h, dup, 2) == -EINVAL,
	      "accepted");
	CHECK("histogram: at most METRICS_HIST_MAX_BOUNDS bounds",
	      metrics_hist_init(&h, many, METRICS_HIST_MAX_BOUNDS + 1) ==
			      -EINVAL &&
		      !metrics_hist_init(&h, many, METRICS_HIST_MAX_BOUNDS),
	      "wrong verdict");
	CHECK("histogram: latency bounds valid",
	      !metrics_hist_init(&h, metrics_latency_bounds,
				 metrics_latency_nbounds),
	      "rejected");
	/* A value exactly on a bound counts in that bucket; negative as 0. */
	metrics_hist_observe_ns(&h, 1000000);
	metrics_hist_observe(&h, -3);
	CHECK("histogram: le is inclusive, negative counts as zero",
	      h.counts[1] == 1 && h.counts[0] == 1 && h.sum_ns == 1000000,
	      "counts %llu %llu sum %llu", (unsigned long long)h.counts[0],
	      (unsigned long long)h.counts[1], (unsigned long long)h.sum_ns);
}

enum { OBSERVERS = 4, OBSERVATIONS = 200000 };

static void *observer(void *arg)
{
	struct metrics_hist *h = arg;
	int i;

	for (i = 0; i < OBSERVATIONS; i++)
		metrics_hist_observe_ns(h, (uint64_t)(i % 7) * 1000000);
	return NULL;
}

static void test_hist_concurrent(void)
{
	pthread_t t[OBSERVERS];
	struct metrics_hist h;
	uint64_t total = 0, want_sum = 0;
	unsigned int i;
	int j;

	metrics_hist_init(&h, metrics_latency_bounds, metrics_latency_nbounds);
	for (i = 0; i < OBSERVERS; i++)
		pthread_create(&t[i], NULL, observer, &h);
	for (i = 0; i < OBSERVERS; i++)
		pthread_join(t[i], NULL);
	for (i = 0; i <= h.n; i++)
		total += h.counts[i];
	for (j = 0; j < OBSERVATIONS; j++)
		want_sum += (uint64_t)(j % 7) * 1000000;
	CHECK("histogram: no observation lost by 4 concurrent observers",
	      total == (uint64_t)OBSERVERS * OBSERVATIONS &&
		      h.sum_ns == want_sum * OBSERVERS,
	      "count %llu sum %llu", (unsigned long long)total,
	      (unsigned long long)h.sum_ns);
}

/* Run promtool check metrics on text; its exit status, or -1 if absent. */
static int promtool(const char *text)
{
	FILE *p;
	int st;

	if (system("command -v promtool >/dev/null 2>&1"))
		return -1;
	p = popen("promtool check metrics >/dev/null 2>&1", "w");
	if (!p)
		return -1;
	fputs(text, p);
	st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static void test_promtool(void)
{
	struct metrics_buf b;
	int st;

	metrics_buf_init(&b);
	render_sample(&b, NULL);
	st = promtool(b.data);
	if (st < 0) {
		SKIP("promtool accepts the writer's output",
		     "promtool not installed (Debian package prometheus)");
		metrics_buf_free(&b);
		return;
	}
	CHECK("promtool accepts the writer's output", st == 0,
	      "promtool check metrics exited %d on:\n%s", st, b.data);
	/* The same check must fail on a broken exposition. */
	st = promtool("# HELP x_total a\n# TYPE x_total counter\nx_total{a=\"b} 1\n");
	CHECK("promtool rejects a broken label value", st != 0,
	      "promtool accepted it");
	metrics_buf_free(&b);
}

struct fetched {
	char buf[65536];
	size_t len;
};

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
	struct fetched *f = arg;
	size_t len = size * n;

	if (f->len + len >= sizeof(f->buf))
		return 0;
	memcpy(f->buf + f->len, p, len);
	f->len += len;
	f->buf[f->len] = '\0';
	return len;
}

/* GET (or POST) url; HTTP status or -1, body in f, content type in ct. */
static long http(const char *url, int post, struct fetched *f, char *ct,
		 size_t ctlen)
{
	CURL *c = curl_easy_init();
	long code = -1;
	char *type = NULL;

	f->len = 0;
	f->buf[0] = '\0';
	if (!c)
		return -1;
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, f);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	if (post)
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, "x");
	if (curl_easy_perform(c) == CURLE_OK) {
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
		curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &type);
		if (ct)
			snprintf(ct, ctlen, "%s", type ? type : "");
	}
	curl_easy_cleanup(c);
	return code;
}

static int render_fail(struct metrics_buf *b, void *ctx)
{
	(void)b;
	(void)ctx;
	return -EIO;
}

static int scrapes;

static int render_counting(struct metrics_buf *b, void *ctx)
{
	scrapes++;
	return render_sample(b, ctx);
}

static void test_server(void)
{
	struct metrics_server *s = NULL, *s2 = NULL;
	struct metrics_buf want;
	struct fetched f;
	char url[128], ct[128] = "";
	long code;
	int err;

	err = metrics_server_start(&s, "127.0.0.1:0", render_counting, NULL);
	CHECK("server: starts on 127.0.0.1, ephemeral port",
	      !err && s && metrics_server_port(s) > 0, "error %d", err);
	if (err)
		return;
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/metrics",
		 metrics_server_port(s));
	metrics_buf_init(&want);
	render_sample(&want, NULL);
	code = http(url, 0, &f, ct, sizeof(ct));
	CHECK("server: GET /metrics answers what render wrote",
	      code == 200 && f.len == want.len && !strcmp(f.buf, want.data) &&
		      scrapes == 1,
	      "status %ld, %zu bytes (want %zu), %d renders", code, f.len,
	      want.len, scrapes);
	CHECK("server: exposition content type",
	      !strcmp(ct, "text/plain; version=0.0.4; charset=utf-8"), "%s",
	      ct);
	metrics_buf_free(&want);

	snprintf(url, sizeof(url), "http://127.0.0.1:%u/other",
		 metrics_server_port(s));
	CHECK("server: other paths 404", http(url, 0, &f, NULL, 0) == 404,
	      "not 404");
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/metrics",
		 metrics_server_port(s));
	CHECK("server: POST refused (405) without rendering",
	      http(url, 1, &f, NULL, 0) == 405 && scrapes == 1, "not 405");

	/* The port is taken: a second server says so. */
	snprintf(url, sizeof(url), "127.0.0.1:%u", metrics_server_port(s));
	err = metrics_server_start(&s2, url, render_sample, NULL);
	CHECK("server: a taken port is an error", err == -EADDRINUSE && !s2,
	      "error %d", err);
	metrics_server_stop(s2);
	metrics_server_stop(s);

	err = metrics_server_start(&s, "127.0.0.1:0", render_fail, NULL);
	if (!err) {
		snprintf(url, sizeof(url), "http://127.0.0.1:%u/metrics",
			 metrics_server_port(s));
		code = http(url, 0, &f, NULL, 0);
		CHECK("server: a failed render answers 500", code == 500,
		      "status %ld", code);
		metrics_server_stop(s);
	}
}

static void test_listen_parse(void)
{
	static const struct {
		const char *in;
		int ok;
		int family;
		unsigned int port;
	} rows[] = {
		{ "127.0.0.1:9999", 1, AF_INET, 9999 },
		{ "127.0.0.1", 1, AF_INET, METRICS_DEFAULT_PORT },	/* default port */
		{ "[::1]:9100", 1, AF_INET6, 9100 },
		{ "[::1]", 1, AF_INET6, METRICS_DEFAULT_PORT },
		{ "0.0.0.0:0", 1, AF_INET, 0 },
		{ "::1", 0, 0, 0 },		/* ambiguous: brackets needed */
		{ "localhost:9089", 0, 0, 0 },	/* numeric only */
		{ "127.0.0.1:99999", 0, 0, 0 },
		{ "127.0.0.1:65535", 1, AF_INET, 65535 },
		{ "127.0.0.1:65536", 0, 0, 0 },
		{ "[::1]:70000", 0, 0, 0 },	/* hostport_parse's own check */
		{ "127.0.0.1:+80", 0, 0, 0 },
		{ "127.0.0.1:80x", 0, 0, 0 },
		{ "", 0, 0, 0 },
	};
	struct sockaddr_storage ss;
	socklen_t len;
	unsigned int port;
	size_t i;
	int bad = 0, err;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		err = metrics_listen_parse(rows[i].in, &ss, &len);
		if (!rows[i].ok) {
			bad += !EXPECT(err == -EINVAL, "'%s' accepted",
				       rows[i].in);
			continue;
		}
		port = ss.ss_family == AF_INET ?
			       ntohs(((struct sockaddr_in *)&ss)->sin_port) :
			       ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
		bad += !EXPECT(!err && ss.ss_family == rows[i].family &&
				       port == rows[i].port,
			       "'%s': err %d family %d port %u", rows[i].in,
			       err, ss.ss_family, port);
	}
	CHECK("listen address parsing (table)", !bad, "%d rows wrong", bad);
}

/*
 * --serve ADDR PORT_FILE: serve the sample families until killed (for
 * tests/test_metrics.sh and its real Prometheus); each scrape observes one
 * more first-contact time, so rates move.
 */
static struct metrics_hist served;

static int render_served(struct metrics_buf *b, void *ctx)
{
	metrics_hist_observe(&served, 0.02);
	render_sample(b, ctx);
	metrics_family(b, "jitwg_test_scrape_seconds", METRICS_HISTOGRAM,
		       "One observation per scrape.");
	metrics_histogram(b, "jitwg_test_scrape_seconds", NULL, &served);
	return 0;
}

static int serve(const char *addr, const char *port_file)
{
	struct metrics_server *s;
	sigset_t set;
	FILE *f;
	int sig, err;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	metrics_hist_init(&served, metrics_latency_bounds,
			  metrics_latency_nbounds);
	err = metrics_server_start(&s, addr, render_served, NULL);
	if (err) {
		fprintf(stderr, "metrics server on %s: %s\n", addr,
			strerror(-err));
		return 1;
	}
	f = fopen(port_file, "w");
	if (f) {
		fprintf(f, "%u\n", metrics_server_port(s));
		fclose(f);
	}
	sigwait(&set, &sig);
	metrics_server_stop(s);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "--serve"))
		return serve(argv[2], argv[3]);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	test_writer_text();
	test_hist_bounds();
	test_hist_concurrent();
	test_promtool();
	test_listen_parse();
	test_server();
	curl_global_cleanup();
	CHECK_EXIT();
}
