// SPDX-License-Identifier: MIT
/*
 * jitwgd's CPU share: the Diffie-Hellmans a flood can make it compute.
 *
 * Everything an initiation costs before identify is a few hashes (shape,
 * mac1, the duplicate filter); identify and authenticate are one X25519
 * each, tens of microseconds, and only those grow with a flood that passes
 * the cheap checks (fresh keypairs, forgeries of a registered key, random
 * statics with a valid mac1). They are paid from a token bucket counted in
 * nanoseconds of CPU: it fills at --max-cpu percent of one core and holds
 * one second of that. A stage is admitted at its expected cost and then
 * charged what it took on the worker's own CPU clock
 * (CLOCK_THREAD_CPUTIME_ID: a busy neighbour stretches wall time, not
 * this), which also moves the expectation (a moving average, started from
 * one X25519 measured at start-up). The bucket is shared by all workers,
 * so the share is of one core whatever their number.
 *
 * Two classes of work (docs/security.md, "Floods"):
 *   priority  an initiation from a source that completed a handshake in
 *             the last hour (a set jitwgd fills as it marks sources
 *             verified for the XDP program), and after identify a key on
 *             the device (a rekey) or with a cached answer (a returning
 *             client from a new address);
 *   fresh     everything else: new clients and any flood.
 * Fresh work may not take the last BUDGET_RESERVE_PCT of the bucket, so
 * under a flood the bucket hovers at that level and priority work still
 * finds tokens. What the budget refuses is counted (budget_refused) and
 * summarised once a second in the log, never a line per event.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "daemon_internal.h"

static uint64_t thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/*
 * The CPU time of one X25519 here: the cheapest of a few rounds (the
 * others include a preemption's cache refill), never below 1 µs.
 */
static uint64_t measure_dh_ns(void)
{
	uint8_t sk[32], pk[32], out[32];
	uint64_t best = UINT64_MAX, t0, t;
	int round, i;

	randombytes_buf(sk, sizeof(sk));
	if (crypto_scalarmult_base(pk, sk))
		return BUDGET_DH_FALLBACK_NS;
	for (round = 0; round < 3; round++) {
		t0 = thread_cpu_ns();
		for (i = 0; i < 8; i++)
			if (crypto_scalarmult(out, sk, pk))
				break;
		t = (thread_cpu_ns() - t0) / 8;
		if (t < best)
			best = t;
	}
	sodium_memzero(sk, sizeof(sk));
	sodium_memzero(out, sizeof(out));
	return best < 1000 ? 1000 : best;
}

void budget_init(struct daemon *d, unsigned int max_cpu_pct)
{
	struct dh_budget *b = &d->budget;

	pthread_mutex_init(&b->lock, NULL);
	pthread_mutex_init(&b->vlock, NULL);
	randombytes_buf(b->vkey, sizeof(b->vkey));
	b->pct = max_cpu_pct;
	budget_set_cost(d, max_cpu_pct ? measure_dh_ns() : BUDGET_DH_FALLBACK_NS);
	b->fixed = false;
}

/* A stage's cost, full bucket. Fixed (tests) until budget_init() again. */
void budget_set_cost(struct daemon *d, uint64_t dh_ns)
{
	struct dh_budget *b = &d->budget;

	pthread_mutex_lock(&b->lock);
	b->fixed = true;
	b->dh_ns = dh_ns;
	b->cap = (uint64_t)b->pct * 1000000000ull / 100;
	b->reserve = b->cap * BUDGET_RESERVE_PCT / 100;
	b->tokens = b->cap;
	b->last = mono(d);
	pthread_mutex_unlock(&b->lock);
}

void budget_free(struct daemon *d)
{
	free(d->budget.vslots);
	d->budget.vslots = NULL;
}

/* What a summary line reports: the refusals of the window it closes. */
struct refusals {
	uint64_t refused, prio;
};

/* With b->lock held: close the window when it is due (or force), taking its counts. */
static void summary_locked(struct dh_budget *b, uint64_t now, bool force,
			   struct refusals *out)
{
	out->refused = out->prio = 0;
	if (b->refused && (now - b->window >= 1000000000ull || force)) {
		out->refused = b->refused;
		out->prio = b->refused_prio;
		b->refused = b->refused_prio = 0;
		b->window = now;
	} else if (!b->refused) {
		b->window = now;
	}
}

static void summary_log(const struct dh_budget *b, const struct refusals *s)
{
	if (s->refused)
		dlog(LOG_WARN, "budget",
		     "outcome=refused initiations=%lu priority=%lu max_cpu_pct=%u stage_us=%.1f",
		     (unsigned long)s->refused, (unsigned long)s->prio, b->pct,
		     (double)b->dh_ns / 1000.0);
}

/*
 * Take n DHs' worth for work of class prio; false when the budget refuses
 * it (counted; the summary line is due once a second: summary_locked()).
 */
bool budget_take(struct daemon *d, bool prio, unsigned int n)
{
	struct dh_budget *b = &d->budget;
	struct refusals sum;
	uint64_t now, cost, floor;
	bool ok;

	if (!b->pct)
		return true;
	now = mono(d);
	pthread_mutex_lock(&b->lock);
	if (now > b->last) {
		/* pct % of the elapsed time; capped before it can overflow. */
		uint64_t dt = now - b->last;

		b->tokens += dt > 10000000000ull ? b->cap : dt * b->pct / 100;
		if (b->tokens > b->cap)
			b->tokens = b->cap;
		b->last = now;
	}
	cost = b->dh_ns * n;
	floor = prio ? 0 : b->reserve;
	ok = b->tokens >= cost + floor;
	if (ok) {
		b->tokens -= cost;
	} else {
		b->refused++;
		if (prio)
			b->refused_prio++;
	}
	summary_locked(b, now, false, &sum);
	pthread_mutex_unlock(&b->lock);
	if (!ok)
		INC(d, budget_refused);
	summary_log(b, &sum);
	return ok;
}

/* The calling thread's CPU clock, to time a stage for budget_spent(). */
uint64_t budget_clock(void)
{
	return thread_cpu_ns();
}

/*
 * A stage admitted by budget_take() ran from t0 (budget_clock()) to now:
 * charge the difference from what was taken, and learn from it.
 */
void budget_spent(struct daemon *d, uint64_t t0)
{
	struct dh_budget *b = &d->budget;
	uint64_t used;

	if (!b->pct || b->fixed)
		return;
	used = thread_cpu_ns() - t0;
	pthread_mutex_lock(&b->lock);
	if (used > b->dh_ns) {
		uint64_t more = used - b->dh_ns;

		b->tokens = b->tokens > more ? b->tokens - more : 0;
	} else {
		b->tokens += b->dh_ns - used;
		if (b->tokens > b->cap)
			b->tokens = b->cap;
	}
	/* 1/16 of the way: a preempted stage moves it little. */
	b->dh_ns = b->dh_ns - b->dh_ns / 16 + used / 16;
	if (b->dh_ns < 1000)
		b->dh_ns = 1000;
	pthread_mutex_unlock(&b->lock);
}

/*
 * One summary line per second that refused anything (and at the next sweep
 * after a flood stops: force).
 */
void budget_log(struct daemon *d, bool force)
{
	struct dh_budget *b = &d->budget;
	struct refusals sum;

	pthread_mutex_lock(&b->lock);
	summary_locked(b, mono(d), force, &sum);
	pthread_mutex_unlock(&b->lock);
	summary_log(b, &sum);
}

/* ---- the sources that completed a handshake ---- */

/* A source as the XDP program keys it: an IPv4 address or an IPv6 /64. */
static void src_key(const uint8_t saddr[static 16], uint8_t out[static 16])
{
	static const uint8_t v4mapped[12] = { [10] = 0xff, [11] = 0xff };

	memcpy(out, saddr, 16);
	if (memcmp(saddr, v4mapped, sizeof(v4mapped)))
		memset(out + 8, 0, 8);
}

static struct vslot *vslot(struct dh_budget *b, const uint8_t k[static 16])
{
	uint8_t h[crypto_shorthash_BYTES];
	uint64_t v;

	crypto_shorthash(h, k, 16, b->vkey);
	memcpy(&v, h, sizeof(v));
	return &b->vslots[v % BUDGET_VSLOTS];
}

/*
 * saddr completed a handshake: priority until now + JITWG_VERIFIED_TTL_NS.
 * Only jitwgd adds here (a flood cannot evict a source); two verified
 * sources in one slot: the later one keeps it.
 */
void budget_mark_verified(struct daemon *d, const uint8_t saddr[static 16])
{
	struct dh_budget *b = &d->budget;
	struct vslot *s;
	uint8_t k[16];

	src_key(saddr, k);
	pthread_mutex_lock(&b->vlock);
	if (!b->vslots)
		b->vslots = calloc(BUDGET_VSLOTS, sizeof(*b->vslots));
	if (b->vslots) {
		s = vslot(b, k);
		memcpy(s->addr, k, 16);
		s->until = mono(d) + JITWG_VERIFIED_TTL_NS;
	}
	pthread_mutex_unlock(&b->vlock);
}

bool budget_verified(struct daemon *d, const uint8_t saddr[static 16])
{
	struct dh_budget *b = &d->budget;
	struct vslot *s;
	uint8_t k[16];
	bool ok = false;

	src_key(saddr, k);
	pthread_mutex_lock(&b->vlock);
	if (b->vslots) {
		s = vslot(b, k);
		ok = !memcmp(s->addr, k, 16) && s->until > mono(d);
	}
	pthread_mutex_unlock(&b->vlock);
	return ok;
}
