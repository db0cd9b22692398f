// SPDX-License-Identifier: MIT
/*
 * The cookie stage, in front of the workers' queue (daemon_on_event(), the
 * main thread): WireGuard's own flood defence (paper §5.4.7) applied by
 * jitwgd before any Diffie-Hellman.
 *
 *   bad shape or mac1              pass (the workers reject it, counted)
 *   mac2 valid (a jitwgd cookie)   first in the queue, on a budget of its own
 *   a verified source              pass (rekeys, returning clients)
 *   under load, no valid mac2      cookie reply, no DH, nothing queued
 *   otherwise                      pass
 *
 * "Under load" (--cookie auto): at some point in the last
 * COOKIE_LOAD_HOLD_MS the workers were a second behind (behind()), i.e. DH
 * work is waiting; --cookie always: every time; never: never. A mac2 jitwgd cannot
 * verify (the device's cookie, a stale one, a forgery) counts as none: under
 * load it gets jitwgd's cookie, which the client keeps as its latest
 * (docs/security.md, "Cookies").
 *
 * Replies leave from the initiation's destination address and port (the
 * WireGuard port: a client accepts a reply only from where it sent to)
 * through raw sockets, batched with sendmmsg() and sent at
 * daemon_cookie_flush(), after each poll of the ring buffer.
 */
#include <errno.h>
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

#include "cookie.h"
#include "inet.h"
#include "daemon_internal.h"

enum {
	COOKIE_BATCH = 64,            /* replies per sendmmsg() */
	/* DH work waits: the oldest queued job this old, or this many jobs
	 * (a second or more of two workers' DHs). */
	COOKIE_LOAD_AGE_MS = 1000,
	COOKIE_LOAD_QUEUE = 16384,
	COOKIE_LOAD_CHECK_MS = 10,
	COOKIE_LOAD_HOLD_MS = 1000,   /* load is remembered this long (as the kernel does) */
	/* Valid mac2 proves a reachable source, not a registered key: the
	 * budget keeps one real address from taking all the workers. */
	COOKIE_MAC2_RATE = 1000,      /* per second */
	COOKIE_MAC2_BURST = 2000,
	COOKIE_HOST_ADDRS = 64,       /* this host's addresses looked at */
};


struct raw_pkt {
	union {
		struct {
			struct iphdr ip;
			struct udphdr udp;
			uint8_t msg[COOKIE_REPLY_LEN];
		} v4;
		struct {
			struct ip6_hdr ip;
			struct udphdr udp;
			uint8_t msg[COOKIE_REPLY_LEN];
		} v6;
	};
	union {
		struct sockaddr_in in;
		struct sockaddr_in6 in6;
	} to;
	size_t len;
};

struct cookie_stage {
	struct cookie_checker *checker;
	struct daemon_cookie_ops ops;
	int fd4, fd6;            /* raw sockets, opened at the first reply */
	bool raw_failed;         /* said once */
	bool mark_failed;        /* said once */
	char q[256];             /* log_quote's room */
	/* The main thread's (daemon_on_event, daemon_cookie_flush): */
	struct cookie_out batch[COOKIE_BATCH];
	size_t n;
	uint64_t load_until;     /* mono ns */
	uint64_t checked_at;     /* mono ns of the last look at the queue */
	bool loaded;             /* for the engaged/released log lines */
	uint64_t hosts_at;       /* mono ns the list below was read */
	size_t n_hosts;
	uint8_t hosts[COOKIE_HOST_ADDRS][16];
	struct rate_bucket mac2; /* valid mac2 first: COOKIE_MAC2_RATE */
};

static int raw_send(void *arg, const struct cookie_out *out, size_t n);

int daemon_cookie_new(struct daemon *d)
{
	struct cookie_stage *c;
	uint8_t pub[32];
	int ret;

	d->cookie = NULL;
	if (d->env.opts->cookie == COOKIE_NEVER || !d->env.responder)
		return 0;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	noise_responder_public_key(d->env.responder, pub);
	ret = cookie_checker_new(&c->checker, pub);
	if (ret) {
		free(c);
		return ret;
	}
	c->fd4 = c->fd6 = -1;
	c->ops = d->env.cookie_ops ? *d->env.cookie_ops :
				     (struct daemon_cookie_ops){ .send = raw_send, .arg = c };
	c->mac2.tokens = COOKIE_MAC2_BURST;
	d->cookie = c;
	return 0;
}

void daemon_cookie_free(struct daemon *d)
{
	struct cookie_stage *c = d->cookie;

	if (!c)
		return;
	cookie_checker_free(c->checker); /* wipes the secrets */
	if (c->fd4 >= 0)
		close(c->fd4);
	if (c->fd6 >= 0)
		close(c->fd6);
	free(c);
	d->cookie = NULL;
}

/* The XDP program's source key: an IPv4 address, or an IPv6 /64. */
/*
 * Whether the workers are behind: the oldest queued job has waited
 * COOKIE_LOAD_AGE_MS, or COOKIE_LOAD_QUEUE jobs wait. A burst of real
 * clients the workers clear within a second never engages it (the
 * synthetic clients of the tests and benchmarks answer no cookie).
 * Looked at every COOKIE_LOAD_CHECK_MS: it takes the queue's lock.
 */
static bool behind(struct daemon *d, struct cookie_stage *c, uint64_t now)
{
	uint64_t oldest = 0;
	size_t len;

	if (c->checked_at && now - c->checked_at < COOKIE_LOAD_CHECK_MS * 1000000ull)
		return false;
	c->checked_at = now;
	pthread_mutex_lock(&d->intake.lock);
	len = d->intake.len;
	oldest = intake_oldest_locked(&d->intake);
	pthread_mutex_unlock(&d->intake.lock);
	return len >= COOKIE_LOAD_QUEUE ||
	       (oldest && now > oldest && now - oldest >= COOKIE_LOAD_AGE_MS * 1000000ull);
}

static bool under_load(struct daemon *d, struct cookie_stage *c, uint64_t now)
{
	if (d->env.opts->cookie == COOKIE_ALWAYS)
		return true;
	if (behind(d, c, now))
		c->load_until = now + COOKIE_LOAD_HOLD_MS * 1000000ull;
	if (now < c->load_until) {
		if (!c->loaded)
			dlog(LOG_WARN, "cookie", "state=engaged queued=%zu", d->intake.len);
		c->loaded = true;
		return true;
	}
	if (c->loaded)
		dlog(LOG_INFO, "cookie", "state=released replies=%lu",
		     (unsigned long)atomic_load(&d->counters.cookie_replies));
	c->loaded = false;
	return false;
}

static void log_ev(enum log_level lvl, const struct jitwg_event *ev, const char *what)
{
	char ep[64], a[INET6_ADDRSTRLEN];

	if (!LOG_ENABLED(lvl))
		return;
	if (ev->family == 4)
		inet_ntop(AF_INET, ev->saddr + 12, a, sizeof(a));
	else
		inet_ntop(AF_INET6, ev->saddr, a, sizeof(a));
	snprintf(ep, sizeof(ep), ev->family == 4 ? "%s:%u" : "[%s]:%u", a, ev->sport);
	dlog(lvl, "cookie", "%s endpoint=%s", what, ep);
}

/*
 * With the main thread only: whether addr (IPv4-mapped or IPv6) is one of
 * this host's, from a list read at most once a second.
 */
static bool host_addr(struct cookie_stage *c, const uint8_t addr[static 16], uint64_t now)
{
	size_t i;

	if (!c->hosts_at || now - c->hosts_at > 1000000000ull) {
		struct ifaddrs *ifs, *it;

		c->n_hosts = 0;
		if (!getifaddrs(&ifs)) {
			for (it = ifs; it && c->n_hosts < COOKIE_HOST_ADDRS; it = it->ifa_next) {
				uint8_t *h = c->hosts[c->n_hosts];

				if (!it->ifa_addr)
					continue;
				if (it->ifa_addr->sa_family == AF_INET) {
					memset(h, 0, 10);
					h[10] = h[11] = 0xff;
					memcpy(h + 12, &((struct sockaddr_in *)it->ifa_addr)->sin_addr, 4);
				} else if (it->ifa_addr->sa_family == AF_INET6) {
					memcpy(h, &((struct sockaddr_in6 *)it->ifa_addr)->sin6_addr, 16);
				} else {
					continue;
				}
				c->n_hosts++;
			}
			freeifaddrs(ifs);
		}
		c->hosts_at = now ? now : 1;
	}
	for (i = 0; i < c->n_hosts; i++)
		if (!memcmp(c->hosts[i], addr, 16))
			return true;
	return false;
}

/*
 * Sources no client can have (inet_martian()), this host's own, port 0:
 * a reply to one would go to a local socket or to many hosts.
 */
static bool bogus(struct cookie_stage *c, const struct jitwg_event *ev, uint64_t now)
{
	return !ev->sport || inet_martian(ev->family, ev->saddr) ||
	       host_addr(c, ev->saddr, now);
}

static void reply(struct daemon *d, struct cookie_stage *c, const struct jitwg_event *ev,
		  uint64_t now)
{
	struct cookie_out *o;

	if (bogus(c, ev, now)) {
		INC(d, cookie_send_errors);
		return;
	}

	if (c->n == COOKIE_BATCH)
		daemon_cookie_flush(d);
	o = &c->batch[c->n];
	if (cookie_make_reply(c->checker, ev->msg, ev->saddr, ev->sport, now, o->msg)) {
		INC(d, cookie_send_errors);
		return;
	}
	o->family = ev->family;
	o->ifindex = ev->ifindex;
	/* Back to where it came from, from where it went. */
	memcpy(o->saddr, ev->daddr, 16);
	memcpy(o->daddr, ev->saddr, 16);
	o->sport = ev->dport;
	o->dport = ev->sport;
	c->n++;
	log_ev(LOG_DEBUG, ev, "action=reply");
}

enum cookie_verdict daemon_cookie_intake(struct daemon *d, const struct jitwg_event *ev)
{
	struct cookie_stage *c = d->cookie;
	enum cookie_mac2 m;
	uint64_t now;

	if (!c || (ev->family != 4 && ev->family != 6))
		return COOKIE_PASS;
	/* mac1 first, as WireGuard does: never a reply to what any host could
	 * have made up (and mac1 is the reply's associated data). */
	if (noise_check_shape(ev->msg, sizeof(ev->msg)) ||
	    noise_check_mac1(d->env.responder, ev->msg))
		return COOKIE_PASS;
	now = mono(d);
	m = cookie_check_mac2(c->checker, ev->msg, ev->saddr, ev->sport, now);
	if (m == COOKIE_MAC2_VALID) {
		INC(d, mac2_valid);
		log_ev(LOG_DEBUG, ev, "mac2=valid");
		return rate_bucket_take(&c->mac2, now, COOKIE_MAC2_RATE, COOKIE_MAC2_BURST) ?
			       COOKIE_FIRST : COOKIE_PASS;
	}
	if (m == COOKIE_MAC2_INVALID)
		INC(d, mac2_invalid);
	if (budget_verified(d, ev->saddr) || !under_load(d, c, now))
		return COOKIE_PASS;
	reply(d, c, ev, now);
	return COOKIE_ANSWERED;
}

/*
 * The XDP program lets these sources' retries (non-zero mac2, same address
 * and port) through on a budget of their own, which a flood from other
 * sources cannot spend (include/jitwg.h, jitwg_cookie_key).
 */
static void mark_sent(struct daemon *d, struct cookie_stage *c)
{
	struct jitwg_cookie_key keys[COOKIE_BATCH];
	size_t i;

	if (!d->env.capture)
		return;
	memset(keys, 0, sizeof(keys));
	for (i = 0; i < c->n; i++) {
		memcpy(keys[i].addr, c->batch[i].daddr, 16);
		keys[i].port = c->batch[i].dport;
	}
	/* The program's clock, whatever a test's daemon clock says. */
	if (capture_cookie_sent(d->env.capture, keys, c->n, now_mono_ns() + JITWG_COOKIE_TTL_NS) &&
	    !c->mark_failed) {
		c->mark_failed = true;
		dlog(LOG_WARN, "cookie", "op=mark_sources error=%s",
		     log_quote(c->q, sizeof(c->q), capture_error(d->env.capture)));
	}
}

void daemon_cookie_flush(struct daemon *d)
{
	struct cookie_stage *c = d->cookie;
	int sent;

	if (!c || !c->n)
		return;
	sent = c->ops.send(c->ops.arg, c->batch, c->n);
	if (sent < 0)
		sent = 0;
	mark_sent(d, c);
	atomic_fetch_add(&d->counters.cookie_replies, (uint64_t)sent);
	if ((size_t)sent < c->n)
		atomic_fetch_add(&d->counters.cookie_send_errors, c->n - (size_t)sent);
	c->n = 0; /* sealed replies only: nothing secret left behind */
}

/* ---- raw sockets ---- */

/* The UDP header and its checksum (inet_udp_check()). */
static void udp_fill(struct udphdr *uh, const struct cookie_out *o, const void *src,
		     const void *dst, size_t alen)
{
	uh->source = htons(o->sport);
	uh->dest = htons(o->dport);
	uh->len = htons(sizeof(*uh) + COOKIE_REPLY_LEN);
	uh->check = 0;
	uh->check = htons(inet_udp_check(src, dst, alen, uh, o->msg, COOKIE_REPLY_LEN));
}

static void build(struct raw_pkt *p, const struct cookie_out *o)
{
	memset(p, 0, sizeof(*p));
	if (o->family == 4) {
		p->v4.ip.version = 4;
		p->v4.ip.ihl = sizeof(struct iphdr) / 4;
		p->v4.ip.tot_len = htons(sizeof(p->v4));
		p->v4.ip.ttl = 64;
		p->v4.ip.protocol = IPPROTO_UDP;
		memcpy(&p->v4.ip.saddr, o->saddr + 12, 4);
		memcpy(&p->v4.ip.daddr, o->daddr + 12, 4);
		udp_fill(&p->v4.udp, o, &p->v4.ip.saddr, &p->v4.ip.daddr, 4);
		memcpy(p->v4.msg, o->msg, COOKIE_REPLY_LEN);
		p->to.in.sin_family = AF_INET;
		memcpy(&p->to.in.sin_addr, o->daddr + 12, 4);
		p->len = sizeof(p->v4);
	} else {
		p->v6.ip.ip6_flow = htonl(6u << 28);
		p->v6.ip.ip6_plen = htons(sizeof(struct udphdr) + COOKIE_REPLY_LEN);
		p->v6.ip.ip6_nxt = IPPROTO_UDP;
		p->v6.ip.ip6_hlim = 64;
		memcpy(&p->v6.ip.ip6_src, o->saddr, 16);
		memcpy(&p->v6.ip.ip6_dst, o->daddr, 16);
		udp_fill(&p->v6.udp, o, o->saddr, o->daddr, 16);
		memcpy(p->v6.msg, o->msg, COOKIE_REPLY_LEN);
		p->to.in6.sin6_family = AF_INET6;
		memcpy(&p->to.in6.sin6_addr, o->daddr, 16);
		/* A link-local client is on the link the initiation came in on. */
		if (o->daddr[0] == 0xfe && (o->daddr[1] & 0xc0) == 0x80)
			p->to.in6.sin6_scope_id = o->ifindex;
		p->len = sizeof(p->v6);
	}
}

/* IPPROTO_RAW: the datagram carries its own IP header (IPv6 too, Linux ≥ 4.5). */
static int raw_open(struct cookie_stage *c)
{
	if (c->fd4 < 0)
		c->fd4 = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
	if (c->fd6 < 0)
		c->fd6 = socket(AF_INET6, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
	if (c->fd4 < 0 && !c->raw_failed) {
		c->raw_failed = true;
		dlog(LOG_ERROR, "cookie", "error=\"cannot open a raw socket: %s\" hint=\"needs CAP_NET_RAW\"",
		     strerror(errno));
	}
	return c->fd4 < 0 ? -EPERM : 0;
}

static int send_family(int fd, struct raw_pkt *p, size_t n)
{
	struct mmsghdr mh[COOKIE_BATCH];
	struct iovec iov[COOKIE_BATCH];
	size_t i, done = 0, sent = 0;
	int r;

	if (!n || fd < 0)
		return 0;
	memset(mh, 0, sizeof(mh[0]) * n);
	for (i = 0; i < n; i++) {
		iov[i].iov_base = p + i; /* the headers are the struct's start */
		iov[i].iov_len = p[i].len;
		mh[i].msg_hdr.msg_iov = &iov[i];
		mh[i].msg_hdr.msg_iovlen = 1;
		mh[i].msg_hdr.msg_name = &p[i].to;
		mh[i].msg_hdr.msg_namelen =
			p[i].to.in.sin_family == AF_INET ? sizeof(p[i].to.in) : sizeof(p[i].to.in6);
	}
	/* A datagram that fails stops the call: count it out, send the rest. */
	while (done < n) {
		r = sendmmsg(fd, mh + done, (unsigned int)(n - done), 0);
		if (r > 0) {
			done += (size_t)r;
			sent += (size_t)r;
		} else if (!(r < 0 && errno == EINTR)) {
			done++;
		}
	}
	return (int)sent;
}

static int raw_send(void *arg, const struct cookie_out *out, size_t n)
{
	struct cookie_stage *c = arg;
	struct raw_pkt p4[COOKIE_BATCH], p6[COOKIE_BATCH];
	size_t n4 = 0, n6 = 0, i;

	if (raw_open(c))
		return -EPERM;
	for (i = 0; i < n; i++) {
		if (out[i].family == 4)
			build(&p4[n4++], &out[i]);
		else
			build(&p6[n6++], &out[i]);
	}
	return send_family(c->fd4, p4, n4) + send_family(c->fd6, p6, n6);
}
