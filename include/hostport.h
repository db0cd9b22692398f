/* SPDX-License-Identifier: MIT */
/* "HOST:PORT" / "[V6]:PORT" on the command line of the tools. */
#ifndef JITWG_HOSTPORT_H
#define JITWG_HOSTPORT_H

#include <sys/socket.h>

/*
 * Parse a numeric address and port (no name lookups) into ss. Returns 0 or
 * -EINVAL.
 */
int hostport_parse(const char *s, struct sockaddr_storage *ss, socklen_t *sslen);

#endif
