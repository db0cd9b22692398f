// SPDX-License-Identifier: MIT
/*
 * jitwg-loadgen clients: synthetic WireGuard clients that complete real
 * handshakes and send data, following a schedule of sessions (the churn
 * simulation, scripts/bench_churn.sh).
 *
 * Each session is one client (synth_key index) present from its start to its
 * end, with its own UDP socket (its own source port, as separate hosts behind
 * one address would have; --sources N --src-base A spreads them over N
 * addresses). While present it:
 *   - sends an initiation, and again every --retry-ms without an answer;
 *   - on the 92-byte response derives the transport keys and sends a
 *     keepalive (type 4, counter 0, empty payload): that first data message
 *     is what makes the responder's session usable (paper §5.4.6, §6.1) and
 *     what WireGuard counts as the handshake completing;
 *   - sends a keepalive every --keepalive-ms and re-handshakes every
 *     --rekey-ms, as a real client's timers would (compressed);
 *   - on an initiation from the gateway (jitwgd initiating back once the
 *     peer is installed) sends its own initiation at once rather than
 *     answering: the gateway now knows the key, so it will answer ours;
 *   - on a cookie reply to its last initiation keeps the cookie and puts
 *     mac2 into its initiations for two minutes, as WireGuard clients do
 *     (paper §5.4.7); the retry timer still decides when to send.
 * Leaving is silence: the socket closes and nothing says goodbye.
 *
 * Output: --events FILE gets "t_s index kind ms" lines (first_contact: the
 * session's first initiation to its first response; rekey: one initiation
 * to its response); --samples FILE gets, every --sample-ms,
 * "t_s present active handshaked" where active counts sessions, present or
 * gone, that completed a handshake or sent data within the last
 * --active-window-ms.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "cookie.h"
#include "jitwg.h"
#include "loadgen.h"
#include "noise.h"
#include "synth.h"

enum cstate {
	C_WAITING,    /* not arrived yet */
	C_CONNECTING, /* initiation sent, no keys yet */
	C_UP,	      /* keys; maybe a rekey in flight (hs_pending) */
	C_GONE,
};

struct client {
	uint32_t idx;
	double start, end;
	enum cstate state;
	int fd;
	struct noise_initiator *in;
	struct noise_handshake hs;
	int hs_pending;
	struct noise_keypair kp;
	double session_first; /* first initiation of the session */
	double hs_sent;	      /* the initiation in flight */
	double last_hs, last_data;
	int contacted;
	uint8_t last_init[NOISE_INITIATION_LEN]; /* a cookie reply's mac1 is its */
	uint8_t cookie[COOKIE_LEN];
	double cookie_at; /* 0: none */
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int read_schedule(const char *path, struct client **out, size_t *n)
{
	struct client *c = NULL, *nc;
	size_t cap = 0, len = 0;
	unsigned long idx;
	double s, e;
	FILE *f;
	int ret = 0;

	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (fscanf(f, "%lu %lf %lf", &idx, &s, &e) == 3) {
		if (len == cap) {
			cap = cap ? cap * 2 : 1024;
			nc = realloc(c, cap * sizeof(*c));
			if (!nc) {
				ret = -ENOMEM;
				goto out;
			}
			c = nc;
		}
		memset(&c[len], 0, sizeof(c[len]));
		c[len].idx = (uint32_t)idx;
		c[len].start = s;
		c[len].end = e;
		c[len].fd = -1;
		len++;
	}
	if (!feof(f))
		ret = -EINVAL;
out:
	fclose(f);
	if (ret) {
		free(c);
		return ret;
	}
	*out = c;
	*n = len;
	return 0;
}

static int by_start(const void *a, const void *b)
{
	const struct client *x = a, *y = b;

	return (x->start > y->start) - (x->start < y->start);
}

struct run {
	const struct loadgen_clients_opts *o;
	struct sockaddr_storage dst;
	socklen_t dlen;
	int ep;
	double t0;
	FILE *events;
	unsigned long sent_init, sent_data, responses, bad, stale, cookies,
	    gw_inits, errors;
};

static void event(struct run *r, const struct client *c, const char *kind,
		  double ms)
{
	if (r->events)
		fprintf(r->events, "%.3f %u %s %.3f\n", now_s() - r->t0, c->idx,
			kind, ms);
}

static int send_initiation(struct run *r, struct client *c, double now)
{
	uint8_t msg[NOISE_INITIATION_LEN], ts[NOISE_TIMESTAMP_LEN];
	int ret;

	noise_timestamp_now(ts);
	noise_handshake_wipe(&c->hs);
	ret =
	    noise_initiator_begin(c->in, &c->hs, randombytes_random(), ts, msg);
	if (ret)
		return ret;
	/* A cookie younger than its two minutes: mac2 (paper §5.4.7). */
	if (c->cookie_at && now - c->cookie_at < COOKIE_SECRET_LIFE_S &&
	    cookie_add_mac2(msg, c->cookie))
		return -EIO;
	memcpy(c->last_init, msg, sizeof(msg));
	c->hs_pending = 1;
	c->hs_sent = now;
	if (sendto(c->fd, msg, sizeof(msg), 0, (struct sockaddr *)&r->dst,
		   r->dlen) < 0)
		r->errors++;
	else
		r->sent_init++;
	return 0;
}

static void send_keepalive(struct run *r, struct client *c, double now)
{
	uint8_t msg[NOISE_KEEPALIVE_LEN];
	int n;

	n = noise_seal_transport(&c->kp, NULL, 0, msg, sizeof(msg));
	if (n < 0 || sendto(c->fd, msg, (size_t)n, 0,
			    (struct sockaddr *)&r->dst, r->dlen) < 0) {
		r->errors++;
		return;
	}
	r->sent_data++;
	c->last_data = now;
}

static int arrive(struct run *r, struct client *c, double now)
{
	const struct loadgen_clients_opts *o = r->o;
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
	uint8_t priv[32];
	int ret;

	synth_key(priv, NULL, o->seed, c->idx);
	ret = noise_initiator_new(&c->in, priv, o->responder);
	sodium_memzero(priv, sizeof(priv));
	if (ret)
		return ret;
	c->fd = socket(r->dst.ss_family,
		       SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return -errno;
	if (o->n_src) {
		/* Spread over source addresses: XDP limits each one's rate. */
		struct sockaddr_in sin = {.sin_family = AF_INET};

		sin.sin_addr.s_addr = htonl(ntohl(o->src_base.s_addr) +
					    (uint32_t)(c->idx % o->n_src));
		if (bind(c->fd, (struct sockaddr *)&sin, sizeof(sin)))
			return -errno;
	} else if (o->bind_len && bind(c->fd, (const struct sockaddr *)&o->bind,
				       o->bind_len)) {
		return -errno;
	}
	if (epoll_ctl(r->ep, EPOLL_CTL_ADD, c->fd, &ev))
		return -errno;
	c->state = C_CONNECTING;
	c->session_first = now;
	return send_initiation(r, c, now);
}

static void leave(struct client *c)
{
	if (c->fd >= 0)
		close(c->fd); /* also leaves the epoll set */
	c->fd = -1;
	noise_initiator_free(c->in);
	c->in = NULL;
	noise_handshake_wipe(&c->hs);
	noise_keypair_wipe(&c->kp);
	sodium_memzero(c->cookie, sizeof(c->cookie));
	c->cookie_at = 0;
	c->state = C_GONE;
}

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static int receive(struct run *r, struct client *c, double now)
{
	uint8_t buf[256];
	struct noise_keypair kp;
	ssize_t n;
	int ret;

	while ((n = recv(c->fd, buf, sizeof(buf), 0)) > 0) {
		switch (buf[0]) {
		case WG_MSG_RESPONSE:
			/*
			 * A late answer to an initiation a retry replaced:
			 * ignored, so that it cannot wipe the one in flight.
			 */
			if (!c->hs_pending || n != NOISE_RESPONSE_LEN ||
			    get_le32(buf + 8) != c->hs.sender_index) {
				r->stale++;
				break;
			}
			/* On failure the retry timer sends a new initiation. */
			ret = noise_initiator_finish(c->in, &c->hs, buf,
						     (size_t)n, NULL, &kp);
			if (ret) {
				r->bad++;
				break;
			}
			c->hs_pending = 0;
			r->responses++;
			noise_keypair_wipe(&c->kp);
			c->kp = kp;
			noise_keypair_wipe(&kp);
			event(r, c, c->contacted ? "rekey" : "first_contact",
			      1000 * (now - (c->contacted ? c->hs_sent
							  : c->session_first)));
			c->contacted = 1;
			c->state = C_UP;
			c->last_hs = now;
			send_keepalive(r, c, now);
			break;
		case WG_MSG_INITIATION:
			/* The gateway knows us now: ask again at once. */
			r->gw_inits++;
			if (c->state == C_CONNECTING) {
				ret = send_initiation(r, c, now);
				if (ret)
					return ret;
			}
			break;
		case WG_MSG_COOKIE:
			/* Under load: kept for the retry, which the timer sends. */
			r->cookies++;
			if (c->hs_pending &&
			    !cookie_open_reply(buf, (size_t)n, r->o->responder, c->last_init,
					       c->cookie))
				c->cookie_at = now;
			break;
		default:
			break; /* the gateway's own keepalives */
		}
	}
	return 0;
}

int loadgen_clients(const struct loadgen_clients_opts *o)
{
	struct client *cl = NULL, **present = NULL;
	size_t n = 0, next = 0, np = 0, i, k;
	struct epoll_event evs[64];
	struct rlimit rl;
	struct run r = {.o = o, .ep = -1};
	FILE *samples = NULL;
	double now, next_sample, duration = 0;
	int ret, e, nev;

	memcpy(&r.dst, &o->dst, sizeof(r.dst));
	r.dlen = o->dst_len;
	ret = read_schedule(o->schedule, &cl, &n);
	if (ret) {
		fprintf(stderr, "loadgen: cannot read schedule %s: %s\n",
			o->schedule, strerror(-ret));
		return ret;
	}
	qsort(cl, n, sizeof(*cl), by_start);
	for (i = 0; i < n; i++)
		if (cl[i].end > duration)
			duration = cl[i].end;
	present = calloc(n ? n : 1, sizeof(*present));
	ret = -ENOMEM;
	if (!present)
		goto out;
	/* One socket per present client: raise the soft limit to the hard. */
	if (!getrlimit(RLIMIT_NOFILE, &rl)) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	ret = -errno;
	r.ep = epoll_create1(EPOLL_CLOEXEC);
	if (r.ep < 0)
		goto out;
	if (o->events) {
		r.events = fopen(o->events, "we");
		if (!r.events)
			goto out;
	}
	if (o->samples) {
		samples = fopen(o->samples, "we");
		if (!samples)
			goto out;
	}
	r.t0 = now_s();
	next_sample = 0;
	fprintf(stderr, "loadgen: %zu sessions over %.0f s\n", n, duration);
	for (;;) {
		now = now_s() - r.t0;
		while (next < n && cl[next].start <= now) {
			ret = arrive(&r, &cl[next], now);
			if (ret) {
				fprintf(stderr,
					"loadgen: client %u cannot start: %s\n",
					cl[next].idx, strerror(-ret));
				goto out;
			}
			present[np++] = &cl[next++];
		}
		/* Timers of present clients; compact away those that left. */
		for (i = k = 0; i < np; i++) {
			struct client *c = present[i];

			if (c->end <= now) {
				leave(c);
				continue;
			}
			if (c->hs_pending &&
			    now - c->hs_sent >= o->retry_ms / 1000.0)
				ret = send_initiation(&r, c, now);
			else if (c->state == C_UP && !c->hs_pending &&
				 now - c->last_hs >= o->rekey_ms / 1000.0)
				ret = send_initiation(&r, c, now);
			else
				ret = 0;
			if (ret)
				goto out;
			if (c->state == C_UP &&
			    now - c->last_data >= o->keepalive_ms / 1000.0)
				send_keepalive(&r, c, now);
			present[k++] = c;
		}
		np = k;
		if (now >= next_sample) {
			unsigned long act = 0, ever = 0;
			double w = o->active_window_ms / 1000.0;

			for (i = 0; i < next; i++) {
				double last = cl[i].last_hs > cl[i].last_data
						  ? cl[i].last_hs
						  : cl[i].last_data;

				ever += cl[i].contacted;
				act += cl[i].contacted && now - last <= w;
			}
			if (samples) {
				fprintf(samples, "%.3f %zu %lu %lu\n", now, np,
					act, ever);
				fflush(samples);
			}
			next_sample += o->sample_ms / 1000.0;
		}
		if (now >= duration && next >= n)
			break;
		nev = epoll_wait(r.ep, evs, 64, 5);
		if (nev < 0 && errno != EINTR) {
			ret = -errno;
			goto out;
		}
		now = now_s() - r.t0;
		for (e = 0; e < nev; e++) {
			ret = receive(&r, evs[e].data.ptr, now);
			if (ret)
				goto out;
		}
	}
	ret = 0;
out:
	printf("sessions=%zu initiations=%lu responses=%lu keepalives=%lu "
	       "gateway_initiations=%lu cookies=%lu stale=%lu bad=%lu "
	       "errors=%lu\n",
	       next, r.sent_init, r.responses, r.sent_data, r.gw_inits,
	       r.cookies, r.stale, r.bad, r.errors);
	for (i = 0; i < n; i++)
		if (cl[i].state != C_GONE && cl[i].state != C_WAITING)
			leave(&cl[i]);
	free(present);
	free(cl);
	if (r.events)
		fclose(r.events);
	if (samples)
		fclose(samples);
	if (r.ep >= 0)
		close(r.ep);
	return ret;
}
