// SPDX-License-Identifier: MIT
/*
 * wgdevctl: the wgdev interface from the command line, for tests, benches
 * and operations. Keys are base64, as wg(8) prints them.
 *
 *   wgdevctl [-b auto|netlink|uapi] DEV show
 *   wgdevctl [-b ...] DEV set PUBKEY [allowed-ips A[,B...]] [endpoint E]
 *                                   [preshared-key FILE|none] [keepalive N]
 *   wgdevctl [-b ...] DEV remove PUBKEY...
 *   wgdevctl [-b ...] DEV initiate PUBKEY endpoint E [allowed-ips ...]
 *                          [keepalive N (25)] [wait SECONDS] [restore N]
 *        install and initiate; with wait, poll until the handshake
 *        completes and print the time it took; restore puts keepalive N back
 *   wgdevctl [-b ...] DEV wait PUBKEY SECONDS
 *        poll until the peer has a handshake; print the time waited
 *   wgdevctl [-b ...] DEV bench N     install, list and remove N generated
 *                                     peers, one call each; print timings
 *                                     (exit 1 if the install failed)
 *   wgdevctl gen N [setconf|keys]     the same N peers as a wg setconf file
 *                                     (with no [Interface] keys) or as keys
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "keys.h"
#include "version.h"
#include "wgdev.h"

static void usage(void)
{
	fprintf(stderr,
		"usage: wgdevctl [-b auto|netlink|uapi] DEV show\n"
		"       wgdevctl [-b ...] DEV set PUBKEY [allowed-ips A,B] [endpoint E]\n"
		"                [preshared-key FILE|none] [keepalive N]\n"
		"       wgdevctl [-b ...] DEV remove PUBKEY...\n"
		"       wgdevctl [-b ...] DEV initiate PUBKEY endpoint E [allowed-ips A,B]\n"
		"                [keepalive N] [wait SECONDS] [restore N]\n"
		"       wgdevctl [-b ...] DEV wait PUBKEY SECONDS\n"
		"       wgdevctl [-b ...] DEV bench N\n"
		"       wgdevctl gen N [setconf|keys]\n"
		"       wgdevctl --version\n");
	exit(2);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int parse_endpoint(const char *s, union wgdev_endpoint *ep)
{
	char host[INET6_ADDRSTRLEN + 2];
	const char *colon, *h = s;
	size_t hl;
	long port;

	memset(ep, 0, sizeof(*ep));
	colon = strrchr(s, ':');
	if (!colon)
		return -1;
	hl = (size_t)(colon - s);
	if (*s == '[') {
		if (hl < 2 || s[hl - 1] != ']')
			return -1;
		h = s + 1;
		hl -= 2;
	}
	if (hl >= sizeof(host))
		return -1;
	memcpy(host, h, hl);
	host[hl] = 0;
	port = strtol(colon + 1, NULL, 10);
	if (port <= 0 || port > 65535)
		return -1;
	if (inet_pton(AF_INET, host, &ep->addr4.sin_addr) == 1) {
		ep->addr4.sin_family = AF_INET;
		ep->addr4.sin_port = htons((uint16_t)port);
	} else if (inet_pton(AF_INET6, host, &ep->addr6.sin6_addr) == 1) {
		ep->addr6.sin6_family = AF_INET6;
		ep->addr6.sin6_port = htons((uint16_t)port);
	} else {
		return -1;
	}
	return 0;
}

static int parse_ips(char *list, struct wgdev_peer *p)
{
	char *tok, *save = NULL;

	for (tok = strtok_r(list, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		struct wgdev_allowed_ip ip = { 0 };
		char *slash = strchr(tok, '/');
		long cidr;

		if (slash)
			*slash = 0;
		if (inet_pton(AF_INET, tok, &ip.ip4) == 1)
			ip.family = AF_INET;
		else if (inet_pton(AF_INET6, tok, &ip.ip6) == 1)
			ip.family = AF_INET6;
		else
			return -1;
		cidr = slash ? strtol(slash + 1, NULL, 10) :
			       (ip.family == AF_INET ? 32 : 128);
		if (cidr < 0 || cidr > (ip.family == AF_INET ? 32 : 128))
			return -1;
		ip.cidr = (uint8_t)cidr;
		p->allowed_ips = realloc(p->allowed_ips,
					 (p->n_allowed_ips + 1) * sizeof(ip));
		if (!p->allowed_ips)
			return -1;
		p->allowed_ips[p->n_allowed_ips++] = ip;
	}
	return 0;
}

static void print_endpoint(const union wgdev_endpoint *e)
{
	char a[INET6_ADDRSTRLEN];

	if (e->addr.sa_family == AF_INET) {
		inet_ntop(AF_INET, &e->addr4.sin_addr, a, sizeof(a));
		printf("%s:%u", a, ntohs(e->addr4.sin_port));
	} else if (e->addr.sa_family == AF_INET6) {
		inet_ntop(AF_INET6, &e->addr6.sin6_addr, a, sizeof(a));
		printf("[%s]:%u", a, ntohs(e->addr6.sin6_port));
	} else {
		printf("(none)");
	}
}

/*
 * How long ago a handshake was, in wg(8)'s words: "1 minute, 5 seconds
 * ago", "Now" within the second, "never" without one; the non-zero units
 * from years down to seconds.
 */
static void print_age(const struct timespec *when)
{
	static const struct {
		const char *unit;
		long long secs;
	} units[] = {
		{ "year", 365LL * 24 * 3600 }, { "day", 24 * 3600 },
		{ "hour", 3600 },              { "minute", 60 },
		{ "second", 1 },
	};
	long long left;
	size_t i;
	bool first = true;

	if (!when->tv_sec && !when->tv_nsec) {
		printf("never");
		return;
	}
	left = (long long)time(NULL) - (long long)when->tv_sec;
	if (left < 0) {
		printf("\"in the future: the system clock went backwards\"");
		return;
	}
	if (!left) {
		printf("\"Now\"");
		return;
	}
	putchar('"');
	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		long long k = left / units[i].secs;

		if (!k)
			continue;
		left -= k * units[i].secs;
		printf("%s%lld %s%s", first ? "" : ", ", k, units[i].unit,
		       k == 1 ? "" : "s");
		first = false;
	}
	printf(" ago\"");
}

static int show(struct wgdev *dev)
{
	struct wgdev_info info;
	struct wgdev_peer *peers;
	char b64[KEY_B64_LEN], a[INET6_ADDRSTRLEN];
	size_t n, i, j;
	int ret;

	ret = wgdev_get_info(dev, &info);
	if (ret)
		return ret;
	key_to_base64(b64, info.public_key);
	sodium_memzero(&info.private_key, sizeof(info.private_key));
	printf("interface %s backend %s public_key %s listen_port %u\n",
	       info.name,
	       wgdev_backend(dev) == WGDEV_NETLINK ? "netlink" : "uapi", b64,
	       info.listen_port);
	ret = wgdev_list_peers(dev, &peers, &n);
	if (ret)
		return ret;
	for (i = 0; i < n; i++) {
		struct wgdev_peer *p = &peers[i];

		key_to_base64(b64, p->public_key);
		printf("peer %s psk %s endpoint ", b64,
		       p->flags & WGDEV_PEER_HAS_PSK ? "yes" : "no");
		print_endpoint(&p->endpoint);
		printf(" keepalive %u latest-handshake ", p->persistent_keepalive);
		print_age(&p->last_handshake);
		printf(" rx %llu tx %llu allowed-ips ",
		       (unsigned long long)p->rx_bytes,
		       (unsigned long long)p->tx_bytes);
		for (j = 0; j < p->n_allowed_ips; j++) {
			inet_ntop(p->allowed_ips[j].family,
				  &p->allowed_ips[j].ip6, a, sizeof(a));
			printf("%s%s/%u", j ? "," : "", a,
			       p->allowed_ips[j].cidr);
		}
		printf("%s\n", p->n_allowed_ips ? "" : "(none)");
	}
	wgdev_peers_free(peers, n);
	return 0;
}

/* Peer i of a generated set: key BLAKE2b("jitwg-bench" || i), 10.a.b.c/32. */
static void gen_peer(struct wgdev_peer *p, struct wgdev_allowed_ip *ip,
		     uint32_t i)
{
	uint8_t in[16] = "jitwg-bench";

	memset(p, 0, sizeof(*p));
	memcpy(in + 12, &i, 4);
	crypto_generichash(p->public_key, 32, in, sizeof(in), NULL, 0);
	memset(ip, 0, sizeof(*ip));
	ip->family = AF_INET;
	ip->cidr = 32;
	ip->ip4.s_addr = htonl(0x0a000000u | (i + 1));
	p->allowed_ips = ip;
	p->n_allowed_ips = 1;
}

static int gen(long n, const char *what)
{
	struct wgdev_peer p;
	struct wgdev_allowed_ip ip;
	char b64[KEY_B64_LEN], a[INET_ADDRSTRLEN];
	long i;

	if (!strcmp(what, "setconf"))
		printf("[Interface]\n");
	for (i = 0; i < n; i++) {
		gen_peer(&p, &ip, (uint32_t)i);
		key_to_base64(b64, p.public_key);
		inet_ntop(AF_INET, &ip.ip4, a, sizeof(a));
		if (!strcmp(what, "setconf"))
			printf("[Peer]\nPublicKey = %s\nAllowedIPs = %s/32\n", b64, a);
		else
			printf("%s\n", b64);
	}
	return 0;
}

static int bench(struct wgdev *dev, long n)
{
	struct wgdev_peer *peers = calloc((size_t)n, sizeof(*peers)), *got;
	struct wgdev_allowed_ip *ips = calloc((size_t)n, sizeof(*ips));
	uint8_t (*keys)[32] = calloc((size_t)n, 32);
	size_t got_n = 0;
	double t0, t_add, t_list, t_rm;
	long i;
	int ret;

	if (!peers || !ips || !keys)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		gen_peer(&peers[i], &ips[i], (uint32_t)i);
		memcpy(keys[i], peers[i].public_key, 32);
	}
	t0 = now();
	ret = wgdev_set_peers(dev, peers, (size_t)n);
	t_add = now() - t0;
	if (ret) {
		fprintf(stderr, "wgdevctl: install of %ld peers failed after %.3f s: %s\n",
			n, t_add, wgdev_error(dev));
		ret = 1; /* reported */
	}
	t0 = now();
	if (wgdev_list_peers(dev, &got, &got_n)) {
		fprintf(stderr, "wgdevctl: %s\n", wgdev_error(dev));
		ret = -EIO;
		goto out;
	}
	t_list = now() - t0;
	wgdev_peers_free(got, got_n);
	/* Remove what was asked for, whatever got in. */
	t0 = now();
	if (wgdev_remove_peers(dev, (const uint8_t(*)[32])keys, (size_t)n)) {
		fprintf(stderr, "wgdevctl: %s\n", wgdev_error(dev));
		ret = -EIO;
		goto out;
	}
	t_rm = now() - t0;
	/*
	 * One line, parsed by scripts/bench-wg.sh; with a failed install,
	 * listed= is how many the implementation took.
	 */
	printf("bench n=%ld installed=%s listed=%zu install_s=%.4f list_s=%.4f remove_s=%.4f\n",
	       n, ret ? "no" : "yes", got_n, t_add, t_list, t_rm);
out:
	free(peers);
	free(ips);
	free(keys);
	return ret;
}

/* Poll until the peer has a handshake; print the time since t0. */
static int wait_handshake(struct wgdev *dev, const uint8_t key[32], double t0,
			  long wait_s)
{
	for (;;) {
		struct wgdev_peer *ps;
		size_t n, j;
		int ret, done = 0;

		ret = wgdev_list_peers(dev, &ps, &n);
		if (ret)
			return ret;
		for (j = 0; j < n; j++)
			if (!memcmp(ps[j].public_key, key, 32) &&
			    ps[j].last_handshake.tv_sec)
				done = 1;
		wgdev_peers_free(ps, n);
		if (done) {
			printf("handshake_ms=%.2f\n", (now() - t0) * 1e3);
			return 0;
		}
		if (now() - t0 > wait_s)
			return -ETIMEDOUT;
		usleep(1000);
	}
}

int main(int argc, char **argv)
{
	enum wgdev_backend backend = WGDEV_AUTO;
	struct wgdev_peer p;
	struct wgdev *dev = NULL;
	const char *cmd;
	char err[256];
	int ret = 0, i;

	if (sodium_init() < 0)
		return 1;
	if (argc == 2 && !strcmp(argv[1], "--version")) {
		printf("wgdevctl %s\n", JITWG_VERSION);
		return 0;
	}
	if (argc >= 3 && !strcmp(argv[1], "-b")) {
		if (!strcmp(argv[2], "netlink"))
			backend = WGDEV_NETLINK;
		else if (!strcmp(argv[2], "uapi"))
			backend = WGDEV_UAPI;
		else if (strcmp(argv[2], "auto"))
			usage();
		argv += 2;
		argc -= 2;
	}
	if (argc >= 3 && !strcmp(argv[1], "gen"))
		return gen(atol(argv[2]), argc > 3 ? argv[3] : "setconf");
	if (argc < 3)
		usage();
	cmd = argv[2];
	ret = wgdev_open(&dev, argv[1], backend, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "wgdevctl: %s\n", err);
		return 1;
	}
	memset(&p, 0, sizeof(p));

	if (!strcmp(cmd, "show")) {
		ret = show(dev);
	} else if (!strcmp(cmd, "remove")) {
		for (i = 3; i < argc && !ret; i++) {
			uint8_t k[1][32];

			if (key_from_base64(k[0], argv[i]))
				usage();
			ret = wgdev_remove_peers(dev, (const uint8_t(*)[32])k, 1);
		}
	} else if (!strcmp(cmd, "wait") && argc == 5) {
		if (key_from_base64(p.public_key, argv[3]))
			usage();
		ret = wait_handshake(dev, p.public_key, now(), atol(argv[4]));
	} else if (!strcmp(cmd, "bench") && argc == 4) {
		ret = bench(dev, atol(argv[3]));
	} else if ((!strcmp(cmd, "set") || !strcmp(cmd, "initiate")) &&
		   argc >= 4) {
		long ka = 25, wait_s = 0, restore = -1;

		if (key_from_base64(p.public_key, argv[3]))
			usage();
		for (i = 4; i + 1 < argc; i += 2) {
			const char *k = argv[i], *v = argv[i + 1];

			if (!strcmp(k, "allowed-ips")) {
				char *dup = strdup(v);

				if (!dup || parse_ips(dup, &p))
					usage();
				free(dup);
			} else if (!strcmp(k, "endpoint")) {
				if (parse_endpoint(v, &p.endpoint))
					usage();
				p.flags |= WGDEV_PEER_HAS_ENDPOINT;
			} else if (!strcmp(k, "preshared-key")) {
				if (strcmp(v, "none") &&
				    key_read_file(p.preshared_key, v))
					usage();
				p.flags |= WGDEV_PEER_HAS_PSK;
			} else if (!strcmp(k, "keepalive")) {
				ka = atol(v);
				p.persistent_keepalive = (uint16_t)ka;
				p.flags |= WGDEV_PEER_HAS_KEEPALIVE;
			} else if (!strcmp(k, "wait")) {
				wait_s = atol(v);
			} else if (!strcmp(k, "restore")) {
				restore = atol(v);
			} else {
				usage();
			}
		}
		if (i != argc)
			usage();
		if (!strcmp(cmd, "set")) {
			ret = wgdev_set_peers(dev, &p, 1);
		} else {
			double t0 = now();

			ret = wgdev_install_initiate(dev, &p, (uint16_t)ka);
			if (!ret && wait_s > 0)
				ret = wait_handshake(dev, p.public_key, t0, wait_s);
			if (!ret && restore >= 0)
				ret = wgdev_restore_keepalive(dev, p.public_key,
							      (uint16_t)restore);
		}
		sodium_memzero(p.preshared_key, 32);
		free(p.allowed_ips);
	} else {
		usage();
	}
	if (ret == -ETIMEDOUT)
		fprintf(stderr, "wgdevctl: %s: no handshake within the wait\n",
			argv[1]);
	else if (ret < 0)
		fprintf(stderr, "wgdevctl: %s\n", wgdev_error(dev));
	wgdev_close(dev);
	return ret ? 1 : 0;
}
