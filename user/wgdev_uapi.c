// SPDX-License-Identifier: MIT
/*
 * The cross-platform userspace API (wireguard.com/xplatform): a unix socket
 * /var/run/wireguard/<dev>.sock speaking "get=1" / "set=1" followed by
 * key=value lines and a blank line; keys are hex. Every reply ends with
 * "errno=N" and a blank line; wireguard-go sends N negative (-EINVAL),
 * the document positive, so either sign is accepted.
 *
 * A connection is kept for the next operation after a success (wireguard-go
 * serves operations on one connection until it closes): an install then
 * costs no connect, accept and new goroutine. Anything else closes it: a
 * failed set leaves wireguard-go's reader mid-stream, and a fresh connection
 * cannot inherit that. A kept connection that yields no reply at all (the
 * implementation closed it, as one serving one operation per connection
 * does, or restarted) is replaced by a fresh one and the operation sent
 * again: it was never read, and every operation we send may be repeated.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <sodium.h>

#include "keys.h"
#include "wgdev.h"
#include "wgdev_internal.h"

enum {
	FLUSH_AT = 64 * 1024,     /* write the set request in chunks this big */
	REPLY_TIMEOUT_MS = 60000, /* a silent server fails, never hangs */
	REPLY_MAX = 512 << 20,    /* refuse replies past this (65,536 peers ≈ 30 MiB) */
};

struct uapi {
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	int fd; /* kept from the last successful operation, or -1 */
};

struct buf {
	char *p;
	size_t len, cap;
};

static int buf_reserve(struct buf *b, size_t more)
{
	char *p;
	size_t cap;

	if (b->len + more <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 4096;
	while (cap < b->len + more)
		cap *= 2;
	/*
	 * Replies (and set requests) hold the private key and preshared keys:
	 * locked, guarded memory, and no realloc, which would leave unwiped
	 * copies behind. The old buffer is wiped by sodium_free.
	 */
	p = sodium_malloc(cap);
	if (!p)
		return -ENOMEM;
	if (b->p) {
		memcpy(p, b->p, b->len);
		sodium_free(b->p);
	}
	b->p = p;
	b->cap = cap;
	return 0;
}

static void buf_wipe(struct buf *b)
{
	sodium_free(b->p); /* wipes; NULL is fine */
	b->p = NULL;
	b->len = b->cap = 0;
}

static int dial(struct wgdev *dev, int *fdp)
{
	struct uapi *u = dev->priv;
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd, err;

	memcpy(sun.sun_path, u->path, sizeof(sun.sun_path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return wgdev_fail(dev, -errno, "%s: socket: %s", dev->name,
				  strerror(errno));
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		err = errno;
		close(fd);
		switch (err) {
		case ENOENT:
		case ECONNREFUSED:
			return wgdev_fail(dev, -ENODEV,
					  "%s: no such device (no userspace WireGuard listens on %s: %s)",
					  dev->name, u->path, strerror(err));
		case EACCES:
		case EPERM:
			return wgdev_fail(dev, -EPERM,
					  "%s: permission denied on %s (run as root)",
					  dev->name, u->path);
		default:
			return wgdev_fail(dev, -err, "%s: connect %s: %s",
					  dev->name, u->path, strerror(err));
		}
	}
	*fdp = fd;
	return 0;
}

static int send_all(int fd, const char *p, size_t len)
{
	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* The kept connection if there is one (*kept), else a new one. */
static int conn_get(struct wgdev *dev, int *fdp, bool *kept)
{
	struct uapi *u = dev->priv;

	*kept = u->fd >= 0;
	if (*kept) {
		*fdp = u->fd;
		u->fd = -1;
		return 0;
	}
	return dial(dev, fdp);
}

/*
 * A kept connection that yielded no reply at all (not even a timeout): the
 * implementation closed it, the operation was never read. Closed here;
 * true to send it again on a fresh one (once: a fresh one is not kept).
 */
static bool conn_lost(struct wgdev *dev, int *fdp, bool kept, size_t got, int ret)
{
	if (!kept || got || ret == -ETIMEDOUT)
		return false;
	close(*fdp);
	*fdp = -1;
	dev->err[0] = 0;
	return true;
}

/* After an operation: kept for the next one if it succeeded, else closed. */
static void conn_put(struct wgdev *dev, int fd, int ret)
{
	struct uapi *u = dev->priv;

	if (fd < 0)
		return;
	if (ret || u->fd >= 0)
		close(fd);
	else
		u->fd = fd;
}

/*
 * Read until the reply's terminating blank line (the one after errno=) or
 * EOF. Returns 0 with b holding the text, NUL-terminated.
 */
static int read_reply(struct wgdev *dev, int fd, struct buf *b)
{
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t n;
		int r;

		/* Done at "\n\n" that ends an errno= line. */
		if (b->len >= 2 && b->p[b->len - 1] == '\n' &&
		    b->p[b->len - 2] == '\n') {
			b->p[b->len] = 0;
			char *last = b->p + b->len - 2;

			while (last > b->p && last[-1] != '\n')
				last--;
			if (!strncmp(last, "errno=", 6))
				return 0;
		}
		if (b->len > REPLY_MAX)
			return wgdev_fail(dev, -EPROTO,
					  "%s: malformed reply: larger than %d MiB",
					  dev->name, REPLY_MAX >> 20);
		r = poll(&pfd, 1, REPLY_TIMEOUT_MS);
		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0)
			return wgdev_fail(dev, -ETIMEDOUT,
					  "%s: no reply from %s within %d s",
					  dev->name,
					  ((struct uapi *)dev->priv)->path,
					  REPLY_TIMEOUT_MS / 1000);
		if (buf_reserve(b, 65536 + 1))
			return wgdev_fail(dev, -ENOMEM, "out of memory");
		n = recv(fd, b->p + b->len, 65536, 0);
		if (n < 0 && errno == EINTR)
			continue;
		/*
		 * A server that closes with our request still unread (as
		 * wireguard-go does after a rejected set line) resets the
		 * socket after its reply: that is the end of the reply.
		 */
		if (n < 0 && errno == ECONNRESET)
			n = 0;
		if (n < 0)
			return wgdev_fail(dev, -errno, "%s: reading reply: %s",
					  dev->name, strerror(errno));
		if (memchr(b->p + b->len, 0, (size_t)n))
			return wgdev_fail(dev, -EPROTO,
					  "%s: malformed reply: NUL byte",
					  dev->name);
		if (n == 0) {
			b->p[b->len] = 0;
			return 0; /* the parser reports a missing errno= */
		}
		b->len += (size_t)n;
	}
}

/* errno=N → 0 or -|N| with a message; never trust N's sign. */
static int reply_errno(struct wgdev *dev, const char *value, const char *op)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(value, &end, 10);
	if (errno || end == value || *end)
		return wgdev_fail(dev, -EPROTO, "%s: malformed reply: errno=%.32s",
				  dev->name, value);
	if (v == 0)
		return 0;
	if (v < 0)
		v = -v;
	if (v > 4095)
		v = EPROTO;
	if (v == EINVAL)
		return wgdev_fail(dev, -EINVAL,
				  "%s: %s rejected by the implementation (errno=%s: a peer or value is invalid, or the peer limit was reached)",
				  dev->name, op, value);
	return wgdev_fail(dev, -(int)v, "%s: %s failed: errno=%s (%s)",
			  dev->name, op, value, strerror((int)v));
}

static int parse_u64(const char *s, uint64_t *v)
{
	char *end;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	*v = strtoull(s, &end, 10);
	return errno || *end ? -1 : 0;
}

static int parse_endpoint(const char *s, union wgdev_endpoint *ep)
{
	char host[INET6_ADDRSTRLEN + 16];
	const char *colon;
	uint64_t port;
	size_t hl;

	memset(ep, 0, sizeof(*ep));
	if (*s == '[') {
		const char *close = strchr(s, ']');

		if (!close || close[1] != ':')
			return -1;
		hl = (size_t)(close - s - 1);
		if (hl >= sizeof(host))
			return -1;
		memcpy(host, s + 1, hl);
		host[hl] = 0;
		/* A scope (fe80::1%eth0) is not ours to resolve here: drop it. */
		char *pct = strchr(host, '%');
		if (pct)
			*pct = 0;
		colon = close + 1;
		if (parse_u64(colon + 1, &port) || port > 65535 ||
		    inet_pton(AF_INET6, host, &ep->addr6.sin6_addr) != 1)
			return -1;
		ep->addr6.sin6_family = AF_INET6;
		ep->addr6.sin6_port = htons((uint16_t)port);
		return 0;
	}
	colon = strrchr(s, ':');
	if (!colon)
		return -1;
	hl = (size_t)(colon - s);
	if (hl >= sizeof(host))
		return -1;
	memcpy(host, s, hl);
	host[hl] = 0;
	if (parse_u64(colon + 1, &port) || port > 65535 ||
	    inet_pton(AF_INET, host, &ep->addr4.sin_addr) != 1)
		return -1;
	ep->addr4.sin_family = AF_INET;
	ep->addr4.sin_port = htons((uint16_t)port);
	return 0;
}

static int parse_allowed_ip(const char *s, struct wgdev_allowed_ip *ip)
{
	char addr[INET6_ADDRSTRLEN + 1];
	const char *slash = strchr(s, '/');
	uint64_t cidr;
	size_t len;

	memset(ip, 0, sizeof(*ip));
	if (!slash || (len = (size_t)(slash - s)) >= sizeof(addr))
		return -1;
	memcpy(addr, s, len);
	addr[len] = 0;
	if (parse_u64(slash + 1, &cidr))
		return -1;
	if (inet_pton(AF_INET, addr, &ip->ip4) == 1 && cidr <= 32)
		ip->family = AF_INET;
	else if (inet_pton(AF_INET6, addr, &ip->ip6) == 1 && cidr <= 128)
		ip->family = AF_INET6;
	else
		return -1;
	ip->cidr = (uint8_t)cidr;
	return 0;
}

struct parsed {
	struct wgdev_info *info; /* may be NULL */
	struct wgdev_peer *peers;
	size_t n, cap;
	int want_peers;
};

/*
 * Parse a get=1 reply. Unknown keys are skipped (newer implementations
 * add some); a line without '=', a bad number or key, or a reply that ends
 * before errno= is malformed.
 */
static int parse_get(struct wgdev *dev, char *text, struct parsed *out,
		     const char *op)
{
	struct wgdev_peer *cur = NULL;
	int seen_errno = 0, ret = 0;
	char *line, *next;
	size_t lineno = 0;

	for (line = text; *line; line = next) {
		char *nl = strchr(line, '\n'), *eq, *key, *val;
		uint64_t v;

		if (!nl)
			return wgdev_fail(dev, -EPROTO,
					  "%s: malformed reply: connection closed mid-line %zu",
					  dev->name, lineno + 1);
		*nl = 0;
		next = nl + 1;
		lineno++;
		if (!*line) {
			if (seen_errno)
				break;
			return wgdev_fail(dev, -EPROTO,
					  "%s: malformed reply: blank line %zu before errno=",
					  dev->name, lineno);
		}
		eq = strchr(line, '=');
		if (!eq)
			return wgdev_fail(dev, -EPROTO,
					  "%s: malformed reply: line %zu has no '='",
					  dev->name, lineno);
		*eq = 0;
		key = line;
		val = eq + 1;
		if (seen_errno)
			return wgdev_fail(dev, -EPROTO,
					  "%s: malformed reply: data after errno=",
					  dev->name);
		if (!strcmp(key, "errno")) {
			ret = reply_errno(dev, val, op);
			if (ret)
				return ret;
			seen_errno = 1;
			continue;
		}
		if (!strcmp(key, "public_key")) {
			struct wgdev_peer fresh = { 0 };
			uint8_t k[32];

			if (key_from_hex(k, val))
				goto bad_value;
			if (out->info)
				out->info->n_peers++;
			if (!out->want_peers) {
				cur = NULL;
				continue;
			}
			memcpy(fresh.public_key, k, 32);
			if (wgdev_peers_add(&out->peers, &out->n, &out->cap,
					    &fresh))
				return wgdev_fail(dev, -ENOMEM, "out of memory");
			cur = &out->peers[out->n - 1];
			continue;
		}
		if (!strcmp(key, "private_key") && !cur) {
			if (out->info && key_from_hex(out->info->private_key, val))
				goto bad_value;
			continue;
		}
		if (!strcmp(key, "listen_port") && !cur) {
			if (parse_u64(val, &v) || v > 65535)
				goto bad_value;
			if (out->info)
				out->info->listen_port = (uint16_t)v;
			continue;
		}
		if (!cur)
			continue; /* fwmark and other device keys, or a skipped peer */
		if (!strcmp(key, "preshared_key")) {
			if (key_from_hex(cur->preshared_key, val))
				goto bad_value;
			if (!key_is_zero(cur->preshared_key))
				cur->flags |= WGDEV_PEER_HAS_PSK;
		} else if (!strcmp(key, "endpoint")) {
			if (parse_endpoint(val, &cur->endpoint))
				goto bad_value;
			cur->flags |= WGDEV_PEER_HAS_ENDPOINT;
		} else if (!strcmp(key, "persistent_keepalive_interval")) {
			if (parse_u64(val, &v) || v > 65535)
				goto bad_value;
			cur->persistent_keepalive = (uint16_t)v;
			cur->flags |= WGDEV_PEER_HAS_KEEPALIVE;
		} else if (!strcmp(key, "last_handshake_time_sec")) {
			if (parse_u64(val, &v))
				goto bad_value;
			cur->last_handshake.tv_sec = (time_t)v;
		} else if (!strcmp(key, "last_handshake_time_nsec")) {
			if (parse_u64(val, &v) || v >= 1000000000)
				goto bad_value;
			cur->last_handshake.tv_nsec = (long)v;
		} else if (!strcmp(key, "rx_bytes")) {
			if (parse_u64(val, &cur->rx_bytes))
				goto bad_value;
		} else if (!strcmp(key, "tx_bytes")) {
			if (parse_u64(val, &cur->tx_bytes))
				goto bad_value;
		} else if (!strcmp(key, "allowed_ip")) {
			struct wgdev_allowed_ip ip;

			if (parse_allowed_ip(val, &ip))
				goto bad_value;
			if (wgdev_peer_add_ip(cur, &ip))
				return wgdev_fail(dev, -ENOMEM, "out of memory");
		}
	}
	if (!seen_errno)
		return wgdev_fail(dev, -EPROTO,
				  "%s: malformed reply: the implementation closed the connection before errno=",
				  dev->name);
	return 0;

bad_value:
	return wgdev_fail(dev, -EPROTO,
			  "%s: malformed reply: bad value for %.40s on line %zu",
			  dev->name, line, lineno);
}

static int do_get(struct wgdev *dev, struct parsed *out)
{
	struct buf b = { 0 };
	int fd = -1, ret, serr;
	bool kept;

again:
	ret = conn_get(dev, &fd, &kept);
	if (ret)
		goto out;
	serr = send_all(fd, "get=1\n\n", 7);
	ret = read_reply(dev, fd, &b);
	if (conn_lost(dev, &fd, kept, b.len, ret))
		goto again;
	if (!ret && serr)
		ret = wgdev_fail(dev, serr, "%s: sending get=1: %s", dev->name,
				 strerror(-serr));
	if (ret)
		goto out;
	ret = parse_get(dev, b.p, out, "get");
out:
	conn_put(dev, fd, ret);
	buf_wipe(&b); /* the reply holds the private key */
	return ret;
}

static int uapi_get_info(struct wgdev *dev, struct wgdev_info *info)
{
	struct parsed p = { .info = info };
	int ret;

	snprintf(info->name, sizeof(info->name), "%s", dev->name);
	ret = do_get(dev, &p);
	if (ret)
		goto out;
	/* The UAPI gives only the private key; the public one follows. */
	if (!key_is_zero(info->private_key))
		crypto_scalarmult_curve25519_base(info->public_key,
						  info->private_key);
out:
	if (ret)
		sodium_memzero(info->private_key, 32);
	return ret;
}

static int uapi_list_peers(struct wgdev *dev, struct wgdev_peer **peers,
			   size_t *n)
{
	struct parsed p = { .want_peers = 1 };
	int ret;

	ret = do_get(dev, &p);
	if (ret) {
		wgdev_peers_free(p.peers, p.n);
		return ret;
	}
	*peers = p.peers;
	*n = p.n;
	return 0;
}

int wgdev_uapi_parse(struct wgdev *dev, char *text, struct wgdev_info *info,
		     struct wgdev_peer **peers, size_t *n)
{
	struct parsed p = { .info = info, .want_peers = peers != NULL };
	int ret = parse_get(dev, text, &p, "get");

	if (ret || !peers) {
		wgdev_peers_free(p.peers, p.n);
		return ret;
	}
	*peers = p.peers;
	*n = p.n;
	return 0;
}

static int put(struct buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int put(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int len;

	if (buf_reserve(b, 256))
		return -ENOMEM;
	va_start(ap, fmt);
	len = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	if (len < 0 || (size_t)len >= b->cap - b->len)
		return -EOVERFLOW; /* no line we write is that long */
	b->len += (size_t)len;
	return 0;
}

/*
 * wgdev_check_peers() refused a bad family or cidr before the first byte
 * was sent; put_peer still refuses them so that no caller can make it
 * write a malformed line.
 */
static int put_peer(struct buf *b, const struct wgdev_peer *p)
{
	char hex[KEY_HEX_LEN], addr[INET6_ADDRSTRLEN];
	size_t i;
	int ret;

	key_to_hex(hex, p->public_key);
	ret = put(b, "public_key=%s\n", hex);
	if (p->flags & WGDEV_PEER_REMOVE)
		return ret ? ret : put(b, "remove=true\n");
	if (!ret && (p->flags & WGDEV_PEER_UPDATE_ONLY))
		ret = put(b, "update_only=true\n");
	if (!ret && (p->flags & WGDEV_PEER_HAS_PSK)) {
		key_to_hex(hex, p->preshared_key);
		ret = put(b, "preshared_key=%s\n", hex);
		sodium_memzero(hex, sizeof(hex));
	}
	if (!ret && (p->flags & WGDEV_PEER_HAS_ENDPOINT)) {
		const union wgdev_endpoint *e = &p->endpoint;

		if (e->addr.sa_family == AF_INET) {
			inet_ntop(AF_INET, &e->addr4.sin_addr, addr, sizeof(addr));
			ret = put(b, "endpoint=%s:%u\n", addr,
				  ntohs(e->addr4.sin_port));
		} else if (e->addr.sa_family == AF_INET6) {
			inet_ntop(AF_INET6, &e->addr6.sin6_addr, addr,
				  sizeof(addr));
			ret = put(b, "endpoint=[%s]:%u\n", addr,
				  ntohs(e->addr6.sin6_port));
		} else {
			return -EINVAL;
		}
	}
	if (!ret && (p->flags & WGDEV_PEER_HAS_KEEPALIVE))
		ret = put(b, "persistent_keepalive_interval=%u\n",
			  p->persistent_keepalive);
	if (!ret && (p->flags & WGDEV_PEER_REPLACE_IPS))
		ret = put(b, "replace_allowed_ips=true\n");
	for (i = 0; !ret && i < p->n_allowed_ips; i++) {
		const struct wgdev_allowed_ip *ip = &p->allowed_ips[i];

		if ((ip->family != AF_INET || ip->cidr > 32) &&
		    (ip->family != AF_INET6 || ip->cidr > 128))
			return -EINVAL;
		inet_ntop(ip->family, &ip->ip6, addr, sizeof(addr));
		ret = put(b, "allowed_ip=%s/%u\n", addr, ip->cidr);
	}
	return ret;
}

/*
 * One set=1 transaction for all peers, streamed in chunks; wireguard-go
 * applies lines as it reads them and replies only at the end, so writing
 * everything before reading cannot deadlock. If it gives up early (an
 * error) it closes the connection: a failed write is then expected, and
 * its errno= reply is still waiting to be read.
 */
static int uapi_set_peers(struct wgdev *dev, const struct wgdev_peer *peers,
			  size_t n)
{
	struct parsed none = { 0 };
	struct buf b = { 0 }, r = { 0 };
	int fd = -1, ret, werr;
	size_t i;
	bool kept;

again:
	werr = 0;
	b.len = 0;
	ret = conn_get(dev, &fd, &kept);
	if (ret)
		goto out;
	ret = put(&b, "set=1\n");
	for (i = 0; !ret && i < n; i++) {
		ret = put_peer(&b, &peers[i]);
		if (ret) {
			ret = wgdev_fail(dev, ret == -ENOMEM ? ret : -EINVAL,
					 "%s: peer %zu: %s", dev->name, i,
					 ret == -ENOMEM ? "out of memory" :
							  "invalid endpoint or allowed IP");
			goto out;
		}
		if (b.len >= FLUSH_AT && !werr) {
			werr = send_all(fd, b.p, b.len);
			sodium_memzero(b.p, b.len);
			b.len = 0;
		}
	}
	if (ret)
		goto out;
	if (!werr) {
		ret = put(&b, "\n");
		if (ret)
			goto out;
		werr = send_all(fd, b.p, b.len);
	}
	ret = read_reply(dev, fd, &r);
	if (conn_lost(dev, &fd, kept, r.len, ret)) {
		if (b.p) /* rebuilt on the way round: preshared keys */
			sodium_memzero(b.p, b.cap);
		goto again;
	}
	if (ret)
		goto out;
	ret = parse_get(dev, r.p, &none, "set");
	if (ret == 0 && werr)
		ret = wgdev_fail(dev, werr, "%s: writing set=1: %s", dev->name,
				 strerror(-werr));
out:
	conn_put(dev, fd, ret);
	buf_wipe(&b); /* preshared keys */
	buf_wipe(&r);
	return ret;
}

static int uapi_open(struct wgdev *dev)
{
	struct uapi *u;
	int fd = -1, ret;

	u = calloc(1, sizeof(*u));
	if (!u)
		return wgdev_fail(dev, -ENOMEM, "out of memory");
	if ((size_t)snprintf(u->path, sizeof(u->path), "%s/%s.sock",
			     wgdev_uapi_dir(), dev->name) >= sizeof(u->path)) {
		free(u);
		return wgdev_fail(dev, -ENAMETOOLONG, "%s: socket path too long",
				  dev->name);
	}
	u->fd = -1;
	dev->priv = u;
	ret = dial(dev, &fd);
	if (ret) {
		free(u);
		dev->priv = NULL;
		return ret;
	}
	close(fd);
	return 0;
}

static void uapi_close(struct wgdev *dev)
{
	struct uapi *u = dev->priv;

	if (u && u->fd >= 0)
		close(u->fd);
	free(u);
}

const struct wgdev_ops wgdev_uapi_ops = {
	.open = uapi_open,
	.close = uapi_close,
	.get_info = uapi_get_info,
	.set_peers = uapi_set_peers,
	.list_peers = uapi_list_peers,
};
