// SPDX-License-Identifier: MIT
/*
 * The kernel's "wireguard" generic netlink family (<linux/wireguard.h>,
 * drivers/net/wireguard/netlink.c), with libmnl.
 *
 * WG_CMD_GET_DEVICE is dump-only and spans as many messages as the peers
 * need; a peer whose allowed IPs did not fit continues at the start of the
 * next message, repeating only its public key (netlink.c get_peer with a
 * saved allowedips cursor). Readers that stop at the first message, or
 * that count the continuation as a new peer, lose or duplicate peers.
 * WG_CMD_SET_DEVICE is split the same way: each message carries whole
 * peers until full, and a peer cut inside its allowed IPs is repeated in
 * the next message with only the remaining IPs and without
 * WGPEER_F_REPLACE_ALLOWEDIPS (which would drop the first part).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/genetlink.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <linux/wireguard.h>

#include <libmnl/libmnl.h>
#include <sodium.h>

#include "wgdev.h"
#include "wgdev_internal.h"

enum {
	/*
	 * Set messages stay well below 64 KiB: nla_len is 16 bits, and the
	 * WGDEVICE_A_PEERS nest spans nearly the whole message.
	 */
	SET_MSG_SIZE = 32 * 1024,
	/* Dump messages are at most 32 KiB (netlink_dump's largest skb). */
	RECV_SIZE = 64 * 1024,
	DUMP_RETRIES = 8, /* restarts after NLM_F_DUMP_INTR */
};

struct nl {
	struct mnl_socket *sock;
	uint32_t portid, seq;
	uint16_t family;
	char *buf; /* SET_MSG_SIZE + RECV_SIZE */
};

/* The kernel's errors, in the words of wgdev.h. */
static int nl_error(struct wgdev *dev, int err, const char *op)
{
	switch (err) {
	case ENODEV:
		return wgdev_fail(dev, -ENODEV, "%s: no such device", dev->name);
	case EOPNOTSUPP:
		/* netlink.c lookup_interface: the link's kind is not ours. */
		return wgdev_fail(dev, -EMEDIUMTYPE,
				  "%s: not a WireGuard device", dev->name);
	case EPERM:
	case EACCES:
		return wgdev_fail(dev, -EPERM,
				  "%s: %s: permission denied (needs CAP_NET_ADMIN)",
				  dev->name, op);
	case EINVAL:
		return wgdev_fail(dev, -EINVAL,
				  "%s: %s: rejected by the kernel (invalid peer or value)",
				  dev->name, op);
	case E2BIG:
	case ENOSPC:
		return wgdev_fail(dev, -err,
				  "%s: %s: the kernel's peer limit was reached",
				  dev->name, op);
	default:
		return wgdev_fail(dev, -err, "%s: %s: %s", dev->name, op,
				  strerror(err));
	}
}

/*
 * libmnl's NLMSG_DONE handler ignores the error a dump may end with
 * (netlink_dump puts it in the DONE payload); this one reports it.
 */
static int cb_done(const struct nlmsghdr *nlh, void *data)
{
	(void)data;
	if (nlh->nlmsg_len >= mnl_nlmsg_size(sizeof(int))) {
		int e = *(const int *)mnl_nlmsg_get_payload(nlh);

		if (e) {
			errno = e < 0 && e > -4096 ? -e : EPROTO;
			return MNL_CB_ERROR;
		}
	}
	return MNL_CB_STOP;
}

static int cb_error(const struct nlmsghdr *nlh, void *data)
{
	const struct nlmsgerr *err = mnl_nlmsg_get_payload(nlh);

	(void)data;
	if (nlh->nlmsg_len < mnl_nlmsg_size(sizeof(*err))) {
		errno = EBADMSG;
		return MNL_CB_ERROR;
	}
	if (err->error == 0)
		return MNL_CB_STOP;
	errno = err->error < 0 && err->error > -4096 ? -err->error : EPROTO;
	return MNL_CB_ERROR;
}

static int cb_noop(const struct nlmsghdr *nlh, void *data)
{
	(void)nlh;
	(void)data;
	return MNL_CB_OK;
}

static mnl_cb_t ctl_cbs[NLMSG_MIN_TYPE] = {
	[NLMSG_NOOP] = cb_noop,
	[NLMSG_ERROR] = cb_error,
	[NLMSG_DONE] = cb_done,
	[NLMSG_OVERRUN] = cb_noop,
};

/*
 * Every message's length lies inside the buffer. libmnl 1.0.4 compares
 * nlmsg_len as a signed int, so a length above 2^31 would pass its check:
 * refuse such a stream before it reads one.
 */
static int stream_ok(const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len >= sizeof(struct nlmsghdr)) {
		const struct nlmsghdr *nlh = (const void *)p;
		size_t step = MNL_ALIGN(nlh->nlmsg_len);

		if (nlh->nlmsg_len < sizeof(*nlh) || nlh->nlmsg_len > len)
			return 0;
		if (step >= len)
			return 1;
		p += step;
		len -= step;
	}
	return len == 0;
}

/* Does buf (a well-formed stream) hold the last message of request seq? */
static int has_end(const char *buf, size_t len, uint32_t seq)
{
	const struct nlmsghdr *nlh = (const struct nlmsghdr *)buf;
	int left = (int)len;

	for (; mnl_nlmsg_ok(nlh, left); nlh = mnl_nlmsg_next(nlh, &left))
		if (nlh->nlmsg_seq == seq &&
		    (nlh->nlmsg_type == NLMSG_DONE || nlh->nlmsg_type == NLMSG_ERROR))
			return 1;
	return 0;
}

/*
 * Send one request and run cb over every reply message until the ack or
 * the end of the dump. Returns 0 or -errno (errno from the kernel;
 * -EINTR for a dump the device changed under, NLM_F_DUMP_INTR, which
 * libmnl reports before cb sees it).
 */
static int transact_once(struct mnl_socket *sock, char *rbuf, struct nlmsghdr *nlh,
			 uint32_t portid, mnl_cb_t cb, void *data);

static int transact(struct mnl_socket *sock, char *rbuf, struct nlmsghdr *nlh,
		    uint32_t portid, mnl_cb_t cb, void *data)
{
	int ret = transact_once(sock, rbuf, nlh, portid, cb, data);

	/* A dump's messages hold the private key and preshared keys. */
	sodium_memzero(rbuf, RECV_SIZE);
	return ret;
}

static int transact_once(struct mnl_socket *sock, char *rbuf, struct nlmsghdr *nlh,
			 uint32_t portid, mnl_cb_t cb, void *data)
{
	uint32_t seq = nlh->nlmsg_seq;
	ssize_t len;
	int ret;

	if (mnl_socket_sendto(sock, nlh, nlh->nlmsg_len) < 0)
		return -errno;
	do {
		len = mnl_socket_recvfrom(sock, rbuf, RECV_SIZE);
		if (len < 0)
			return -errno;
		if (!stream_ok(rbuf, (size_t)len))
			return -EPROTO;
		ret = mnl_cb_run2(rbuf, (size_t)len, seq, portid, cb, data,
				  ctl_cbs, NLMSG_MIN_TYPE);
	} while (ret > MNL_CB_STOP);
	if (ret < 0) {
		int err = errno ? errno : EPROTO;

		/*
		 * A dump stopped before its end: the kernel still holds the
		 * rest for this socket, and would refuse the next dump
		 * (EBUSY) or hand its messages to the next request. Read it
		 * to the end.
		 */
		if ((nlh->nlmsg_flags & NLM_F_DUMP) == NLM_F_DUMP &&
		    !has_end(rbuf, (size_t)len, seq))
			while ((len = mnl_socket_recvfrom(sock, rbuf, RECV_SIZE)) > 0 &&
			       !has_end(rbuf, (size_t)len, seq))
				;
		return -err;
	}
	return 0;
}

static struct nlmsghdr *genl_msg(struct nl *nl, char *buf, uint8_t cmd,
				 uint16_t flags)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct genlmsghdr *g;

	nlh->nlmsg_type = nl->family;
	nlh->nlmsg_flags = NLM_F_REQUEST | flags;
	nlh->nlmsg_seq = ++nl->seq;
	g = mnl_nlmsg_put_extra_header(nlh, sizeof(*g));
	g->cmd = cmd;
	g->version = WG_GENL_VERSION;
	return nlh;
}

/* ---- opening: the link's kind, then the family ---- */

static int kind_attr_cb(const struct nlattr *a, void *data)
{
	if (mnl_attr_get_type(a) == IFLA_INFO_KIND &&
	    mnl_attr_validate(a, MNL_TYPE_STRING) == 0)
		snprintf(data, IFNAMSIZ, "%s", mnl_attr_get_str(a));
	return MNL_CB_OK;
}

static int link_attr_cb(const struct nlattr *a, void *data)
{
	if (mnl_attr_get_type(a) == IFLA_LINKINFO)
		mnl_attr_parse_nested(a, kind_attr_cb, data);
	return MNL_CB_OK;
}

static int link_cb(const struct nlmsghdr *nlh, void *data)
{
	if (nlh->nlmsg_type == RTM_NEWLINK)
		mnl_attr_parse(nlh, sizeof(struct ifinfomsg), link_attr_cb, data);
	return MNL_CB_OK;
}

/* The link's rtnetlink kind ("wireguard", "veth", "" for loopback). */
static int link_kind(struct wgdev *dev, char *rbuf, char kind[IFNAMSIZ])
{
	char req[MNL_SOCKET_BUFFER_SIZE];
	struct mnl_socket *rt;
	struct nlmsghdr *nlh;
	struct ifinfomsg *ifm;
	int ret;

	kind[0] = 0;
	rt = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
	if (!rt)
		return wgdev_fail(dev, -errno, "rtnetlink socket: %s",
				  strerror(errno));
	if (mnl_socket_bind(rt, 0, MNL_SOCKET_AUTOPID) < 0) {
		ret = wgdev_fail(dev, -errno, "rtnetlink bind: %s",
				 strerror(errno));
		goto out;
	}
	nlh = mnl_nlmsg_put_header(req);
	nlh->nlmsg_type = RTM_GETLINK;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	nlh->nlmsg_seq = 1;
	ifm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifm));
	ifm->ifi_family = AF_UNSPEC;
	mnl_attr_put_strz(nlh, IFLA_IFNAME, dev->name);
	ret = transact(rt, rbuf, nlh, mnl_socket_get_portid(rt), link_cb, kind);
	if (ret == -ENODEV)
		ret = wgdev_fail(dev, -ENODEV, "%s: no such device", dev->name);
	else if (ret)
		ret = wgdev_fail(dev, ret, "%s: reading the link: %s", dev->name,
				 strerror(-ret));
out:
	mnl_socket_close(rt);
	return ret;
}

static int family_attr_cb(const struct nlattr *a, void *data)
{
	if (mnl_attr_get_type(a) == CTRL_ATTR_FAMILY_ID &&
	    mnl_attr_validate(a, MNL_TYPE_U16) == 0)
		*(uint16_t *)data = mnl_attr_get_u16(a);
	return MNL_CB_OK;
}

static int family_cb(const struct nlmsghdr *nlh, void *data)
{
	mnl_attr_parse(nlh, sizeof(struct genlmsghdr), family_attr_cb, data);
	return MNL_CB_OK;
}

static int nl_open(struct wgdev *dev)
{
	char kind[IFNAMSIZ];
	struct nlmsghdr *nlh;
	struct nl *nl;
	int ret;

	nl = calloc(1, sizeof(*nl));
	if (!nl)
		return wgdev_fail(dev, -ENOMEM, "out of memory");
	/* Replies carry the private key and every preshared key: locked,
	 * guarded memory, wiped after each exchange (transact). */
	nl->buf = sodium_malloc(SET_MSG_SIZE + RECV_SIZE);
	if (!nl->buf) {
		ret = wgdev_fail(dev, -ENOMEM, "out of memory");
		goto err_free;
	}
	dev->priv = nl;
	ret = link_kind(dev, nl->buf + SET_MSG_SIZE, kind);
	if (ret)
		goto err_free;
	if (strcmp(kind, "wireguard")) {
		ret = wgdev_fail(dev, -EMEDIUMTYPE,
				 "%s: not a WireGuard device (link kind '%s')",
				 dev->name, kind[0] ? kind : "none");
		goto err_free;
	}

	nl->sock = mnl_socket_open2(NETLINK_GENERIC, SOCK_CLOEXEC);
	if (!nl->sock) {
		ret = wgdev_fail(dev, -errno, "generic netlink socket: %s",
				 strerror(errno));
		goto err_free;
	}
	if (mnl_socket_bind(nl->sock, 0, MNL_SOCKET_AUTOPID) < 0) {
		ret = wgdev_fail(dev, -errno, "generic netlink bind: %s",
				 strerror(errno));
		goto err_close;
	}
	nl->portid = mnl_socket_get_portid(nl->sock);
	nl->seq = (uint32_t)time(NULL);

	nl->family = GENL_ID_CTRL;
	nlh = genl_msg(nl, nl->buf, CTRL_CMD_GETFAMILY, NLM_F_ACK);
	((struct genlmsghdr *)mnl_nlmsg_get_payload(nlh))->version = 1;
	mnl_attr_put_strz(nlh, CTRL_ATTR_FAMILY_NAME, WG_GENL_NAME);
	nl->family = 0;
	ret = transact(nl->sock, nl->buf + SET_MSG_SIZE, nlh, nl->portid,
		       family_cb, &nl->family);
	if (ret == -ENOENT || (!ret && !nl->family)) {
		ret = wgdev_fail(dev, -EMEDIUMTYPE,
				 "%s: the kernel has no WireGuard (modprobe wireguard)",
				 dev->name);
		goto err_close;
	}
	if (ret) {
		ret = wgdev_fail(dev, ret, "resolving the %s netlink family: %s",
				 WG_GENL_NAME, strerror(-ret));
		goto err_close;
	}
	return 0;

err_close:
	mnl_socket_close(nl->sock);
err_free:
	sodium_free(nl->buf);
	free(nl);
	dev->priv = NULL;
	return ret;
}

static void nl_close(struct wgdev *dev)
{
	struct nl *nl = dev->priv;

	if (!nl)
		return;
	mnl_socket_close(nl->sock);
	sodium_free(nl->buf); /* wipes */
	free(nl);
}

/* ---- reading: one dump, merged ---- */

struct dump {
	struct wgdev *dev;
	struct wgdev_info *info; /* may be NULL */
	int want_peers;
	struct wgdev_peer *peers;
	size_t n, cap;
	struct wgdev_peer cur; /* the peer being parsed */
	uint8_t last_key[32];  /* of the last peer committed, if have_last */
	int have_last;
	int bad;               /* a malformed attribute was seen */
	int intr;              /* NLM_F_DUMP_INTR: the device changed */
};

static int bad_attr(struct dump *d)
{
	d->bad = 1;
	return MNL_CB_ERROR;
}

static int allowedip_cb(const struct nlattr *a, void *data)
{
	struct wgdev_allowed_ip *ip = data;
	size_t len = mnl_attr_get_payload_len(a);

	switch (mnl_attr_get_type(a)) {
	case WGALLOWEDIP_A_FAMILY:
		if (mnl_attr_validate(a, MNL_TYPE_U16))
			return MNL_CB_ERROR;
		ip->family = mnl_attr_get_u16(a);
		break;
	case WGALLOWEDIP_A_IPADDR:
		if (len != 4 && len != 16)
			return MNL_CB_ERROR;
		memcpy(&ip->ip6, mnl_attr_get_payload(a), len);
		break;
	case WGALLOWEDIP_A_CIDR_MASK:
		if (mnl_attr_validate(a, MNL_TYPE_U8))
			return MNL_CB_ERROR;
		ip->cidr = mnl_attr_get_u8(a);
		break;
	}
	return MNL_CB_OK;
}

static int allowedips_cb(const struct nlattr *a, void *data)
{
	struct dump *d = data;
	struct wgdev_allowed_ip ip;

	memset(&ip, 0, sizeof(ip));
	if (mnl_attr_parse_nested(a, allowedip_cb, &ip) < 0)
		return bad_attr(d);
	if ((ip.family != AF_INET || ip.cidr > 32) &&
	    (ip.family != AF_INET6 || ip.cidr > 128))
		return bad_attr(d);
	if (!d->want_peers)
		return MNL_CB_OK;
	if (wgdev_peer_add_ip(&d->cur, &ip))
		return MNL_CB_ERROR; /* errno is ENOMEM */
	return MNL_CB_OK;
}

static int peer_attr_cb(const struct nlattr *a, void *data)
{
	struct dump *d = data;
	struct wgdev_peer *p = &d->cur;
	size_t len = mnl_attr_get_payload_len(a);
	const void *v = mnl_attr_get_payload(a);

	switch (mnl_attr_get_type(a)) {
	case WGPEER_A_PUBLIC_KEY:
		if (len != 32)
			return bad_attr(d);
		memcpy(p->public_key, v, 32);
		break;
	case WGPEER_A_PRESHARED_KEY:
		if (len != 32)
			return bad_attr(d);
		memcpy(p->preshared_key, v, 32);
		if (!sodium_is_zero(p->preshared_key, 32))
			p->flags |= WGDEV_PEER_HAS_PSK;
		break;
	case WGPEER_A_ENDPOINT:
		if (len == sizeof(struct sockaddr_in) &&
		    ((const struct sockaddr *)v)->sa_family == AF_INET)
			memcpy(&p->endpoint.addr4, v, len);
		else if (len == sizeof(struct sockaddr_in6) &&
			 ((const struct sockaddr *)v)->sa_family == AF_INET6)
			memcpy(&p->endpoint.addr6, v, len);
		else
			return bad_attr(d);
		p->flags |= WGDEV_PEER_HAS_ENDPOINT;
		break;
	case WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL:
		if (mnl_attr_validate(a, MNL_TYPE_U16))
			return bad_attr(d);
		p->persistent_keepalive = mnl_attr_get_u16(a);
		p->flags |= WGDEV_PEER_HAS_KEEPALIVE;
		break;
	case WGPEER_A_LAST_HANDSHAKE_TIME: {
		/* struct __kernel_timespec: two 64-bit fields */
		int64_t ts[2];

		if (len != sizeof(ts))
			return bad_attr(d);
		memcpy(ts, v, sizeof(ts));
		p->last_handshake.tv_sec = (time_t)ts[0];
		p->last_handshake.tv_nsec = (long)ts[1];
		break;
	}
	case WGPEER_A_RX_BYTES:
		if (mnl_attr_validate(a, MNL_TYPE_U64))
			return bad_attr(d);
		p->rx_bytes = mnl_attr_get_u64(a);
		break;
	case WGPEER_A_TX_BYTES:
		if (mnl_attr_validate(a, MNL_TYPE_U64))
			return bad_attr(d);
		p->tx_bytes = mnl_attr_get_u64(a);
		break;
	case WGPEER_A_ALLOWEDIPS:
		return mnl_attr_parse_nested(a, allowedips_cb, d) < 0 ?
			       MNL_CB_ERROR :
			       MNL_CB_OK;
	}
	return MNL_CB_OK;
}

/*
 * Keep d->cur: merged into the last peer if it continues it, else new. The
 * last key is kept apart from d->peers, which stays empty when only the
 * count is wanted (wgdev_get_info): a continued peer is still one peer.
 */
static int commit_peer(struct dump *d, int first_in_message)
{
	struct wgdev_peer *last = d->n ? &d->peers[d->n - 1] : NULL;
	struct wgdev_peer *cur = &d->cur;
	size_t i;

	if (first_in_message && d->have_last &&
	    !memcmp(d->last_key, cur->public_key, 32)) {
		for (i = 0; last && i < cur->n_allowed_ips; i++)
			if (wgdev_peer_add_ip(last, &cur->allowed_ips[i]))
				return -ENOMEM;
		free(cur->allowed_ips);
		memset(cur, 0, sizeof(*cur));
		return 0;
	}
	memcpy(d->last_key, cur->public_key, 32);
	d->have_last = 1;
	if (d->info)
		d->info->n_peers++;
	if (!d->want_peers)
		return 0;
	if (wgdev_peers_add(&d->peers, &d->n, &d->cap, cur))
		return -ENOMEM;
	memset(cur, 0, sizeof(*cur));
	return 0;
}

struct peers_walk {
	struct dump *d;
	int first;
	int err;
};

static int peer_cb(const struct nlattr *a, void *data)
{
	struct peers_walk *w = data;
	struct dump *d = w->d;
	int ret;

	memset(&d->cur, 0, sizeof(d->cur));
	if (mnl_attr_parse_nested(a, peer_attr_cb, d) < 0) {
		free(d->cur.allowed_ips);
		memset(&d->cur, 0, sizeof(d->cur));
		if (!d->bad)
			w->err = -ENOMEM;
		return MNL_CB_ERROR;
	}
	if (sodium_is_zero(d->cur.public_key, 32)) {
		free(d->cur.allowed_ips);
		memset(&d->cur, 0, sizeof(d->cur));
		return bad_attr(d);
	}
	ret = commit_peer(d, w->first);
	w->first = 0;
	if (ret) {
		free(d->cur.allowed_ips);
		memset(&d->cur, 0, sizeof(d->cur));
		w->err = ret;
		return MNL_CB_ERROR;
	}
	return MNL_CB_OK;
}

static int device_attr_cb(const struct nlattr *a, void *data)
{
	struct peers_walk *w = data;
	struct dump *d = w->d;
	size_t len = mnl_attr_get_payload_len(a);

	switch (mnl_attr_get_type(a)) {
	case WGDEVICE_A_PRIVATE_KEY:
		if (len != 32)
			return bad_attr(d);
		if (d->info)
			memcpy(d->info->private_key, mnl_attr_get_payload(a), 32);
		break;
	case WGDEVICE_A_PUBLIC_KEY:
		if (len != 32)
			return bad_attr(d);
		if (d->info)
			memcpy(d->info->public_key, mnl_attr_get_payload(a), 32);
		break;
	case WGDEVICE_A_LISTEN_PORT:
		if (mnl_attr_validate(a, MNL_TYPE_U16))
			return bad_attr(d);
		if (d->info)
			d->info->listen_port = mnl_attr_get_u16(a);
		break;
	case WGDEVICE_A_PEERS:
		return mnl_attr_parse_nested(a, peer_cb, w) < 0 ? MNL_CB_ERROR :
								 MNL_CB_OK;
	}
	return MNL_CB_OK;
}

static int dump_cb(const struct nlmsghdr *nlh, void *data)
{
	struct dump *d = data;
	struct peers_walk w = { .d = d, .first = 1 };

	if (nlh->nlmsg_flags & NLM_F_DUMP_INTR)
		d->intr = 1;
	if (mnl_attr_parse(nlh, sizeof(struct genlmsghdr), device_attr_cb, &w) <
	    0) {
		if (w.err)
			errno = -w.err;
		else if (d->bad)
			errno = EPROTO;
		return MNL_CB_ERROR;
	}
	return MNL_CB_OK;
}

static void dump_reset(struct dump *d, int wipe_info)
{
	wgdev_peers_free(d->peers, d->n);
	free(d->cur.allowed_ips);
	d->peers = NULL;
	d->n = d->cap = 0;
	memset(&d->cur, 0, sizeof(d->cur));
	d->bad = d->intr = 0;
	if (d->info && wipe_info) {
		sodium_memzero(d->info->private_key, 32);
		d->info->n_peers = 0;
	}
}

static int run_dump(struct wgdev *dev, struct dump *d)
{
	struct nl *nl = dev->priv;
	struct nlmsghdr *nlh;
	int ret, tries;

	for (tries = 0; tries < DUMP_RETRIES; tries++) {
		nlh = genl_msg(nl, nl->buf, WG_CMD_GET_DEVICE,
			       NLM_F_DUMP | NLM_F_ACK);
		mnl_attr_put_strz(nlh, WGDEVICE_A_IFNAME, dev->name);
		errno = 0;
		ret = transact(nl->sock, nl->buf + SET_MSG_SIZE, nlh,
			       nl->portid, dump_cb, d);
		if (ret == -EPROTO || d->bad)
			return wgdev_fail(dev, -EPROTO,
					  "%s: malformed reply: bad attribute in the device dump",
					  dev->name);
		if (ret == -EINTR || (!ret && d->intr)) {
			/* Changed while dumping: the merge may be inconsistent. */
			dump_reset(d, 1);
			continue;
		}
		if (ret)
			return nl_error(dev, -ret, "reading the device");
		return 0;
	}
	return wgdev_fail(dev, -EAGAIN,
			  "%s: the device kept changing during %d dumps",
			  dev->name, DUMP_RETRIES);
}

static int nl_get_info(struct wgdev *dev, struct wgdev_info *info)
{
	struct dump d = { .dev = dev, .info = info };
	int ret;

	snprintf(info->name, sizeof(info->name), "%s", dev->name);
	ret = run_dump(dev, &d);
	dump_reset(&d, ret != 0);
	return ret;
}

static int nl_list_peers(struct wgdev *dev, struct wgdev_peer **peers,
			 size_t *n)
{
	struct dump d = { .dev = dev, .want_peers = 1 };
	int ret;

	ret = run_dump(dev, &d);
	if (ret) {
		dump_reset(&d, 1);
		return ret;
	}
	free(d.cur.allowed_ips);
	*peers = d.peers;
	*n = d.n;
	return 0;
}

int wgdev_netlink_parse(struct wgdev *dev, const void *buf, size_t len,
			struct wgdev_info *info, struct wgdev_peer **peers,
			size_t *n)
{
	struct dump d = { .dev = dev, .info = info, .want_peers = !!peers };
	int ret;

	if (!stream_ok(buf, len))
		return wgdev_fail(dev, -EPROTO, "malformed dump");
	errno = 0;
	ret = mnl_cb_run2(buf, len, 0, 0, dump_cb, &d, ctl_cbs,
			  NLMSG_MIN_TYPE);
	if (ret < 0 || d.bad) {
		dump_reset(&d, 1);
		return wgdev_fail(dev, d.bad || !errno ? -EPROTO : -errno,
				  "malformed dump");
	}
	free(d.cur.allowed_ips);
	if (peers) {
		*peers = d.peers;
		*n = d.n;
	} else {
		wgdev_peers_free(d.peers, d.n);
	}
	return 0;
}

/* ---- writing: peers split across as many messages as needed ---- */

static int put_peer_head(struct nlmsghdr *nlh, const struct wgdev_peer *p,
			 size_t first_ip)
{
	uint32_t flags = 0;

	if (!mnl_attr_put_check(nlh, SET_MSG_SIZE, WGPEER_A_PUBLIC_KEY, 32,
				p->public_key))
		return -1;
	if (p->flags & WGDEV_PEER_REMOVE)
		flags |= WGPEER_F_REMOVE_ME;
	if (p->flags & WGDEV_PEER_UPDATE_ONLY)
		flags |= WGPEER_F_UPDATE_ONLY;
	if (first_ip) {
		/* A continuation: only the remaining allowed IPs. */
		return flags && !mnl_attr_put_u32_check(nlh, SET_MSG_SIZE,
							WGPEER_A_FLAGS, flags) ?
			       -1 :
			       0;
	}
	if (p->flags & WGDEV_PEER_REPLACE_IPS)
		flags |= WGPEER_F_REPLACE_ALLOWEDIPS;
	if (flags &&
	    !mnl_attr_put_u32_check(nlh, SET_MSG_SIZE, WGPEER_A_FLAGS, flags))
		return -1;
	if (p->flags & WGDEV_PEER_REMOVE)
		return 0;
	if ((p->flags & WGDEV_PEER_HAS_PSK) &&
	    !mnl_attr_put_check(nlh, SET_MSG_SIZE, WGPEER_A_PRESHARED_KEY, 32,
				p->preshared_key))
		return -1;
	if (p->flags & WGDEV_PEER_HAS_ENDPOINT) {
		size_t len = p->endpoint.addr.sa_family == AF_INET ?
				     sizeof(struct sockaddr_in) :
				     sizeof(struct sockaddr_in6);

		if (!mnl_attr_put_check(nlh, SET_MSG_SIZE, WGPEER_A_ENDPOINT,
					len, &p->endpoint))
			return -1;
	}
	if ((p->flags & WGDEV_PEER_HAS_KEEPALIVE) &&
	    !mnl_attr_put_u16_check(nlh, SET_MSG_SIZE,
				    WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL,
				    p->persistent_keepalive))
		return -1;
	return 0;
}

static int put_ip(struct nlmsghdr *nlh, const struct wgdev_allowed_ip *ip)
{
	struct nlattr *nest = mnl_attr_nest_start_check(nlh, SET_MSG_SIZE, 0);

	if (!nest)
		return -1;
	if (!mnl_attr_put_u16_check(nlh, SET_MSG_SIZE, WGALLOWEDIP_A_FAMILY,
				    ip->family) ||
	    !mnl_attr_put_check(nlh, SET_MSG_SIZE, WGALLOWEDIP_A_IPADDR,
				ip->family == AF_INET ? 4 : 16, &ip->ip6) ||
	    !mnl_attr_put_u8_check(nlh, SET_MSG_SIZE, WGALLOWEDIP_A_CIDR_MASK,
				   ip->cidr)) {
		mnl_attr_nest_cancel(nlh, nest);
		return -1;
	}
	mnl_attr_nest_end(nlh, nest);
	return 0;
}

/*
 * The batch was checked whole (wgdev_check_peers): every family is AF_INET
 * or AF_INET6, so nothing the kernel would refuse halfway is sent.
 */
static int nl_set_peers(struct wgdev *dev, const struct wgdev_peer *peers,
			size_t n)
{
	struct nl *nl = dev->priv;
	size_t i = 0, ip = 0;
	int ret;

	while (i < n) {
		struct nlmsghdr *nlh = genl_msg(nl, nl->buf, WG_CMD_SET_DEVICE,
						NLM_F_ACK);
		struct nlattr *all, *peer, *ips;
		size_t start_i = i, start_ip = ip;

		mnl_attr_put_strz(nlh, WGDEVICE_A_IFNAME, dev->name);
		all = mnl_attr_nest_start(nlh, WGDEVICE_A_PEERS);
		for (; i < n; i++, ip = 0) {
			const struct wgdev_peer *p = &peers[i];
			size_t ip0 = ip;

			peer = mnl_attr_nest_start_check(nlh, SET_MSG_SIZE, 0);
			if (!peer)
				break;
			if (put_peer_head(nlh, p, ip)) {
				mnl_attr_nest_cancel(nlh, peer);
				break;
			}
			if (ip < p->n_allowed_ips && !(p->flags & WGDEV_PEER_REMOVE)) {
				ips = mnl_attr_nest_start_check(
					nlh, SET_MSG_SIZE, WGPEER_A_ALLOWEDIPS);
				if (!ips) {
					mnl_attr_nest_cancel(nlh, peer);
					break;
				}
				for (; ip < p->n_allowed_ips; ip++)
					if (put_ip(nlh, &p->allowed_ips[ip]))
						break;
				if (ip == ip0 && i != start_i) {
					/*
					 * Not one IP fit: send the whole peer
					 * next, rather than a replace that
					 * leaves it without IPs in between.
					 */
					mnl_attr_nest_cancel(nlh, peer);
					break;
				}
				mnl_attr_nest_end(nlh, ips);
				if (ip < p->n_allowed_ips) {
					/* Full mid-peer: the rest goes next. */
					mnl_attr_nest_end(nlh, peer);
					break;
				}
			}
			mnl_attr_nest_end(nlh, peer);
		}
		mnl_attr_nest_end(nlh, all);
		if (i == start_i && ip == start_ip) {
			sodium_memzero(nl->buf, nlh->nlmsg_len);
			return wgdev_fail(dev, -E2BIG,
					  "%s: peer %zu does not fit in a netlink message",
					  dev->name, i);
		}
		ret = transact(nl->sock, nl->buf + SET_MSG_SIZE, nlh,
			       nl->portid, NULL, NULL);
		sodium_memzero(nl->buf, nlh->nlmsg_len); /* preshared keys */
		if (ret) {
			char why[sizeof(dev->err)];
			int err = nl_error(dev, -ret, "setting peers");

			/* Say which peers were not applied. */
			snprintf(why, sizeof(why), "%s", dev->err);
			return wgdev_fail(dev, err,
					  "%s (peers %zu to %zu of %zu not applied)",
					  why, start_i, n - 1, n);
		}
	}
	return 0;
}

const struct wgdev_ops wgdev_netlink_ops = {
	.open = nl_open,
	.close = nl_close,
	.get_info = nl_get_info,
	.set_peers = nl_set_peers,
	.list_peers = nl_list_peers,
};
