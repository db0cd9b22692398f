// SPDX-License-Identifier: MIT
/*
 * The counters as data (DAEMON_COUNTERS in daemon.h): the table a metrics
 * renderer walks, and the stop log line.
 */
#include <stddef.h>

#include "daemon.h"

const struct daemon_counter_def daemon_counter_defs[] = {
#define X(n, m, l, h, s)                                                      \
	{ .name = #n, .metric = m, .labels = l, .help = h,                    \
	  .offset = offsetof(struct daemon_stats, n), .stop = s },
	DAEMON_COUNTERS(X)
#undef X
};

const size_t daemon_n_counters =
	sizeof(daemon_counter_defs) / sizeof(daemon_counter_defs[0]);

int daemon_stats_format(const struct daemon_stats *st, char *buf, size_t len)
{
	size_t i, off = 0;
	int r = 0;

	if (len)
		buf[0] = '\0';
	for (i = 0; i < daemon_n_counters; i++) {
		const struct daemon_counter_def *c = &daemon_counter_defs[i];
		uint64_t v;

		if (!c->stop)
			continue;
		v = *(const uint64_t *)((const char *)st + c->offset);
		r = snprintf(off < len ? buf + off : NULL, off < len ? len - off : 0,
			     "%s%s=%lu", off ? " " : "", c->name, (unsigned long)v);
		if (r < 0)
			return r;
		off += (size_t)r;
	}
	return (int)off;
}
