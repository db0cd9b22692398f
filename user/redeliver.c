// SPDX-License-Identifier: MIT
/*
 * Re-delivery of captured initiations through raw sockets: see
 * include/redeliver.h.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip6.h>
#include <netinet/udp.h>
#include <sys/socket.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <pthread.h>
#include <time.h>

#include "inet.h"
#include "redeliver.h"

#ifndef IP_TRANSPARENT
#define IP_TRANSPARENT 19
#endif
#ifndef IPV6_TRANSPARENT
#define IPV6_TRANSPARENT 75
#endif

enum { UDP_LEN = sizeof(struct udphdr) + WG_INITIATION_LEN };

enum { MAX_BCAST = 64, BCAST_REFRESH_NS = 1000000000 };

struct redeliver {
	int fd4, fd6;
	/* lock: the host's IPv4 broadcast addresses, listed at most once a
	 * second (an address added meanwhile is refused a second late) */
	pthread_mutex_t lock;
	uint64_t bcast_at;
	size_t n_bcast;
	struct in_addr bcast[MAX_BCAST];
};

/*
 * A raw socket whose datagrams carry their own IP header (IPPROTO_RAW:
 * IP_HDRINCL for IPv4, and the same for IPv6 since Linux 4.5) and may
 * carry a source address that is not local (IP_TRANSPARENT).
 */
static int raw_socket(int family, char *err, size_t errlen)
{
	int fd = socket(family, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
	int one = 1, mark = REDELIVER_MARK, e;
	const char *what = "socket";

	if (fd < 0)
		goto fail;
	what = family == AF_INET ? "IP_TRANSPARENT" : "IPV6_TRANSPARENT";
	if (family == AF_INET ?
		    setsockopt(fd, IPPROTO_IP, IP_TRANSPARENT, &one, sizeof(one)) :
		    setsockopt(fd, IPPROTO_IPV6, IPV6_TRANSPARENT, &one, sizeof(one)))
		goto fail;
	what = "SO_MARK";
	if (setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)))
		goto fail;
	return fd;
fail:
	e = errno;
	snprintf(err, errlen, "cannot open a raw IPv%c socket (%s): %s%s",
		 family == AF_INET ? '4' : '6', what, strerror(e),
		 e == EPERM || e == EACCES ? " (needs CAP_NET_RAW and CAP_NET_ADMIN)" : "");
	if (fd >= 0)
		close(fd);
	return -e;
}

int redeliver_open(struct redeliver **out, char *err, size_t errlen)
{
	struct redeliver *r = calloc(1, sizeof(*r));
	int ret;

	*out = NULL;
	if (!r) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	pthread_mutex_init(&r->lock, NULL);
	r->fd6 = -1;
	r->fd4 = raw_socket(AF_INET, err, errlen);
	if (r->fd4 < 0) {
		ret = r->fd4;
		goto err;
	}
	r->fd6 = raw_socket(AF_INET6, err, errlen);
	/* A host without IPv6 still re-delivers IPv4 (none of its events
	 * are IPv6). */
	if (r->fd6 < 0 && r->fd6 != -EAFNOSUPPORT) {
		ret = r->fd6;
		goto err;
	}
	*out = r;
	return 0;
err:
	redeliver_close(r);
	return ret;
}

void redeliver_close(struct redeliver *r)
{
	if (!r)
		return;
	if (r->fd4 >= 0)
		close(r->fd4);
	if (r->fd6 >= 0)
		close(r->fd6);
	pthread_mutex_destroy(&r->lock);
	free(r);
}

/*
 * The UDP header with its checksum over the pseudo-header (RFC 768 for IPv4,
 * RFC 8200 §8.1 for IPv6, where it is mandatory). A computed 0 is sent as
 * 0xffff, 0 meaning "no checksum". XDP never checks the checksum the
 * datagram came with, and the kernel would have dropped it on a mismatch:
 * redeliver_event() refuses such an event (-EBADMSG) instead of sending it
 * with a fresh, correct checksum.
 */
/*
 * Whether ev->udp_check is what the sender's kernel leaves in a datagram
 * whose checksum it offloaded (CHECKSUM_PARTIAL: the pseudo-header's sum,
 * not complemented, for the device to finish). XDP sees that unfinished
 * value on a veth from a local sender (containers, the tests); the kernel
 * accepts such a datagram without checking it, and so do we.
 */
static bool offloaded(const struct jitwg_event *ev, const void *src, const void *dst,
		      size_t alen)
{
	uint32_t sum = inet_sum16(inet_sum16(0, src, alen), dst, alen) + IPPROTO_UDP + UDP_LEN;

	return ev->udp_check == htons(inet_fold(sum));
}

static void udp_header(struct udphdr *uh, const struct jitwg_event *ev,
		       const void *src, const void *dst, size_t alen)
{
	uh->source = htons(ev->sport);
	uh->dest = htons(ev->dport);
	uh->len = htons(UDP_LEN);
	uh->check = 0;
	uh->check = htons(inet_udp_check(src, dst, alen, uh, ev->msg, WG_INITIATION_LEN));
}

static uint64_t mono_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

/*
 * A subnet's broadcast address (10.0.0.255 of 10.0.0.0/24) as source: the
 * kernel's source validation refuses any address that is a broadcast route
 * of this host, so such a datagram never reaches WireGuard from the uplink.
 */
static bool host_broadcast(struct redeliver *r, const uint8_t a[4])
{
	uint64_t now = mono_ns();
	bool hit = false;

	pthread_mutex_lock(&r->lock);
	if (!r->bcast_at || now - r->bcast_at > BCAST_REFRESH_NS) {
		struct ifaddrs *ifs, *i;

		r->n_bcast = 0;
		if (!getifaddrs(&ifs)) {
			for (i = ifs; i && r->n_bcast < MAX_BCAST; i = i->ifa_next)
				if ((i->ifa_flags & IFF_BROADCAST) && i->ifa_broadaddr &&
				    i->ifa_broadaddr->sa_family == AF_INET)
					r->bcast[r->n_bcast++] =
						((struct sockaddr_in *)i->ifa_broadaddr)->sin_addr;
			freeifaddrs(ifs);
		}
		r->bcast_at = now;
	}
	for (size_t k = 0; k < r->n_bcast && !hit; k++)
		hit = !memcmp(&r->bcast[k], a, 4);
	pthread_mutex_unlock(&r->lock);
	return hit;
}

/*
 * Sources no client can have (inet_martian(), and a subnet's broadcast
 * address): the kernel drops them on the uplink; sent over loopback they
 * would get in.
 */
static bool bogus_source(struct redeliver *r, const struct jitwg_event *ev)
{
	return inet_martian(ev->family, ev->saddr) ||
	       (ev->family == 4 && host_broadcast(r, ev->saddr + 12));
}

int redeliver_event(struct redeliver *r, const struct jitwg_event *ev)
{
	union {
		struct {
			struct iphdr ip;
			struct udphdr udp;
			uint8_t msg[WG_INITIATION_LEN];
		} v4;
		struct {
			struct ip6_hdr ip;
			struct udphdr udp;
			uint8_t msg[WG_INITIATION_LEN];
		} v6;
	} pkt;
	union {
		struct sockaddr_in in;
		struct sockaddr_in6 in6;
	} to;
	ssize_t n;
	size_t len;
	int fd;

	/* Headers and message back to back, no padding: 20 + 8 + 148, 40 + 8 + 148. */
	_Static_assert(sizeof(pkt.v4) == sizeof(struct iphdr) + UDP_LEN, "v4 layout");
	_Static_assert(sizeof(pkt.v6) == sizeof(struct ip6_hdr) + UDP_LEN, "v6 layout");

	if ((ev->family == 4 || ev->family == 6) && bogus_source(r, ev))
		return -EADDRNOTAVAIL;
	/* Below, the header is rebuilt with a fresh checksum. */
	memset(&pkt, 0, sizeof(pkt));
	memset(&to, 0, sizeof(to));
	if (ev->family == 4) {
		/* Addresses are IPv4-mapped: the IPv4 address is the last 4. */
		pkt.v4.ip.version = 4;
		pkt.v4.ip.ihl = sizeof(struct iphdr) / 4;
		pkt.v4.ip.tot_len = htons(sizeof(pkt.v4));
		pkt.v4.ip.ttl = 64;
		pkt.v4.ip.protocol = IPPROTO_UDP;
		memcpy(&pkt.v4.ip.saddr, ev->saddr + 12, 4);
		memcpy(&pkt.v4.ip.daddr, ev->daddr + 12, 4);
		/* IP_HDRINCL: the kernel fills in the id and header checksum. */
		udp_header(&pkt.v4.udp, ev, &pkt.v4.ip.saddr, &pkt.v4.ip.daddr, 4);
		/* IPv4 may send none (0). */
		if (ev->udp_check && ev->udp_check != pkt.v4.udp.check &&
		    !offloaded(ev, &pkt.v4.ip.saddr, &pkt.v4.ip.daddr, 4))
			return -EBADMSG;
		memcpy(pkt.v4.msg, ev->msg, WG_INITIATION_LEN);
		to.in.sin_family = AF_INET;
		memcpy(&to.in.sin_addr, ev->daddr + 12, 4);
		fd = r->fd4;
		len = sizeof(pkt.v4);
	} else if (ev->family == 6) {
		pkt.v6.ip.ip6_flow = htonl(6u << 28);
		pkt.v6.ip.ip6_plen = htons(UDP_LEN);
		pkt.v6.ip.ip6_nxt = IPPROTO_UDP;
		pkt.v6.ip.ip6_hlim = 64;
		memcpy(&pkt.v6.ip.ip6_src, ev->saddr, 16);
		memcpy(&pkt.v6.ip.ip6_dst, ev->daddr, 16);
		udp_header(&pkt.v6.udp, ev, ev->saddr, ev->daddr, 16);
		/* Mandatory in IPv6: 0 is as wrong as any other mismatch. */
		if (ev->udp_check != pkt.v6.udp.check &&
		    !offloaded(ev, ev->saddr, ev->daddr, 16))
			return -EBADMSG;
		memcpy(pkt.v6.msg, ev->msg, WG_INITIATION_LEN);
		to.in6.sin6_family = AF_INET6;
		memcpy(&to.in6.sin6_addr, ev->daddr, 16);
		/* A link-local destination needs its link: the one it came in on. */
		if (ev->daddr[0] == 0xfe && (ev->daddr[1] & 0xc0) == 0x80)
			to.in6.sin6_scope_id = ev->ifindex;
		fd = r->fd6;
		len = sizeof(pkt.v6);
	} else {
		return -EAFNOSUPPORT;
	}
	if (fd < 0)
		return -EAFNOSUPPORT;
	n = sendto(fd, &pkt, len, 0, (struct sockaddr *)&to,
		   ev->family == 4 ? sizeof(to.in) : sizeof(to.in6));
	/* The initiation is the client's own: nothing secret to wipe. */
	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EIO;
}
