// SPDX-License-Identifier: MIT
/*
 * Control-plane client tests: the pure parsers (table-driven), then the
 * asynchronous client against the reference control plane
 * (scripts/control-plane.py) on 127.0.0.1: found, 404, token, retries on 500,
 * wrong public_key, bad allowed IPs, malformed JSON, huge bodies, a hanging
 * server, connection refused, dedupe of concurrent submits, rate limiting,
 * cancellation at destroy.
 *
 * Waits have generous safety timeouts only; nothing asserts on time.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <json-c/json.h>
#include <sodium.h>

#include "allowed_ip.h"
#include "api.h"
#include "check.h"
#include "cp_server.h"
#include "keys.h"

static char tmpdir[64], peersdir[128], tokfile[128], badtok[128];
static char base[64];
static pid_t server = -1;

/* ---- results collected from the callback ---- */

struct got {
	uint8_t key[32];
	enum api_status status;
	int err;
	long http;
	unsigned attempts;
	void *ctx;
	struct api_peer peer;
	char reason[API_REASON_LEN];
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static struct got results[64];
static int n_results;

static void on_done(const uint8_t key[32], const struct api_result *res,
		    void *ctx, void *arg)
{
	(void)arg;
	pthread_mutex_lock(&mu);
	if (n_results < 64) {
		struct got *g = &results[n_results++];

		memset(g, 0, sizeof(*g));
		memcpy(g->key, key, 32);
		g->status = res->status;
		g->err = res->err;
		g->http = res->http_status;
		g->attempts = res->attempts;
		g->ctx = ctx;
		if (res->peer)
			g->peer = *res->peer;
		snprintf(g->reason, sizeof(g->reason), "%s", res->reason);
	}
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
}

static void reset_results(void)
{
	pthread_mutex_lock(&mu);
	n_results = 0;
	pthread_mutex_unlock(&mu);
}

/* Wait for n results (safety timeout 60 s). Returns the count reached. */
static int wait_results(int n)
{
	struct timespec t;
	int got;

	clock_gettime(CLOCK_REALTIME, &t);
	t.tv_sec += 60;
	pthread_mutex_lock(&mu);
	while (n_results < n &&
	       pthread_cond_timedwait(&cv, &mu, &t) != ETIMEDOUT)
		;
	got = n_results;
	pthread_mutex_unlock(&mu);
	return got;
}

static int count_results(void)
{
	int n;

	pthread_mutex_lock(&mu);
	n = n_results;
	pthread_mutex_unlock(&mu);
	return n;
}

/* ---- the reference server ---- */

static size_t sink(char *p, size_t s, size_t n, void *arg)
{
	struct { char buf[65536]; size_t len; } *b = arg;
	size_t len = s * n;

	if (b->len + len >= sizeof(b->buf))
		return 0;
	memcpy(b->buf + b->len, p, len);
	b->len += len;
	b->buf[b->len] = 0;
	return len;
}

/* GET or POST an admin endpoint; returns the parsed JSON or NULL. */
static json_object *admin(const char *path, const char *post)
{
	static struct { char buf[65536]; size_t len; } b;
	char url[256];
	CURL *e = curl_easy_init();
	CURLcode rc;

	b.len = 0;
	b.buf[0] = 0;
	snprintf(url, sizeof(url), "%s%s", base, path);
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, sink);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(e, CURLOPT_TIMEOUT, 10L);
	if (post)
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, post);
	rc = curl_easy_perform(e);
	curl_easy_cleanup(e);
	return rc == CURLE_OK ? json_tokener_parse(b.buf) : NULL;
}

static void set_mode(const char *json)
{
	json_object *o = admin("/_mode", json);

	if (!o) {
		printf("FAIL: api_server_mode: cannot set %s\n", json);
		exit(1);
	}
	json_object_put(o);
}

/* Requests the server saw for key (by base64url), or for all if NULL. */
static long server_count(const uint8_t *key)
{
	json_object *o = admin("/_stats", NULL), *v, *k;
	char u[KEY_B64URL_LEN];
	long n = -1;

	if (!o)
		return -1;
	if (!key) {
		if (json_object_object_get_ex(o, "peers_requests", &v))
			n = json_object_get_int64(v);
	} else {
		key_to_base64url(u, key);
		n = 0;
		if (json_object_object_get_ex(o, "by_key", &v) &&
		    json_object_object_get_ex(v, u, &k))
			n = json_object_get_int64(k);
	}
	json_object_put(o);
	return n;
}

static long server_stat(const char *field)
{
	json_object *o = admin("/_stats", NULL), *v;
	long n = -1;

	if (o && json_object_object_get_ex(o, field, &v))
		n = json_object_get_int64(v);
	if (o)
		json_object_put(o);
	return n;
}

static void add_peer(const uint8_t key[32], const char *extra)
{
	char b64[KEY_B64_LEN], path[256], u[KEY_B64URL_LEN];
	FILE *f;

	key_to_base64(b64, key);
	key_to_base64url(u, key);
	snprintf(path, sizeof(path), "%s/%s.json", peersdir, u);
	f = fopen(path, "w");
	if (!f)
		exit(1);
	fprintf(f, "{\"public_key\": \"%s\"%s}\n", b64, extra);
	fclose(f);
}

/*
 * Start the reference control plane with the test's peers and token plus
 * extra arguments; url receives "scheme://127.0.0.1:port".
 */
static int start_server_args(pid_t *pid, char *url, size_t len,
			     const char *scheme, const char *name,
			     const char *const extra[])
{
	const char *args[32] = { "--peers", peersdir, "--token-file", tokfile };
	int port, n = 4, err;

	for (int i = 0; extra && extra[i] && n < 24; i++)
		args[n++] = extra[i];
	err = cp_server_start(pid, &port, tmpdir, name, args);
	if (err)
		return err;
	snprintf(url, len, "%s://127.0.0.1:%d", scheme, port);
	return 0;
}

static int start_server(void)
{
	return start_server_args(&server, base, sizeof(base), "http", "main",
				 NULL);
}

static void stop_server(void)
{
	if (server > 0) {
		kill(server, SIGTERM);
		waitpid(server, NULL, 0);
		server = -1;
	}
}

static void cleanup(void)
{
	char cmd[256];

	stop_server();
	if (tmpdir[0]) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
		if (system(cmd))
			fprintf(stderr, "cannot remove %s\n", tmpdir);
	}
}

/* A client with fast retries and no rate limit unless the test says. */
static struct api_client *client(struct api_config *over)
{
	struct api_config cfg = {
		.url = base,
		.token_file = tokfile,
		.connect_timeout_ms = 2000,
		.total_timeout_ms = 10000,
		.max_attempts = 3,
		.backoff_initial_ms = 20,
		.backoff_max_ms = 100,
		.no_rate_limit = true,
		.done = on_done,
	};
	struct api_client *c = NULL;
	char err[256] = "";
	int ret;

	if (over)
		cfg = *over;
	ret = api_create(&c, &cfg, err, sizeof(err));
	if (ret) {
		printf("FAIL: api_create: %d %s\n", ret, err);
		exit(1);
	}
	return c;
}

/* ---- pure parsers ---- */

static void test_parse_allowed_ip(void)
{
	static const struct {
		const char *in;
		int ok;
		const char *out; /* canonical form when ok */
	} rows[] = {
		{ "10.0.0.2/32", 1, "10.0.0.2/32" },          /* host v4 */
		{ "10.0.0.0/24", 1, "10.0.0.0/24" },          /* network v4 */
		{ "10.0.0.2", 1, "10.0.0.2/32" },             /* implied /32 */
		{ "0.0.0.0/0", 1, "0.0.0.0/0" },              /* default route */
		{ "fd00::2/128", 1, "fd00::2/128" },          /* host v6 */
		{ "fd00::/64", 1, "fd00::/64" },              /* network v6 */
		{ "FD00::2", 1, "fd00::2/128" },              /* upper case */
		{ "::/0", 1, "::/0" },
		{ "10.0.0.2/24", 0, NULL },                   /* host bits */
		{ "fd00::1/64", 0, NULL },                    /* host bits v6 */
		{ "10.0.0.300/32", 0, NULL },                 /* octet range */
		{ "10.0.0/24", 0, NULL },                     /* short quad */
		{ "010.0.0.2/32", 0, NULL },                  /* leading zero */
		{ "10.0.0.2/33", 0, NULL },                   /* prefix range */
		{ "fd00::2/129", 0, NULL },
		{ "10.0.0.2/", 0, NULL },                     /* empty prefix */
		{ "10.0.0.2/032", 0, NULL },                  /* prefix zero */
		{ "10.0.0.2/+3", 0, NULL },                   /* sign */
		{ "10.0.0.2/3x", 0, NULL },
		{ " 10.0.0.2/32", 0, NULL },                  /* space */
		{ "10.0.0.2/32 ", 0, NULL },
		{ "fe80::1%eth0/128", 0, NULL },              /* zone */
		{ "", 0, NULL },
		{ "/32", 0, NULL },
		{ "hello", 0, NULL },
		{ "1.2.3.4/8/8", 0, NULL },
	};
	char buf[64];
	int ok = 1;

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct wgdev_allowed_ip ip;
		int ret = api_parse_allowed_ip(rows[i].in, &ip);

		if (rows[i].ok) {
			api_format_allowed_ip(&ip, buf, sizeof(buf));
			ok &= EXPECT(ret == 0 && !strcmp(buf, rows[i].out),
				     "'%s' -> %d '%s'", rows[i].in, ret, buf);
		} else {
			ok &= EXPECT(ret == -EINVAL, "'%s' accepted",
				     rows[i].in);
		}
	}
	CHECK("api_parse_allowed_ip_table", ok, "see above");
}

static void test_overlap(void)
{
	static const struct {
		const char *a, *b;
		bool overlap;
	} rows[] = {
		{ "10.0.0.2/32", "10.0.0.2/32", true },   /* same host */
		{ "10.0.0.2/32", "10.0.0.3/32", false },  /* neighbours */
		{ "10.0.0.0/24", "10.0.0.77/32", true },  /* host in network */
		{ "10.0.0.77/32", "10.0.0.0/24", true },  /* symmetric */
		{ "10.0.0.0/25", "10.0.0.128/25", false },/* halves */
		{ "10.0.0.0/23", "10.0.1.0/24", true },
		{ "0.0.0.0/0", "192.0.2.1/32", true },    /* default route */
		{ "10.0.0.0/9", "10.128.0.0/9", false },  /* odd prefix */
		{ "10.0.0.0/7", "11.0.0.0/8", true },
		{ "fd00::/64", "fd00::5/128", true },
		{ "fd00::/64", "fd00:0:0:1::/64", false },
		{ "fd00::2/128", "10.0.0.2/32", false },  /* families */
		{ "::/0", "0.0.0.0/0", false },
	};
	struct wgdev_allowed_ip set_a[2], set_b[3];
	int ok = 1;

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct wgdev_allowed_ip a, b;

		if (api_parse_allowed_ip(rows[i].a, &a) ||
		    api_parse_allowed_ip(rows[i].b, &b)) {
			ok &= EXPECT(0, "row %zu does not parse", i);
			continue;
		}
		ok &= EXPECT(allowed_ip_overlaps(&a, &b) == rows[i].overlap,
			     "%s vs %s", rows[i].a, rows[i].b);
	}
	api_parse_allowed_ip("10.0.0.2/32", &set_a[0]);
	api_parse_allowed_ip("fd00::2/128", &set_a[1]);
	api_parse_allowed_ip("10.0.0.3/32", &set_b[0]);
	api_parse_allowed_ip("192.168.0.0/16", &set_b[1]);
	api_parse_allowed_ip("fd00::/120", &set_b[2]);
	ok &= EXPECT(allowed_ips_overlap(set_a, 2, set_b, 3) == 1,
		     "set overlap at index 1");
	ok &= EXPECT(allowed_ips_overlap(set_a, 1, set_b, 2) == -1,
		     "no overlap");
	ok &= EXPECT(allowed_ips_overlap(set_a, 2, set_b, 0) == -1,
		     "empty set");
	CHECK("api_allowed_ip_overlap_table", ok, "see above");
}

static void test_parse_body(void)
{
	/* K = base64 of 32 bytes 0x01; P = 32 bytes 0x02; O = 0x03. */
#define K "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="
#define P "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI="
#define O "AwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwM="
	static const struct {
		const char *name, *body;
		int want;
	} rows[] = {
		{ "full", "{\"public_key\":\"" K "\",\"allowed_ips\":[\"10.0.0.2/32\",\"fd00::2/128\"],\"preshared_key\":\"" P "\",\"persistent_keepalive\":25,\"ttl\":300}", 0 },
		{ "minimal", "{\"public_key\":\"" K "\",\"allowed_ips\":[]}", 0 },
		{ "nulls for optionals", "{\"public_key\":\"" K "\",\"allowed_ips\":[],\"preshared_key\":null,\"ttl\":null}", 0 },
		{ "unknown field ignored", "{\"public_key\":\"" K "\",\"allowed_ips\":[],\"x\":{\"y\":[1]}}", 0 },
		{ "trailing whitespace", "{\"public_key\":\"" K "\",\"allowed_ips\":[]}\n\n", 0 },
		{ "wrong key", "{\"public_key\":\"" O "\",\"allowed_ips\":[]}", -EKEYREJECTED },
		{ "key not base64", "{\"public_key\":\"nope\",\"allowed_ips\":[]}", -EINVAL },
		{ "key wrong type", "{\"public_key\":5,\"allowed_ips\":[]}", -EBADMSG },
		{ "key with NUL escape", "{\"public_key\":\"" K "\\u0000x\",\"allowed_ips\":[]}", -EINVAL },
		{ "no key", "{\"allowed_ips\":[]}", -EBADMSG },
		{ "no allowed_ips", "{\"public_key\":\"" K "\"}", -EBADMSG },
		{ "allowed_ips not array", "{\"public_key\":\"" K "\",\"allowed_ips\":\"10.0.0.2/32\"}", -EBADMSG },
		{ "allowed ip not string", "{\"public_key\":\"" K "\",\"allowed_ips\":[10]}", -EBADMSG },
		{ "bad allowed ip", "{\"public_key\":\"" K "\",\"allowed_ips\":[\"10.0.0.300/32\"]}", -EINVAL },
		{ "host bits", "{\"public_key\":\"" K "\",\"allowed_ips\":[\"10.0.0.2/24\"]}", -EINVAL },
		{ "bad psk", "{\"public_key\":\"" K "\",\"allowed_ips\":[],\"preshared_key\":\"AAAA\"}", -EINVAL },
		{ "keepalive negative", "{\"public_key\":\"" K "\",\"allowed_ips\":[],\"persistent_keepalive\":-1}", -EINVAL },
		{ "keepalive too big", "{\"public_key\":\"" K "\",\"allowed_ips\":[],\"persistent_keepalive\":65536}", -EINVAL },
		{ "keepalive float", "{\"public_key\":\"" K "\",\"allowed_ips\":[],\"persistent_keepalive\":2.5}", -EBADMSG },
		{ "keepalive string", "{\"public_key\":\"" K "\",\"allowed_ips\":[],\"persistent_keepalive\":\"25\"}", -EBADMSG },
		{ "ttl huge", "{\"public_key\":\"" K "\",\"allowed_ips\":[],\"ttl\":99999999999999999999}", -EINVAL },
		{ "truncated", "{\"public_key\":\"" K "\",\"allowed_ips\":[", -EBADMSG },
		{ "trailing garbage", "{\"public_key\":\"" K "\",\"allowed_ips\":[]}x", -EBADMSG },
		{ "two objects", "{\"public_key\":\"" K "\",\"allowed_ips\":[]}{}", -EBADMSG },
		{ "array top", "[1,2]", -EBADMSG },
		{ "empty", "", -EBADMSG },
		{ "deep nesting", "{\"public_key\":\"" K "\",\"allowed_ips\":[],\"x\":[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]}", -EBADMSG },
		{ "bad utf8", "{\"public_key\":\"" K "\",\"allowed_ips\":[],\"x\":\"\xff\xfe\"}", -EBADMSG },
		{ "single quotes", "{'public_key':'" K "','allowed_ips':[]}", -EBADMSG },
	};
	uint8_t want[32];
	struct api_peer p;
	char reason[API_REASON_LEN];
	int ok = 1, ret;

	memset(want, 1, 32);
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		ret = api_parse_body(rows[i].body, strlen(rows[i].body), want,
				     0, &p, reason, sizeof(reason));
		ok &= EXPECT(ret == rows[i].want, "%s: got %d want %d (%s)",
			     rows[i].name, ret, rows[i].want, reason);
	}
	/* Fields of the full row. */
	ret = api_parse_body(rows[0].body, strlen(rows[0].body), want, 0, &p,
			     reason, sizeof(reason));
	ok &= EXPECT(ret == 0 && p.n_allowed_ips == 2 &&
			     p.allowed_ips[0].family == AF_INET &&
			     p.allowed_ips[1].family == AF_INET6 &&
			     p.persistent_keepalive == 25 && p.ttl == 300 &&
			     p.preshared_key[0] == 2 &&
			     p.flags == (API_PEER_HAS_PSK | API_PEER_HAS_KEEPALIVE |
					 API_PEER_HAS_TTL),
		     "full row fields");
	/* A body with a NUL byte, and one over the size limit. */
	ret = api_parse_body("{\"a\":1}\0", 8, want, 0, &p, reason,
			     sizeof(reason));
	ok &= EXPECT(ret == -EBADMSG, "NUL byte: %d", ret);
	ret = api_parse_body(rows[0].body, strlen(rows[0].body), want, 16, &p,
			     reason, sizeof(reason));
	ok &= EXPECT(ret == -EMSGSIZE, "size limit: %d", ret);
	/* Failure leaves no secret behind. */
	ok &= EXPECT(key_is_zero(p.preshared_key), "wiped on failure");
	CHECK("api_parse_body_table", ok, "see above");
#undef K
#undef P
#undef O
}

/* ---- the client against the server ---- */

static void test_found(uint8_t key[32])
{
	struct api_client *c = client(NULL);
	struct api_stats st;
	char ip[64];
	int ret, ok;

	reset_results();
	ret = api_submit(c, key, (void *)0x1234);
	ok = EXPECT(ret == 0, "submit %d", ret);
	ok &= EXPECT(wait_results(1) == 1, "callback");
	ok &= EXPECT(results[0].status == API_FOUND, "status %d err %d (%s)",
		     results[0].status, results[0].err, results[0].reason);
	ok &= EXPECT(results[0].ctx == (void *)0x1234, "ctx passed back");
	ok &= EXPECT(!memcmp(results[0].key, key, 32), "key passed back");
	ok &= EXPECT(!memcmp(results[0].peer.public_key, key, 32), "peer key");
	ok &= EXPECT(results[0].peer.n_allowed_ips == 2, "2 allowed ips");
	api_format_allowed_ip(&results[0].peer.allowed_ips[0], ip, sizeof(ip));
	ok &= EXPECT(!strcmp(ip, "10.7.0.2/32"), "ip %s", ip);
	ok &= EXPECT(results[0].peer.persistent_keepalive == 25 &&
			     results[0].peer.ttl == 120 &&
			     (results[0].peer.flags & API_PEER_HAS_PSK),
		     "optional fields");
	ok &= EXPECT(results[0].attempts == 1 && results[0].http == 200,
		     "attempts %u http %ld", results[0].attempts,
		     results[0].http);
	api_stats(c, &st);
	ok &= EXPECT(st.requests == 1 && st.found == 1 && st.inflight == 0,
		     "stats");
	CHECK("api_found", ok, "see above");
	api_destroy(c);
}

/* Sequential requests share one kept-alive connection (libcurl's cache,
 * the reference control plane's HTTP/1.1). */
static void test_keepalive(const uint8_t key[32])
{
	struct api_client *c = client(NULL);
	struct api_stats st;
	uint8_t other[32];
	int ok = 1;

	for (int i = 0; i < 4; i++) {
		reset_results();
		memset(other, 0x60 + i, sizeof(other));
		ok &= EXPECT(api_submit(c, i ? other : key, NULL) == 0, "submit %d", i);
		ok &= EXPECT(wait_results(1) == 1, "callback %d", i);
	}
	api_stats(c, &st);
	ok &= EXPECT(st.requests == 4 && st.connects == 1,
		     "%lu requests over %lu connections", (unsigned long)st.requests,
		     (unsigned long)st.connects);
	CHECK("api_keepalive", ok, "see above");
	api_destroy(c);
}

static void test_not_found(void)
{
	struct api_client *c = client(NULL);
	uint8_t key[32];
	int ok;

	randombytes_buf(key, 32);
	reset_results();
	ok = EXPECT(api_submit(c, key, NULL) == 0, "submit");
	ok &= EXPECT(wait_results(1) == 1, "callback");
	ok &= EXPECT(results[0].status == API_NOT_FOUND && results[0].http == 404 &&
			     results[0].attempts == 1,
		     "status %d http %ld", results[0].status, results[0].http);
	ok &= EXPECT(server_count(key) == 1, "one request, no retry on 404");
	CHECK("api_not_found", ok, "see above");
	api_destroy(c);
}

/* One error case: set the server mode, submit, expect err and attempts. */
static void expect_error(const char *name, const char *mode,
			 struct api_config *cfg, const uint8_t key[32],
			 int want_err, unsigned want_attempts)
{
	struct api_client *c;
	long before = server_count(key);
	int ok;

	set_mode(mode);
	c = client(cfg);
	reset_results();
	ok = EXPECT(api_submit(c, key, NULL) == 0, "submit");
	ok &= EXPECT(wait_results(1) == 1, "callback");
	ok &= EXPECT(results[0].status == API_ERROR && results[0].err == want_err,
		     "status %d err %d want %d (%s)", results[0].status,
		     results[0].err, want_err, results[0].reason);
	ok &= EXPECT(results[0].attempts == want_attempts,
		     "attempts %u want %u", results[0].attempts, want_attempts);
	ok &= EXPECT(server_count(key) - before == (long)want_attempts,
		     "server saw %ld requests", server_count(key) - before);
	ok &= EXPECT(!strstr(results[0].reason, "secret-token"),
		     "token not in reason");
	printf("  %s: %s\n", name, results[0].reason);
	CHECK(name, ok, "see above");
	api_destroy(c);
	set_mode("{\"delay\":null,\"status\":null,\"malformed\":null}");
}

static void test_errors(const uint8_t key[32])
{
	struct api_config cfg = {
		.url = base,
		.token_file = tokfile,
		.max_attempts = 3,
		.backoff_initial_ms = 20,
		.backoff_max_ms = 100,
		.no_rate_limit = true,
		.done = on_done,
	};
	long sent;

	expect_error("api_500_retried", "{\"status\":500}", &cfg, key, -EPROTO, 3);
	expect_error("api_503_retried", "{\"status\":503}", &cfg, key, -EPROTO, 3);
	expect_error("api_400_not_retried", "{\"status\":400}", &cfg, key,
		     -EPROTO, 1);
	expect_error("api_wrong_public_key", "{\"malformed\":\"wrong-key\"}",
		     &cfg, key, -EKEYREJECTED, 1);
	expect_error("api_bad_allowed_ip", "{\"malformed\":\"bad-ip\"}", &cfg,
		     key, -EINVAL, 1);
	expect_error("api_allowed_ip_host_bits", "{\"malformed\":\"host-bits\"}",
		     &cfg, key, -EINVAL, 1);
	expect_error("api_malformed_json", "{\"malformed\":\"json\"}", &cfg, key,
		     -EBADMSG, 1);

	/* Huge body without Content-Length: aborted once past the limit. */
	json_object_put(admin("/_reset", ""));
	expect_error("api_huge_body", "{\"malformed\":\"huge\"}", &cfg, key,
		     -EMSGSIZE, 1);
	for (int i = 0; i < 200 && (sent = server_stat("huge_bytes_sent")) <= 0;
	     i++)
		usleep(50000);
	/* 64 MiB offered; socket buffers hold a few MiB at most. */
	CHECK("api_huge_body_aborted_early", sent > 0 && sent < (32 << 20),
	      "server wrote %ld bytes", sent);
	expect_error("api_huge_body_content_length", "{\"malformed\":\"huge-cl\"}",
		     &cfg, key, -EMSGSIZE, 1);

	/* Token: wrong, and missing. 401 is final. */
	cfg.token_file = badtok;
	expect_error("api_token_wrong", "{}", &cfg, key, -EACCES, 1);
	cfg.token_file = NULL;
	expect_error("api_token_missing", "{}", &cfg, key, -EACCES, 1);
}

static void test_refused(void)
{
	struct api_config cfg = {
		.url = "http://127.0.0.1:1",
		.max_attempts = 2,
		.backoff_initial_ms = 10,
		.no_rate_limit = true,
		.done = on_done,
	};
	struct api_client *c = client(&cfg);
	uint8_t key[32];
	int ok;

	randombytes_buf(key, 32);
	reset_results();
	ok = EXPECT(api_submit(c, key, NULL) == 0, "submit");
	ok &= EXPECT(wait_results(1) == 1, "callback");
	ok &= EXPECT(results[0].err == -ECONNREFUSED && results[0].attempts == 2,
		     "err %d attempts %u (%s)", results[0].err,
		     results[0].attempts, results[0].reason);
	CHECK("api_connection_refused_retried", ok, "see above");
	api_destroy(c);
}

static void test_hang(const uint8_t key[32], const uint8_t key2[32])
{
	struct api_config cfg = {
		.url = base,
		.token_file = tokfile,
		.total_timeout_ms = 1000,
		.max_attempts = 1,
		.no_rate_limit = true,
		.done = on_done,
	};
	struct api_client *c;
	struct api_stats st;
	int ok, r1, r2;

	set_mode("{\"malformed\":\"hang\"}");
	c = client(&cfg);
	reset_results();
	r1 = api_submit(c, key, NULL);
	r2 = api_submit(c, key2, NULL);
	/*
	 * Both submits returned while the server holds the requests: the
	 * caller is not blocked (no callback yet, both in flight).
	 */
	api_stats(c, &st);
	ok = EXPECT(r1 == 0 && r2 == 0, "submits %d %d", r1, r2);
	ok &= EXPECT(count_results() == 0 && st.inflight == 2,
		     "results %d inflight %llu", count_results(),
		     (unsigned long long)st.inflight);
	ok &= EXPECT(wait_results(2) == 2, "callbacks");
	ok &= EXPECT(results[0].err == -ETIMEDOUT && results[1].err == -ETIMEDOUT,
		     "errs %d %d (%s)", results[0].err, results[1].err,
		     results[0].reason);
	CHECK("api_hanging_server_times_out_without_blocking", ok, "see above");
	api_destroy(c);

	/* Destroy with a request pending: the callback says cancelled. */
	cfg.total_timeout_ms = 60000;
	c = client(&cfg);
	reset_results();
	ok = EXPECT(api_submit(c, key, (void *)7) == 0, "submit");
	api_destroy(c);
	ok &= EXPECT(count_results() == 1 && results[0].err == -ECANCELED &&
			     results[0].ctx == (void *)7,
		     "results %d err %d", count_results(), results[0].err);
	CHECK("api_destroy_cancels_pending", ok, "see above");
	set_mode("{\"malformed\":null}");
}

struct submitter {
	struct api_client *c;
	const uint8_t *key;
	int ret;
	pthread_barrier_t *bar;
};

static void *submit_thread(void *arg)
{
	struct submitter *s = arg;

	pthread_barrier_wait(s->bar);
	s->ret = api_submit(s->c, s->key, s);
	return NULL;
}

static void test_dedupe(const uint8_t key[32])
{
	enum { N = 6 };
	struct submitter s[N];
	pthread_t t[N];
	pthread_barrier_t bar;
	struct api_client *c;
	struct api_stats st;
	long before = server_count(key);
	int fresh = 0, attached = 0, found = 0, ok;

	/* The answer takes a while, so every submit finds it in flight. */
	set_mode("{\"delay\":0.5}");
	c = client(NULL);
	reset_results();
	pthread_barrier_init(&bar, NULL, N);
	for (int i = 0; i < N; i++) {
		s[i] = (struct submitter){ .c = c, .key = key, .bar = &bar };
		pthread_create(&t[i], NULL, submit_thread, &s[i]);
	}
	for (int i = 0; i < N; i++) {
		pthread_join(t[i], NULL);
		fresh += s[i].ret == 0;
		attached += s[i].ret == API_ATTACHED;
	}
	ok = EXPECT(fresh == 1 && attached == N - 1, "fresh %d attached %d",
		    fresh, attached);
	ok &= EXPECT(wait_results(N) == N, "one callback per submit");
	for (int i = 0; i < N; i++)
		found += results[i].status == API_FOUND;
	ok &= EXPECT(found == N, "%d found", found);
	ok &= EXPECT(server_count(key) - before == 1, "server saw %ld",
		     server_count(key) - before);
	api_stats(c, &st);
	ok &= EXPECT(st.requests == 1 && st.attached == N - 1, "stats");
	CHECK("api_dedupe_concurrent_submits", ok, "see above");
	pthread_barrier_destroy(&bar);
	api_destroy(c);
	set_mode("{\"delay\":null}");
}

static void test_rate_limit(const uint8_t key[32], const uint8_t key2[32])
{
	struct api_config cfg = {
		.url = base,
		.token_file = tokfile,
		.min_interval_ms = 60000, /* far longer than the test */
		.done = on_done,
	};
	struct api_client *c = client(&cfg);
	struct api_stats st;
	long before = server_count(key);
	int ok, ret;

	reset_results();
	ok = EXPECT(api_submit(c, key, NULL) == 0, "first");
	ok &= EXPECT(wait_results(1) == 1, "callback");
	/* WireGuard retries every 5 s: each retry is one more submit. */
	for (int i = 0; i < 10; i++) {
		ret = api_submit(c, key, NULL);
		ok &= EXPECT(ret == -EAGAIN, "retry %d: %d", i, ret);
	}
	ok &= EXPECT(api_submit(c, key2, NULL) == 0, "other key not limited");
	ok &= EXPECT(wait_results(2) == 2, "callback key2");
	ok &= EXPECT(count_results() == 2, "no callback for limited submits");
	ok &= EXPECT(server_count(key) - before == 1,
		     "one API request across retries: %ld",
		     server_count(key) - before);
	api_stats(c, &st);
	ok &= EXPECT(st.rate_limited == 10 && st.requests == 2, "stats");
	CHECK("api_rate_limit_per_key", ok, "see above");
	api_destroy(c);

	/* The same sequence without the limit reaches the server each time. */
	c = client(NULL);
	reset_results();
	before = server_count(key);
	for (int i = 0; i < 3; i++) {
		api_submit(c, key, NULL);
		wait_results(i + 1);
	}
	CHECK("api_no_rate_limit_control", server_count(key) - before == 3,
	      "server saw %ld", server_count(key) - before);
	api_destroy(c);
}

/*
 * TLS: a server with a certificate for 127.0.0.1 made here. Verified with
 * the CA file; refused (no retry) without it, since the system store does
 * not know it.
 */
static void test_tls(const uint8_t key[32])
{
	char cert[160], pkey[160], cmd[512], url[64];
	const char *extra[] = { "--tls-cert", cert, "--tls-key", pkey, NULL };
	struct api_config cfg = {
		.url = url,
		.token_file = tokfile,
		.ca_file = cert,
		.max_attempts = 2,
		.backoff_initial_ms = 10,
		.no_rate_limit = true,
		.done = on_done,
	};
	struct api_client *c;
	pid_t pid;
	int ok;

	snprintf(cert, sizeof(cert), "%s/cert.pem", tmpdir);
	snprintf(pkey, sizeof(pkey), "%s/key.pem", tmpdir);
	snprintf(cmd, sizeof(cmd),
		 "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
		 "-nodes -keyout %s -out %s -days 1 -subj /CN=127.0.0.1 "
		 "-addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1",
		 pkey, cert);
	if (access("/usr/bin/openssl", X_OK) || system(cmd)) {
		SKIP("api_tls", "openssl cannot make a test certificate");
		return;
	}
	if (start_server_args(&pid, url, sizeof(url), "https", "tls", extra)) {
		CHECK("api_tls", 0, "TLS control plane did not start");
		return;
	}
	c = client(&cfg);
	reset_results();
	ok = EXPECT(api_submit(c, key, NULL) == 0, "submit");
	ok &= EXPECT(wait_results(1) == 1 && results[0].status == API_FOUND,
		     "status %d err %d (%s)", results[0].status, results[0].err,
		     results[0].reason);
	CHECK("api_tls_verified_with_ca_file", ok, "see above");
	api_destroy(c);

	cfg.ca_file = NULL;
	c = client(&cfg);
	reset_results();
	ok = EXPECT(api_submit(c, key, NULL) == 0, "submit");
	ok &= EXPECT(wait_results(1) == 1 && results[0].status == API_ERROR &&
			     results[0].err == -EPROTO &&
			     results[0].attempts == 1 &&
			     !strncmp(results[0].reason, "TLS", 3),
		     "status %d err %d attempts %u (%s)", results[0].status,
		     results[0].err, results[0].attempts, results[0].reason);
	printf("  api_tls_unknown_ca_refused: %s\n", results[0].reason);
	CHECK("api_tls_unknown_ca_refused", ok, "see above");
	api_destroy(c);
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
}

/* max_inflight bounds concurrent transfers; the rest wait and complete. */
static void test_inflight_limit(void)
{
	enum { N = 8 };
	struct api_config cfg = {
		.url = base,
		.token_file = tokfile,
		.max_inflight = 2,
		.no_rate_limit = true,
		.done = on_done,
	};
	struct api_client *c;
	uint8_t keys[N][32];
	long maxc;
	int ok = 1, found = 0;

	for (int i = 0; i < N; i++) {
		randombytes_buf(keys[i], 32);
		add_peer(keys[i], ", \"allowed_ips\": []");
	}
	json_object_put(admin("/_reset", ""));
	set_mode("{\"delay\":0.2}");
	c = client(&cfg);
	reset_results();
	for (int i = 0; i < N; i++)
		ok &= EXPECT(api_submit(c, keys[i], NULL) == 0, "submit %d", i);
	ok &= EXPECT(wait_results(N) == N, "all complete");
	for (int i = 0; i < N; i++)
		found += results[i].status == API_FOUND;
	maxc = server_stat("max_concurrent");
	ok &= EXPECT(found == N, "%d found", found);
	ok &= EXPECT(maxc >= 1 && maxc <= 2, "server saw %ld at once", maxc);
	CHECK("api_max_inflight_bounds_concurrency", ok, "see above");
	api_destroy(c);

	/* max_queue: a third distinct key while two wait is refused. */
	cfg.max_inflight = 1;
	cfg.max_queue = 2;
	c = client(&cfg);
	reset_results();
	ok = EXPECT(api_submit(c, keys[0], NULL) == 0, "first");
	ok &= EXPECT(api_submit(c, keys[1], NULL) == 0, "second");
	ok &= EXPECT(api_submit(c, keys[0], NULL) == API_ATTACHED,
		     "attaching still works");
	ok &= EXPECT(api_submit(c, keys[2], NULL) == -ENOBUFS, "third refused");
	ok &= EXPECT(wait_results(3) == 3, "the accepted ones complete");
	ok &= EXPECT(api_submit(c, keys[2], NULL) == 0, "room again");
	ok &= EXPECT(wait_results(4) == 4, "and completes");
	CHECK("api_max_queue_bounds_memory", ok, "see above");
	api_destroy(c);
	set_mode("{\"delay\":null}");
}

static void test_create_errors(void)
{
	struct api_config cfg = { .url = "ftp://x", .done = on_done };
	struct api_client *c;
	char err[128];
	int ok;

	ok = EXPECT(api_create(&c, &cfg, err, sizeof(err)) == -EINVAL, "scheme");
	cfg.url = base;
	cfg.token_file = "/nonexistent/token";
	ok &= EXPECT(api_create(&c, &cfg, err, sizeof(err)) == -ENOENT,
		     "missing token file");
	ok &= EXPECT(err[0] != 0, "a message");
	CHECK("api_create_errors", ok, "see above");
}

static void write_file(const char *path, const char *s)
{
	FILE *f = fopen(path, "w");

	if (!f)
		exit(1);
	fputs(s, f);
	fclose(f);
	chmod(path, 0600);
}

/*
 * Token rotation: each reload makes a new header set (the bearer token's
 * copy); the old one must be wiped and freed once its requests are done,
 * also when the same key is asked again (the request object is reused).
 */
static void test_token_rotation(const uint8_t key[32])
{
	struct api_client *c = client(NULL);
	struct api_stats st;
	char err[256];
	int ok = 1;

	reset_results();
	for (int i = 0; i < 4; i++) {
		ok &= EXPECT(api_submit(c, key, NULL) == 0, "submit %d", i);
		ok &= EXPECT(wait_results(i + 1) == i + 1, "callback %d", i);
		ok &= EXPECT(api_reload_token(c, tokfile, err, sizeof(err)) == 0,
			     "reload %d: %s", i, err);
	}
	api_stats(c, &st);
	ok &= EXPECT(st.header_sets == 1, "%u header sets alive after 4 rotations",
		     st.header_sets);
	CHECK("api_token_rotation_releases_old_headers", ok, "see above");
	api_destroy(c);
}

/* Which results let a stale answer stand in (the control plane failing)
 * and which are answers about the key (revocation). */
static void test_failing(void)
{
	static const struct {
		enum api_status status;
		int err;
		long http;
		bool failing, revokes;
		const char *name;
	} rows[] = {
		{ API_FOUND, 0, 200, false, false, "200" },
		{ API_NOT_FOUND, 0, 404, false, true, "404: revoked" },
		{ API_ERROR, -EPROTO, 410, false, true, "410 Gone: revoked" },
		{ API_ERROR, -EPROTO, 400, false, true, "400: final" },
		{ API_ERROR, -EPROTO, 451, false, true, "451: final" },
		{ API_ERROR, -EPROTO, 429, true, false, "429: overloaded" },
		{ API_ERROR, -EPROTO, 500, true, false, "500" },
		{ API_ERROR, -EPROTO, 503, true, false, "503" },
		{ API_ERROR, -EPROTO, 0, true, false, "TLS failure" },
		{ API_ERROR, -EACCES, 401, true, false, "401: our token" },
		{ API_ERROR, -EACCES, 403, true, false, "403: our token" },
		{ API_ERROR, -ETIMEDOUT, 0, true, false, "timeout" },
		{ API_ERROR, -ECONNREFUSED, 0, true, false, "refused" },
		{ API_ERROR, -EHOSTUNREACH, 0, true, false, "unreachable" },
		{ API_ERROR, -EBADMSG, 200, false, false, "malformed answer" },
		{ API_ERROR, -EKEYREJECTED, 200, false, false, "answer for another key" },
	};
	int ok = 1;

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct api_result r = { .status = rows[i].status, .err = rows[i].err,
					.http_status = rows[i].http };

		ok &= EXPECT(api_result_failing(&r) == rows[i].failing, "%s: failing", rows[i].name);
		ok &= EXPECT(api_result_revokes(&r) == rows[i].revokes, "%s: revokes", rows[i].name);
	}
	CHECK("api_result_failing_table", ok, "see above");
}

int main(void)
{
	uint8_t key[32], key2[32];
	char extra[256], psk[KEY_B64_LEN];
	uint8_t pskb[32];

	if (sodium_init() < 0 || curl_global_init(CURL_GLOBAL_DEFAULT))
		return 1;
	test_parse_allowed_ip();
	test_overlap();
	test_parse_body();
	test_failing();

	snprintf(tmpdir, sizeof(tmpdir), "/tmp/jitwg-api-XXXXXX");
	if (!mkdtemp(tmpdir))
		return 1;
	atexit(cleanup);
	snprintf(peersdir, sizeof(peersdir), "%s/peers", tmpdir);
	snprintf(tokfile, sizeof(tokfile), "%s/token", tmpdir);
	snprintf(badtok, sizeof(badtok), "%s/badtoken", tmpdir);
	mkdir(peersdir, 0700);
	write_file(tokfile, "secret-token\n");
	write_file(badtok, "not-the-token\n");

	randombytes_buf(key, 32);
	randombytes_buf(key2, 32);
	randombytes_buf(pskb, 32);
	key_to_base64(psk, pskb);
	snprintf(extra, sizeof(extra),
		 ", \"allowed_ips\": [\"10.7.0.2/32\", \"fd07::2/128\"], "
		 "\"preshared_key\": \"%s\", \"persistent_keepalive\": 25, "
		 "\"ttl\": 120", psk);
	add_peer(key, extra);
	add_peer(key2, ", \"allowed_ips\": [\"10.7.0.3/32\"]");

	if (access("/usr/bin/python3", X_OK)) {
		SKIP("api_client", "python3 not installed");
		CHECK_EXIT();
	}
	if (start_server()) {
		CHECK("api_server_start", 0, "reference control plane did not start");
		CHECK_EXIT();
	}
	test_create_errors();
	test_found(key);
	test_keepalive(key);
	test_not_found();
	test_errors(key);
	test_refused();
	test_hang(key, key2);
	test_dedupe(key);
	test_rate_limit(key, key2);
	test_token_rotation(key);
	test_inflight_limit();
	test_tls(key);
	CHECK_EXIT();
}
