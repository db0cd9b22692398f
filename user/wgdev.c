// SPDX-License-Identifier: MIT
/*
 * A WireGuard device behind one interface: backend selection, dispatch and
 * error messages. The backends are user/wgdev_netlink.c (kernel) and
 * user/wgdev_uapi.c (wireguard-go and other userspace implementations);
 * like wireguard-tools' ipc.c, one check picks between them: a UAPI socket
 * named after the device means userspace, anything else is the kernel.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <sodium.h>

#include "wgdev.h"
#include "wgdev_internal.h"

const char *wgdev_uapi_dir(void)
{
	const char *d = getenv("JITWG_UAPI_DIR");

	return d && *d ? d : "/var/run/wireguard";
}

int wgdev_fail(struct wgdev *dev, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(dev->err, sizeof(dev->err), fmt, ap);
	va_end(ap);
	return err;
}

/* wgdev_open()'s failures: the message goes to the caller's buffer. */
static int open_fail(char *errbuf, size_t errlen, int err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int open_fail(char *errbuf, size_t errlen, int err, const char *fmt, ...)
{
	va_list ap;

	if (errbuf && errlen) {
		va_start(ap, fmt);
		vsnprintf(errbuf, errlen, fmt, ap);
		va_end(ap);
	}
	return err;
}

int wgdev_peer_add_ip(struct wgdev_peer *peer,
		      const struct wgdev_allowed_ip *ip)
{
	size_t n = peer->n_allowed_ips;

	/* Capacity is the next power of two: grow when n is one. */
	if (n == 0 || (n & (n - 1)) == 0) {
		size_t cap = n ? 2 * n : 1;
		struct wgdev_allowed_ip *p;

		p = realloc(peer->allowed_ips, cap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		peer->allowed_ips = p;
	}
	peer->allowed_ips[n] = *ip;
	peer->n_allowed_ips = n + 1;
	return 0;
}

int wgdev_peers_add(struct wgdev_peer **peers, size_t *n, size_t *cap,
		    const struct wgdev_peer *peer)
{
	if (*n == *cap) {
		size_t c = *cap ? 2 * *cap : 64;
		struct wgdev_peer *p = realloc(*peers, c * sizeof(*p));

		if (!p)
			return -ENOMEM;
		*peers = p;
		*cap = c;
	}
	(*peers)[(*n)++] = *peer;
	return 0;
}

/*
 * What both implementations refuse, checked here so that neither backend
 * starts a batch it cannot finish: wireguard-go applies a set=1 stream
 * as it reads it (uapi.go IpcSetOperation), the kernel a message's peers
 * one by one (netlink.c wg_set_device) and a large batch spans several
 * messages, so a bad peer found while sending would leave the peers before
 * it applied. A removal carries only its key.
 */
int wgdev_check_peers(struct wgdev *dev, const struct wgdev_peer *peers,
		      size_t n)
{
	size_t i, j;

	for (i = 0; i < n; i++) {
		const struct wgdev_peer *p = &peers[i];
		sa_family_t af = p->endpoint.addr.sa_family;

		if (p->flags & WGDEV_PEER_REMOVE)
			continue;
		if ((p->flags & WGDEV_PEER_HAS_ENDPOINT) && af != AF_INET &&
		    af != AF_INET6)
			return wgdev_fail(dev, -EINVAL,
					  "%s: peer %zu: endpoint is neither IPv4 nor IPv6 (family %u)",
					  dev->name, i, af);
		for (j = 0; j < p->n_allowed_ips; j++) {
			const struct wgdev_allowed_ip *ip = &p->allowed_ips[j];

			if ((ip->family != AF_INET || ip->cidr > 32) &&
			    (ip->family != AF_INET6 || ip->cidr > 128))
				return wgdev_fail(dev, -EINVAL,
						  "%s: peer %zu: allowed IP %zu is invalid (family %u, cidr %u)",
						  dev->name, i, j, ip->family,
						  ip->cidr);
		}
	}
	return 0;
}

/*
 * Every batch reaches its backend through here, checked whole first. The
 * callers pass the caller's peers in the caller's order (a copy, or one
 * entry per key), so the index in a message is the caller's.
 */
static int apply(struct wgdev *dev, const struct wgdev_peer *peers, size_t n)
{
	int ret = wgdev_check_peers(dev, peers, n);

	return ret ? ret : dev->ops->set_peers(dev, peers, n);
}

static int valid_name(const char *name)
{
	size_t len = name ? strlen(name) : 0;

	return len > 0 && len < IFNAMSIZ && !strchr(name, '/') &&
	       strcmp(name, ".") && strcmp(name, "..");
}

int wgdev_open(struct wgdev **out, const char *name,
	       enum wgdev_backend backend, char *errbuf, size_t errlen)
{
	struct wgdev *dev;
	char path[256];
	struct stat st;
	int ret;

	*out = NULL;
	if (errbuf && errlen)
		errbuf[0] = 0;
	if (!valid_name(name))
		return open_fail(errbuf, errlen, -ENODEV,
				 "invalid device name '%s' (1 to %d characters, no '/')",
				 name ? name : "", IFNAMSIZ - 1);
	if (backend == WGDEV_AUTO) {
		snprintf(path, sizeof(path), "%s/%s.sock", wgdev_uapi_dir(),
			 name);
		backend = stat(path, &st) == 0 && S_ISSOCK(st.st_mode) ?
				  WGDEV_UAPI :
				  WGDEV_NETLINK;
	}
	if (backend != WGDEV_NETLINK && backend != WGDEV_UAPI)
		return open_fail(errbuf, errlen, -EINVAL, "unknown backend %d", backend);

	dev = calloc(1, sizeof(*dev));
	if (!dev)
		return open_fail(errbuf, errlen, -ENOMEM, "out of memory");
	dev->backend = backend;
	snprintf(dev->name, sizeof(dev->name), "%s", name);
	dev->ops = backend == WGDEV_NETLINK ? &wgdev_netlink_ops :
					      &wgdev_uapi_ops;
	ret = dev->ops->open(dev);
	if (ret) {
		open_fail(errbuf, errlen, ret, "%s", dev->err);
		free(dev);
		return ret;
	}
	*out = dev;
	return 0;
}

void wgdev_close(struct wgdev *dev)
{
	if (!dev)
		return;
	dev->ops->close(dev);
	free(dev);
}

enum wgdev_backend wgdev_backend(const struct wgdev *dev)
{
	return dev->backend;
}

const char *wgdev_error(const struct wgdev *dev)
{
	return dev->err[0] ? dev->err : "no error";
}

int wgdev_get_info(struct wgdev *dev, struct wgdev_info *info)
{
	memset(info, 0, sizeof(*info));
	dev->err[0] = 0;
	return dev->ops->get_info(dev, info);
}

/*
 * The public flags only; REPLACE_IPS is always on, as the interface
 * promises that allowed IPs replace the old set.
 */
#define PUBLIC_FLAGS                                                      \
	(WGDEV_PEER_HAS_PSK | WGDEV_PEER_HAS_ENDPOINT |                   \
	 WGDEV_PEER_HAS_KEEPALIVE | WGDEV_PEER_REPLACE_IPS)

int wgdev_set_peers(struct wgdev *dev, const struct wgdev_peer *peers,
		    size_t n)
{
	struct wgdev_peer *copy;
	size_t i;
	int ret;

	dev->err[0] = 0;
	if (n == 0)
		return 0;
	copy = malloc(n * sizeof(*copy));
	if (!copy)
		return wgdev_fail(dev, -ENOMEM, "out of memory for %zu peers", n);
	memcpy(copy, peers, n * sizeof(*copy));
	for (i = 0; i < n; i++)
		copy[i].flags = (copy[i].flags & PUBLIC_FLAGS) |
				WGDEV_PEER_REPLACE_IPS;
	ret = apply(dev, copy, n);
	sodium_memzero(copy, n * sizeof(*copy)); /* preshared keys */
	free(copy);
	return ret;
}

/*
 * Peers named by key only, each set with the same flags and keepalive:
 * removals, and the keepalive switches that start or end initiating back.
 */
static int set_keys(struct wgdev *dev, const uint8_t (*keys)[32], size_t n,
		    uint32_t flags, uint16_t keepalive)
{
	struct wgdev_peer *p;
	size_t i;
	int ret;

	if (n == 0)
		return 0;
	p = calloc(n, sizeof(*p));
	if (!p)
		return wgdev_fail(dev, -ENOMEM, "out of memory for %zu peers", n);
	for (i = 0; i < n; i++) {
		memcpy(p[i].public_key, keys[i], 32);
		p[i].flags = flags;
		p[i].persistent_keepalive = keepalive;
	}
	ret = apply(dev, p, n);
	free(p);
	return ret;
}

int wgdev_remove_peers(struct wgdev *dev, const uint8_t (*keys)[32], size_t n)
{
	dev->err[0] = 0;
	return set_keys(dev, keys, n, WGDEV_PEER_REMOVE, 0);
}

int wgdev_list_peers(struct wgdev *dev, struct wgdev_peer **peers, size_t *n)
{
	int ret;

	*peers = NULL;
	*n = 0;
	dev->err[0] = 0;
	ret = dev->ops->list_peers(dev, peers, n);
	/* Both interfaces always send every preshared key: a caller that
	 * needs none never holds them (the flag stays). */
	if (!ret && dev->drop_secrets)
		for (size_t i = 0; i < *n; i++)
			sodium_memzero((*peers)[i].preshared_key, 32);
	return ret;
}

void wgdev_drop_secrets(struct wgdev *dev, bool drop)
{
	dev->drop_secrets = drop;
}

void wgdev_peers_free(struct wgdev_peer *peers, size_t n)
{
	size_t i;

	if (!peers)
		return;
	for (i = 0; i < n; i++)
		free(peers[i].allowed_ips);
	sodium_memzero(peers, n * sizeof(*peers));
	free(peers);
}

/*
 * Role inversion (docs/protocol.md, "Initiating back"): both the kernel
 * (netlink.c set_peer) and wireguard-go (uapi.go, pkaOn) send a keepalive
 * at once when a peer's persistent keepalive goes from 0 to non-zero on an
 * up interface; with no session that keepalive is staged and triggers a
 * handshake initiation towards the endpoint. Both settings travel in one
 * transaction (one netlink message, one UAPI set) so nothing can run in
 * between: first the full peer with keepalive 0, then the same key with
 * only the initiating keepalive.
 */
int wgdev_install_initiate(struct wgdev *dev, const struct wgdev_peer *peer,
			   uint16_t initiate_keepalive)
{
	struct wgdev_peer two[2];
	int ret;

	dev->err[0] = 0;
	if (!(peer->flags & WGDEV_PEER_HAS_ENDPOINT) ||
	    (peer->endpoint.addr.sa_family != AF_INET &&
	     peer->endpoint.addr.sa_family != AF_INET6))
		return wgdev_fail(dev, -EINVAL,
				  "install and initiate needs a peer endpoint");
	if (!initiate_keepalive)
		return wgdev_fail(dev, -EINVAL,
				  "install and initiate needs a non-zero keepalive");
	two[0] = *peer;
	two[0].flags = (peer->flags & PUBLIC_FLAGS) | WGDEV_PEER_REPLACE_IPS |
		       WGDEV_PEER_HAS_KEEPALIVE;
	two[0].persistent_keepalive = 0;
	memset(&two[1], 0, sizeof(two[1]));
	memcpy(two[1].public_key, peer->public_key, 32);
	two[1].flags = WGDEV_PEER_HAS_KEEPALIVE | WGDEV_PEER_UPDATE_ONLY;
	two[1].persistent_keepalive = initiate_keepalive;
	ret = apply(dev, two, 2);
	sodium_memzero(two, sizeof(two));
	return ret;
}

int wgdev_initiate(struct wgdev *dev, const uint8_t (*keys)[32], size_t n,
		   uint16_t initiate_keepalive)
{
	dev->err[0] = 0;
	if (!initiate_keepalive)
		return wgdev_fail(dev, -EINVAL, "initiate needs a non-zero keepalive");
	return set_keys(dev, keys, n, WGDEV_PEER_HAS_KEEPALIVE | WGDEV_PEER_UPDATE_ONLY,
			initiate_keepalive);
}

int wgdev_restore_keepalive(struct wgdev *dev, const uint8_t key[static 32],
			    uint16_t keepalive)
{
	dev->err[0] = 0;
	/* Update only: a peer evicted meanwhile must not come back. */
	return set_keys(dev, (const uint8_t(*)[32])key, 1,
			WGDEV_PEER_HAS_KEEPALIVE | WGDEV_PEER_UPDATE_ONLY, keepalive);
}
