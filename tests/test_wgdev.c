// SPDX-License-Identifier: MIT
/*
 * The wgdev suite, one program for both backends.
 *
 * Always (no device needed): a fake UAPI server that answers with garbage,
 * closes early or returns errno= of either sign; devices that do not exist;
 * a link that is not WireGuard; the batch check (wgdev_check_peers).
 *
 * With WGDEV_NAME=<dev> WGDEV_BACKEND=netlink|uapi (set by
 * tests/test_wgdev.sh for wireguard-go, by tests/vm/guest-wgdev.sh for the
 * kernel), against that real, empty device: read it, add / update / list /
 * remove, 1, 1,000 and 10,000 peers in one call listed back exactly,
 * preshared key set and cleared, IPv4 and IPv6 endpoints, permission
 * denied, a large batch ending in a bad peer refused whole, cross-checked
 * with wg(8) both ways. Optional: WGDEV_PUBLIC
 * (base64) and WGDEV_PORT, the device's expected key and port;
 * WGDEV_NOT_WG, a link in the same namespace that is not WireGuard.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <libmnl/libmnl.h>
#include <linux/genetlink.h>
#include <linux/wireguard.h>
#include <sodium.h>

#include "check.h"
#include "../user/wgdev_internal.h"
#include "keys.h"
#include "wgdev.h"

/* wgdev_open()'s message (the caller's buffer). */
static char open_msg[256];

static enum wgdev_backend backend;
static const char *devname;

/* ---- helpers ---- */

static void key_of(uint8_t k[32], uint32_t i, uint32_t salt)
{
	uint8_t in[8];

	memcpy(in, &i, 4);
	memcpy(in + 4, &salt, 4);
	crypto_generichash(k, 32, in, sizeof(in), NULL, 0);
}

static struct wgdev_allowed_ip ip4(uint32_t host_order, uint8_t cidr)
{
	struct wgdev_allowed_ip ip = { .family = AF_INET, .cidr = cidr };

	ip.ip4.s_addr = htonl(host_order);
	return ip;
}

static struct wgdev_allowed_ip ip6(const char *s, uint8_t cidr)
{
	struct wgdev_allowed_ip ip = { .family = AF_INET6, .cidr = cidr };

	inet_pton(AF_INET6, s, &ip.ip6);
	return ip;
}

static int cmp_ip(const void *a, const void *b)
{
	const struct wgdev_allowed_ip *x = a, *y = b;

	if (x->family != y->family)
		return x->family - y->family;
	int c = memcmp(&x->ip6, &y->ip6, x->family == AF_INET ? 4 : 16);
	return c ? c : x->cidr - y->cidr;
}

static int cmp_peer(const void *a, const void *b)
{
	return memcmp(((const struct wgdev_peer *)a)->public_key,
		      ((const struct wgdev_peer *)b)->public_key, 32);
}

/* Same allowed IPs, as sets (implementations reorder them). */
static int same_ips(struct wgdev_peer *got, const struct wgdev_peer *want)
{
	struct wgdev_allowed_ip *w;
	size_t i;
	int ok = 1;

	if (got->n_allowed_ips != want->n_allowed_ips)
		return 0;
	w = malloc((want->n_allowed_ips + 1) * sizeof(*w));
	memcpy(w, want->allowed_ips, want->n_allowed_ips * sizeof(*w));
	qsort(w, want->n_allowed_ips, sizeof(*w), cmp_ip);
	qsort(got->allowed_ips, got->n_allowed_ips, sizeof(*w), cmp_ip);
	for (i = 0; ok && i < want->n_allowed_ips; i++)
		ok = !cmp_ip(&w[i], &got->allowed_ips[i]);
	free(w);
	return ok;
}

static struct wgdev_peer *find(struct wgdev_peer *ps, size_t n,
			       const uint8_t key[32])
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!memcmp(ps[i].public_key, key, 32))
			return &ps[i];
	return NULL;
}

/* One line of `wg show DEV dump` for a peer, or "" (interop check). */
static void wg_dump_line(const uint8_t key[32], char *out, size_t len)
{
	char cmd[128], b64[KEY_B64_LEN], line[4096];
	FILE *f;

	out[0] = 0;
	key_to_base64(b64, key);
	snprintf(cmd, sizeof(cmd), "wg show %s dump 2>&1", devname);
	f = popen(cmd, "r");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, b64, strlen(b64))) {
			line[strcspn(line, "\n")] = 0;
			snprintf(out, len, "%s", line);
		}
	pclose(f);
}

static long wg_count_peers(void)
{
	char cmd[128], line[256];
	long n = 0;
	FILE *f;

	snprintf(cmd, sizeof(cmd), "wg show %s peers 2>/dev/null", devname);
	f = popen(cmd, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		n++;
	return pclose(f) == 0 ? n : -1;
}

static int list(struct wgdev *dev, struct wgdev_peer **ps, size_t *n)
{
	int ret = wgdev_list_peers(dev, ps, n);

	if (ret)
		printf("  list: %s\n", wgdev_error(dev));
	return ret;
}

/* ---- fake UAPI server ---- */

struct fake_case {
	const char *name;
	const char *reply; /* sent after the request's blank line */
	size_t reply_len;  /* 0: strlen(reply) */
	int set;           /* exercise set (1) or get (0) */
	int want;          /* expected return */
};

/*
 * Accept connections forever: read a request up to its blank line (a
 * connection that sends nothing is wgdev_open's probe), send the canned
 * reply, close.
 */
static void fake_serve(int lfd, const struct fake_case *c)
{
	for (;;) {
		char buf[4096];
		size_t have = 0;
		int fd = accept(lfd, NULL, NULL);

		if (fd < 0)
			_exit(0);
		for (;;) {
			ssize_t r = read(fd, buf + have, sizeof(buf) - have - 1);

			if (r <= 0)
				break;
			have += (size_t)r;
			buf[have] = 0;
			if (strstr(buf, "\n\n"))
				break;
			if (have > sizeof(buf) / 2) {
				memmove(buf, buf + have - 8, 8);
				have = 8;
			}
		}
		if (have)
			(void)!write(fd, c->reply,
				     c->reply_len ? c->reply_len :
						    strlen(c->reply));
		close(fd);
	}
}

/*
 * A server that, like wireguard-go, serves operations on one connection
 * until the client closes it; exits with the number of connections that
 * carried an operation.
 */
static void fake_serve_loop(int lfd, int conns)
{
	int used = 0;

	for (int i = 0; i < conns; i++) {
		int fd = accept(lfd, NULL, NULL), ops = 0;
		char buf[4096];
		size_t have = 0;

		if (fd < 0)
			break;
		for (;;) {
			ssize_t r = read(fd, buf + have, sizeof(buf) - have - 1);
			char *end;

			if (r <= 0)
				break;
			have += (size_t)r;
			buf[have] = 0;
			while ((end = strstr(buf, "\n\n"))) {
				size_t used_len = (size_t)(end + 2 - buf);

				ops++;
				(void)!write(fd, "errno=0\n\n", 9);
				memmove(buf, end + 2, have - used_len + 1);
				have -= used_len;
			}
		}
		used += ops > 0;
		close(fd);
	}
	_exit(used);
}

/* A fake wireguard-go's listening socket at path, or -1 (errno set). */
static int fake_listen(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd, e;

	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) || listen(fd, 8)) {
		e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/*
 * Installs reuse one connection (no connect, accept and new goroutine per
 * install in wireguard-go), and a server that closes after each operation
 * still gets every one of them (the one-operation servers above).
 */
static void test_fake_uapi_kept(void)
{
	char dir[] = "/tmp/jitwg-fake-uapi.XXXXXX", path[64];
	struct wgdev *dev = NULL;
	struct wgdev_peer p = { 0 };
	struct wgdev_allowed_ip a = ip4(0x0a000001, 32);
	int lfd, ret, st = 0, ok = 1;
	pid_t pid;

	if (!mkdtemp(dir)) {
		CHECK("uapi fake: kept connection", 0, "mkdtemp: %s", strerror(errno));
		return;
	}
	setenv("JITWG_UAPI_DIR", dir, 1);
	snprintf(path, sizeof(path), "%s/fake1.sock", dir);
	lfd = fake_listen(path);
	if (lfd < 0) {
		CHECK("uapi fake: kept connection", 0, "fake server: %s", strerror(errno));
		return;
	}
	pid = fork();
	if (pid == 0)
		fake_serve_loop(lfd, 2); /* the probe, then the operations */
	close(lfd);
	key_of(p.public_key, 1, 1);
	p.allowed_ips = &a;
	p.n_allowed_ips = 1;
	ret = wgdev_open(&dev, "fake1", WGDEV_UAPI, open_msg, sizeof(open_msg));
	ok &= EXPECT(ret == 0, "open: %d %s", ret, open_msg);
	for (int i = 0; i < 3 && !ret; i++) {
		ret = wgdev_set_peers(dev, &p, 1);
		ok &= EXPECT(ret == 0, "set %d: %d %s", i, ret, wgdev_error(dev));
	}
	wgdev_close(dev); /* the server's loop ends */
	waitpid(pid, &st, 0);
	ok &= EXPECT(WIFEXITED(st) && WEXITSTATUS(st) == 1,
		     "3 sets on %d connection(s)", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	unlink(path);
	rmdir(dir);
	CHECK("uapi fake: installs reuse one connection", ok, "see above");
}

static void test_fake_uapi(void)
{
	static const char two_peers[] =
		"private_key=e84b5a6d2717c1003a13b431570353dbaca9146cf150c5f8575680feba52027a\n"
		"listen_port=51820\nfwmark=0\n"
		"public_key=b85996fecc9c7f1fc6d2572a76eda11d59bcd20be8e543b15ce4bd85a8e75a33\n"
		"preshared_key=188515093e952f5f22e865cef3012e72f8b5f0b598ac0309d5dacce3b70fcf52\n"
		"allowed_ip=192.168.4.4/32\n"
		"endpoint=[abcd:23::33%2]:51820\n"
		"last_handshake_time_sec=1700000000\nlast_handshake_time_nsec=5\n"
		"tx_bytes=38333\nrx_bytes=2224\npersistent_keepalive_interval=0\n"
		"protocol_version=1\n"
		"public_key=58402e695ba1772b1cc9309755f043251ea77fdcf10fbe63989ceb7e19321376\n"
		"preshared_key=0000000000000000000000000000000000000000000000000000000000000000\n"
		"endpoint=182.122.22.19:3233\npersistent_keepalive_interval=111\n"
		"allowed_ip=192.168.4.6/32\nallowed_ip=fd00::/64\n"
		"errno=0\n\n";
	static const char nul_garbage[] = "pri\0vate_key=\x01\x02\n\n";
	/* Table: one row per misbehaviour. */
	static const struct fake_case cases[] = {
		{ "uapi fake: two peers parsed", two_peers, 0, 0, 0 },
		{ "uapi fake: garbage", "hello, this is not UAPI\n\n", 0, 0, -EPROTO },
		{ "uapi fake: closes before replying", "", 0, 0, -EPROTO },
		{ "uapi fake: closes mid-line", "private_key=e84b", 0, 0, -EPROTO },
		{ "uapi fake: closes mid-peer",
		  "public_key=b85996fecc9c7f1fc6d2572a76eda11d59bcd20be8e543b15ce4bd85a8e75a33\nallowed_ip=10.0.0.1/32\n",
		  0, 0, -EPROTO },
		{ "uapi fake: bad key", "public_key=zz\nerrno=0\n\n", 0, 0, -EPROTO },
		{ "uapi fake: bad allowed ip",
		  "public_key=b85996fecc9c7f1fc6d2572a76eda11d59bcd20be8e543b15ce4bd85a8e75a33\nallowed_ip=10.0.0.1/33\nerrno=0\n\n",
		  0, 0, -EPROTO },
		{ "uapi fake: NUL bytes", nul_garbage, sizeof(nul_garbage) - 1, 0, -EPROTO },
		{ "uapi fake: errno not a number", "errno=abc\n\n", 0, 0, -EPROTO },
		{ "uapi fake: get errno=-5", "errno=-5\n\n", 0, 0, -EIO },
		{ "uapi fake: set ok", "errno=0\n\n", 0, 1, 0 },
		{ "uapi fake: set errno=-22 (wireguard-go)", "errno=-22\n\n", 0, 1, -EINVAL },
		{ "uapi fake: set errno=22 (positive)", "errno=22\n\n", 0, 1, -EINVAL },
		{ "uapi fake: set errno=-1", "errno=-1\n\n", 0, 1, -EPERM },
		{ "uapi fake: set closes early", "", 0, 1, -EPROTO },
		{ "uapi fake: set garbage", "\x7f" "ELF\n\n", 0, 1, -EPROTO },
	};
	char dir[] = "/tmp/jitwg-fake-uapi.XXXXXX", path[64];
	size_t i;

	if (!mkdtemp(dir)) {
		CHECK("uapi fake: temp dir", 0, "mkdtemp: %s", strerror(errno));
		return;
	}
	setenv("JITWG_UAPI_DIR", dir, 1);
	snprintf(path, sizeof(path), "%s/fake0.sock", dir);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct fake_case *c = &cases[i];
		struct wgdev *dev = NULL;
		int lfd, ret, ok = 1;
		pid_t pid;

		unlink(path);
		lfd = fake_listen(path);
		if (lfd < 0) {
			CHECK(c->name, 0, "fake server: %s", strerror(errno));
			continue;
		}
		pid = fork();
		if (pid == 0)
			fake_serve(lfd, c);
		close(lfd);

		/* AUTO must pick UAPI: the socket exists. */
		ret = wgdev_open(&dev, "fake0", WGDEV_AUTO, open_msg, sizeof(open_msg));
		ok &= EXPECT(ret == 0, "open: %d %s", ret, open_msg);
		if (ret == 0) {
			ok &= EXPECT(wgdev_backend(dev) == WGDEV_UAPI, "auto picked %d",
				     wgdev_backend(dev));
			if (c->set) {
				struct wgdev_peer p = { 0 };
				struct wgdev_allowed_ip a = ip4(0x0a000001, 32);

				key_of(p.public_key, 1, 1);
				p.allowed_ips = &a;
				p.n_allowed_ips = 1;
				ret = wgdev_set_peers(dev, &p, 1);
			} else if (i == 0) {
				struct wgdev_peer *ps = NULL;
				struct wgdev_info info;
				size_t n = 0;
				char a[INET6_ADDRSTRLEN] = "";

				ret = wgdev_get_info(dev, &info);
				ok &= EXPECT(ret == 0 && info.listen_port == 51820 &&
						     info.n_peers == 2,
					     "info %d port %u peers %zu", ret,
					     info.listen_port, info.n_peers);
				ret = wgdev_list_peers(dev, &ps, &n);
				if (ret == 0 && n == 2) {
					inet_ntop(AF_INET6, &ps[0].endpoint.addr6.sin6_addr,
						  a, sizeof(a));
					ok &= EXPECT(ps[0].endpoint.addr.sa_family == AF_INET6 &&
							     !strcmp(a, "abcd:23::33") &&
							     ntohs(ps[0].endpoint.addr6.sin6_port) == 51820,
						     "endpoint %s", a);
					ok &= EXPECT(ps[0].flags & WGDEV_PEER_HAS_PSK, "psk");
					ok &= EXPECT(ps[0].last_handshake.tv_sec == 1700000000 &&
							     ps[0].last_handshake.tv_nsec == 5,
						     "handshake");
					ok &= EXPECT(ps[0].rx_bytes == 2224 &&
							     ps[0].tx_bytes == 38333,
						     "bytes");
					ok &= EXPECT(!(ps[1].flags & WGDEV_PEER_HAS_PSK),
						     "zero psk is none");
					ok &= EXPECT(ps[1].persistent_keepalive == 111 &&
							     ps[1].n_allowed_ips == 2 &&
							     ps[1].allowed_ips[1].family == AF_INET6 &&
							     ps[1].allowed_ips[1].cidr == 64,
						     "peer 2");
					ok &= EXPECT(ps[1].endpoint.addr4.sin_addr.s_addr ==
							     inet_addr("182.122.22.19"),
						     "endpoint v4");
				} else {
					ok &= EXPECT(0, "list %d n=%zu: %s", ret, n,
						     wgdev_error(dev));
				}
				wgdev_peers_free(ps, n);
			} else {
				struct wgdev_peer *ps = NULL;
				size_t n = 0;

				ret = wgdev_list_peers(dev, &ps, &n);
				wgdev_peers_free(ps, n);
			}
			if (i != 0)
				ok &= EXPECT(ret == c->want, "got %d (%s), want %d", ret,
					     wgdev_error(dev), c->want);
			/* The message names the device and never the key. */
			if (ret)
				ok &= EXPECT(strstr(wgdev_error(dev), "fake0") &&
						     !strstr(wgdev_error(dev), "e84b5a6d"),
					     "message: %s", wgdev_error(dev));
			wgdev_close(dev);
		}
		CHECK(c->name, ok, "see above");
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	unlink(path);
	rmdir(dir);
	unsetenv("JITWG_UAPI_DIR");
}

/* ---- the netlink dump merge, on crafted messages ---- */

/* One dump message: device attributes (first only), then peers. */
static struct nlmsghdr *dump_msg(char *buf, int first)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct genlmsghdr *g;

	nlh->nlmsg_type = 0x20;
	nlh->nlmsg_flags = NLM_F_MULTI;
	g = mnl_nlmsg_put_extra_header(nlh, sizeof(*g));
	g->cmd = WG_CMD_GET_DEVICE;
	g->version = WG_GENL_VERSION;
	mnl_attr_put_strz(nlh, WGDEVICE_A_IFNAME, "wg0");
	if (first) {
		uint8_t k[32];

		key_of(k, 1000, 1);
		mnl_attr_put(nlh, WGDEVICE_A_PRIVATE_KEY, 32, k);
		mnl_attr_put(nlh, WGDEVICE_A_PUBLIC_KEY, 32, k);
		mnl_attr_put_u16(nlh, WGDEVICE_A_LISTEN_PORT, 51820);
	}
	return nlh;
}

static void dump_peer(struct nlmsghdr *nlh, uint32_t key, int full,
		      uint32_t ip_from, uint32_t ip_to)
{
	struct nlattr *peer = mnl_attr_nest_start(nlh, 0), *ips;
	uint8_t k[32];
	uint32_t i;

	key_of(k, key, 2);
	mnl_attr_put(nlh, WGPEER_A_PUBLIC_KEY, 32, k);
	if (full) {
		struct sockaddr_in6 ep = { .sin6_family = AF_INET6,
					   .sin6_port = htons(7),
					   .sin6_addr = IN6ADDR_LOOPBACK_INIT };
		int64_t ts[2] = { 1700000000, 9 };

		mnl_attr_put(nlh, WGPEER_A_ENDPOINT, sizeof(ep), &ep);
		mnl_attr_put(nlh, WGPEER_A_LAST_HANDSHAKE_TIME, sizeof(ts), ts);
		mnl_attr_put_u64(nlh, WGPEER_A_RX_BYTES, 11);
		mnl_attr_put_u64(nlh, WGPEER_A_TX_BYTES, 22);
		mnl_attr_put_u16(nlh, WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL, 25);
	}
	ips = mnl_attr_nest_start(nlh, WGPEER_A_ALLOWEDIPS);
	for (i = ip_from; i < ip_to; i++) {
		struct nlattr *ip = mnl_attr_nest_start(nlh, 0);
		uint32_t a = htonl(0x0a000000 + i);

		mnl_attr_put_u16(nlh, WGALLOWEDIP_A_FAMILY, AF_INET);
		mnl_attr_put(nlh, WGALLOWEDIP_A_IPADDR, 4, &a);
		mnl_attr_put_u8(nlh, WGALLOWEDIP_A_CIDR_MASK, 32);
		mnl_attr_nest_end(nlh, ip);
	}
	mnl_attr_nest_end(nlh, ips);
	mnl_attr_nest_end(nlh, peer);
}

/*
 * Two messages as netlink.c writes them when peer 1's allowed IPs do not
 * fit: message 1 ends inside peer 1, message 2 repeats only its key and
 * the remaining IPs, then peer 2; then DONE. Also: a DONE carrying an
 * error, and a stream cut short.
 */
static void test_netlink_merge(void)
{
	static char buf[3 * 8192] __attribute__((aligned(8)));
	struct wgdev dev = { .backend = WGDEV_NETLINK, .name = "wg0" };
	struct nlmsghdr *m1, *m2, *done;
	struct wgdev_peer *ps = NULL;
	struct wgdev_info info = { 0 };
	size_t n = 0, len;
	uint8_t k1[32], k2[32];
	const char *seed = getenv("WGDEV_WRITE_SEED");
	int ret, ok = 1;

	m1 = dump_msg(buf, 1);
	{
		struct nlattr *peers = mnl_attr_nest_start(m1, WGDEVICE_A_PEERS);

		dump_peer(m1, 0, 1, 0, 3);     /* wholly in message 1 */
		dump_peer(m1, 1, 1, 100, 200); /* cut after 100 IPs */
		mnl_attr_nest_end(m1, peers);
	}
	m2 = dump_msg(buf + MNL_ALIGN(m1->nlmsg_len), 0);
	{
		struct nlattr *peers = mnl_attr_nest_start(m2, WGDEVICE_A_PEERS);

		dump_peer(m2, 1, 0, 200, 250); /* continuation: key and IPs */
		dump_peer(m2, 2, 1, 300, 301);
		mnl_attr_nest_end(m2, peers);
	}
	done = mnl_nlmsg_put_header((char *)m2 + MNL_ALIGN(m2->nlmsg_len));
	done->nlmsg_type = NLMSG_DONE;
	done->nlmsg_flags = NLM_F_MULTI;
	*(int *)mnl_nlmsg_put_extra_header(done, sizeof(int)) = 0;
	len = (size_t)((char *)done + done->nlmsg_len - buf);
	if (seed) {
		FILE *f = fopen(seed, "wb");

		if (f) {
			fwrite(buf, 1, len, f);
			fclose(f);
		}
	}

	ret = wgdev_netlink_parse(&dev, buf, len, &info, &ps, &n);
	ok &= EXPECT(ret == 0, "%d %s", ret, dev.err);
	ok &= EXPECT(n == 3 && info.n_peers == 3, "peers %zu, counted %zu", n,
		     info.n_peers);
	ok &= EXPECT(info.listen_port == 51820, "port %u", info.listen_port);
	key_of(k1, 1, 2);
	key_of(k2, 2, 2);
	if (n == 3) {
		ok &= EXPECT(!memcmp(ps[1].public_key, k1, 32) &&
				     ps[1].n_allowed_ips == 150,
			     "continued peer has %zu IPs", ps[1].n_allowed_ips);
		ok &= EXPECT(ps[1].persistent_keepalive == 25 &&
				     ps[1].rx_bytes == 11 && ps[1].tx_bytes == 22 &&
				     ps[1].last_handshake.tv_sec == 1700000000 &&
				     ps[1].endpoint.addr.sa_family == AF_INET6,
			     "continuation kept the first part's fields");
		ok &= EXPECT(!memcmp(ps[2].public_key, k2, 32) &&
				     ps[2].n_allowed_ips == 1,
			     "peer after the continuation");
		ok &= EXPECT(ps[1].allowed_ips[149].ip4.s_addr ==
				     htonl(0x0a000000 + 249),
			     "last IP");
	}
	wgdev_peers_free(ps, n);
	CHECK("netlink dump: peer continued in the next message is merged", ok,
	      "see above");

	/* Counting only (wgdev_get_info): the continued peer is one peer. */
	memset(&info, 0, sizeof(info));
	ret = wgdev_netlink_parse(&dev, buf, len, &info, NULL, NULL);
	CHECK("netlink dump: continued peer counted once without a peer list",
	      ret == 0 && info.n_peers == 3, "ret %d, counted %zu", ret, info.n_peers);

	/* The same stream, DONE carrying -ENODEV. */
	*(int *)mnl_nlmsg_get_payload(done) = -ENODEV;
	ret = wgdev_netlink_parse(&dev, buf, len, NULL, &ps, &n);
	CHECK("netlink dump: error in NLMSG_DONE", ret == -ENODEV, "got %d", ret);

	/* Cut inside message 2: its length runs past the data. */
	ret = wgdev_netlink_parse(&dev, buf, MNL_ALIGN(m1->nlmsg_len) + 40, NULL,
				  &ps, &n);
	CHECK("netlink dump: truncated stream is malformed", ret == -EPROTO,
	      "got %d", ret);
}

/* ---- the batch check both backends rely on ---- */

/*
 * wgdev_check_peers() on one peer placed after two valid ones: the verdict,
 * and a message naming the device and index 2.
 */
static void test_check_peers(void)
{
	enum { EP_NONE, EP_V4, EP_V6, EP_UNIX, EP_UNIX_UNFLAGGED };
	/* Table: one row per peer shape. */
	static const struct {
		const char *name;
		int endpoint;
		uint32_t flags;
		size_t n_ips;    /* 1, or 2 with the second as below */
		uint16_t family; /* of the second allowed IP */
		uint8_t cidr;
		const char *why; /* NULL: accepted */
	} cases[] = {
		{ "check: IPv4 endpoint, IPv4 /32", EP_V4, 0, 2, AF_INET, 32, NULL },
		{ "check: IPv6 endpoint, IPv6 /128", EP_V6, 0, 2, AF_INET6, 128,
		  NULL },
		{ "check: no endpoint, IPv4 /0", EP_NONE, 0, 2, AF_INET, 0, NULL },
		{ "check: IPv4 /33 refused", EP_V4, 0, 2, AF_INET, 33,
		  "allowed IP 1 is invalid" },
		{ "check: IPv6 /129 refused", EP_NONE, 0, 2, AF_INET6, 129,
		  "allowed IP 1 is invalid" },
		{ "check: allowed IP of family AF_UNSPEC refused", EP_NONE, 0,
		  2, AF_UNSPEC, 0, "allowed IP 1 is invalid" },
		{ "check: AF_UNIX endpoint refused", EP_UNIX, 0, 1, 0, 0,
		  "endpoint is neither IPv4 nor IPv6" },
		/* Without HAS_ENDPOINT the endpoint is not looked at. */
		{ "check: AF_UNIX endpoint not flagged is ignored",
		  EP_UNIX_UNFLAGGED, 0, 1, 0, 0, NULL },
		/* A removal sends its key alone: the rest is not looked at. */
		{ "check: removal with a bad allowed IP and endpoint",
		  EP_UNIX, WGDEV_PEER_REMOVE, 2, AF_INET, 99, NULL },
		{ "check: update-only peer with IPv4 /33 refused", EP_NONE,
		  WGDEV_PEER_UPDATE_ONLY, 2, AF_INET, 33,
		  "allowed IP 1 is invalid" },
	};
	struct wgdev dev = { .backend = WGDEV_UAPI, .name = "chk0" };
	struct wgdev_allowed_ip good[] = { ip4(0x0a000001, 32),
					   ip6("fd00::1", 64) };
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct wgdev_allowed_ip ips[2] = { ip4(0x0a000002, 32) };
		struct wgdev_peer peers[3] = { 0 }, *p = &peers[2];
		int ret, ok = 1;

		peers[0].allowed_ips = good;
		peers[0].n_allowed_ips = 2;
		peers[1].flags = WGDEV_PEER_HAS_ENDPOINT;
		peers[1].endpoint.addr4.sin_family = AF_INET;
		p->allowed_ips = ips;
		p->n_allowed_ips = cases[i].n_ips;
		p->flags = cases[i].flags;
		ips[1].family = cases[i].family;
		ips[1].cidr = cases[i].cidr;
		switch (cases[i].endpoint) {
		case EP_V4:
			p->endpoint.addr4.sin_family = AF_INET;
			break;
		case EP_V6:
			p->endpoint.addr6.sin6_family = AF_INET6;
			break;
		case EP_UNIX:
		case EP_UNIX_UNFLAGGED:
			p->endpoint.addr.sa_family = AF_UNIX;
			break;
		}
		if (cases[i].endpoint != EP_NONE &&
		    cases[i].endpoint != EP_UNIX_UNFLAGGED)
			p->flags |= WGDEV_PEER_HAS_ENDPOINT;
		dev.err[0] = 0;
		ret = wgdev_check_peers(&dev, peers, 3);
		if (!cases[i].why) {
			ok &= EXPECT(ret == 0, "got %d (%s)", ret, dev.err);
		} else {
			ok &= EXPECT(ret == -EINVAL, "got %d", ret);
			ok &= EXPECT(!strncmp(dev.err, "chk0: peer 2: ", 14) &&
					     strstr(dev.err, cases[i].why),
				     "message '%s'", dev.err);
		}
		CHECK(cases[i].name, ok, "see above");
	}
}

/* ---- devices that are not there or not WireGuard ---- */

static void test_missing(void)
{
	static const struct {
		const char *name, *dev;
		enum wgdev_backend b;
		int want;
	} cases[] = {
		{ "missing: netlink", "jwnosuchdev0", WGDEV_NETLINK, -ENODEV },
		{ "missing: uapi", "jwnosuchdev0", WGDEV_UAPI, -ENODEV },
		{ "missing: auto", "jwnosuchdev0", WGDEV_AUTO, -ENODEV },
		{ "missing: empty name", "", WGDEV_AUTO, -ENODEV },
		{ "missing: name too long", "jwnosuchdevice0123", WGDEV_AUTO, -ENODEV },
		{ "missing: name with slash", "../x", WGDEV_UAPI, -ENODEV },
		/* Loopback exists everywhere and is not WireGuard. */
		{ "not wireguard: lo over netlink", "lo", WGDEV_NETLINK, -EMEDIUMTYPE },
		{ "not wireguard: lo over uapi", "lo", WGDEV_UAPI, -ENODEV },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct wgdev *dev = NULL;
		int ret = wgdev_open(&dev, cases[i].dev, cases[i].b, open_msg, sizeof(open_msg));

		CHECK(cases[i].name, ret == cases[i].want && !dev &&
				 strlen(open_msg) > 8,
		      "got %d (%s), want %d", ret, open_msg,
		      cases[i].want);
		wgdev_close(dev);
	}
}

/* ---- against a real device ---- */

static void test_info(struct wgdev *dev)
{
	struct wgdev_info info;
	uint8_t pub[32], want[32];
	const char *wpub = getenv("WGDEV_PUBLIC"), *wport = getenv("WGDEV_PORT");
	int ret = wgdev_get_info(dev, &info), ok = 1;

	if (ret) {
		CHECK("device: read", 0, "%s", wgdev_error(dev));
		return;
	}
	crypto_scalarmult_curve25519_base(pub, info.private_key);
	sodium_memzero(info.private_key, 32);
	ok &= EXPECT(!strcmp(info.name, devname), "name %s", info.name);
	ok &= EXPECT(!memcmp(pub, info.public_key, 32), "public key derives");
	ok &= EXPECT(info.n_peers == 0, "starts empty: %zu", info.n_peers);
	if (wpub)
		ok &= EXPECT(!key_from_base64(want, wpub) &&
				     !memcmp(want, info.public_key, 32),
			     "public key is WGDEV_PUBLIC");
	if (wport)
		ok &= EXPECT(info.listen_port == atoi(wport), "port %u",
			     info.listen_port);
	CHECK("device: read private key, public key, port", ok, "see above");
}

static void test_peer_lifecycle(struct wgdev *dev)
{
	struct wgdev_allowed_ip ips[] = { ip4(0x0a000001, 32),
					  ip6("fd00::1", 128),
					  ip4(0x0a010000, 16) };
	struct wgdev_allowed_ip ips2[] = { ip4(0x0a000002, 32) };
	struct wgdev_peer p = { 0 }, *ps = NULL, *got;
	char line[4096], b64[KEY_B64_LEN];
	size_t n = 0;
	int ok, ret;

	key_of(p.public_key, 7, 0xabc);
	randombytes_buf(p.preshared_key, 32);
	p.endpoint.addr4.sin_family = AF_INET;
	p.endpoint.addr4.sin_port = htons(51999);
	p.endpoint.addr4.sin_addr.s_addr = htonl(0x7f000001);
	p.persistent_keepalive = 0;
	p.flags = WGDEV_PEER_HAS_PSK | WGDEV_PEER_HAS_ENDPOINT |
		  WGDEV_PEER_HAS_KEEPALIVE;
	p.allowed_ips = ips;
	p.n_allowed_ips = 3;

	/* add */
	ret = wgdev_set_peers(dev, &p, 1);
	ok = EXPECT(ret == 0, "%s", wgdev_error(dev));
	if (ok && !list(dev, &ps, &n)) {
		got = find(ps, n, p.public_key);
		ok &= EXPECT(n == 1 && got, "n=%zu", n);
		if (got) {
			ok &= EXPECT(same_ips(got, &p), "allowed IPs");
			ok &= EXPECT(got->flags & WGDEV_PEER_HAS_PSK, "psk");
			ok &= EXPECT(!memcmp(got->preshared_key, p.preshared_key, 32),
				     "psk value");
			ok &= EXPECT(got->endpoint.addr.sa_family == AF_INET &&
					     got->endpoint.addr4.sin_port == htons(51999) &&
					     got->endpoint.addr4.sin_addr.s_addr == htonl(0x7f000001),
				     "endpoint");
			ok &= EXPECT(got->last_handshake.tv_sec == 0 &&
					     got->rx_bytes == 0,
				     "fresh");
		}
		wgdev_peers_free(ps, n);
	}
	/* A handle that needs no secrets (the daemon's monitor) gets the
	 * flag, never the key. */
	wgdev_drop_secrets(dev, true);
	if (ok && !list(dev, &ps, &n)) {
		got = find(ps, n, p.public_key);
		ok &= EXPECT(got && (got->flags & WGDEV_PEER_HAS_PSK) &&
				     sodium_is_zero(got->preshared_key, 32),
			     "listing without secrets");
		wgdev_peers_free(ps, n);
	}
	wgdev_drop_secrets(dev, false);
	/* What wg(8) sees: psk, endpoint, allowed IPs, keepalive off. */
	wg_dump_line(p.public_key, line, sizeof(line));
	key_to_base64(b64, p.preshared_key);
	ok &= EXPECT(strstr(line, b64) && strstr(line, "127.0.0.1:51999") &&
			     strstr(line, "10.0.0.1/32") &&
			     strstr(line, "fd00::1/128") &&
			     strstr(line, "10.1.0.0/16") && strstr(line, "\toff"),
		     "wg dump: %s", line);
	CHECK("peer: add, list, seen by wg", ok, "see above");

	/* update: allowed IPs replaced, PSK untouched */
	p.flags = 0;
	p.allowed_ips = ips2;
	p.n_allowed_ips = 1;
	ret = wgdev_set_peers(dev, &p, 1);
	ok = EXPECT(ret == 0, "%s", wgdev_error(dev));
	if (ok && !list(dev, &ps, &n)) {
		got = find(ps, n, p.public_key);
		ok &= EXPECT(n == 1 && got && same_ips(got, &p),
			     "allowed IPs not replaced (n=%zu, %zu IPs)", n,
			     got ? got->n_allowed_ips : 0);
		ok &= EXPECT(got && (got->flags & WGDEV_PEER_HAS_PSK),
			     "psk kept");
		wgdev_peers_free(ps, n);
	}
	CHECK("peer: update replaces allowed IPs", ok, "see above");

	/* preshared key cleared with the all-zero key */
	memset(p.preshared_key, 0, 32);
	p.flags = WGDEV_PEER_HAS_PSK;
	ret = wgdev_set_peers(dev, &p, 1);
	ok = EXPECT(ret == 0, "%s", wgdev_error(dev));
	if (ok && !list(dev, &ps, &n)) {
		got = find(ps, n, p.public_key);
		ok &= EXPECT(got && !(got->flags & WGDEV_PEER_HAS_PSK), "psk set");
		wgdev_peers_free(ps, n);
	}
	wg_dump_line(p.public_key, line, sizeof(line));
	ok &= EXPECT(strstr(line, "\t(none)\t"), "wg dump: %s", line);
	CHECK("peer: preshared key cleared", ok, "see above");

	/* IPv6 endpoint and keepalive */
	memset(&p.endpoint, 0, sizeof(p.endpoint));
	p.endpoint.addr6.sin6_family = AF_INET6;
	p.endpoint.addr6.sin6_port = htons(51821);
	p.endpoint.addr6.sin6_addr = in6addr_loopback;
	p.persistent_keepalive = 0;
	p.flags = WGDEV_PEER_HAS_ENDPOINT | WGDEV_PEER_HAS_KEEPALIVE;
	ret = wgdev_set_peers(dev, &p, 1);
	ok = EXPECT(ret == 0, "%s", wgdev_error(dev));
	if (ok && !list(dev, &ps, &n)) {
		got = find(ps, n, p.public_key);
		ok &= EXPECT(got && got->endpoint.addr.sa_family == AF_INET6 &&
				     got->endpoint.addr6.sin6_port == htons(51821) &&
				     IN6_IS_ADDR_LOOPBACK(&got->endpoint.addr6.sin6_addr),
			     "endpoint v6");
		wgdev_peers_free(ps, n);
	}
	wg_dump_line(p.public_key, line, sizeof(line));
	ok &= EXPECT(strstr(line, "[::1]:51821"), "wg dump: %s", line);
	CHECK("peer: IPv6 endpoint", ok, "see above");

	/* remove */
	ret = wgdev_remove_peers(dev, (const uint8_t(*)[32])p.public_key, 1);
	ok = EXPECT(ret == 0, "%s", wgdev_error(dev));
	if (ok && !list(dev, &ps, &n)) {
		ok &= EXPECT(n == 0, "%zu peers left", n);
		wgdev_peers_free(ps, n);
	}
	ok &= EXPECT(wg_count_peers() == 0, "wg sees %ld", wg_count_peers());
	CHECK("peer: remove", ok, "see above");
}

/* A peer configured by wg(8) reads back through wgdev. */
static void test_from_wg(struct wgdev *dev)
{
	uint8_t k[32];
	char b64[KEY_B64_LEN], cmd[512];
	struct wgdev_peer *ps = NULL, *got;
	struct wgdev_allowed_ip want_ips[] = { ip4(0x0a090909, 32),
					       ip6("fd00::9", 128) };
	struct wgdev_peer want = { .allowed_ips = want_ips, .n_allowed_ips = 2 };
	size_t n = 0;
	int ok;

	key_of(k, 99, 0xdef);
	key_to_base64(b64, k);
	snprintf(cmd, sizeof(cmd),
		 "wg set %s peer %s allowed-ips 10.9.9.9/32,fd00::9/128 endpoint [::1]:4321",
		 devname, b64);
	ok = EXPECT(system(cmd) == 0, "%s", cmd);
	if (ok && !list(dev, &ps, &n)) {
		got = find(ps, n, k);
		ok &= EXPECT(n == 1 && got && same_ips(got, &want) &&
				     got->endpoint.addr.sa_family == AF_INET6 &&
				     got->endpoint.addr6.sin6_port == htons(4321),
			     "n=%zu", n);
		wgdev_peers_free(ps, n);
	}
	ok &= EXPECT(wgdev_remove_peers(dev, (const uint8_t(*)[32])k, 1) == 0,
		     "%s", wgdev_error(dev));
	CHECK("peer: configured by wg, read by wgdev", ok, "see above");
}

/*
 * n peers in one call and back. Peer 0 carries `big` allowed IPs, so it
 * spans several netlink messages both ways (set split mid-peer, dump
 * continued in the next message); others 1 to 3 IPs.
 */
static void test_bulk(struct wgdev *dev, size_t n, size_t big)
{
	struct wgdev_peer *peers = calloc(n, sizeof(*peers)), *ps = NULL, *got;
	struct wgdev_allowed_ip *ips = calloc(3 * n + big, sizeof(*ips)), *ip = ips;
	uint8_t(*keys)[32] = calloc(n, 32);
	size_t i, j, got_n = 0, bad = 0;
	char name[96];
	int ok = 1, ret;
	long wgn;

	snprintf(name, sizeof(name), "bulk: %zu peers in one call, listed back exactly",
		 n);
	for (i = 0; i < n; i++) {
		size_t k = i == 0 ? big : 1 + i % 3;

		key_of(peers[i].public_key, (uint32_t)i, (uint32_t)n);
		memcpy(keys[i], peers[i].public_key, 32);
		peers[i].allowed_ips = ip;
		peers[i].n_allowed_ips = k;
		for (j = 0; j < k; j++) {
			if (i == 0)
				*ip++ = ip4(0x0b000000u + (uint32_t)j, 32);
			else if (j == 2)
				*ip++ = ip6("fd00::", 128),
				ip[-1].ip6.s6_addr32[3] = htonl((uint32_t)i);
			else
				*ip++ = ip4(0x0a000000u + (uint32_t)(2 * i + j), 32);
		}
		if (i % 2) {
			peers[i].flags |= WGDEV_PEER_HAS_ENDPOINT;
			peers[i].endpoint.addr4.sin_family = AF_INET;
			peers[i].endpoint.addr4.sin_addr.s_addr = htonl(0x7f000001);
			peers[i].endpoint.addr4.sin_port = htons((uint16_t)(1000 + i % 60000));
		}
	}
	ret = wgdev_set_peers(dev, peers, n);
	ok &= EXPECT(ret == 0, "set: %s", wgdev_error(dev));
	if (ok && !list(dev, &ps, &got_n)) {
		ok &= EXPECT(got_n == n, "listed %zu of %zu", got_n, n);
		qsort(ps, got_n, sizeof(*ps), cmp_peer);
		for (i = 0; i < n; i++) {
			got = bsearch(&peers[i], ps, got_n, sizeof(*ps), cmp_peer);
			if (!got || !same_ips(got, &peers[i]) ||
			    !!(got->flags & WGDEV_PEER_HAS_ENDPOINT) != (int)(i % 2))
				bad++;
		}
		/* No duplicates: a continuation counted as a new peer. */
		for (i = 1; i < got_n; i++)
			if (!cmp_peer(&ps[i - 1], &ps[i]))
				bad++;
		ok &= EXPECT(bad == 0, "%zu peers differ", bad);
		wgdev_peers_free(ps, got_n);
	}
	wgn = wg_count_peers();
	ok &= EXPECT(wgn == (long)n, "wg sees %ld", wgn);
	ret = wgdev_remove_peers(dev, (const uint8_t(*)[32])keys, n);
	ok &= EXPECT(ret == 0, "remove: %s", wgdev_error(dev));
	if (!list(dev, &ps, &got_n)) {
		ok &= EXPECT(got_n == 0, "%zu left after remove", got_n);
		wgdev_peers_free(ps, got_n);
	}
	CHECK(name, ok, "see above");
	free(peers);
	free(ips);
	free(keys);
}

/*
 * Listing while another handle changes the device: a kernel dump spanning
 * many messages is then marked interrupted (NLM_F_DUMP_INTR). Every list
 * must come back whole (restarted) or say the device kept changing
 * (-EAGAIN; under constant churn, all may), and the handle must work once
 * the churn stops, with nothing of an abandoned dump left on its socket.
 */
static void test_list_under_churn(struct wgdev *dev)
{
	enum { N = 2000, CHURN = 64, ROUNDS = 10 };
	struct wgdev_peer *peers = calloc(N, sizeof(*peers)), *ps = NULL;
	struct wgdev_allowed_ip *ips = calloc(N, sizeof(*ips));
	uint8_t(*keys)[32] = calloc(N, 32);
	size_t i, got_n, whole = 0, again = 0;
	int ok = 1, ret, r, status;
	pid_t child;

	for (i = 0; i < N; i++) {
		key_of(peers[i].public_key, (uint32_t)i, 7);
		memcpy(keys[i], peers[i].public_key, 32);
		ips[i] = ip4(0x0c000000u + (uint32_t)i, 32);
		peers[i].allowed_ips = &ips[i];
		peers[i].n_allowed_ips = 1;
	}
	ret = wgdev_set_peers(dev, peers, N);
	ok &= EXPECT(ret == 0, "set: %s", wgdev_error(dev));
	child = ok ? fork() : -1;
	if (child == 0) {
		/* Its own handle: add and remove CHURN peers until killed. */
		struct wgdev *other = NULL;
		struct wgdev_peer extra[CHURN] = { 0 };
		uint8_t ekeys[CHURN][32];

		if (wgdev_open(&other, devname, backend, open_msg, sizeof(open_msg)))
			_exit(1);
		for (i = 0; i < CHURN; i++) {
			key_of(extra[i].public_key, (uint32_t)i, 8);
			memcpy(ekeys[i], extra[i].public_key, 32);
		}
		for (;;) {
			if (wgdev_set_peers(other, extra, CHURN) ||
			    wgdev_remove_peers(other, (const uint8_t(*)[32])ekeys, CHURN))
				_exit(1);
		}
	}
	for (r = 0; ok && child > 0 && r < ROUNDS; r++) {
		ret = wgdev_list_peers(dev, &ps, &got_n);
		if (ret == -EAGAIN) {
			again++;
			continue;
		}
		ok &= EXPECT(ret == 0, "list %d: %s", r, wgdev_error(dev));
		if (ret)
			break;
		ok &= EXPECT(got_n >= N && got_n <= N + CHURN, "list %d: %zu peers", r,
			     got_n);
		whole++;
		wgdev_peers_free(ps, got_n);
	}
	if (child > 0) {
		kill(child, SIGKILL);
		waitpid(child, &status, 0);
		ok &= EXPECT(!WIFEXITED(status), "the churning child failed");
	}
	/* The same handle, quiet device: exactly the N peers plus leftovers. */
	ret = wgdev_list_peers(dev, &ps, &got_n);
	ok &= EXPECT(ret == 0 && got_n >= N && got_n <= N + CHURN,
		     "list after the churn: %d %s, %zu peers", ret, wgdev_error(dev),
		     ret ? 0 : got_n);
	if (!ret)
		wgdev_peers_free(ps, got_n);
	printf("  %zu lists whole, %zu gave up (device kept changing)\n", whole, again);
	wgdev_remove_peers(dev, (const uint8_t(*)[32])keys, N);
	for (i = 0; i < CHURN; i++)
		key_of(keys[i], (uint32_t)i, 8);
	wgdev_remove_peers(dev, (const uint8_t(*)[32])keys, CHURN);
	CHECK("list while another handle changes the device", ok, "see above");
	free(peers);
	free(ips);
	free(keys);
}

static void test_invalid(struct wgdev *dev)
{
	struct wgdev_allowed_ip bad = ip4(0x0a000001, 33);
	struct wgdev_peer p = { .allowed_ips = &bad, .n_allowed_ips = 1 };
	int ret;

	key_of(p.public_key, 5, 5);
	ret = wgdev_set_peers(dev, &p, 1);
	CHECK("peer: invalid allowed IP rejected",
	      ret == -EINVAL && strstr(wgdev_error(dev), ": peer 0: allowed IP 0 "),
	      "got %d (%s)", ret, wgdev_error(dev));
	memset(&p, 0, sizeof(p));
	key_of(p.public_key, 5, 5);
	ret = wgdev_install_initiate(dev, &p, 25);
	CHECK("initiate: needs an endpoint", ret == -EINVAL, "got %d", ret);
}

/*
 * A batch is checked whole before any of it is sent: N valid new peers
 * followed by one bad peer are refused with -EINVAL, the message names the
 * bad peer by its index in the caller's array, and the device has none of
 * the N afterwards. N peers make well over 64 KiB of UAPI text (the UAPI
 * backend's flush size) and several netlink messages, so a backend that
 * found the bad peer only while sending would already have handed the
 * first peers to the implementation, which applies them as it reads.
 */
static void test_invalid_batch(struct wgdev *dev)
{
	enum { N = 1500 };
	enum spoil { CIDR4, CIDR6, FAMILY, ENDPOINT };
	/* Table: one row per way the last peer is bad. */
	static const struct {
		const char *name;
		enum spoil spoil;
		const char *why; /* after "<dev>: peer N: " */
	} cases[] = {
		{ "batch: IPv4 allowed IP /33 after 1500 peers refused whole",
		  CIDR4, "allowed IP 1 is invalid" },
		{ "batch: IPv6 allowed IP /129 after 1500 peers refused whole",
		  CIDR6, "allowed IP 1 is invalid" },
		{ "batch: allowed IP of family AF_UNSPEC after 1500 peers refused whole",
		  FAMILY, "allowed IP 1 is invalid" },
		{ "batch: AF_UNIX endpoint after 1500 peers refused whole",
		  ENDPOINT, "endpoint is neither IPv4 nor IPv6" },
	};
	struct wgdev_peer *peers = calloc(N + 1, sizeof(*peers)), *ps = NULL;
	struct wgdev_allowed_ip *ips = calloc(N + 2, sizeof(*ips));
	uint8_t(*keys)[32] = calloc(N + 1, 32);
	struct wgdev_peer *bad = &peers[N];
	size_t c, i, n;
	char want[128];
	long wgn;
	int ok, ret;

	for (i = 0; i <= N; i++) {
		key_of(peers[i].public_key, (uint32_t)i, 0xbad);
		memcpy(keys[i], peers[i].public_key, 32);
		ips[i] = ip4(0x0d000000u + (uint32_t)i, 32);
		peers[i].allowed_ips = &ips[i];
		peers[i].n_allowed_ips = 1;
		peers[i].flags = WGDEV_PEER_HAS_ENDPOINT;
		peers[i].endpoint.addr4.sin_family = AF_INET;
		peers[i].endpoint.addr4.sin_port = htons(51000);
		peers[i].endpoint.addr4.sin_addr.s_addr = htonl(0x7f000001);
	}
	/* The bad peer: a valid first allowed IP, then the spoilt second. */
	bad->n_allowed_ips = 2;
	snprintf(want, sizeof(want), "%s: peer %d: ", devname, N);
	for (c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		ips[N + 1] = ip4(0x0e000001, 32);
		memset(&bad->endpoint, 0, sizeof(bad->endpoint));
		bad->endpoint.addr4.sin_family = AF_INET;
		switch (cases[c].spoil) {
		case CIDR4:
			ips[N + 1] = ip4(0x0e000001, 33);
			break;
		case CIDR6:
			ips[N + 1] = ip6("fd00::e", 129);
			break;
		case FAMILY:
			ips[N + 1].family = AF_UNSPEC;
			break;
		case ENDPOINT:
			bad->endpoint.addr.sa_family = AF_UNIX;
			break;
		}
		n = 0;
		ret = wgdev_set_peers(dev, peers, N + 1);
		ok = EXPECT(ret == -EINVAL, "got %d (%s)", ret, wgdev_error(dev));
		ok &= EXPECT(!strncmp(wgdev_error(dev), want, strlen(want)) &&
				     strstr(wgdev_error(dev), cases[c].why),
			     "message '%s', want '%s%s'", wgdev_error(dev), want,
			     cases[c].why);
		if (!list(dev, &ps, &n)) {
			ok &= EXPECT(n == 0, "the device has %zu of the %d valid peers",
				     n, N);
			wgdev_peers_free(ps, n);
		} else {
			ok = 0;
		}
		wgn = wg_count_peers();
		ok &= EXPECT(wgn == 0, "wg sees %ld peers", wgn);
		/* Whatever got through, the next case and tests start empty. */
		if (n || wgn)
			wgdev_remove_peers(dev, (const uint8_t(*)[32])keys, N + 1);
		CHECK(cases[c].name, ok, "see above");
	}
	free(peers);
	free(ips);
	free(keys);
}

/*
 * Install and initiate on one device: the peer reads back with its allowed
 * IPs and the initiating keepalive (the second, keepalive-only entry must
 * not replace the IPs); restore puts the configured value back; restore
 * on a removed peer does not bring it back. The initiation goes to a
 * loopback port nobody listens on.
 */
static void test_initiate_state(struct wgdev *dev)
{
	struct wgdev_allowed_ip ips[] = { ip4(0x0a050001, 32), ip6("fd00::5", 128) };
	struct wgdev_peer p = { .allowed_ips = ips, .n_allowed_ips = 2 };
	struct wgdev_peer *ps = NULL, *got;
	size_t n = 0;
	int ok, ret;

	key_of(p.public_key, 55, 55);
	p.endpoint.addr4.sin_family = AF_INET;
	p.endpoint.addr4.sin_port = htons(9);
	p.endpoint.addr4.sin_addr.s_addr = htonl(0x7f000001);
	p.flags = WGDEV_PEER_HAS_ENDPOINT | WGDEV_PEER_HAS_KEEPALIVE;
	p.persistent_keepalive = 0;
	ret = wgdev_install_initiate(dev, &p, 17);
	ok = EXPECT(ret == 0, "%s", wgdev_error(dev));
	if (ok && !list(dev, &ps, &n)) {
		got = find(ps, n, p.public_key);
		ok &= EXPECT(got && got->persistent_keepalive == 17 &&
				     same_ips(got, &p),
			     "keepalive %u, %zu IPs",
			     got ? got->persistent_keepalive : 0,
			     got ? got->n_allowed_ips : 0);
		wgdev_peers_free(ps, n);
	}
	ret = wgdev_restore_keepalive(dev, p.public_key, 0);
	ok &= EXPECT(ret == 0, "%s", wgdev_error(dev));
	if (!list(dev, &ps, &n)) {
		got = find(ps, n, p.public_key);
		ok &= EXPECT(got && got->persistent_keepalive == 0 &&
				     got->n_allowed_ips == 2,
			     "after restore");
		wgdev_peers_free(ps, n);
	}
	CHECK("initiate: keepalive switched, IPs kept, restored", ok, "see above");

	ret = wgdev_remove_peers(dev, (const uint8_t(*)[32])p.public_key, 1);
	ok = EXPECT(ret == 0, "%s", wgdev_error(dev));
	ret = wgdev_restore_keepalive(dev, p.public_key, 25);
	ok &= EXPECT(ret == 0, "%s", wgdev_error(dev));
	if (!list(dev, &ps, &n)) {
		ok &= EXPECT(n == 0, "restore re-created the peer (%zu peers)", n);
		wgdev_peers_free(ps, n);
	}
	CHECK("initiate: restore does not re-create a removed peer", ok,
	      "see above");
}

/* Without CAP_NET_ADMIN (netlink) or socket write permission (UAPI). */
static void test_eperm(void)
{
	int status = -1, ret;
	pid_t pid = fork();

	if (pid == 0) {
		struct wgdev *dev = NULL;
		struct wgdev_info info;

		if (setgid(65534) || setuid(65534))
			_exit(100);
		ret = wgdev_open(&dev, devname, backend, open_msg, sizeof(open_msg));
		if (!ret)
			ret = wgdev_get_info(dev, &info);
		printf("  unprivileged: %d %s\n", ret,
		       dev ? wgdev_error(dev) : open_msg);
		_exit(ret == -EPERM ? 0 : 1);
	}
	waitpid(pid, &status, 0);
	CHECK("device: permission denied is -EPERM",
	      WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d",
	      status);
}

static void test_other_backend(void)
{
	struct wgdev *dev = NULL;
	const char *notwg = getenv("WGDEV_NOT_WG");
	int ret;

	ret = wgdev_open(&dev, devname, WGDEV_AUTO, open_msg, sizeof(open_msg));
	CHECK("device: auto picks the backend",
	      ret == 0 && wgdev_backend(dev) == backend, "ret %d backend %d",
	      ret, dev ? (int)wgdev_backend(dev) : -1);
	wgdev_close(dev);
	dev = NULL;
	if (backend == WGDEV_UAPI) {
		/* wireguard-go's tun link is not kernel WireGuard. */
		ret = wgdev_open(&dev, devname, WGDEV_NETLINK, open_msg, sizeof(open_msg));
		CHECK("not wireguard: userspace tun over netlink",
		      ret == -EMEDIUMTYPE, "got %d (%s)", ret, open_msg);
		wgdev_close(dev);
		dev = NULL;
	}
	if (notwg) {
		char name[80];

		snprintf(name, sizeof(name), "not wireguard: %s link", notwg);
		ret = wgdev_open(&dev, notwg, backend, open_msg, sizeof(open_msg));
		CHECK(name, ret == (backend == WGDEV_NETLINK ? -EMEDIUMTYPE : -ENODEV),
		      "got %d (%s)", ret, open_msg);
		wgdev_close(dev);
	}
}

int main(void)
{
	const char *b = getenv("WGDEV_BACKEND");
	struct wgdev *dev = NULL;
	int ret;

	if (sodium_init() < 0)
		return 1;
	setvbuf(stdout, NULL, _IOLBF, 0);
	devname = getenv("WGDEV_NAME");
	if (!devname) {
		test_missing();
		test_fake_uapi();
		test_fake_uapi_kept();
		test_netlink_merge();
		test_check_peers();
		CHECK_EXIT();
	}
	backend = b && !strcmp(b, "netlink") ? WGDEV_NETLINK : WGDEV_UAPI;
	ret = wgdev_open(&dev, devname, backend, open_msg, sizeof(open_msg));
	CHECK("device: open", ret == 0, "%s", open_msg);
	if (ret)
		CHECK_EXIT();
	test_info(dev);
	test_other_backend();
	test_eperm();
	test_peer_lifecycle(dev);
	test_from_wg(dev);
	test_invalid(dev);
	test_invalid_batch(dev);
	test_initiate_state(dev);
	test_bulk(dev, 1, 1);
	test_bulk(dev, 1000, 3000);
	test_bulk(dev, 10000, 3000);
	test_list_under_churn(dev);
	wgdev_close(dev);
	CHECK_EXIT();
}
