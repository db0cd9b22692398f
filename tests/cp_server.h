/* SPDX-License-Identifier: MIT */
/* The reference control plane (scripts/control-plane.py) as a child process. */
#ifndef JITWG_TESTS_CP_SERVER_H
#define JITWG_TESTS_CP_SERVER_H

#include <sys/types.h>

/*
 * Start the server on 127.0.0.1 with a port it picks, passing args (NULL-
 * terminated, at most 24), its port file and log as DIR/NAME.port and
 * DIR/NAME.log. Waits up to 10 s for the port. Returns 0 with *pid and
 * *port set, -ENOENT without the script, -ETIMEDOUT if it never listened.
 */
int cp_server_start(pid_t *pid, int *port, const char *dir, const char *name,
		    const char *const args[]);

#endif
