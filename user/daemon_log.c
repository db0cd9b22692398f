// SPDX-License-Identifier: MIT
/*
 * logfmt on stderr (https://brandur.org/logfmt): one line per event, built
 * in a buffer and written with one write(2) so that lines from worker
 * threads never interleave.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "daemon.h"
#include "keys.h"

enum log_level log_level_current = LOG_INFO;

static const char *const level_names[] = {
	[LOG_ERROR] = "error",
	[LOG_WARN] = "warn",
	[LOG_INFO] = "info",
	[LOG_DEBUG] = "debug",
};

int log_level_parse(const char *s, enum log_level *out)
{
	size_t i;

	for (i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (!strcasecmp(s, level_names[i])) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	if (!strcasecmp(s, "warning")) {
		*out = LOG_WARN;
		return 0;
	}
	return -EINVAL;
}

void dlog(enum log_level lvl, const char *msg, const char *fmt, ...)
{
	char buf[1024];
	struct timeval tv;
	struct tm tm;
	size_t n;
	int r;
	va_list ap;

	if (!LOG_ENABLED(lvl))
		return;
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	n = strftime(buf, sizeof(buf), "ts=%Y-%m-%dT%H:%M:%S", &tm);
	r = snprintf(buf + n, sizeof(buf) - n, ".%03ldZ level=%s msg=%s",
		     (long)tv.tv_usec / 1000, level_names[lvl], msg);
	if (r > 0)
		n += (size_t)r;
	if (n > sizeof(buf) - 2)
		n = sizeof(buf) - 2;
	if (fmt && *fmt) {
		buf[n++] = ' ';
		va_start(ap, fmt);
		r = vsnprintf(buf + n, sizeof(buf) - n, fmt, ap);
		va_end(ap);
		if (r > 0)
			n += (size_t)r;
		if (n > sizeof(buf) - 2)
			n = sizeof(buf) - 2;
	}
	buf[n++] = '\n';
	/* One write per line; a short write to a pipe of < PIPE_BUF is atomic. */
	if (write(STDERR_FILENO, buf, n) < 0)
		return;
}

void log_fingerprint(char out[static 9], const uint8_t key[static 32])
{
	char b64[KEY_B64_LEN];

	key_to_base64(b64, key);
	memcpy(out, b64, 8);
	out[8] = '\0';
}

const char *log_quote(char *out, size_t outlen, const char *s)
{
	size_t i, o = 0;
	bool plain = *s != '\0';

	for (i = 0; s[i]; i++)
		if (s[i] == ' ' || s[i] == '"' || s[i] == '=' || s[i] == '\\' ||
		    (unsigned char)s[i] < 0x20)
			plain = false;
	if (plain) {
		snprintf(out, outlen, "%s", s);
		return out;
	}
	if (outlen < 3) {
		if (outlen)
			out[0] = '\0';
		return out;
	}
	out[o++] = '"';
	for (i = 0; s[i] && o + 3 < outlen; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\') {
			out[o++] = '\\';
			out[o++] = (char)c;
		} else if (c < 0x20) {
			out[o++] = ' ';
		} else {
			out[o++] = (char)c;
		}
	}
	out[o++] = '"';
	out[o] = '\0';
	return out;
}

void log_endpoint(char *buf, size_t len, const union wgdev_endpoint *ep, const char *none)
{
	char a[INET6_ADDRSTRLEN];

	if (ep->addr.sa_family == AF_INET) {
		inet_ntop(AF_INET, &ep->addr4.sin_addr, a, sizeof(a));
		snprintf(buf, len, "%s:%u", a, ntohs(ep->addr4.sin_port));
	} else if (ep->addr.sa_family == AF_INET6) {
		inet_ntop(AF_INET6, &ep->addr6.sin6_addr, a, sizeof(a));
		snprintf(buf, len, "[%s]:%u", a, ntohs(ep->addr6.sin6_port));
	} else {
		snprintf(buf, len, "%s", none);
	}
}
