// SPDX-License-Identifier: MIT
/*
 * user/redeliver.c against the kernel: in a network namespace of its own
 * (only loopback, up), an initiation re-delivered "from" an address the host
 * does not have reaches a UDP socket with that source address and port and
 * the payload byte for byte, as WireGuard would receive it. IPv4 and IPv6;
 * the kernel drops a datagram whose UDP checksum is wrong, so arriving also
 * proves the checksum.
 */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "check.h"
#include "redeliver.h"

#ifndef SO_RCVMARK
#define SO_RCVMARK 75
#endif

enum { PORT = 51820, SPORT = 40123 };

static int lo_up(void)
{
	struct ifreq ifr = { .ifr_name = "lo" };
	int fd = socket(AF_INET, SOCK_DGRAM, 0), ret = -1;

	if (fd < 0)
		return -1;
	if (!ioctl(fd, SIOCGIFFLAGS, &ifr)) {
		ifr.ifr_flags |= IFF_UP;
		ret = ioctl(fd, SIOCSIFFLAGS, &ifr);
	}
	close(fd);
	return ret;
}

/* A UDP socket on the loopback address of family, port PORT. */
static int listener(int family)
{
	union {
		struct sockaddr_in in;
		struct sockaddr_in6 in6;
	} a = { 0 };
	int fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0), one = 1;

	if (fd < 0)
		return -1;
	/* The mark of each datagram as a control message (Linux 5.19+). */
	setsockopt(fd, SOL_SOCKET, SO_RCVMARK, &one, sizeof(one));
	if (family == AF_INET) {
		a.in.sin_family = AF_INET;
		a.in.sin_port = htons(PORT);
		a.in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	} else {
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
		a.in6.sin6_family = AF_INET6;
		a.in6.sin6_port = htons(PORT);
		a.in6.sin6_addr = in6addr_loopback;
	}
	if (bind(fd, (struct sockaddr *)&a, family == AF_INET ? sizeof(a.in) : sizeof(a.in6))) {
		close(fd);
		return -1;
	}
	return fd;
}

/* The datagram's UDP checksum as a sender computes it (RFC 768, 8200). */
static uint16_t udp_checksum(const struct jitwg_event *ev)
{
	size_t alen = ev->family == 4 ? 4 : 16, off = ev->family == 4 ? 12 : 0, i;
	uint16_t len = 8 + WG_INITIATION_LEN;
	uint32_t sum = 0;
	uint8_t hdr[8] = { ev->sport >> 8, ev->sport & 0xff, ev->dport >> 8, ev->dport & 0xff,
			   len >> 8, len & 0xff, 0, 0 };

	for (i = 0; i < alen; i += 2)
		sum += (ev->saddr[off + i] << 8 | ev->saddr[off + i + 1]) +
		       (ev->daddr[off + i] << 8 | ev->daddr[off + i + 1]);
	sum += 17 + len;
	for (i = 0; i < 8; i += 2)
		sum += hdr[i] << 8 | hdr[i + 1];
	for (i = 0; i < WG_INITIATION_LEN; i += 2)
		sum += ev->msg[i] << 8 | ev->msg[i + 1];
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	sum = ~sum & 0xffff;
	return htons(sum ? (uint16_t)sum : 0xffff);
}

static void event(struct jitwg_event *ev, int family, const char *src, const char *dst)
{
	size_t i;

	memset(ev, 0, sizeof(*ev));
	ev->family = family == AF_INET ? 4 : 6;
	ev->sport = SPORT;
	ev->dport = PORT;
	if (family == AF_INET) {
		ev->saddr[10] = ev->saddr[11] = ev->daddr[10] = ev->daddr[11] = 0xff;
		inet_pton(AF_INET, src, ev->saddr + 12);
		inet_pton(AF_INET, dst, ev->daddr + 12);
	} else {
		inet_pton(AF_INET6, src, ev->saddr);
		inet_pton(AF_INET6, dst, ev->daddr);
	}
	for (i = 0; i < sizeof(ev->msg); i++)
		ev->msg[i] = (uint8_t)(i * 7 + 1);
	ev->msg[0] = WG_MSG_INITIATION;
	ev->msg[1] = ev->msg[2] = ev->msg[3] = 0;
	ev->udp_check = udp_checksum(ev);
}

static void one_family(struct redeliver *r, int family, const char *name,
		       const char *src, const char *dst)
{
	struct jitwg_event ev;
	union {
		struct sockaddr_in in;
		struct sockaddr_in6 in6;
	} from;
	uint8_t buf[512], cbuf[CMSG_SPACE(sizeof(uint32_t))];
	struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
	struct msghdr mh = { .msg_name = &from, .msg_namelen = sizeof(from),
			     .msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *cm;
	uint32_t mark = 0;
	char got[INET6_ADDRSTRLEN] = "?";
	struct pollfd pfd;
	ssize_t n = -1;
	int fd = listener(family), ret;
	unsigned int port = 0;

	if (fd < 0) {
		CHECK(name, 0, "cannot bind the listener: %s", strerror(errno));
		return;
	}
	event(&ev, family, src, dst);
	ret = redeliver_event(r, &ev);
	pfd.fd = fd;
	pfd.events = POLLIN;
	if (!ret && poll(&pfd, 1, 2000) == 1)
		n = recvmsg(fd, &mh, 0);
	for (cm = n > 0 ? CMSG_FIRSTHDR(&mh) : NULL; cm; cm = CMSG_NXTHDR(&mh, cm))
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SO_MARK)
			memcpy(&mark, CMSG_DATA(cm), sizeof(mark));
	if (n > 0 && family == AF_INET) {
		inet_ntop(AF_INET, &from.in.sin_addr, got, sizeof(got));
		port = ntohs(from.in.sin_port);
	} else if (n > 0) {
		inet_ntop(AF_INET6, &from.in6.sin6_addr, got, sizeof(got));
		port = ntohs(from.in6.sin6_port);
	}
	CHECK(name,
	      EXPECT(ret == 0, "redeliver_event: %s", strerror(-ret)) &&
	      EXPECT(n == WG_INITIATION_LEN, "received %zd bytes", n) &&
	      EXPECT(!memcmp(buf, ev.msg, WG_INITIATION_LEN), "payload differs") &&
	      EXPECT(!strcmp(got, src), "source %s", got) &&
	      EXPECT(port == SPORT, "source port %u", port) &&
	      EXPECT(mark == REDELIVER_MARK, "mark 0x%x", mark),
	      "re-delivery from %s", src);
	close(fd);
}

int main(void)
{
	struct redeliver *r;
	struct jitwg_event ev;
	char err[256];
	int ret;

	if (geteuid() != 0) {
		SKIP("redeliver", "needs root (a network namespace, raw sockets)");
		return 0;
	}
	if (unshare(CLONE_NEWNET) || lo_up()) {
		CHECK("redeliver: own network namespace", 0, "%s", strerror(errno));
		CHECK_EXIT();
	}
	ret = redeliver_open(&r, err, sizeof(err));
	CHECK("redeliver: open", ret == 0, "%s", err);
	if (ret)
		CHECK_EXIT();
	/* Documentation prefixes: addresses this namespace does not have. */
	one_family(r, AF_INET, "redeliver: IPv4, foreign source kept",
		   "198.51.100.7", "127.0.0.1");
	one_family(r, AF_INET6, "redeliver: IPv6, foreign source kept",
		   "2001:db8::7", "::1");

	memset(&ev, 0, sizeof(ev));
	ev.family = 5;
	ret = redeliver_event(r, &ev);
	CHECK("redeliver: unknown family refused", ret == -EAFNOSUPPORT,
	      "returned %d", ret);

	/* Sources no client can have: over loopback they would get in. */
	{
		static const struct { int family; const char *src; } bogus[] = {
			{ AF_INET, "127.0.0.5" },	/* loopback */
			{ AF_INET, "0.0.0.0" },		/* unspecified */
			{ AF_INET, "224.0.0.1" },	/* multicast */
			{ AF_INET, "255.255.255.255" },	/* broadcast */
			{ AF_INET6, "::1" },
			{ AF_INET6, "::" },
			{ AF_INET6, "ff02::1" },
			{ AF_INET6, "::ffff:198.51.100.7" }, /* mapped in IPv6 */
		};
		bool ok = true;
		size_t i;

		for (i = 0; i < sizeof(bogus) / sizeof(bogus[0]); i++) {
			event(&ev, bogus[i].family, bogus[i].src,
			      bogus[i].family == AF_INET ? "127.0.0.1" : "::1");
			ret = redeliver_event(r, &ev);
			ok &= EXPECT(ret == -EADDRNOTAVAIL, "%s: returned %d",
				     bogus[i].src, ret);
		}
		CHECK("redeliver: impossible sources refused", ok, "see above");
	}

	/* A checksum the kernel would have refused is not made good by
	 * re-delivery; IPv4's "none" (0) is fine, IPv6 has no "none". */
	{
		bool ok = true;

		event(&ev, AF_INET, "198.51.100.7", "127.0.0.1");
		ev.udp_check ^= htons(0x0100);
		ok &= EXPECT(redeliver_event(r, &ev) == -EBADMSG, "IPv4, wrong checksum");
		ev.udp_check = 0;
		ok &= EXPECT(redeliver_event(r, &ev) == 0, "IPv4, no checksum");
		/* What a local sender's kernel leaves when the device is to
		 * finish the sum (veth): the pseudo-header's sum. */
		{
			uint32_t sum = (198 << 8 | 51) + (100 << 8 | 7) + (127 << 8) + 1 + 17 +
				       8 + WG_INITIATION_LEN;

			while (sum >> 16)
				sum = (sum & 0xffff) + (sum >> 16);
			ev.udp_check = htons((uint16_t)sum);
			ok &= EXPECT(redeliver_event(r, &ev) == 0, "IPv4, checksum offloaded");
		}
		event(&ev, AF_INET6, "2001:db8::7", "::1");
		ev.udp_check = 0;
		ok &= EXPECT(redeliver_event(r, &ev) == -EBADMSG, "IPv6, no checksum");
		ev.msg[100] ^= 1; /* the payload changed on the way */
		ev.udp_check = udp_checksum(&ev);
		ev.msg[100] ^= 1;
		ok &= EXPECT(redeliver_event(r, &ev) == -EBADMSG, "IPv6, payload changed");
		CHECK("redeliver: datagrams with a bad UDP checksum refused", ok, "see above");
	}

	/* A subnet's broadcast address: the kernel refuses it as a source on
	 * the uplink, so it must not get in over loopback either. */
	if (system("ip link add jwbc0 type veth peer name jwbc1 && "
		   "ip addr add 10.77.0.1/24 brd + dev jwbc0 && ip link set jwbc0 up")) {
		CHECK("redeliver: subnet broadcast source refused", 0, "cannot add a veth link");
	} else {
		/* The host's broadcast addresses are listed at most once a
		 * second: wait past the listing made by the sends above. */
		usleep(1100 * 1000);
		event(&ev, AF_INET, "10.77.0.255", "127.0.0.1");
		ret = redeliver_event(r, &ev);
		CHECK("redeliver: subnet broadcast source refused", ret == -EADDRNOTAVAIL,
		      "returned %d", ret);
	}
	redeliver_close(r);
	CHECK_EXIT();
}
