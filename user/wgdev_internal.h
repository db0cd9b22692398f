/* SPDX-License-Identifier: MIT */
/* Private to the wgdev module: the backend table and shared helpers. */
#ifndef JITWG_WGDEV_INTERNAL_H
#define JITWG_WGDEV_INTERNAL_H

#include <stdarg.h>

#include "wgdev.h"

/*
 * Flags only the module itself sets on a peer passed to a backend's
 * set_peers (the public flags never use these bits).
 */
enum {
	WGDEV_PEER_REMOVE = 1u << 30,      /* remove the peer (key only) */
	WGDEV_PEER_UPDATE_ONLY = 1u << 31, /* do not create it if missing */
};

struct wgdev;

struct wgdev_ops {
	int (*open)(struct wgdev *dev);
	void (*close)(struct wgdev *dev);
	int (*get_info)(struct wgdev *dev, struct wgdev_info *info);
	/*
	 * Apply peers with exactly the flags they carry, in order. Called
	 * only with batches that passed wgdev_check_peers().
	 */
	int (*set_peers)(struct wgdev *dev, const struct wgdev_peer *peers,
			 size_t n);
	int (*list_peers)(struct wgdev *dev, struct wgdev_peer **peers,
			  size_t *n);
};

struct wgdev {
	enum wgdev_backend backend;
	char name[IFNAMSIZ];
	char err[256];
	const struct wgdev_ops *ops;
	void *priv; /* the backend's state */
	bool drop_secrets; /* wgdev_drop_secrets() */
};

extern const struct wgdev_ops wgdev_netlink_ops;
extern const struct wgdev_ops wgdev_uapi_ops;

/* Record "<what>: <why>" as the device's last error; returns err. */
int wgdev_fail(struct wgdev *dev, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Append one allowed IP to a peer, growing its array by doubling. */
int wgdev_peer_add_ip(struct wgdev_peer *peer,
		      const struct wgdev_allowed_ip *ip);

/*
 * Append a copy of *peer to an array of *n peers with room for *cap,
 * doubling it when full (64 at first).
 */
int wgdev_peers_add(struct wgdev_peer **peers, size_t *n, size_t *cap,
		    const struct wgdev_peer *peer);

/*
 * Refuse a batch holding a peer that no implementation accepts: an
 * endpoint neither IPv4 nor IPv6, an allowed IP that is not IPv4 /0-32 or
 * IPv6 /0-128. The message names the first such peer by its index in
 * peers: "<dev>: peer <i>: ...". Returns 0 or -EINVAL.
 */
int wgdev_check_peers(struct wgdev *dev, const struct wgdev_peer *peers,
		      size_t n);

/* The UAPI socket directory (JITWG_UAPI_DIR overrides, for tests). */
const char *wgdev_uapi_dir(void);

/*
 * The reply parsers alone, for fuzzing and tests: a get=1 reply (text,
 * NUL-terminated, modified in place) and a stream of WG_CMD_GET_DEVICE dump
 * messages. info or peers may be NULL.
 */
int wgdev_uapi_parse(struct wgdev *dev, char *text, struct wgdev_info *info,
		     struct wgdev_peer **peers, size_t *n);
int wgdev_netlink_parse(struct wgdev *dev, const void *buf, size_t len,
			struct wgdev_info *info, struct wgdev_peer **peers,
			size_t *n);

#endif
