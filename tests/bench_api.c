// SPDX-License-Identifier: MIT
/*
 * make bench-api: the asynchronous control-plane client against the
 * reference control plane on 127.0.0.1, beside the floor of a blocking
 * libcurl loop (one keep-alive connection, one request at a time) against the
 * same server in the same run. Also the cost of api_submit() itself, with a
 * normal and with a hanging server (it must not depend on the server).
 * BENCH_API_N keys [2000].
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <sodium.h>

#include "api.h"
#include "cp_server.h"
#include "keys.h"

static char tmpdir[64], base[64];
static pid_t server = -1;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static size_t n_done, n_found;
static double *lat_us;

static uint64_t now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000 + (uint64_t)t.tv_nsec;
}

static void on_done(const uint8_t key[32], const struct api_result *res,
		    void *ctx, void *arg)
{
	(void)key;
	(void)ctx;
	(void)arg;
	pthread_mutex_lock(&mu);
	if (lat_us)
		lat_us[n_done] = (double)res->elapsed_us;
	n_done++;
	n_found += res->status == API_FOUND;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double pct(double *v, size_t n, double p)
{
	qsort(v, n, sizeof(*v), cmp);
	return v[(size_t)((double)(n - 1) * p)];
}

static size_t sink(char *p, size_t s, size_t n, void *arg)
{
	(void)p;
	(void)arg;
	return s * n;
}

static void mode(const char *json)
{
	char url[128];
	CURL *e = curl_easy_init();

	snprintf(url, sizeof(url), "%s/_mode", base);
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, json);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, sink);
	curl_easy_perform(e);
	curl_easy_cleanup(e);
}

static void cleanup(void)
{
	char cmd[128];

	if (server > 0) {
		kill(server, SIGTERM);
		waitpid(server, NULL, 0);
	}
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (tmpdir[0] && system(cmd))
		fprintf(stderr, "cannot remove %s\n", tmpdir);
}

int main(void)
{
	const char *e = getenv("BENCH_API_N");
	size_t n = e ? strtoul(e, NULL, 10) : 2000;
	char peers[128], path[256], b64[KEY_B64_LEN],
		u[KEY_B64URL_LEN], url[256];
	struct api_config cfg = { .no_rate_limit = true, .done = on_done };
	struct api_client *c;
	uint8_t (*keys)[32];
	double *floor_lat, *sub_ns, t_floor, t_async;
	uint64_t t0, t1;
	static const unsigned inflight[] = { 1, 4, 16, 64 };
	CURL *easy;
	FILE *f;
	int port = 0;

	if (sodium_init() < 0 || curl_global_init(CURL_GLOBAL_DEFAULT))
		return 1;
	keys = calloc(n, 32);
	lat_us = calloc(n, sizeof(double));
	floor_lat = calloc(n, sizeof(double));
	sub_ns = calloc(n, sizeof(double));
	if (!keys || !lat_us || !floor_lat || !sub_ns)
		return 1;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/jitwg-bench-api-XXXXXX");
	if (!mkdtemp(tmpdir))
		return 1;
	atexit(cleanup);
	snprintf(peers, sizeof(peers), "%s/peers", tmpdir);
	mkdir(peers, 0700);
	for (size_t i = 0; i < n; i++) {
		randombytes_buf(keys[i], 32);
		key_to_base64(b64, keys[i]);
		key_to_base64url(u, keys[i]);
		snprintf(path, sizeof(path), "%s/%s.json", peers, u);
		f = fopen(path, "w");
		if (!f)
			return 1;
		fprintf(f, "{\"public_key\": \"%s\", \"allowed_ips\": "
			   "[\"10.%zu.%zu.%zu/32\"], \"ttl\": 300}\n",
			b64, (i >> 16) & 255, (i >> 8) & 255, i & 255);
		fclose(f);
	}
	{
		const char *args[] = { "--peers", peers, NULL };

		if (cp_server_start(&server, &port, tmpdir, "cp", args))
			port = 0;
	}
	if (!port) {
		fprintf(stderr, "control plane did not start\n");
		return 1;
	}
	snprintf(base, sizeof(base), "http://127.0.0.1:%d", port);

	/* Floor: blocking, sequential, one keep-alive connection. */
	easy = curl_easy_init();
	curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, sink);
	t0 = now_ns();
	for (size_t i = 0; i < n; i++) {
		uint64_t a = now_ns();
		long code = 0;

		key_to_base64url(u, keys[i]);
		snprintf(url, sizeof(url), "%s/peers/%s", base, u);
		curl_easy_setopt(easy, CURLOPT_URL, url);
		if (curl_easy_perform(easy) != CURLE_OK)
			return 1;
		curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
		if (code != 200)
			return 1;
		floor_lat[i] = (double)(now_ns() - a) / 1e3;
	}
	t_floor = (double)(now_ns() - t0) / 1e9;
	curl_easy_cleanup(easy);

	printf("control-plane client benchmark: %zu distinct keys, reference "
	       "control plane (Python) on 127.0.0.1\n\n", n);
	printf("%-46s %10s %10s %10s\n", "", "req/s", "p50 ms", "p99 ms");
	printf("%-46s %10.0f %10.2f %10.2f\n",
	       "floor: blocking libcurl loop, 1 connection", (double)n / t_floor,
	       pct(floor_lat, n, 0.5) / 1e3, pct(floor_lat, n, 0.99) / 1e3);

	/* The client: all keys submitted at once, completions counted. */
	cfg.url = base;
	for (size_t k = 0; k < sizeof(inflight) / sizeof(inflight[0]); k++) {
		char label[64];

		cfg.max_inflight = inflight[k];
		if (api_create(&c, &cfg, NULL, 0))
			return 1;
		pthread_mutex_lock(&mu);
		n_done = n_found = 0;
		pthread_mutex_unlock(&mu);
		t0 = now_ns();
		for (size_t i = 0; i < n; i++) {
			t1 = now_ns();
			if (api_submit(c, keys[i], NULL) != 0)
				return 1;
			sub_ns[i] = (double)(now_ns() - t1);
		}
		pthread_mutex_lock(&mu);
		while (n_done < n)
			pthread_cond_wait(&cv, &mu);
		pthread_mutex_unlock(&mu);
		t_async = (double)(now_ns() - t0) / 1e9;
		api_destroy(c);
		if (n_found != n) {
			fprintf(stderr, "only %zu of %zu found\n", n_found, n);
			return 1;
		}
		snprintf(label, sizeof(label),
			 "api_submit burst, max_inflight %u (w/ queue)",
			 inflight[k]);
		printf("%-46s %10.0f %10.2f %10.2f\n", label,
		       (double)n / t_async, pct(lat_us, n, 0.5) / 1e3,
		       pct(lat_us, n, 0.99) / 1e3);
	}

	printf("\n%-46s %10s %10s\n", "api_submit() call itself", "p50 us",
	       "p99 us");
	printf("%-46s %10.2f %10.2f\n", "server answering", pct(sub_ns, n, 0.5) / 1e3,
	       pct(sub_ns, n, 0.99) / 1e3);

	/* The same submits while the server hangs every request. */
	mode("{\"malformed\": \"hang\"}");
	free(lat_us);
	lat_us = NULL;
	cfg.total_timeout_ms = 60000;
	if (api_create(&c, &cfg, NULL, 0))
		return 1;
	for (size_t i = 0; i < n; i++) {
		t1 = now_ns();
		if (api_submit(c, keys[i], NULL) != 0)
			return 1;
		sub_ns[i] = (double)(now_ns() - t1);
	}
	usleep(200000); /* let the client fill its 64 hanging transfers */
	printf("%-46s %10.2f %10.2f\n", "server hanging (all requests stuck)",
	       pct(sub_ns, n, 0.5) / 1e3, pct(sub_ns, n, 0.99) / 1e3);
	api_destroy(c); /* cancels them */
	return 0;
}
