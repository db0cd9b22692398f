// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * The floors of bench-flood: a bare XDP program that passes everything
 * (xdp_pass.bpf.o), or, built with -DFLOOR_DROP, drops everything
 * (xdp_drop.bpf.o): the cheapest a receiver can be, the floor for floods
 * whose excess jitwg drops.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual MIT/GPL";

SEC("xdp")
int xdp_floor(struct xdp_md *ctx)
{
	(void)ctx;
#ifdef FLOOR_DROP
	return XDP_DROP;
#else
	return XDP_PASS;
#endif
}
