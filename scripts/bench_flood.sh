#!/usr/bin/env bash
# make bench-flood: the receiver under WireGuard-shaped floods from
# jitwg-pktgen (live frames, XDP_TX), one row per flood kind and rate.
#
#   ns "c" (generator, taskset -c 0)        ns "g" (receiver)
#   jitwg-pktgen --dev jfs            --->  veth jfr 192.0.2.1, threaded NAPI
#   veth jfs 192.0.2.2                       pinned to the other core; one of:
#                                            none  no XDP program (GRO on)
#                                            pass  a bare XDP_PASS program
#                                            drop  a bare XDP_DROP program
#                                            jitwg jitwg-xdp, default limits
#                                            spent jitwg-xdp, global budget 1/s
#
# Each round runs the receivers one after the other (interleaved, so the
# machine's drift hits all alike); a row gives the median and, in brackets,
# the range over rounds of: packets/s offered, received (the receiving
# veth's rx_packets; the rest the veth ring dropped), the share of those
# jitwg's program dropped, XDP ns per packet from bpf_stats (run_time_ns /
# run_cnt) and events/s that reached userspace (jitwg's ring buffer).
# jitwg's figure mixes the refused packets with those its budget admits
# (40,000 at once, then 20,000/s: the ring buffer, the stack); "spent"
# (global budget of 1/s) is the cost of a refused packet alone.
#
# Two floors, because veth counts a frame its XDP program dropped in
# rx_packets like one it passed: jitwg drops a flood's excess (copies over
# their budget, initiations the global budget refuses), so under the
# initiation floods its receiver drops 94-98 % of what it receives while the
# bare XDP_PASS one hands every frame to the stack (an skb, IP, UDP, an
# ICMP error), which costs far more than a drop. j/pass, the issue's
# measure, then flatters jitwg; j/drop, against a bare XDP_DROP (the
# cheapest receiver there is), is the strict bound: what jitwg's checks
# and the initiations it admits cost the receiver over dropping blind;
# s/drop, the receiver with jitwg's budget spent against it, the refused
# path alone.
#
# Then, unless BENCH_FLOOD_JITWGD=0, jitwgd on the topology of
# tests/e2e_lib.sh (wireguard-go gateway, control plane) under each flood
# kind of BENCH_FLOOD_JITWGD_KINDS at max from one core,
# BENCH_FLOOD_JITWGD_RUNS times each (3): per run, BENCH_FLOOD_JITWGD_CLIENTS
# (2) new registered wireguard-go clients at once, each from an address of
# its own never seen before, then the returning client (restarted; its
# address verified by its earlier handshake). First contact is the time from
# a client's first ping to the first answer through the tunnel, pinging
# every 50 ms (WireGuard holds the pings until the handshake completes, so
# the answer's round trip is the handshake's time, to ping's precision).
# Per kind: the new clients' p50/p90/max and how many had a tunnel by their
# third initiation (11 s), the returning client's p50/p99/max (nearest
# rank), installs of the key the forged kinds claim (registered, never used
# by a client: must stay 0), jitwgd's CPU share and resident memory (ranges
# over runs) and what reached jitwgd (events/s from the XDP program's
# counters); then jitwgd's own counters per run. A flood lasts up to
# BENCH_FLOOD_JITWGD_SECONDS (22), stopped once a run is measured.
# Kinds pktgen cannot send at line rate, from jitwg-loadgen instead
# (BENCH_FLOOD_LG_RATE initiations/s, default 2000, over
# BENCH_FLOOD_LG_SOURCES addresses, default 100: the XDP program lets each
# source 100 a second):
# fresh (valid initiations from fresh, unregistered keypairs: each one
# authenticates and needs a lookup) and forged-unique (every initiation a
# new forgery of the registered victim key: two DHs each, no duplicate).
# BENCH_FLOOD_JITWGD_BIN runs another jitwgd build (an old one to compare);
# BENCH_FLOOD_JITWGD_ARGS adds options to it; BENCH_FLOOD_CP_DELAY (s, default
# 0) slows every control-plane answer, so that lookups queue up.
#
# BENCH_FLOOD_KINDS: KIND[@SOURCES][:RATE] words (default below; SOURCES
# defaults to BENCH_FLOOD_SOURCES, RATE to max; " " skips the receiver
# table), BENCH_FLOOD_ROUNDS (3),
# BENCH_FLOOD_SECONDS (3); BENCH_FLOOD_XDP another jitwg-xdp build to
# measure, BENCH_FLOOD_XDP_ARGS options for it; BENCH_FLOOD_BASE another
# jitwg-xdp build (an older commit's, say) run as a further receiver "base" in
# the same rounds, with the same options, for a before/after in one run.
# BENCH_FLOOD_PKTGEN_ARGS: more jitwg-pktgen options for the receiver rounds
# (--messages 65536: random kinds that seldom repeat).
# BENCH_FLOOD_READER_CPU: the CPU for jitwg-xdp, the ring buffer's reader
# (a line per event); left to the scheduler it shares the receiver's.
SCRIPT=bench-flood
. "$(dirname "$0")/e2e_script.sh"
trap 'echo "interrupted"; exit 130' INT TERM

PKTGEN=$BUILD/jitwg-pktgen
XDP=${BENCH_FLOOD_XDP:-$BUILD/jitwg-xdp} # another build to compare
BASE=${BENCH_FLOOD_BASE:-}               # and one to compare it with
MODES="none pass drop jitwg spent${BASE:+ base}"
PASS_OBJ=$BUILD/xdp_pass.bpf.o
DROP_OBJ=$BUILD/xdp_drop.bpf.o
SOURCES=${BENCH_FLOOD_SOURCES:-1000000}
KINDS=${BENCH_FLOOD_KINDS:-"udp data replay@1 replay valid forged random random-mac1 mac2"}
ROUNDS=${BENCH_FLOOD_ROUNDS:-3}
SECS=${BENCH_FLOOD_SECONDS:-3}
GEN_CPU=0
RX_CPU=$(($(nproc) - 1))

[ -x "$PKTGEN" ] && [ -x "$XDP" ] && [ -f "$PASS_OBJ" ] && [ -f "$DROP_OBJ" ] && [ -x "${BASE:-$XDP}" ] ||
	{ echo "bench-flood: run make first" >&2; exit 1; }

tmp_dir
C=$(ns fc) G=$(ns fg)
veth_pair fc jfs 192.0.2.2/24 fg jfr 192.0.2.1/24
wg genkey >"$TMP/gw.key"
GW_PUB=$(wg pubkey <"$TMP/gw.key")
G_MAC=$(ip -n "$G" -br link show jfr | awk '{print $3}')
# Threaded NAPI: the receiver's work in a kthread of its own, pinned to the
# core the generator does not use (else it runs in the generator's softirq
# and the generator measures the receiver).
ip netns exec "$G" ethtool -K jfr gro on >/dev/null
ip netns exec "$G" sh -c 'echo 1 >/sys/class/net/jfr/threaded' ||
	{ echo "bench-flood: cannot make jfr's NAPI threaded" >&2; exit 1; }
stats_was=$(sysctl -n kernel.bpf_stats_enabled)
sysctl -qw kernel.bpf_stats_enabled=1
on_exit "sysctl -qw kernel.bpf_stats_enabled=$stats_was"

# pin_napi [DEV]: DEV's NAPI threads (jfr's) to the receiver's core.
pin_napi() {
	local pid
	for pid in $(ps -eo pid=,comm= | awk -v d="${1:-jfr}" '$2 ~ "^napi/" d "-" {print $1}'); do
		taskset -pc "$RX_CPU" "$pid" >/dev/null
	done
}
rx_stat() { ip netns exec "$G" cat "/sys/class/net/jfr/statistics/$1"; }
# xdp_drops: frames the receiver's XDP program dropped (veth counts them in
# rx_packets too).
xdp_drops() { ip netns exec "$G" ethtool -S jfr | awk '/xdp_drops:/ { s += $2 } END { print s + 0 }'; }
prog_id() { ip -n "$G" link show jfr | sed -n 's/.*prog\/xdp id \([0-9]*\).*/\1/p'; }
# prog_stats ID: "run_time_ns run_cnt" of program ID.
prog_stats() {
	bpftool prog show id "$1" 2>/dev/null |
		sed -n 's/.*run_time_ns \([0-9]*\) run_cnt \([0-9]*\).*/\1 \2/p'
}

# receiver MODE: attach what MODE names to jfr (nothing for none).
receiver() {
	ip -n "$G" link set dev jfr xdp off 2>/dev/null
	case $1 in
	pass | drop)
		local obj=$PASS_OBJ
		[ "$1" = drop ] && obj=$DROP_OBJ
		ip -n "$G" link set dev jfr xdpdrv obj "$obj" sec xdp ||
			fail "cannot attach $obj"
		;;
	jitwg | spent | base)
		local args= xdp=$XDP
		[ "$1" = spent ] && args="--global-rate 1 --global-burst 1"
		[ "$1" = base ] && xdp=$BASE
		ip netns exec "$G" ${BENCH_FLOOD_READER_CPU:+taskset -c "$BENCH_FLOOD_READER_CPU"} \
			"$xdp" --dev jfr --mode native $args ${BENCH_FLOOD_XDP_ARGS:-} \
			>"$TMP/xdp.out" 2>"$TMP/xdp.err" &
		XDP_PID=$!
		wait_for 5 grep -q attached "$TMP/xdp.err" || fail "jitwg-xdp: $(cat "$TMP/xdp.err")"
		;;
	esac
	pin_napi
}

# run KIND SOURCES RATE MODE ROUND: one measurement, a line in $TMP/rows.
run() {
	local kind=$1 src=$2 rate=$3 mode=$4 round=$5 rx0 rx1 id st0 st1 out
	local offered ns=- events=- d0 d1
	receiver "$mode"
	id=$(prog_id)
	[ -n "$id" ] && st0=$(prog_stats "$id")
	rx0=$(rx_stat rx_packets)
	d0=$(xdp_drops)
	out=$(ip netns exec "$C" taskset -c $GEN_CPU "$PKTGEN" --dev jfs --dst 192.0.2.1 \
		--dst-mac "$G_MAC" --responder "$GW_PUB" --seed flood \
		--kind "$kind:$rate" --sources "$src" --duration "$SECS" \
		${BENCH_FLOOD_PKTGEN_ARGS:-} 2>&1) ||
		fail "jitwg-pktgen: $out"
	rx1=$(rx_stat rx_packets)
	d1=$(xdp_drops)
	if [ -n "$id" ]; then
		st1=$(prog_stats "$id")
		ns=$(awk -v a="$st0" -v b="$st1" 'BEGIN { split(a, x, " "); split(b, y, " ");
			n = y[2] - x[2]; if (n > 0) printf "%.1f", (y[1] - x[1]) / n; else print "-" }')
	fi
	if [ "$mode" = spent ]; then
		kill -INT "$XDP_PID"
		wait "$XDP_PID"
	elif [ "$mode" = jitwg ] || [ "$mode" = base ]; then
		kill -INT "$XDP_PID"
		wait "$XDP_PID"
		events=$(sed -n 's/^counters .* events=\([0-9]*\).*/\1/p' "$TMP/xdp.out")
		events=$(awk -v e="$events" -v s="$SECS" 'BEGIN { printf "%.0f", e / s }')
		[ "$mode" = jitwg ] && sed -n 's/^counters //p' "$TMP/xdp.out" >>"$TMP/counters"
	fi
	offered=$(echo "$out" | sed -n 's/^total sent=.* pps=\([0-9]*\)$/\1/p')
	echo "$kind@$src:$rate $mode $round $offered $(((rx1 - rx0) / SECS)) $ns $events" \
		"$(awk -v d=$((d1 - d0)) -v r=$((rx1 - rx0)) 'BEGIN { printf "%.1f", r ? 100 * d / r : 0 }')" \
		>>"$TMP/rows"
}

# summary SPEC MODE COLUMN: "median [min-max]" over rounds; pps in Mpps.
summary() {
	awk -v s="$1" -v m="$2" -v c="$3" '
		$1 == s && $2 == m && $c != "-" { v[++n] = $c }
		END {
			if (!n) { print "-"; exit }
			for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++)
				if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
			med = n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
			if (c == 4 || c == 5) { d = 1e6; f = "%.2f" } else { d = 1; f = (c == 6 ? "%.1f" : "%.0f") }
			printf f " [" f "-" f "]", med / d, v[1] / d, v[n] / d
		}' "$TMP/rows"
}
median() { summary "$@" | awk '{print $1}'; }

echo "bench-flood: $(nproc) CPUs, kernel $(uname -r); generator on CPU $GEN_CPU," \
	"receiver NAPI on CPU $RX_CPU; $ROUNDS rounds of $SECS s; shared machine: expect noise"
echo "sources: $SOURCES unless KIND@N; jitwg with its default limits" \
	"(src $(sed -n 's/.*JITWG_DEFAULT_SRC_RATE = \([0-9]*\).*/\1/p' include/jitwg.h)/s," \
	"global $(sed -n 's/.*JITWG_DEFAULT_GLOBAL_RATE = \([0-9]*\).*/\1/p' include/jitwg.h)/s)"
: >"$TMP/rows"
: >"$TMP/counters"
for spec in $KINDS; do
	kind=${spec%%[@:]*}
	src=$SOURCES rate=max
	[[ $spec == *@* ]] && { src=${spec#*@}; src=${src%%:*}; }
	[[ $spec == *:* ]] && rate=${spec##*:}
	for ((r = 1; r <= ROUNDS; r++)); do
		for mode in $MODES; do
			run "$kind" "$src" "$rate" "$mode" "$r"
		done
	done
	echo "  measured $kind@$src:$rate" >&2
done
ip -n "$G" link set dev jfr xdp off 2>/dev/null

echo
echo "Mpps: median [range over rounds]; offered = what jitwg-pktgen sent (jitwg's rounds)"
ratio() { awk -v p="$1" -v j="$2" 'BEGIN { if (p > 0) printf "%.0f", 100 * j / p; else print "-" }'; }
printf '%-23s %-17s %-17s %-17s %-17s %-17s %-8s %6s %6s %-17s %6s %-17s %-20s %-18s %-15s\n' "kind@sources:rate" \
	"offered" "rx none" "rx pass" "rx drop" "rx jitwg" "dropped" "j/pass" "j/drop" \
	"rx spent" "s/drop" "ns pass" "ns jitwg" "ns refused" "events/s"
for spec in $(awk '{print $1}' "$TMP/rows" | awk '!seen[$0]++'); do
	p=$(median "$spec" pass 5) d=$(median "$spec" drop 5) j=$(median "$spec" jitwg 5)
	printf '%-23s %-17s %-17s %-17s %-17s %-17s %7s%% %5s%% %5s%% %-17s %5s%% %-17s %-20s %-18s %-15s\n' "$spec" \
		"$(summary "$spec" jitwg 4)" "$(summary "$spec" none 5)" \
		"$(summary "$spec" pass 5)" "$(summary "$spec" drop 5)" \
		"$(summary "$spec" jitwg 5)" "$(median "$spec" jitwg 8)" \
		"$(ratio "$p" "$j")" "$(ratio "$d" "$j")" \
		"$(summary "$spec" spent 5)" "$(ratio "$d" "$(median "$spec" spent 5)")" \
		"$(summary "$spec" pass 6)" "$(summary "$spec" jitwg 6)" \
		"$(summary "$spec" spent 6)" \
		"$(summary "$spec" jitwg 7)"
done
if [ -n "$BASE" ]; then
	echo
	echo "base ($BASE), the same rounds:"
	printf '%-23s %-17s %6s %-17s %6s %-20s %-15s\n' "kind@sources:rate" \
		"rx base" "b/pass" "rx jitwg" "j/pass" "ns base" "events/s base"
	for spec in $(awk '{print $1}' "$TMP/rows" | awk '!seen[$0]++'); do
		p=$(median "$spec" pass 5) b=$(median "$spec" base 5) j=$(median "$spec" jitwg 5)
		printf '%-23s %-17s %5s%% %-17s %5s%% %-20s %-15s\n' "$spec" \
			"$(summary "$spec" base 5)" \
			"$(awk -v p="$p" -v j="$b" 'BEGIN { if (p > 0) printf "%.0f", 100 * j / p; else print "-" }')" \
			"$(summary "$spec" jitwg 5)" \
			"$(awk -v p="$p" -v j="$j" 'BEGIN { if (p > 0) printf "%.0f", 100 * j / p; else print "-" }')" \
			"$(summary "$spec" base 6)" "$(summary "$spec" base 7)"
	done
fi
echo
echo "jitwg counters per round (last round of each kind):"
awk '{print "  " $0}' "$TMP/counters" | awk -v r="$ROUNDS" 'NR % r == 0'

[ "${BENCH_FLOOD_JITWGD:-1}" = 0 ] && exit 0
# ---- jitwgd under the floods ------------------------------------------------
JKINDS=${BENCH_FLOOD_JITWGD_KINDS:-"replay forged valid random-mac1 mac2 fresh forged-unique"}
JRUNS=${BENCH_FLOOD_JITWGD_RUNS:-3}
JNEW=${BENCH_FLOOD_JITWGD_CLIENTS:-2}
JRET=${BENCH_FLOOD_JITWGD_RETURNS:-5}
# pktgen's rate (packets/s, "max": as fast as one core goes); the loadgen
# kinds keep LG_RATE.
JRATE=${BENCH_FLOOD_JITWGD_RATE:-max}
JITWGD=${BENCH_FLOOD_JITWGD_BIN:-$JITWGD}
LG_RATE=${BENCH_FLOOD_LG_RATE:-2000}
LG_SOURCES=${BENCH_FLOOD_LG_SOURCES:-100}
# A new client's wait: its third initiation leaves ~10.3 s after its first
# (WireGuard retries every 5 s, plus up to 1/3 s of jitter): 12 s covers it.
NEW_WAIT=12
RET_WAIT=8
# The flood's first second, then the new clients' wait and the returning
# one's contacts (each up to RET_WAIT, plus its restart): a shorter flood
# may end before a slow contact.
JSECS=${BENCH_FLOOD_JITWGD_SECONDS:-$((2 + NEW_WAIT + JRET * (RET_WAIT + 1)))}
[ -x "$JITWGD" ] || { echo "bench-flood: no jitwgd built" >&2; exit 1; }
[ "$JSECS" -ge $((2 + NEW_WAIT + JRET * (RET_WAIT + 1))) ] ||
	echo "bench-flood: floods of $JSECS s may end before a slow contact" >&2
e2e_topo
e2e_cp
e2e_sources "$LG_SOURCES"
# The gateway reaches every client through one next hop, the client
# namespace's 192.168.77.2, as a gateway reaches internet clients through
# its router (new clients' own addresses, below: a /20 each), and both
# sides' neighbour entries for that link are pinned. The flood keeps the
# gateway's receive ring full, and ARP is lost there like any packet: with
# an on-link route per client address, the gateway's first packet to a new
# client waited 1 s per lost ARP reply (seen in captures: 1-3 requests
# before its initiation left), and an unpinned next hop goes through
# unicast probes that can fail under the flood too. That is the link's
# limit, not jitwgd's; README "Floods" gives the same advice to operators.
G_MAC=$(ip -n "$G" -br link show vg | awk '{print $3}')
C_MAC=$(ip -n "$C" -br link show vc | awk '{print $3}')
ip -n "$G" neigh replace 192.168.77.2 lladdr "$C_MAC" dev vg nud permanent &&
	ip -n "$C" neigh replace $E2E_GW_IP lladdr "$G_MAC" dev vc nud permanent ||
	fail "pinned neighbours"
ip -n "$G" route add 172.16.0.0/12 via 192.168.77.2 dev vg || fail "route to the new clients"
ip -n "$G" route replace 192.168.78.0/24 via 192.168.77.2 dev vg ||
	fail "route to the load generator's sources"
# shellcheck disable=SC2086 # options, split on purpose
e2e_jitwgd --metrics-listen 127.0.0.1:9089 ${BENCH_FLOOD_JITWGD_ARGS:-}
ip netns exec "$G" sh -c 'echo 1 >/sys/class/net/vg/threaded' 2>/dev/null
# Two machines on two cores: the gateway (its receive NAPI, jitwgd and
# wireguard-go: everything in its namespace but the control plane) on the
# receiver's core; the outside world (the generator, the control plane, the
# clients' wireguard-go, and this script with what it starts to set up and
# time contacts: restarts, pings, metric reads, the capture) on the
# generator's. Left to the scheduler, a contact's own set-up (a handful of
# process start-ups just before the client's initiation) also ran on the
# gateway's core and took it from the receiver at that very moment.
pin_napi vg
for pid in $(ip netns pids "$G"); do
	taskset -apc "$RX_CPU" "$pid" >/dev/null 2>&1
done
taskset -apc "$GEN_CPU" "$CP_PID" >/dev/null
taskset -pc "$GEN_CPU" $$ >/dev/null
VICTIM=$(wg genkey | wg pubkey)
cp_add "$VICTIM" 10.77.9.9/32
e2e_client R 10.77.1.1
cp_add "$R_PUB" 10.77.1.1/32
cping R 1 10 >/dev/null || fail "the returning client's first tunnel"
cp_mode "{\"delay\": ${BENCH_FLOOD_CP_DELAY:-0}}"

# new_client VAR N: a registered wireguard-go client that has never
# connected, the N-th of the benchmark, from an address of its own in a /20
# of its own, 172.(16 + N / 16).(N % 16 * 16).1: the returning client's
# address is verified after its first handshake (an hour, per address), and
# a new client sharing it would pass on that budget instead of the one a new
# client elsewhere gets; and two new clients of one /20 share their prefix's
# reserve in the XDP program (two slots, one token every 3.3 s each), which
# is the limit of a site with many new clients at once (docs/security.md),
# not what one new client sees. A fwmark on its socket picks a routing table
# whose route carries that source.
new_client() {
	local var=$1 src dev mark=$((0x1000 + $2))
	src=172.$((16 + $2 / 16)).$(($2 % 16 * 16)).1
	e2e_client "$var" "10.77.$((100 + $2 / 250)).$(($2 % 250 + 1))"
	dev=$(eval echo "\$${var}_DEV")
	ip -n "$C" addr add "$src/32" dev vc || fail "address $src"
	ip netns exec "$C" wg set "$dev" fwmark $mark || fail "fwmark on $dev"
	ip -n "$C" rule add fwmark $mark table $mark
	ip -n "$C" route add $E2E_GW_IP/32 dev vc src "$src" table $mark ||
		fail "route from $src"
	cp_add "$(eval echo "\$${var}_PUB")" "10.77.$((100 + $2 / 250)).$(($2 % 250 + 1))/32"
}

# path_probe: "LOSS/MAX" of 200 pings from the client namespace to the
# gateway's address, 5 ms apart: the share (%) that got no answer and the
# slowest round trip (ms). What every real client's packet meets on the way
# in, handshake messages included: the flood fills the gateway's receive
# ring, and the veth then holds the client's packets back (or drops them).
path_probe() {
	# Out of 200 asked for: a ping the veth refused fails in sendmsg
	# (ENOBUFS), and ping counts it neither sent nor lost.
	ip netns exec "$C" ping -n -q -c 200 -i 0.005 -W 2 $E2E_GW_IP 2>/dev/null |
		awk '/ received/ { for (i = 1; i <= NF; i++) if ($(i + 1) ~ /^received/) r = $i }
			/^rtt|^round-trip/ { split($4, t, "/"); m = t[3] }
			END { printf "%.0f/%.0f\n", 100 - (r + 0) / 2, m }'
}

# contact PREFIX WAIT: seconds from the client's first ping to the first
# answer through the tunnel, or "none" after WAIT s. A ping every 50 ms: the
# first one starts the handshake and WireGuard holds it (and those after)
# until the handshake completes, so the first answer's round trip, plus 50 ms
# per ping sent before the one answered, is the time to a working tunnel,
# measured by ping itself (without the start-up of ip netns exec).
contact() {
	local n dev
	n=$(eval echo "\$${1}_NS")
	dev=$(eval echo "\$${1}_DEV")
	ip netns exec "$n" ping -n -c 1 -i 0.05 -w "$2" -I "$dev" $E2E_GW_TUN 2>/dev/null |
		sed -n 's/.*icmp_seq=\([0-9]*\) .*time=\([0-9.]*\) ms.*/\1 \2/p' |
		awk 'NR == 1 { printf "%.3f\n", ($1 - 1) * 0.05 + $2 / 1000; ok = 1 }
			END { if (!ok) print "none" }'
}
# metric NAME: the sum of NAME's series in jitwgd's /metrics.
metric() {
	ip netns exec "$G" curl -s --max-time 2 http://127.0.0.1:9089/metrics |
		awk -v m="$1" '$1 == m || index($1, m "{") == 1 { v += $2 } END { printf "%d", v }'
}
# counters: jitwgd's provisioning counters, one "name=value" word each.
counters() {
	local m
	for m in jitwg_initiations_total jitwg_budget_refused_total \
		jitwg_fetch_shed_total jitwg_rejections_total jitwg_provisions_total \
		jitwg_queued_first_total jitwg_xdp_verified_initiations_total \
		jitwg_xdp_prefix_reserve_total \
		'jitwg_xdp_lost_total{reason="ringbuf_full"}'; do
		printf '%s=%s ' "$(echo "${m#jitwg_}" | sed 's/_total{reason="\(.*\)"}/_\1/')" "$(metric "$m")"
	done
	# What the veth dropped on the way in: the client side's transmit
	# drops are the real clients' packets the full ring refused.
	printf 'vc_tx_dropped=%s' "$(ip netns exec "$C" cat /sys/class/net/vc/statistics/tx_dropped)"
}
rss_mb() { awk '/^VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$1/status"; }
calc() { awk "BEGIN { printf \"%.2f\", $1 }"; }
victim_installs() { jwlog_count "peer=$(fp "$VICTIM") outcome=installed"; }

# flood KIND SEED: start KIND's flood from CPU $GEN_CPU; FLOOD_PID set.
flood() {
	local lgargs=()
	case $1 in
	fresh | forged-unique)
		[ "$1" = forged-unique ] && lgargs=(--forge "$VICTIM")
		ip netns exec "$C" taskset -c $GEN_CPU "$LOADGEN" send \
			--to $E2E_GW_IP:51820 --responder "$GW_PUB" --seed "$2" \
			--count $((LG_RATE * JSECS)) --duration-ms $((JSECS * 1000)) \
			--sources "$LG_SOURCES" --src-base 192.168.78.1 "${lgargs[@]}" \
			>"$TMP/pg.out" 2>&1 &
		;;
	*)
		ip netns exec "$C" taskset -c $GEN_CPU "$PKTGEN" --dev vc --dst $E2E_GW_IP \
			--dst-mac "$G_MAC" --responder "$GW_PUB" --seed "$2" \
			--victim "$VICTIM" --kind "$1:$JRATE" --sources "$SOURCES" \
			--duration "$JSECS" >"$TMP/pg.out" 2>&1 &
		;;
	esac
	FLOOD_PID=$!
}

# The returning client's handshakes, from a capture of its own UDP port on
# the clients' side of the veth (the flood's live frames pass no tap there):
# the initiations it sent and the responses it got, whether or not the veth
# then took them. ret_capture starts it (RCAP_PID), ret_handshake FROM TO
# prints, for a contact between two wall-clock times, the ms from the
# client's first initiation to the first response ("none") and how many
# initiations it sent until then: the handshake itself, apart from what the
# link does to the data packets after it (a ping lost there costs the
# contact 50 ms, a lost initiation 5 s).
R_ADDR=$(ip -n "$C" -4 -o addr show dev vc | awk '{sub("/.*", "", $4); print $4; exit}')
R_PORT=$(ip netns exec "$C" wg show "$R_DEV" listen-port)
ret_capture() {
	ip netns exec "$C" tcpdump -i vc -n -tt -l -U "udp and host $R_ADDR and port $R_PORT" \
		>"$TMP/rcap" 2>"$TMP/rcap.err" &
	RCAP_PID=$!
	wait_for 5 grep -q "listening on" "$TMP/rcap.err" || fail "capture on vc"
}
ret_handshake() {
	awk -v a="$1" -v b="$2" -v me="$R_ADDR.$R_PORT" '
		$1 < a || $1 > b { next }
		$3 == me && $NF == 148 { if (!t0) t0 = $1; if (!tr) n++ }
		$5 == me ":" && $NF == 92 && t0 && !tr { tr = $1 }
		END { printf "%s %d\n", tr ? sprintf("%.3f", (tr - t0) * 1000) : "none", n }' "$TMP/rcap"
}

# One line per run in $TMP/jruns: kind run offered_pps cpu% rss_mb events/s
# forged_installs path(loss%/max_rtt_ms) new_s...; one per returning
# contact in $TMP/jret:
# kind run contact ping_s handshake_ms initiations_sent initiations_seen
# flood_s (the contact's start, s into the flood)
echo
echo "jitwgd ($JITWGD ${BENCH_FLOOD_JITWGD_ARGS:-defaults}) under each flood" \
	"from CPU $GEN_CPU at $JRATE packets/s: $JRUNS runs per kind, $JNEW new" \
	"clients and $JRET contacts of the returning one per run, floods of up to" \
	"$JSECS s (stopped once measured)," \
	"control plane delay ${BENCH_FLOOD_CP_DELAY:-0} s; load: $(cut -d' ' -f1-3 /proc/loadavg)"
: >"$TMP/jruns"
: >"$TMP/jret"
: >"$TMP/jcounters"
run=0
for kind in $JKINDS; do
	for ((r = 1; r <= JRUNS; r++)); do
		run=$((run + 1))
		for ((i = 1; i <= JNEW; i++)); do
			new_client "N${run}_$i" $(((run - 1) * JNEW + i))
		done
		ticks0=$(cpu_ticks "$JW_PID")
		ev0=$(metric jitwg_xdp_events_total)
		c0=$(counters)
		ret_capture
		v0=$(victim_installs)
		t0=$(date +%s.%N)
		flood "$kind" "flood$run"
		sleep 1
		# jitwg-loadgen builds its initiations first: contact once they flow.
		case $kind in fresh | forged-unique)
			wait_for 30 eval '[ $(($(metric jitwg_xdp_events_total) - ev0)) -ge $LG_RATE ]' ||
				echo "bench-flood: the $kind flood did not reach jitwgd" >&2
		esac
		# The new clients at once (each its own address), then the
		# returning one, still during the flood.
		pids=()
		for ((i = 1; i <= JNEW; i++)); do
			contact "N${run}_$i" $NEW_WAIT >"$TMP/new.$i" &
			pids+=($!)
		done
		wait "${pids[@]}"
		# The returning one, JRET times: restarted (a rebooted client),
		# then contact. The XDP program's verified initiations are its
		# own (its address is the only verified one sending initiations).
		for ((k = 1; k <= JRET; k++)); do
			client_restart R
			vr0=$(metric jitwg_xdp_verified_initiations_total)
			tk0=$(date +%s.%N)
			rk=$(contact R $RET_WAIT)
			tk1=$(date +%s.%N)
			sleep 0.05 # the capture's last lines
			vr1=$(metric jitwg_xdp_verified_initiations_total)
			read -r hs sent < <(ret_handshake "$tk0" "$tk1")
			echo "$kind $r $k $rk $hs $sent $((vr1 - vr0)) $(calc "$tk0 - $t0")" >>"$TMP/jret"
			echo "    returning $(tail -n 1 "$TMP/jret")" >&2
		done
		loss=$(path_probe)
		# TERM, not INT: a background job of a script ignores SIGINT
		# (jitwg-loadgen would run its whole count); jitwg-pktgen
		# handles both and prints its totals.
		kill -TERM "$FLOOD_PID" 2>/dev/null
		wait "$FLOOD_PID"
		t1=$(date +%s.%N)
		ticks1=$(cpu_ticks "$JW_PID")
		kill "$RCAP_PID" 2>/dev/null
		wait "$RCAP_PID" 2>/dev/null
		jw_alive || fail "jitwgd died under the $kind flood"
		ev1=$(metric jitwg_xdp_events_total)
		echo "$kind#$r $c0 -> $(counters)" >>"$TMP/jcounters"
		offered=$(sed -n 's/^total sent=.* pps=\([0-9]*\)$/\1/p' "$TMP/pg.out")
		echo "$kind $r ${offered:-$LG_RATE}" \
			"$(calc "100 * ($ticks1 - $ticks0) / $(getconf CLK_TCK) / ($t1 - $t0)")" \
			"$(rss_mb "$JW_PID")" \
			"$(calc "($ev1 - $ev0) / ($t1 - $t0)")" \
			"$(($(victim_installs) - v0))" "${loss:-100/0}" \
			"$(cat "$TMP"/new.* | paste -sd' ')" >>"$TMP/jruns"
		rm -f "$TMP"/new.*
		echo "  $(tail -n 1 "$TMP/jruns")" >&2
		sleep 2 # the queue drains between runs
	done
done

# pct KIND COLUMN P [FILE]: the P-th percentile (nearest rank) of COLUMN
# over the kind's lines of FILE (jruns, a line per run), COLUMN "new"
# (every new client) or a field number; "none" sorts last, as a wait longer
# than any.
pct() {
	awk -v k="$1" -v c="$2" -v p="$3" '
		$1 == k { if (c == "new") for (i = 9; i <= NF; i++) v[++n] = $i; else v[++n] = $c }
		END {
			if (!n) { print "-"; exit }
			for (i = 1; i <= n; i++) x[i] = v[i] == "none" ? 1e9 : v[i]
			for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++)
				if (x[j] < x[i]) { t = x[i]; x[i] = x[j]; x[j] = t }
			r = int(p * n / 100); if (r < p * n / 100) r++; if (r < 1) r = 1
			print x[r] == 1e9 ? "none" : x[r]
		}' "${4:-$TMP/jruns}"
}
# p3 KIND COLUMN: "p50/p99/max" of a returning contact's COLUMN.
p3() { echo "$(pct "$1" "$2" 50 "$TMP/jret")/$(pct "$1" "$2" 99 "$TMP/jret")/$(pct "$1" "$2" 100 "$TMP/jret")"; }
# range KIND FIELD: "min-max" of FIELD over the kind's runs.
range() {
	awk -v k="$1" -v c="$2" '$1 == k { if (!n++ || $c < lo) lo = $c; if (!hi || $c > hi) hi = $c }
		END { if (!n) print "-"; else if (lo == hi) print lo; else print lo "-" hi }' "$TMP/jruns"
}
echo
echo "Per kind over runs: a new client's and the returning client's time from" \
	"its first ping to a working tunnel (s; nearest-rank percentiles over" \
	"every client of every run, \"none\": no tunnel within $NEW_WAIT s, $RET_WAIT s);" \
	"<=11 s: new clients with a tunnel by their third initiation; handshake:" \
	"the returning client's, from its capture (ms from its first initiation" \
	"to the response; the ping's time adds the data packets' way through the" \
	"link); 1st: its contacts answered at the first initiation; r lost: its" \
	"initiations that never reached the XDP program (the veth, its ring" \
	"full, dropped them), summed over contacts; path: 200" \
	"pings from the clients' namespace to the gateway during the flood, % lost" \
	"and the slowest round trip in ms (the runs' worst): what every real" \
	"packet, handshake messages included, meets on the way in"
printf '%-14s %4s %9s %21s %7s %21s %24s %7s %6s %10s %7s %9s %9s %11s\n' kind runs "offered" \
	"new p50/p90/max" "<=11 s" "returning p50/p99/max" "handshake ms p50/p99/max" "1st" "r lost" \
	"path" forged "jitwgd %" "RSS MB" "events/s"
for kind in $JKINDS; do
	n=$(awk -v k="$kind" '$1 == k' "$TMP/jruns" | wc -l)
	ok=$(awk -v k="$kind" '$1 == k { for (i = 9; i <= NF; i++) { t++; if ($i != "none" && $i <= 11) o++ } }
		END { printf "%d/%d", o, t }' "$TMP/jruns")
	printf '%-14s %4s %9s %21s %7s %21s %24s %7s %6s %10s %7s %9s %9s %11s\n' "$kind" "$n" \
		"$(pct "$kind" 3 50)" \
		"$(pct "$kind" new 50)/$(pct "$kind" new 90)/$(pct "$kind" new 100)" "$ok" \
		"$(p3 "$kind" 4)" "$(p3 "$kind" 5)" \
		"$(awk -v k="$kind" '$1 == k { t++; if ($5 != "none" && $6 == 1) o++ } END { printf "%d/%d", o, t }' "$TMP/jret")" \
		"$(awk -v k="$kind" '$1 == k && $6 > $7 { s += $6 - $7 } END { print s + 0 }' "$TMP/jret")" \
		"$(awk -v k="$kind" '$1 == k { split($8, a, "/"); if (a[1] > l) l = a[1]; if (a[2] > m) m = a[2] }
			END { printf "%s%%/%sms", l + 0, m + 0 }' "$TMP/jruns")" \
		"$(awk -v k="$kind" '$1 == k { s += $7 } END { print s + 0 }' "$TMP/jruns")" \
		"$(range "$kind" 4)" "$(range "$kind" 5)" "$(pct "$kind" 6 50)"
done
echo
echo "jitwgd's counters before -> after each run (cumulative):"
awk '{print "  " $0}' "$TMP/jcounters"
