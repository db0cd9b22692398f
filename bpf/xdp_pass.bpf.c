// SPDX-License-Identifier: GPL-2.0 OR MIT
/* The floor of bench-flood: a bare XDP program that passes everything. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual MIT/GPL";

SEC("xdp")
int xdp_pass(struct xdp_md *ctx)
{
	(void)ctx;
	return XDP_PASS;
}
