// SPDX-License-Identifier: MIT
/*
 * make bench-xdp: per-packet cost of the capture program through
 * BPF_PROG_TEST_RUN, beside a bare "return XDP_PASS" program measured in
 * the same run (the floor). Median of several rounds of REPEAT runs each.
 *
 *   build/bench_xdp [REPEAT] [ROUNDS]
 *
 * Then a new client's chance under a range flood (range_flood()); alone
 * with BENCH_XDP_RANGE_ONLY=1.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <linux/bpf.h>

#include "capture.h"
#include "frames.h"

/* capture_open()'s message (the caller's buffer). */
static char cap_err[CAPTURE_ERR_LEN];

static struct capture *cap;
static volatile int draining;
static unsigned long long drained;

static int on_event(void *ctx, const struct jitwg_event *ev)
{
	(void)ctx;
	(void)ev;
	drained++;
	return 0;
}

/*
 * Producer (the test runs) and consumer on separate cores, as on a gateway
 * where the NIC's softirq and the daemon's capture thread are apart; left to
 * the scheduler they sometimes share one core and the consumer starves.
 */
static void pin(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

static int ncpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n > 0 ? (int)n : 1;
}

/* Consumer running on the other core while the initiation case runs. */
static void *drain(void *arg)
{
	(void)arg;
	if (ncpus() > 1)
		pin(ncpus() - 1);
	while (draining)
		capture_poll(cap, 50);
	capture_poll(cap, 0);
	return NULL;
}

static int bare_prog(void)
{
	/* r0 = XDP_PASS; exit */
	struct bpf_insn insns[] = {
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = 0, .imm = XDP_PASS },
		{ .code = BPF_JMP | BPF_EXIT },
	};

	return bpf_prog_load(BPF_PROG_TYPE_XDP, "bare_pass", "GPL", insns, 2, NULL);
}

static int cmp_u32(const void *a, const void *b)
{
	return (int)(*(const __u32 *)a - *(const __u32 *)b);
}

/* Average ns per packet over one run of `repeat` packets. */
static __u32 run_once(int prog, const uint8_t *frame, size_t len, int repeat)
{
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = frame, .data_size_in = len,
		    .repeat = repeat);

	if (bpf_prog_test_run_opts(prog, &o)) {
		fprintf(stderr, "bench_xdp: test run: %s\n", strerror(errno));
		exit(1);
	}
	return o.duration;
}

/*
 * The case and the floor in alternating rounds, so both see the same
 * machine (it is shared); medians of the case, the floor and the difference.
 */
static void measure(int prog, int bare, const uint8_t *frame, size_t len,
		    const uint8_t *floor_frame, size_t floor_len, int repeat,
		    int rounds, double *ns, double *floor_ns, double *over)
{
	__u32 c[16], f[16], d[16];
	int i;

	for (i = 0; i < rounds; i++) {
		f[i] = run_once(bare, floor_frame, floor_len, repeat);
		c[i] = run_once(prog, frame, len, repeat);
		d[i] = c[i] > f[i] ? c[i] - f[i] : 0;
	}
	qsort(c, rounds, sizeof(c[0]), cmp_u32);
	qsort(f, rounds, sizeof(f[0]), cmp_u32);
	qsort(d, rounds, sizeof(d[0]), cmp_u32);
	*ns = c[rounds / 2];
	*floor_ns = f[rounds / 2];
	*over = d[rounds / 2];
}

/*
 * A new client under a range flood: initiations from 100.64.0.0/16 (a new
 * message each, sources counted through the /16) as fast as test runs go,
 * with the default limits and --drop (so the verdict says admitted or
 * refused), and every FLOOD_PER_PROBE packets one initiation from a random
 * /24 elsewhere and one from a random source inside the /16: the share of
 * each that the program admits, over seconds s.
 */
enum { FLOOD_PER_PROBE = 200 };

static uint32_t xorshift(uint32_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 17;
	*x ^= *x << 5;
	return *x;
}

/* One initiation from saddr (host order) with message number n; 1 if admitted. */
static int send_one(uint8_t *frame, size_t len, const struct frame_layout *l,
		    uint32_t saddr, uint32_t n)
{
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = frame, .data_size_in = len,
		    .repeat = 1);
	uint32_t a = htonl(saddr);

	memcpy(frame + l->l3 + 12, &a, 4);
	memcpy(frame + l->payload + JITWG_RECENT_HEAD_OFF, &n, 4); /* a new message */
	if (bpf_prog_test_run_opts(capture_prog_fd(cap), &o)) {
		fprintf(stderr, "bench_xdp: test run: %s\n", strerror(errno));
		exit(1);
	}
	return o.retval == XDP_PASS;
}

static void range_flood(double seconds)
{
	struct jitwg_config cfg = JITWG_CONFIG_DEFAULTS;
	struct frame_spec spec = { .family = 4, .sport = 40000, .dport = 51820,
				   .payload_len = 148 };
	uint8_t frame[FRAME_MAX], msg[148], s4[4] = { 100, 64, 0, 0 };
	unsigned long long flood = 0, flood_in = 0, probes = 0, out_in = 0, in_in = 0;
	struct frame_layout l;
	struct timespec t0, t;
	uint32_t n = 0, rnd = 2463534242u, a;
	double el = 0;
	pthread_t th;
	size_t len;
	int i;

	frame_initiation(msg, 3);
	spec.payload = msg;
	spec.saddr = s4;
	len = frame_build(frame, &spec, &l);
	cfg.flags = JITWG_F_DROP_LIMITED;
	capture_set_limits(cap, &cfg);
	capture_reset_limits(cap);
	draining = 1;
	pthread_create(&th, NULL, drain, NULL);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (el < seconds) {
		for (i = 0; i < FLOOD_PER_PROBE; i++, flood++, n++)
			flood_in += send_one(frame, len, &l, 0x64400000u + (n & 0xffff), n);
		/* elsewhere: a random /24 outside 100.64/16 (and 0/8, 127/8) */
		do
			a = xorshift(&rnd);
		while ((a >> 16) == 0x6440 || (a >> 24) == 0 || (a >> 24) == 127);
		out_in += send_one(frame, len, &l, a, n++);
		in_in += send_one(frame, len, &l, 0x64400000u + (xorshift(&rnd) & 0xffff), n++);
		probes++;
		clock_gettime(CLOCK_MONOTONIC, &t);
		el = (t.tv_sec - t0.tv_sec) + (t.tv_nsec - t0.tv_nsec) / 1e9;
	}
	draining = 0;
	pthread_join(th, NULL);
	printf("\nnew client under a range flood (default limits, %.1f s): flood from "
	       "100.64.0.0/16 at %.0f initiations/s, %.0f/s admitted;\n"
	       "  %llu probes each: from a random /24 elsewhere %.1f %% admitted, "
	       "from inside the /16 %.1f %%\n",
	       el, flood / el, flood_in / el, probes, 100.0 * out_in / probes,
	       100.0 * in_in / probes);
}

struct bcase {
	const char *name;
	struct frame_spec spec;
	uint8_t type;
	int limited; /* 1: rate-limit everything; 0: limits off */
	double target; /* ns over the floor */
};

int main(int argc, char **argv)
{
	static const struct bcase cases[] = {
		{ "non-UDP (IPv4 TCP)", { .family = 4, .l4proto = 6, .sport = 1, .dport = 80, .payload_len = 64 }, 0, 0, 5 },
		{ "UDP to another port", { .family = 4, .sport = 5353, .dport = 53, .payload_len = 64 }, 0, 0, 5 },
		{ "WireGuard data (type 4)", { .family = 4, .sport = 40000, .dport = 51820, .payload_len = 128 }, 4, 0, 5 },
		{ "initiation -> ring buffer", { .family = 4, .sport = 40000, .dport = 51820, .payload_len = 148 }, 0, 0, 100 },
		{ "initiation rate-limited", { .family = 4, .sport = 40000, .dport = 51820, .payload_len = 148 }, 0, 1, 100 },
	};
	struct capture_opts opts = { .mode = CAPTURE_LOAD_ONLY };
	int repeat = argc > 1 ? atoi(argv[1]) : 1000000;
	int rounds = argc > 2 ? atoi(argv[2]) : 5;

	pin(0);
	uint8_t frame[FRAME_MAX], msg[160];
	uint64_t c0[JITWG_CTR_MAX], c1[JITWG_CTR_MAX];
	struct frame_layout l;
	uint8_t floor_frame[FRAME_MAX];
	size_t floor_len;
	int bare;
	size_t i;

	if (rounds < 1 || rounds > 16 || repeat < 1) {
		fprintf(stderr, "usage: bench_xdp [REPEAT] [ROUNDS<=16]\n");
		return 2;
	}
	if (capture_open(&cap, &opts, on_event, NULL, cap_err, sizeof(cap_err))) {
		fprintf(stderr, "bench_xdp: %s\n", cap_err);
		return 1;
	}
	bare = bare_prog();
	if (bare < 0) {
		fprintf(stderr, "bench_xdp: cannot load the bare program: %s\n",
			strerror(errno));
		return 1;
	}

	frame_initiation(msg, 1);
	{
		struct frame_spec floor_spec = cases[0].spec;

		floor_spec.payload = msg;
		floor_len = frame_build(floor_frame, &floor_spec, &l);
	}

	if (getenv("BENCH_XDP_RANGE_ONLY")) { /* the range flood alone */
		range_flood(4);
		goto out;
	}
	printf("XDP per-packet cost, BPF_PROG_TEST_RUN, %d packets x %d rounds (median)\n\n",
	       repeat, rounds);
	printf("%-28s %10s %10s %10s %12s  %s\n", "case", "ns/pkt", "floor",
	       "over floor", "target over", "");
	printf("(the floor: a bare XDP_PASS program, run alternately with each case)\n");
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct bcase *bc = &cases[i];
		struct frame_spec spec = bc->spec;
		struct jitwg_config cfg = {};
		pthread_t t;
		double ns, floor_ns, over;

		spec.payload = msg;
		msg[0] = bc->type ? bc->type : 1;
		frame_build(frame, &spec, &l);
		if (bc->limited)
			cfg = (struct jitwg_config){ .src_rate = 1, .src_burst = 1 };
		capture_set_limits(cap, &cfg);
		capture_reset_limits(cap);
		capture_read_counters(cap, c0);
		draining = 1;
		pthread_create(&t, NULL, drain, NULL);
		measure(capture_prog_fd(cap), bare, frame, l.len, floor_frame,
			floor_len, repeat, rounds, &ns, &floor_ns, &over);
		draining = 0;
		pthread_join(t, NULL);
		capture_read_counters(cap, c1);
		printf("%-28s %10.1f %10.1f %10.1f %12.0f  %s", bc->name, ns,
		       floor_ns, over, bc->target,
		       over <= bc->target ? "meets" : "MISSES");
		if (c1[JITWG_CTR_EVENTS] > c0[JITWG_CTR_EVENTS] ||
		    c1[JITWG_CTR_RINGBUF_FULL] > c0[JITWG_CTR_RINGBUF_FULL])
			printf(" (events %llu, ring full %llu)",
			       (unsigned long long)(c1[JITWG_CTR_EVENTS] - c0[JITWG_CTR_EVENTS]),
			       (unsigned long long)(c1[JITWG_CTR_RINGBUF_FULL] -
						    c0[JITWG_CTR_RINGBUF_FULL]));
		if (bc->limited)
			printf(" (limited %llu)",
			       (unsigned long long)(c1[JITWG_CTR_LIMITED_SRC] -
						    c0[JITWG_CTR_LIMITED_SRC]));
		printf("\n");
	}
	printf("\nring buffer events drained by userspace during the run: %llu\n",
	       drained);
	range_flood(4);
out:
	close(bare);
	capture_close(cap);
	return 0;
}
