#!/usr/bin/env bash
# make bench-fc-timeline: where a fresh client's first contact spends its
# time, from packets (docs/bench.md, "First contact").
#
#  1. bench-e2e's section 1 with BENCH_CLIENTS (100) clients of each kind
#     that alternate: the floor (peer preinstalled) with jitwgd initiating
#     back, then the floor's clients under --consume with fresh ones
#     (BENCH_FC_CONSUME=0 skips these); the veth's WireGuard packets
#     captured, jitwgd's and the control plane's logs kept (BENCH_FC_OUT,
#     default build/bench/fc-timeline, files fc-*). scripts/fc_timeline.py
#     pairs each client's packets and lays jitwgd's stages on them: p50/p90
#     of every segment.
#  2. bare costs, alone on the machine as far as the lock goes: LMDB's two
#     flushes on the filesystem the benchmark's cache is on (/tmp), and a
#     wireguard-go UAPI set of a new peer with and without the keepalive
#     switch that makes it initiate at once (BENCH_FC_BARE, 300 each), back
#     to back and 100 ms apart.
#  3. jitwgd's own fdatasync and meta writes under `perf trace`, in a short
#     run of BENCH_FC_SYSCALLS (30) clients of each kind (0 skips).
# BENCH_JITWGD=PATH runs another jitwgd build (bench_e2e.sh). Run it under
# the shared lock: flock /tmp/jitwg-bench.lock make bench-fc-timeline.
SCRIPT=bench-fc-timeline
. "$(dirname "$0")/e2e_script.sh"
trap 'echo "interrupted"; exit 130' INT TERM

N=${BENCH_CLIENTS:-100}
BARE=${BENCH_FC_BARE:-300}
OUT=${BENCH_FC_OUT:-$ROOT/build/bench/fc-timeline}
mkdir -p "$OUT"
rm -f "$OUT"/fc-*
echo "first contact's timeline: $N clients of each kind; $(date -u '+%Y-%m-%d %H:%M UTC')"

# The child's namespaces are its own (JITWG_RUNID is exported, the names
# differ: g, c there; b here, made after it ends).
# BENCH_CLIENTS=0: the bare costs alone.
if [ "$N" -gt 0 ]; then
	BENCH_ONLY=1 BENCH_CLIENTS=$N BENCH_NIB_CLIENTS=0 \
		BENCH_CONSUME_CLIENTS=$([ "${BENCH_FC_CONSUME:-1}" = 0 ] && echo 0 || echo "$N") \
		BENCH_SAVE_LOGS=$OUT/fc BENCH_CAPTURE=1 bash scripts/bench_e2e.sh ||
		fail "bench_e2e.sh section 1 failed"
	echo
	echo "load average after the clients: $(cut -d' ' -f1-3 /proc/loadavg)"
	$PY scripts/fc_timeline.py analyze "$OUT/fc" | tee "$OUT/fc-timeline.txt"
fi

echo
echo "bare costs, $BARE of each; the cache's filesystem: $(df --output=fstype /tmp | tail -1) on $(df --output=source /tmp | tail -1)"
tmp_dir
$PY scripts/fc_timeline.py sync "$TMP" "$BARE" | tee -a "$OUT/fc-timeline.txt"
# A device of its own, its peers' endpoint behind a veth whose other end
# has no address (a static neighbour, so no ARP): the initiation is sent and
# captured there, and goes no further.
netns_add b
B=$(ns b)
ip -n "$B" link add d0 type veth peer name d1
ip -n "$B" addr add 10.98.0.1/24 dev d0
ip -n "$B" link set d1 up
ip -n "$B" link set d0 up
ip -n "$B" neigh add 10.98.0.2 lladdr 02:00:00:00:00:02 dev d0
BD=jw${RUNID}x
wggo "$B" "$BD"
wg genkey >"$TMP/bare.key"
ip netns exec "$B" wg set "$BD" private-key "$TMP/bare.key" listen-port 51870 ||
	fail "wg set on the bare device"
ip -n "$B" link set "$BD" up
ip netns exec "$B" tcpdump -i d0 -n -s 256 -B 8192 -U --immediate-mode -w "$TMP/bare.pcap" \
	udp 2>"$TMP/tcpdump-bare.log" &
cap=$!
on_exit "kill $cap 2>/dev/null"
wait_for 60 grep -q "listening on" "$TMP/tcpdump-bare.log" || fail "tcpdump did not start"
# Back to back (5 ms apart) and as jitwgd meets them (100 ms apart: an
# idle machine between clients).
ip netns exec "$B" $PY scripts/fc_timeline.py uapi "/var/run/wireguard/$BD.sock" "$BARE" \
	10.98.0.2:51820 "$TMP/bare.rec" 5 plain,initiate | tee -a "$OUT/fc-timeline.txt"
ip netns exec "$B" $PY scripts/fc_timeline.py uapi "/var/run/wireguard/$BD.sock" \
	$((BARE / 3)) 10.98.0.2:51820 "$TMP/bare-idle.rec" 100 initiate | tee -a "$OUT/fc-timeline.txt"
sleep 0.5
kill "$cap"
wait "$cap" 2>/dev/null
for r in bare bare-idle; do
	$PY scripts/fc_timeline.py uapi-pcap "$TMP/$r.rec" "$TMP/bare.pcap" | tee -a "$OUT/fc-timeline.txt"
done

# jitwgd's own flushes, as perf trace sees them in a short run of its own
# (tracing slows what it traces a little: not the timeline's run).
NS=${BENCH_FC_SYSCALLS:-30}
if [ "$NS" -gt 0 ] && command -v perf >/dev/null; then
	echo
	echo "jitwgd's flushes under perf trace, $NS clients of each kind:"
	printf '#!/bin/sh\nexec perf trace -o %s -e fdatasync,pwrite64,writev %s "$@"\n' \
		"$TMP/perf.txt" "$(realpath "${BENCH_JITWGD:-$BUILD/jitwgd}")" >"$TMP/jitwgd-traced"
	chmod 700 "$TMP/jitwgd-traced"
	BENCH_JITWGD=$TMP/jitwgd-traced BENCH_ONLY=1 BENCH_CLIENTS=$NS BENCH_NIB_CLIENTS=0 \
		BENCH_CONSUME_CLIENTS=0 bash scripts/bench_e2e.sh | grep -E 'auth_ms|first ping'
	$PY scripts/fc_timeline.py syscalls "$TMP/perf.txt" | tee -a "$OUT/fc-timeline.txt"
elif [ "$NS" -gt 0 ]; then
	echo "  (perf not installed: jitwgd's flushes not traced)"
fi
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/fc-timeline.txt"
