// SPDX-License-Identifier: MIT
/*
 * Prometheus text exposition (format 0.0.4) and the /metrics HTTP server.
 * The server is libmicrohttpd with its own polling thread: a scrape never
 * runs on a thread of the packet path, and a slow or hostile client only
 * holds one of a few connections, each with a timeout.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "hostport.h"
#include "metrics.h"

enum {
	CONN_LIMIT = 16,     /* concurrent scrapes; more are refused */
	CONN_TIMEOUT_S = 10, /* an idle connection is closed after this */
};

const double metrics_latency_bounds[] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1,    0.25,  0.5,	   1,	  2.5,	5,     10,
};
const unsigned int metrics_latency_nbounds =
    sizeof(metrics_latency_bounds) / sizeof(metrics_latency_bounds[0]);

void metrics_buf_init(struct metrics_buf *b)
{
	memset(b, 0, sizeof(*b));
}

void metrics_buf_free(struct metrics_buf *b)
{
	free(b->data);
	metrics_buf_init(b);
}

static int reserve(struct metrics_buf *b, size_t more)
{
	size_t cap;
	char *p;

	if (b->err)
		return b->err;
	if (b->len + more + 1 <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 4096;
	while (cap < b->len + more + 1)
		cap *= 2;
	p = realloc(b->data, cap);
	if (!p) {
		b->err = -ENOMEM;
		return b->err;
	}
	b->data = p;
	b->cap = cap;
	return 0;
}

static void vappend(struct metrics_buf *b, const char *fmt, va_list ap)
{
	va_list ap2;
	int n;

	va_copy(ap2, ap);
	n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0 || reserve(b, (size_t)n))
		return;
	vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
	b->len += (size_t)n;
}

void metrics_printf(struct metrics_buf *b, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vappend(b, fmt, ap);
	va_end(ap);
}

static void putc_buf(struct metrics_buf *b, char c)
{
	if (reserve(b, 1))
		return;
	b->data[b->len++] = c;
	b->data[b->len] = '\0';
}

/*
 * The format escapes backslash and newline in HELP text, and also the double
 * quote in label values.
 */
static void escaped(struct metrics_buf *b, const char *s, int quote)
{
	for (; *s; s++) {
		if (*s == '\\')
			metrics_printf(b, "\\\\");
		else if (*s == '\n')
			metrics_printf(b, "\\n");
		else if (quote && *s == '"')
			metrics_printf(b, "\\\"");
		else
			putc_buf(b, *s);
	}
}

static const char *type_name(enum metrics_type t)
{
	switch (t) {
	case METRICS_COUNTER:
		return "counter";
	case METRICS_GAUGE:
		return "gauge";
	case METRICS_HISTOGRAM:
		return "histogram";
	}
	return "untyped";
}

void metrics_family(struct metrics_buf *b, const char *name,
		    enum metrics_type type, const char *help)
{
	metrics_printf(b, "# HELP %s ", name);
	escaped(b, help, 0);
	metrics_printf(b, "\n# TYPE %s %s\n", name, type_name(type));
}

/* name{l1="v1",…,extra_name="extra_value"} — extra for a bucket's le. */
static void series(struct metrics_buf *b, const char *name, const char *suffix,
		   const char *const *labels, const char *extra_name,
		   const char *extra_value)
{
	int any = 0;

	metrics_printf(b, "%s%s", name, suffix);
	for (; labels && labels[0] && labels[1]; labels += 2) {
		metrics_printf(b, "%s%s=\"", any ? "," : "{", labels[0]);
		escaped(b, labels[1], 1);
		putc_buf(b, '"');
		any = 1;
	}
	if (extra_name) {
		metrics_printf(b, "%s%s=\"%s\"", any ? "," : "{", extra_name,
			       extra_value);
		any = 1;
	}
	if (any)
		putc_buf(b, '}');
}

/* Go's float syntax as Prometheus parses it; %.15g keeps 0.005 as 0.005. */
static void fmt_double(char *out, size_t size, double v)
{
	if (isnan(v))
		snprintf(out, size, "NaN");
	else if (isinf(v))
		snprintf(out, size, "%s", v > 0 ? "+Inf" : "-Inf");
	else
		snprintf(out, size, "%.15g", v);
}

void metrics_u64(struct metrics_buf *b, const char *name,
		 const char *const *labels, uint64_t value)
{
	series(b, name, "", labels, NULL, NULL);
	metrics_printf(b, " %" PRIu64 "\n", value);
}

void metrics_u64_raw(struct metrics_buf *b, const char *name,
		     const char *raw_labels, uint64_t value)
{
	if (raw_labels && *raw_labels)
		metrics_printf(b, "%s{%s} %" PRIu64 "\n", name, raw_labels,
			       value);
	else
		metrics_printf(b, "%s %" PRIu64 "\n", name, value);
}

void metrics_double(struct metrics_buf *b, const char *name,
		    const char *const *labels, double value)
{
	char v[64];

	fmt_double(v, sizeof(v), value);
	series(b, name, "", labels, NULL, NULL);
	metrics_printf(b, " %s\n", v);
}

void metrics_counter1(struct metrics_buf *b, const char *name, const char *help,
		      uint64_t value)
{
	metrics_family(b, name, METRICS_COUNTER, help);
	metrics_u64(b, name, NULL, value);
}

void metrics_gauge1(struct metrics_buf *b, const char *name, const char *help,
		    double value)
{
	metrics_family(b, name, METRICS_GAUGE, help);
	metrics_double(b, name, NULL, value);
}

int metrics_hist_init(struct metrics_hist *h, const double *bounds,
		      unsigned int n)
{
	unsigned int i;

	memset(h, 0, sizeof(*h));
	if (n > METRICS_HIST_MAX_BOUNDS)
		return -EINVAL;
	for (i = 0; i < n; i++) {
		if (!isfinite(bounds[i]) || (i && bounds[i] <= bounds[i - 1]))
			return -EINVAL;
		h->bounds[i] = bounds[i];
	}
	h->n = n;
	return 0;
}

void metrics_hist_observe_ns(struct metrics_hist *h, uint64_t ns)
{
	double s = (double)ns / 1e9;
	unsigned int i;

	/* Buckets are "less than or equal": a value on a bound counts in it. */
	for (i = 0; i < h->n && s > h->bounds[i]; i++)
		;
	__atomic_fetch_add(&h->counts[i], 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&h->sum_ns, ns, __ATOMIC_RELAXED);
}

void metrics_hist_observe(struct metrics_hist *h, double seconds)
{
	/* A clock step can make a duration negative: count it as zero. */
	if (!(seconds > 0))
		seconds = 0;
	if (seconds > 1e9)
		seconds = 1e9;
	metrics_hist_observe_ns(h, (uint64_t)(seconds * 1e9));
}

void metrics_histogram(struct metrics_buf *b, const char *name,
		       const char *const *labels, const struct metrics_hist *h)
{
	uint64_t cum = 0, sum_ns;
	char le[64];
	unsigned int i;

	for (i = 0; i <= h->n; i++) {
		cum += __atomic_load_n(&h->counts[i], __ATOMIC_RELAXED);
		if (i < h->n)
			fmt_double(le, sizeof(le), h->bounds[i]);
		else
			snprintf(le, sizeof(le), "+Inf");
		series(b, name, "_bucket", labels, "le", le);
		metrics_printf(b, " %" PRIu64 "\n", cum);
	}
	sum_ns = __atomic_load_n(&h->sum_ns, __ATOMIC_RELAXED);
	fmt_double(le, sizeof(le), (double)sum_ns / 1e9);
	series(b, name, "_sum", labels, NULL, NULL);
	metrics_printf(b, " %s\n", le);
	series(b, name, "_count", labels, NULL, NULL);
	metrics_printf(b, " %" PRIu64 "\n", cum);
}

struct metrics_server {
	struct MHD_Daemon *mhd;
	metrics_render_fn render;
	void *ctx;
	uint16_t port;
};

int metrics_listen_parse(const char *s, struct sockaddr_storage *ss,
			 socklen_t *sslen)
{
	char buf[INET6_ADDRSTRLEN + 16];
	size_t len = strlen(s);
	const char *colon = strchr(s, ':');

	if (!len || len >= INET6_ADDRSTRLEN + 2)
		return -EINVAL;
	/* "[v6]" or a v4 address without a port: the default port. */
	if ((s[0] == '[' && s[len - 1] == ']') || (s[0] != '[' && !colon)) {
		snprintf(buf, sizeof(buf), "%s:%d", s, METRICS_DEFAULT_PORT);
		return hostport_parse(buf, ss, sslen);
	}
	/* A bare v6 address has colons but no brackets: ambiguous. */
	if (s[0] != '[' && strchr(colon + 1, ':'))
		return -EINVAL;
	return hostport_parse(s, ss, sslen); /* which checks the port's range */
}

static enum MHD_Result respond_text(struct MHD_Connection *conn,
				    unsigned int status, const char *text)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	r = MHD_create_response_from_buffer(strlen(text), (void *)text,
					    MHD_RESPMEM_PERSISTENT);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
				"text/plain; charset=utf-8");
	ret = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn,
			      const char *url, const char *method,
			      const char *version, const char *upload_data,
			      size_t *upload_data_size, void **con_cls)
{
	struct metrics_server *s = cls;
	struct MHD_Response *r;
	struct metrics_buf b;
	enum MHD_Result ret;

	(void)version;
	(void)upload_data;
	(void)con_cls;
	if (strcmp(method, MHD_HTTP_METHOD_GET) &&
	    strcmp(method, MHD_HTTP_METHOD_HEAD))
		return respond_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED,
				    "only GET\n");
	/* A GET has no body; anything sent is ignored. */
	*upload_data_size = 0;
	if (!strcmp(url, "/"))
		return respond_text(conn, MHD_HTTP_OK,
				    "jitwgd: metrics at /metrics\n");
	if (strcmp(url, "/metrics"))
		return respond_text(conn, MHD_HTTP_NOT_FOUND, "not found\n");

	metrics_buf_init(&b);
	if (s->render(&b, s->ctx) || b.err || !b.data) {
		metrics_buf_free(&b);
		return respond_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR,
				    "cannot render metrics\n");
	}
	r = MHD_create_response_from_buffer_with_free_callback(b.len, b.data,
							       free);
	if (!r) {
		metrics_buf_free(&b);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
				"text/plain; version=0.0.4; charset=utf-8");
	ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	return ret;
}

int metrics_server_start(struct metrics_server **out, const char *listen,
			 metrics_render_fn render, void *ctx)
{
	const union MHD_DaemonInfo *info;
	struct sockaddr_storage ss;
	struct metrics_server *s;
	unsigned int flags;
	socklen_t sslen;
	int err;

	*out = NULL;
	err = metrics_listen_parse(listen, &ss, &sslen);
	if (err)
		return err;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->render = render;
	s->ctx = ctx;
	flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL;
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	/* The port argument is ignored: the address carries it. */
	errno = 0;
	s->mhd = MHD_start_daemon(
	    flags, 0, NULL, NULL, handle, s, MHD_OPTION_SOCK_ADDR,
	    (struct sockaddr *)&ss, MHD_OPTION_CONNECTION_LIMIT,
	    (unsigned int)CONN_LIMIT, MHD_OPTION_CONNECTION_TIMEOUT,
	    (unsigned int)CONN_TIMEOUT_S, MHD_OPTION_END);
	if (!s->mhd) {
		/* libmicrohttpd leaves the bind error in errno. */
		err = errno ? -errno : -EADDRNOTAVAIL;
		free(s);
		return err;
	}
	info = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_BIND_PORT);
	s->port = info ? info->port : 0;
	*out = s;
	return 0;
}

uint16_t metrics_server_port(const struct metrics_server *s)
{
	return s->port;
}

void metrics_server_stop(struct metrics_server *s)
{
	if (!s)
		return;
	MHD_stop_daemon(s->mhd);
	free(s);
}
