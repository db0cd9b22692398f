// SPDX-License-Identifier: MIT
/*
 * make bench-xdp (first part): what libxdp's dispatcher (--xdp-mode multi)
 * adds per packet. The same frames through BPF_PROG_TEST_RUN into jitwg's
 * program loaded alone, into the dispatcher running jitwg as its one
 * program, and into a bare "return XDP_PASS" program (the floor), in
 * alternating rounds; medians. The dispatcher needs a device: loopback of a
 * network namespace of our own. Where the dispatcher cannot load, says so
 * and measures nothing.
 *
 *   build/bench_xdp_multi [REPEAT] [ROUNDS]
 */
#include <errno.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <xdp/libxdp.h>

#include "capture.h"
#include "frames.h"

/* capture_open()'s message (the caller's buffer). */
static char cap_err[CAPTURE_ERR_LEN];

static int bare_prog(void)
{
	/* r0 = XDP_PASS; exit */
	struct bpf_insn insns[] = {
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = 0, .imm = XDP_PASS },
		{ .code = BPF_JMP | BPF_EXIT },
	};

	return bpf_prog_load(BPF_PROG_TYPE_XDP, "bare_pass", "GPL", insns, 2,
			     NULL);
}

static int cmp_u32(const void *a, const void *b)
{
	__u32 x = *(const __u32 *)a, y = *(const __u32 *)b;

	return x < y ? -1 : x > y;
}

/* Average ns per packet over one run of `repeat` packets. */
static __u32 run_once(int prog, const uint8_t *frame, size_t len, int repeat)
{
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = frame,
		    .data_size_in = len, .repeat = repeat);

	if (bpf_prog_test_run_opts(prog, &o)) {
		fprintf(stderr, "bench_xdp_multi: test run: %s\n",
			strerror(errno));
		exit(1);
	}
	return o.duration;
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		struct frame_spec spec;
		uint8_t type;
	} cases[] = {
		{ "non-UDP (IPv4 TCP)",
		  { .family = 4, .l4proto = 6, .sport = 1, .dport = 80,
		    .payload_len = 64 }, 0 },
		{ "WireGuard data (type 4)",
		  { .family = 4, .sport = 40000, .dport = 51820,
		    .payload_len = 128 }, 4 },
	};
	struct capture_opts direct_opts = { .mode = CAPTURE_LOAD_ONLY };
	struct capture_opts multi_opts = { .mode = CAPTURE_MULTI, .ifname = "lo" };
	int repeat = argc > 1 ? atoi(argv[1]) : 1000000;
	int rounds = argc > 2 ? atoi(argv[2]) : 5;
	struct capture *direct = NULL, *multi = NULL;
	struct xdp_multiprog *mp = NULL;
	uint8_t frame[FRAME_MAX], msg[160];
	struct frame_layout l;
	int bare, disp, ret = 1;
	size_t i;

	if (rounds < 1 || rounds > 16 || repeat < 1) {
		fprintf(stderr, "usage: bench_xdp_multi [REPEAT] [ROUNDS<=16]\n");
		return 2;
	}
	/* A loopback device of our own for the dispatcher. */
	if (unshare(CLONE_NEWNET)) {
		fprintf(stderr, "bench_xdp_multi: unshare: %s (needs root)\n",
			strerror(errno));
		return 1;
	}
	printf("libxdp dispatcher (--xdp-mode multi), BPF_PROG_TEST_RUN, "
	       "%d packets x %d rounds (median)\n", repeat, rounds);
	if (capture_open(&multi, &multi_opts, NULL, NULL, cap_err, sizeof(cap_err))) {
		printf("dispatcher: not measured: %s\n\n", cap_err);
		return 0;
	}
	mp = xdp_multiprog__get_from_ifindex((int)if_nametoindex("lo"));
	if (libxdp_get_error(mp) || xdp_multiprog__is_legacy(mp)) {
		printf("dispatcher: not measured: none on lo\n\n");
		mp = NULL;
		goto out;
	}
	disp = xdp_program__fd(xdp_multiprog__main_prog(mp));
	if (capture_open(&direct, &direct_opts, NULL, NULL, cap_err, sizeof(cap_err))) {
		fprintf(stderr, "bench_xdp_multi: %s\n", cap_err);
		goto out;
	}
	bare = bare_prog();
	if (bare < 0) {
		fprintf(stderr, "bench_xdp_multi: bare program: %s\n",
			strerror(errno));
		goto out;
	}
	printf("%-26s %8s %12s %8s %14s\n", "case", "jitwg", "dispatcher",
	       "floor", "dispatcher adds");
	frame_initiation(msg, 1);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct frame_spec spec = cases[i].spec;
		__u32 d[16], m[16], f[16], add[16];
		int r;

		spec.payload = msg;
		msg[0] = cases[i].type ? cases[i].type : 1;
		frame_build(frame, &spec, &l);
		for (r = 0; r < rounds; r++) {
			f[r] = run_once(bare, frame, l.len, repeat);
			d[r] = run_once(capture_prog_fd(direct), frame, l.len, repeat);
			m[r] = run_once(disp, frame, l.len, repeat);
			add[r] = m[r] > d[r] ? m[r] - d[r] : 0;
		}
		qsort(d, rounds, sizeof(d[0]), cmp_u32);
		qsort(m, rounds, sizeof(m[0]), cmp_u32);
		qsort(f, rounds, sizeof(f[0]), cmp_u32);
		qsort(add, rounds, sizeof(add[0]), cmp_u32);
		printf("%-26s %8u %12u %8u %14u\n", cases[i].name, d[rounds / 2],
		       m[rounds / 2], f[rounds / 2], add[rounds / 2]);
	}
	printf("(ns per packet; \"dispatcher adds\": the dispatcher running jitwg "
	       "minus jitwg alone, per round)\n\n");
	close(bare);
	ret = 0;
out:
	if (mp)
		xdp_multiprog__close(mp);
	capture_close(direct);
	capture_close(multi);
	return ret;
}
