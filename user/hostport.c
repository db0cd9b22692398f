// SPDX-License-Identifier: MIT
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "hostport.h"

int hostport_parse(const char *s, struct sockaddr_storage *ss, socklen_t *sslen)
{
	struct addrinfo hints = { .ai_socktype = SOCK_DGRAM,
				  .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV };
	struct addrinfo *ai = NULL;
	char host[INET6_ADDRSTRLEN + 2];
	const char *colon = strrchr(s, ':');
	size_t hl;
	unsigned long port;
	char *end;
	int ret = -EINVAL;

	if (!colon || colon == s)
		return -EINVAL;
	/*
	 * getaddrinfo() takes "99999" and keeps its low 16 bits: a typo would
	 * silently name another port. Digits only, 0-65535 (0: any, for binds).
	 */
	if (colon[1] < '0' || colon[1] > '9')
		return -EINVAL;
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (errno || *end || port > 65535)
		return -EINVAL;
	hl = (size_t)(colon - s);
	if (s[0] == '[' && colon[-1] == ']') {
		s++;
		hl -= 2;
	}
	if (hl >= sizeof(host))
		return -EINVAL;
	memcpy(host, s, hl);
	host[hl] = '\0';
	if (getaddrinfo(host, colon + 1, &hints, &ai) || !ai)
		return -EINVAL;
	if (ai->ai_addrlen <= sizeof(*ss)) {
		memcpy(ss, ai->ai_addr, ai->ai_addrlen);
		*sslen = ai->ai_addrlen;
		ret = 0;
	}
	freeaddrinfo(ai);
	return ret;
}
