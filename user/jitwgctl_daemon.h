/* SPDX-License-Identifier: MIT */
/* jitwgctl's verbs for a running jitwgd, over its control socket. */
#ifndef JITWG_JITWGCTL_DAEMON_H
#define JITWG_JITWGCTL_DAEMON_H

#include <stdio.h>

/*
 * Runs argv[0] (status, peers, evict, revalidate, sweep, log-level) and
 * returns jitwgctl's exit status: 0 done, 1 the daemon refused, 2 usage,
 * 3 the daemon could not be asked (not running, no permission). Returns -1
 * when argv[0] is not one of these verbs.
 */
int jitwgctl_daemon_main(int argc, char **argv);
/* One line per verb for jitwgctl's usage. */
void jitwgctl_daemon_usage(FILE *f);

#endif
