// SPDX-License-Identifier: MIT
/*
 * The installer thread's turn: install what is queued, or start the
 * handshakes of peers already installed (initiating back: the keepalive
 * switch; --consume: handing back the client's initiation). A pure
 * decision, so that its order can be tested without a device.
 *
 * Installs come first. In a burst, installing is what lets every client in
 * (its own retry then succeeds), while starting its handshake only spares
 * it the 5 s wait (REKEY_TIMEOUT, docs/protocol.md); and wireguard-go
 * computes each initiation inside the set call that asks for it, costing
 * more than the install itself, so handshakes started during a burst take
 * the cores and the serial UAPI its installs need (the measurements:
 * docs/daemon.md, "Installs before handshakes").
 */
#include "daemon.h"

enum sched_turn sched_turn(const struct sched_state *s, uint64_t *wait_until)
{
	const uint64_t ms = 1000000ull;
	bool ans = s->answering;
	uint64_t quiet = (ans ? SCHED_ANSWER_QUIET_MS : SCHED_INITIATE_QUIET_MS) * ms;
	uint64_t quiet_until = s->last_install + quiet;
	uint64_t overdue_at = s->oldest +
			      (ans ? SCHED_ANSWER_DEFER_MAX_MS : SCHED_INITIATE_DEFER_MAX_MS) * ms;
	uint64_t gap_until = ans ? s->last_start + SCHED_ANSWER_GAP_MS * ms : 0;
	bool overdue = s->now >= overdue_at;
	/* A few peers installed after a quiet spell (two clients at once, not
	 * a burst): their handshakes cost little, start them at once. */
	bool few = s->waiting <= SCHED_AT_ONCE_MAX && s->last_install - s->prev_install >= quiet;

	*wait_until = 0;
	if (!s->waiting)
		return s->stopping ? SCHED_EXIT : s->queued ? SCHED_INSTALL : SCHED_WAIT;
	if (s->stopping) /* answers: the lease is given back, the clients retry */
		return ans ? SCHED_DROP : SCHED_START;
	if (s->now < gap_until) { /* answers: one chunk per gap, whatever else */
		if (s->queued)
			return SCHED_INSTALL;
		*wait_until = gap_until;
		return SCHED_WAIT;
	}
	/* Overdue while installs keep coming: one chunk, one batch, in turn. */
	if (s->queued)
		return overdue && !s->started_last ? SCHED_START : SCHED_INSTALL;
	if (overdue || few || s->now >= quiet_until)
		return SCHED_START;
	*wait_until = quiet_until < overdue_at ? quiet_until : overdue_at;
	return SCHED_WAIT;
}

const char *sched_turn_str(enum sched_turn t)
{
	switch (t) {
	case SCHED_INSTALL:
		return "install";
	case SCHED_START:
		return "start";
	case SCHED_WAIT:
		return "wait";
	case SCHED_DROP:
		return "drop";
	case SCHED_EXIT:
		return "exit";
	}
	return "?";
}
