// SPDX-License-Identifier: MIT
/*
 * When jitwgd takes the XDP lease by itself (--consume auto, the default).
 *
 * An initiation XDP passes costs WireGuard a Diffie-Hellman before it can
 * tell a forged or unknown key from a real one, and a flood's initiations
 * share its one socket and handshake queue with the real clients'. Under
 * the lease, XDP drops what it hands jitwgd, and jitwgd gives WireGuard
 * back only what authenticated: a flood then costs WireGuard nothing, and
 * a new client's handshake is answered on the first try. Without load,
 * passing is a little faster for known peers (no hop through jitwgd), so
 * auto takes the lease only while initiations from sources that are not
 * verified (no handshake within the hour: the rekeys of a big gateway are
 * no load) reach jitwgd faster than CONSUME_AUTO_RATE a second, or the XDP
 * program's global budget refuses some, and keeps it CONSUME_AUTO_HOLD_MS past the last such look, so that
 * a flood's pauses do not flip it back and forth (docs/security.md).
 *
 * A look every JITWG_LEASE_RENEW_MS is too late for the start of a
 * line-rate flood: the global bucket's whole burst (40,000) reaches
 * WireGuard within milliseconds, and wireguard-go then spent seconds on it,
 * answering real clients with cookies. So auto also keeps the program's own
 * trigger armed (JITWG_LEASE_AUTO, renewed while the workers keep up): the
 * program consumes by itself once a burst has spent JITWG_LEASE_AUTO_SPENT
 * (64) of the bucket's tokens: fewer than make wireguard-go count itself
 * under load.
 */
#include <string.h>

#include "capture.h"
#include "daemon_internal.h"

const char *consume_mode_str(enum consume_mode m)
{
	switch (m) {
	case CONSUME_AUTO:
		return "auto";
	case CONSUME_ALWAYS:
		return "always";
	case CONSUME_NEVER:
		return "never";
	}
	return "?";
}

bool consume_auto_step(struct consume_auto *s, uint64_t now, uint64_t events,
		       uint64_t limited_global)
{
	const uint64_t win = CONSUME_AUTO_WINDOW_MS * 1000000ull;
	bool load;

	if (!s->at || now < s->at || events < s->events || limited_global < s->limited) {
		/* First look, or counters that went back (the program was
		 * replaced): a new baseline. */
		s->at = now;
		s->events = events;
		s->limited = limited_global;
		return now < s->until;
	}
	/* A rate over less than a window is noise: a handful of
	 * initiations a millisecond apart is not load. */
	if (now - s->at < win)
		return now < s->until;
	s->rate = (events - s->events) * 1000000000ull / (now - s->at);
	load = limited_global != s->limited ||
	       (events - s->events) * 1000000000ull >=
		       (uint64_t)CONSUME_AUTO_RATE * (now - s->at);
	s->at = now;
	s->events = events;
	s->limited = limited_global;
	if (load)
		s->until = now + CONSUME_AUTO_HOLD_MS * 1000000ull;
	return now < s->until;
}

void daemon_set_consuming(struct daemon *d, bool on)
{
	if (on && !atomic_exchange(&d->consuming, true))
		INC(d, consume_engaged);
	else if (!on)
		atomic_store(&d->consuming, false);
}

bool daemon_consuming(struct daemon *d)
{
	return atomic_load(&d->consuming);
}

/*
 * Start: with always, the lease at once (its failure is fatal, as the
 * operator asked for it); with auto, the means to take it later, or, if
 * the program or the host cannot give them, never (one warning).
 */
int lease_keeper_start(struct lease_keeper *l, struct daemon *d, struct capture *cap,
		       enum consume_mode mode, char *err, size_t errlen)
{
	int ret;

	memset(l, 0, sizeof(*l));
	l->d = d;
	l->cap = cap;
	l->mode = mode;
	l->renewed = now_mono_ns();
	if (mode == CONSUME_NEVER)
		return 0;
	ret = daemon_set_local_addrs(cap, err, errlen);
	/* Auto holds none yet: setting none proves the map is there. */
	if (!ret && (ret = capture_set_lease(cap, mode == CONSUME_ALWAYS ?
							  l->renewed + JITWG_LEASE_NS : 0)))
		snprintf(err, errlen, "%s", capture_error(cap));
	if (!ret) {
		l->held = mode == CONSUME_ALWAYS;
		daemon_set_consuming(d, l->held);
		/* The program's own trigger, renewed with each look (tick). */
		if (mode == CONSUME_AUTO) {
			l->auto_word = !capture_set_lease_auto(cap, l->renewed + JITWG_LEASE_NS);
			if (!l->auto_word)
				dlog(LOG_WARN, "consume", "auto_trigger=off error=\"%s\"",
				     capture_error(cap));
		}
		return 0;
	}
	if (mode == CONSUME_ALWAYS)
		return ret;
	dlog(LOG_WARN, "consume", "state=off reason=no_lease error=\"%s\"", err);
	l->mode = CONSUME_NEVER;
	return 0;
}

/* The main loop's poll timeout: the lease's renewal period, or none. */
int lease_keeper_timeout_ms(const struct lease_keeper *l)
{
	return l->mode == CONSUME_NEVER ? -1 : JITWG_LEASE_RENEW_MS;
}

/*
 * Renewed while the workers keep up, so that stuck workers hand
 * initiations back to WireGuard within JITWG_LEASE_NS instead of
 * swallowing them.
 */
static void renew(struct lease_keeper *l, uint64_t now, bool ok)
{
	char err[256];

	if ((++l->renewals % 10 == 0 || !l->held) &&
	    daemon_set_local_addrs(l->cap, err, sizeof(err)))
		dlog(LOG_WARN, "lease", "op=local_addrs error=\"%s\"", err);
	if (ok && capture_set_lease(l->cap, now + JITWG_LEASE_NS))
		dlog(LOG_WARN, "lease", "error=\"%s\"", capture_error(l->cap));
	if (ok == l->lapsed)
		dlog(ok ? LOG_INFO : LOG_WARN, "lease",
		     ok ? "outcome=renewed" : "outcome=lapsed reason=workers_not_keeping_up");
	l->lapsed = !ok;
	l->held = true;
}

void lease_keeper_tick(struct lease_keeper *l)
{
	uint64_t now = now_mono_ns(), ctr[JITWG_CTR_MAX];
	bool want, ok;

	if (l->mode == CONSUME_NEVER || now - l->renewed < JITWG_LEASE_RENEW_MS * 1000000ull)
		return;
	l->renewed = now;
	/* Once per look: it measures progress since the last call. */
	ok = daemon_keeping_up(l->d);
	want = l->mode == CONSUME_ALWAYS;
	if (l->mode == CONSUME_AUTO) {
		uint64_t verified;

		/* The program may take over by itself only while the
		 * workers keep up, as the lease is renewed. */
		if (l->auto_word && ok &&
		    capture_set_lease_auto(l->cap, now + JITWG_LEASE_NS))
			dlog(LOG_WARN, "lease", "op=auto error=\"%s\"", capture_error(l->cap));
		if (capture_read_counters(l->cap, ctr))
			return; /* the last decision stands */
		/* Rekeys from verified sources are no load: a big gateway's
		 * steady handshakes must not keep the lease. */
		verified = ctr[JITWG_CTR_VERIFIED] -
			   (ctr[JITWG_CTR_LIMITED_VERIFIED] < ctr[JITWG_CTR_VERIFIED] ?
				    ctr[JITWG_CTR_LIMITED_VERIFIED] :
				    ctr[JITWG_CTR_VERIFIED]);
		want = consume_auto_step(&l->a, now,
					 ctr[JITWG_CTR_EVENTS] > verified ?
						 ctr[JITWG_CTR_EVENTS] - verified : 0,
					 ctr[JITWG_CTR_LIMITED_GLOBAL]);
		if (want && !l->held)
			dlog(LOG_WARN, "consume",
			     "state=engaged events_per_s=%lu limited_global=%lu",
			     (unsigned long)l->a.rate,
			     (unsigned long)ctr[JITWG_CTR_LIMITED_GLOBAL]);
	}
	if (want) {
		renew(l, now, ok);
	} else if (l->held) {
		if (capture_set_lease(l->cap, 0))
			dlog(LOG_WARN, "lease", "error=\"%s\"", capture_error(l->cap));
		dlog(LOG_INFO, "consume", "state=released redelivered=%lu",
		     (unsigned long)atomic_load(&l->d->counters.redelivered));
		l->held = l->lapsed = false;
	}
	daemon_set_consuming(l->d, l->held);
}
