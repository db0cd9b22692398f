#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# make bench-wg: wgdev against wg(8) on both backends, in the same run.
#   uapi    = wireguard-go on this host (scripts/bench-wg-lane.sh uapi)
#   netlink = kernel WireGuard in the qemu TCG VM (tests/vm/run-in-vm.sh);
#             its absolute numbers carry the emulation's slowdown, the
#             wgdev / wg(8) ratio does not.
# Settings: BENCH_SIZES ("1000 10000"), BENCH_MAX (100000), BENCH_REPS (5),
# BENCH_RETRY_REPS (2), BENCH_BACKENDS ("uapi netlink").
set -u
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "bench-wg: needs root (namespaces)" >&2; exit 1; }
out=$(mktemp)
trap 'rm -f "$out"' EXIT
export JITWG_RUNID=$$
for b in ${BENCH_BACKENDS:-uapi netlink}; do
	echo "bench-wg: $b lane..." >&2
	if [ "$b" = uapi ]; then
		scripts/bench-wg-lane.sh uapi
	else
		VM_QUIET=1 VM_ENV="BENCH_SIZES BENCH_MAX BENCH_REPS BENCH_RETRY_REPS" \
			VM_MEM=${VM_MEM:-3072} tests/vm/run-in-vm.sh \
			scripts/bench-wg-lane.sh netlink
	fi | tee -a "$out" | grep -v '^[RMH] ' >&2
done

echo
echo "WireGuard device configuration: one call of wgdev vs wg(8), same device, same run"
echo "(uapi: wireguard-go on the host; netlink: kernel WireGuard in a qemu TCG VM;"
echo " wg(8) times are wall clock of its processes, ip netns exec included; wg(8)"
echo " installs with one setconf, removes with 'wg set peer K remove' x1000 per call)"
echo
awk '
$1 == "R" {
	tool = $3 == "wgdev" ? "wgdev" : "wg(8)"
	k = $2 SUBSEP $5 SUBSEP tool
	if (!(k in seen)) { seen[k] = 1; order[n++] = k }
	if ($4 == "install") inst[k] = $6
	if ($4 == "remove") rm[k] = $6
	if ($4 == "list") { lst[k] = $6; listed[k] = $7 }
}
function rate(c, t) { return t > 0 ? sprintf("%.0f", c / t) : "-" }
END {
	printf "%-8s %7s %-6s %11s %9s %9s %10s %9s\n", "backend", "peers", "tool",
	       "install s", "peers/s", "list s", "remove s", "peers/s"
	for (i = 0; i < n; i++) {
		split(order[i], f, SUBSEP)
		k = order[i]
		if (!(k in inst)) {
			printf "%-8s %7s %-6s %11s %9s %9.4f %10.4f %9s  (took %d)\n",
			       f[1], f[2], f[3], "failed", "-", lst[k], rm[k],
			       rate(listed[k], rm[k]), listed[k]
			continue
		}
		printf "%-8s %7s %-6s %11.4f %9s %9.4f %10.4f %9s\n", f[1], f[2],
		       f[3], inst[k], rate(f[2], inst[k]), lst[k], rm[k],
		       rate(f[2], rm[k])
	}
}' "$out"
echo
echo "Largest peer count taken (asked for ${BENCH_MAX:-100000})"
awk '$1 == "M" { printf "  %-8s %-6s %d\n", $2, $3 == "wgdev" ? "wgdev" : "wg(8)", $4 }' "$out"
echo
echo "Handshake after installing the client as a peer (ms; client has no endpoint"
echo "except in no-initiate, where it initiates and the gateway only installs)"
echo
awk '
$1 == "H" {
	k = $2 SUBSEP $3
	if (!(k in cnt)) order[n++] = k
	v[k, cnt[k]++] = $4
	if (NF > 4) wall[k] += $5
}
END {
	printf "%-8s %-12s %5s %10s %10s %10s  %s\n", "backend", "method", "runs",
	       "median", "min", "max", "note"
	for (i = 0; i < n; i++) {
		k = order[i]
		m = cnt[k]
		for (a = 0; a < m; a++) s[a] = v[k, a]
		for (a = 0; a < m; a++)
			for (b = a + 1; b < m; b++)
				if (s[b] < s[a]) { t = s[a]; s[a] = s[b]; s[b] = t }
		split(k, f, SUBSEP)
		if (f[2] == "wgdev")
			note = "install_initiate call -> handshake, in-process"
		else if (f[2] == "wg-set")
			note = sprintf("from wg set return; wg set took %.1f ms incl. exec", wall[k] / m)
		else
			note = "plain install, client retry (REKEY_TIMEOUT 5 s)"
		printf "%-8s %-12s %5d %10.2f %10.2f %10.2f  %s\n", f[1], f[2], m,
		       s[int((m - 1) / 2)], s[0], s[m - 1], note
	}
}' "$out"
