/* SPDX-License-Identifier: MIT */
/*
 * Prometheus metrics: a text exposition writer, a histogram the packet path
 * can observe into without a lock, and an HTTP server (libmicrohttpd, on its
 * own thread) that answers GET /metrics with what a render callback writes.
 *
 * The exposition format is Prometheus' text format 0.0.4: one "# HELP" and
 * one "# TYPE" line per family, then its samples.
 */
#ifndef JITWG_METRICS_H
#define JITWG_METRICS_H

#include <stdint.h>
#include <sys/socket.h>

/*
 * The port --metrics-listen uses when none is given. Prometheus' published
 * default port allocations give 9090-9094 to its own components and 9100
 * upwards to exporters; 9089 is in neither range.
 */
enum { METRICS_DEFAULT_PORT = 9089 };

/* A growing text buffer. A failed allocation sticks in err (-ENOMEM). */
struct metrics_buf {
	char *data;
	size_t len;
	size_t cap;
	int err;
};

void metrics_buf_init(struct metrics_buf *b);
void metrics_buf_free(struct metrics_buf *b);
void metrics_printf(struct metrics_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

enum metrics_type {
	METRICS_COUNTER,
	METRICS_GAUGE,
	METRICS_HISTOGRAM,
};

/*
 * Labels are given as a NULL-terminated array of name, value pairs:
 * (const char *[]){ "outcome", "installed", NULL }, or NULL for none.
 * Names must follow Prometheus' rules ([a-zA-Z_][a-zA-Z0-9_]*); values are
 * escaped here.
 */

/* "# HELP name help" and "# TYPE name type" (help escaped). */
void metrics_family(struct metrics_buf *b, const char *name,
		    enum metrics_type type, const char *help);
/* One sample: name{labels} value. */
void metrics_u64(struct metrics_buf *b, const char *name,
		 const char *const *labels, uint64_t value);
void metrics_double(struct metrics_buf *b, const char *name,
		    const char *const *labels, double value);

/*
 * The same with labels already in the exposition's form, e.g.
 * outcome="installed" (NULL or "" for none): for lists that carry them.
 */
void metrics_u64_raw(struct metrics_buf *b, const char *name,
		     const char *raw_labels, uint64_t value);

/* Shorthands: a family with a single unlabelled sample. */
void metrics_counter1(struct metrics_buf *b, const char *name, const char *help,
		      uint64_t value);
void metrics_gauge1(struct metrics_buf *b, const char *name, const char *help,
		    double value);

/*
 * A histogram of durations. Observing is two relaxed atomic adds (the
 * bucket and the sum), so worker threads observe without a lock; a render
 * reads the buckets and derives _count from them, so _count always equals
 * the +Inf bucket even while observations land (the sum may lag by the
 * observations in flight).
 */
enum { METRICS_HIST_MAX_BOUNDS = 24 };

struct metrics_hist {
	double bounds[METRICS_HIST_MAX_BOUNDS]; /* upper bounds, seconds */
	unsigned int n;				/* bounds in use */
	uint64_t
	    counts[METRICS_HIST_MAX_BOUNDS + 1]; /* per bucket; last: +Inf */
	uint64_t sum_ns;
};

/* Latency bounds from 0.5 ms to 10 s, for the daemon's stages. */
extern const double metrics_latency_bounds[];
extern const unsigned int metrics_latency_nbounds;

/* bounds strictly ascending, n <= METRICS_HIST_MAX_BOUNDS; 0 or -EINVAL. */
int metrics_hist_init(struct metrics_hist *h, const double *bounds,
		      unsigned int n);
void metrics_hist_observe_ns(struct metrics_hist *h, uint64_t ns);
void metrics_hist_observe(struct metrics_hist *h, double seconds);
/* name_bucket{labels,le="…"}, name_sum{labels}, name_count{labels}. */
void metrics_histogram(struct metrics_buf *b, const char *name,
		       const char *const *labels, const struct metrics_hist *h);

/*
 * The HTTP server. render runs on the server's thread for every scrape and
 * returns 0 or -errno (answered 500); it must not block on the packet path:
 * read atomics and snapshots, never ask the device.
 */
typedef int (*metrics_render_fn)(struct metrics_buf *b, void *ctx);
struct metrics_server;

/*
 * "ADDR:PORT", "[V6ADDR]:PORT", or an address alone (port
 * METRICS_DEFAULT_PORT). Numeric only. 0 or -EINVAL.
 */
int metrics_listen_parse(const char *s, struct sockaddr_storage *ss,
			 socklen_t *sslen);
/* Listen on listen (as metrics_listen_parse takes it). 0 or -errno. */
int metrics_server_start(struct metrics_server **out, const char *listen,
			 metrics_render_fn render, void *ctx);
/* The bound port (useful with port 0). */
uint16_t metrics_server_port(const struct metrics_server *s);
/* Stops the thread, closes the socket, frees s (NULL is fine). */
void metrics_server_stop(struct metrics_server *s);

#endif
