/* SPDX-License-Identifier: MIT */
/*
 * A WireGuard device, behind one interface for both configuration APIs:
 * the kernel's "wireguard" generic netlink family (user/wgdev_netlink.c) and
 * the cross-platform UAPI unix socket of userspace implementations such as
 * wireguard-go (user/wgdev_uapi.c).
 *
 * All functions return 0 or -errno; after a failure wgdev_error() holds a
 * (wgdev_open(): its errbuf holds)
 * one-line message saying what failed (never a key).
 *   -ENODEV      no such device
 *   -EPERM       not allowed (needs CAP_NET_ADMIN / socket permissions)
 *   -EMEDIUMTYPE the device exists but is not WireGuard
 *   -EPROTO      malformed reply from the implementation
 *   -EINVAL      a peer or value rejected: by the check every batch passes
 *                before anything is sent (nothing applied), or by the
 *                implementation
 */
#ifndef JITWG_WGDEV_H
#define JITWG_WGDEV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <net/if.h>
#include <netinet/in.h>

enum wgdev_backend {
	WGDEV_AUTO,    /* UAPI if /var/run/wireguard/<name>.sock exists, else netlink */
	WGDEV_NETLINK,
	WGDEV_UAPI,
};

struct wgdev_allowed_ip {
	uint16_t family; /* AF_INET or AF_INET6 */
	uint8_t cidr;
	union {
		struct in_addr ip4;
		struct in6_addr ip6;
	};
};

union wgdev_endpoint {
	struct sockaddr addr; /* sa_family == AF_UNSPEC: none */
	struct sockaddr_in addr4;
	struct sockaddr_in6 addr6;
};

enum wgdev_peer_flags {
	WGDEV_PEER_HAS_PSK = 1 << 0,       /* preshared_key is set (all-zero clears it) */
	WGDEV_PEER_HAS_ENDPOINT = 1 << 1,
	WGDEV_PEER_HAS_KEEPALIVE = 1 << 2, /* persistent_keepalive is set (0 turns it off) */
	WGDEV_PEER_REPLACE_IPS = 1 << 3,   /* replace allowed IPs (set by default in set_peers) */
};

struct wgdev_peer {
	uint8_t public_key[32];
	uint8_t preshared_key[32];
	union wgdev_endpoint endpoint;
	uint16_t persistent_keepalive; /* seconds, 0 = off */
	uint32_t flags;                /* wgdev_peer_flags, for set */
	/* read back by wgdev_list_peers() */
	struct timespec last_handshake; /* wall clock; 0 = never */
	uint64_t rx_bytes, tx_bytes;
	struct wgdev_allowed_ip *allowed_ips;
	size_t n_allowed_ips;
};

struct wgdev_info {
	char name[IFNAMSIZ];
	uint8_t private_key[32]; /* caller wipes */
	uint8_t public_key[32];
	uint16_t listen_port;
	size_t n_peers;
};

struct wgdev;

/*
 * Open the device (the project's convention, docs/daemon.md): 0 or -errno,
 * and on failure one line saying what to fix in errbuf (may be NULL).
 */
int wgdev_open(struct wgdev **out, const char *name, enum wgdev_backend backend,
	       char *errbuf, size_t errlen);
void wgdev_close(struct wgdev *dev);
enum wgdev_backend wgdev_backend(const struct wgdev *dev);
const char *wgdev_error(const struct wgdev *dev);

int wgdev_get_info(struct wgdev *dev, struct wgdev_info *info);

/*
 * Add or update peers in one call (split into as many messages as needed).
 * Allowed IPs replace the old set. Keys not mentioned are untouched.
 */
int wgdev_set_peers(struct wgdev *dev, const struct wgdev_peer *peers, size_t n);
int wgdev_remove_peers(struct wgdev *dev, const uint8_t (*keys)[32], size_t n);

/* All peers, merged across every dump message. Free with wgdev_peers_free(). */
int wgdev_list_peers(struct wgdev *dev, struct wgdev_peer **peers, size_t *n);
/*
 * drop: listings through this handle carry no preshared key values (wiped as
 * soon as parsed; WGDEV_PEER_HAS_PSK still tells whether one is set), for
 * callers such as a monitor that need none. The replies themselves are
 * received into locked memory wiped after each exchange either way.
 */
void wgdev_drop_secrets(struct wgdev *dev, bool drop);
void wgdev_peers_free(struct wgdev_peer *peers, size_t n);

/*
 * Install and initiate: set the peer (which must carry an endpoint) with
 * persistent keepalive first 0 then `initiate_keepalive` (non-zero): the
 * 0 → non-zero switch makes the implementation send a keepalive at once,
 * which starts a handshake towards the endpoint (role inversion).
 * The peer's own persistent_keepalive (flags HAS_KEEPALIVE) is what
 * wgdev_restore_keepalive() puts back once the handshake is done.
 */
int wgdev_install_initiate(struct wgdev *dev, const struct wgdev_peer *peer,
			   uint16_t initiate_keepalive);
int wgdev_restore_keepalive(struct wgdev *dev, const uint8_t key[static 32],
			    uint16_t keepalive);

/*
 * The second half of install and initiate for peers installed already with
 * keepalive 0 (a batch's install): set only their keepalive to
 * `initiate_keepalive`, update-only (a peer removed meanwhile is not
 * recreated), in one call. Each 0 → non-zero switch starts a handshake.
 */
int wgdev_initiate(struct wgdev *dev, const uint8_t (*keys)[32], size_t n,
		   uint16_t initiate_keepalive);

#endif
