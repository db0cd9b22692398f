#!/usr/bin/env bash
# make bench-flood: the receiver under WireGuard-shaped floods from
# jitwg-pktgen (live frames, XDP_TX), one row per flood kind and rate.
#
#   ns "c" (generator, taskset -c 0)        ns "g" (receiver)
#   jitwg-pktgen --dev jfs            --->  veth jfr 192.0.2.1, threaded NAPI
#   veth jfs 192.0.2.2                       pinned to the other core; one of:
#                                            none  no XDP program (GRO on)
#                                            pass  a bare XDP_PASS program
#                                            jitwg jitwg-xdp, default limits
#                                            spent jitwg-xdp, global budget 1/s
#
# Each round runs the three receivers one after the other (interleaved, so
# the machine's drift hits all three alike); a row gives the median and, in
# brackets, the range over rounds of: packets/s offered, received (the
# receiving veth's rx_packets; the rest the veth ring dropped), XDP ns per
# packet from bpf_stats (run_time_ns / run_cnt) and events/s that reached
# userspace (jitwg's ring buffer). jitwg's figure mixes the refused packets
# with those its budget admits (40,000 at once, then 20,000/s: the ring
# buffer, an LRU insert); "spent" (global budget of 1/s) is the cost of a
# refused packet alone.
#
# Then, unless BENCH_FLOOD_JITWGD=0, jitwgd with its defaults on the
# topology of tests/e2e_lib.sh (wireguard-go gateway, control plane) under
# each flood kind of BENCH_FLOOD_JITWGD_KINDS at max from one core: a new
# registered wireguard-go client's and a returning one's first contact
# (ping through the tunnel, retried every second for up to 30 s), jitwgd's
# CPU share and resident memory, and installs of the key the forged flood
# claims (registered, never used by a client: must stay 0). Beside them,
# what reached jitwgd (events/s from the XDP program's counters) and what
# jitwgd's own defences did with it (its stop-line counters, per kind).
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
# defaults to BENCH_FLOOD_SOURCES, RATE to max), BENCH_FLOOD_ROUNDS (3),
# BENCH_FLOOD_SECONDS (3); BENCH_FLOOD_XDP another jitwg-xdp build to
# measure, BENCH_FLOOD_XDP_ARGS options for it; BENCH_FLOOD_BASE another
# jitwg-xdp build (an older commit's, say) run as a fifth receiver "base" in
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
MODES="none pass jitwg spent${BASE:+ base}"
PASS_OBJ=$BUILD/xdp_pass.bpf.o
SOURCES=${BENCH_FLOOD_SOURCES:-1000000}
KINDS=${BENCH_FLOOD_KINDS:-"udp data replay@1 replay valid forged random random-mac1 mac2"}
ROUNDS=${BENCH_FLOOD_ROUNDS:-3}
SECS=${BENCH_FLOOD_SECONDS:-3}
GEN_CPU=0
RX_CPU=$(($(nproc) - 1))

[ -x "$PKTGEN" ] && [ -x "$XDP" ] && [ -f "$PASS_OBJ" ] && [ -x "${BASE:-$XDP}" ] ||
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

pin_napi() {
	local pid
	for pid in $(ps -eo pid=,comm= | awk '$2 ~ /^napi\/jfr-/ {print $1}'); do
		taskset -pc "$RX_CPU" "$pid" >/dev/null
	done
}
rx_stat() { ip netns exec "$G" cat "/sys/class/net/jfr/statistics/$1"; }
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
	pass)
		ip -n "$G" link set dev jfr xdpdrv obj "$PASS_OBJ" sec xdp ||
			fail "cannot attach $PASS_OBJ"
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
	local offered ns=- events=-
	receiver "$mode"
	id=$(prog_id)
	[ -n "$id" ] && st0=$(prog_stats "$id")
	rx0=$(rx_stat rx_packets)
	out=$(ip netns exec "$C" taskset -c $GEN_CPU "$PKTGEN" --dev jfs --dst 192.0.2.1 \
		--dst-mac "$G_MAC" --responder "$GW_PUB" --seed flood \
		--kind "$kind:$rate" --sources "$src" --duration "$SECS" \
		${BENCH_FLOOD_PKTGEN_ARGS:-} 2>&1) ||
		fail "jitwg-pktgen: $out"
	rx1=$(rx_stat rx_packets)
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
	echo "$kind@$src:$rate $mode $round $offered $(((rx1 - rx0) / SECS)) $ns $events" >>"$TMP/rows"
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
printf '%-23s %-17s %-17s %-17s %-17s %6s %-17s %-20s %-18s %-15s\n' "kind@sources:rate" \
	"offered" "rx none" "rx pass" "rx jitwg" "j/pass" "ns pass" "ns jitwg" "ns refused" "events/s"
for spec in $(awk '{print $1}' "$TMP/rows" | awk '!seen[$0]++'); do
	p=$(median "$spec" pass 5) j=$(median "$spec" jitwg 5)
	printf '%-23s %-17s %-17s %-17s %-17s %5s%% %-17s %-20s %-18s %-15s\n' "$spec" \
		"$(summary "$spec" jitwg 4)" "$(summary "$spec" none 5)" \
		"$(summary "$spec" pass 5)" "$(summary "$spec" jitwg 5)" \
		"$(awk -v p="$p" -v j="$j" 'BEGIN { if (p > 0) printf "%.0f", 100 * j / p; else print "-" }')" \
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
JSECS=${BENCH_FLOOD_JITWGD_SECONDS:-20}
JITWGD=${BENCH_FLOOD_JITWGD_BIN:-$JITWGD}
LG_RATE=${BENCH_FLOOD_LG_RATE:-2000}
LG_SOURCES=${BENCH_FLOOD_LG_SOURCES:-100}
[ -x "$JITWGD" ] || { echo "bench-flood: no jitwgd built" >&2; exit 1; }
e2e_topo
e2e_cp
e2e_sources "$LG_SOURCES"
# shellcheck disable=SC2086 # options, split on purpose
e2e_jitwgd --metrics-listen 127.0.0.1:9089 ${BENCH_FLOOD_JITWGD_ARGS:-}
G_MAC=$(ip -n "$G" -br link show vg | awk '{print $3}')
ip netns exec "$G" sh -c 'echo 1 >/sys/class/net/vg/threaded' 2>/dev/null
VICTIM=$(wg genkey | wg pubkey)
cp_add "$VICTIM" 10.77.9.9/32
e2e_client R 10.77.1.1
cp_add "$R_PUB" 10.77.1.1/32
cping R 1 10 >/dev/null || fail "the returning client's first tunnel"
cp_mode "{\"delay\": ${BENCH_FLOOD_CP_DELAY:-0}}"

# contact PREFIX: seconds until a ping through the tunnel gets an answer,
# one try a second, or "none" after 30 tries.
contact() {
	local t0 i
	t0=$(date +%s.%N)
	for ((i = 0; i < 30; i++)); do
		if cping "$1" 1 1 >/dev/null 2>&1; then
			calc "$(date +%s.%N) - $t0"
			return
		fi
	done
	echo none
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
		jitwg_fetch_shed_total jitwg_rejections_total jitwg_provisions_total; do
		printf '%s=%s ' "${m#jitwg_}" "$(metric $m)"
	done
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
rss_mb() { awk '/^VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$1/status"; }
calc() { awk "BEGIN { printf \"%.2f\", $1 }"; }

echo
echo "jitwgd ($JITWGD ${BENCH_FLOOD_JITWGD_ARGS:-defaults}) under each flood" \
	"from CPU $GEN_CPU, $JSECS s each, control plane delay ${BENCH_FLOOD_CP_DELAY:-0} s;" \
	"load: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-14s %10s %12s %12s %9s %8s %9s %15s %10s\n' kind "offered" "new client s" \
	"returning s" "jitwgd %" "RSS MB" "installs" "forged installs" "events/s"
k=0
for kind in $JKINDS; do
	k=$((k + 1))
	e2e_client N$k 10.77.2.$k
	cp_add "$(eval echo "\$N${k}_PUB")" 10.77.2.$k/32
	ticks0=$(cpu_ticks "$JW_PID")
	ev0=$(metric jitwg_xdp_events_total)
	c0=$(counters)
	case $kind in
	fresh | forged-unique)
		lgargs=()
		[ "$kind" = forged-unique ] && lgargs=(--forge "$VICTIM")
		ip netns exec "$C" taskset -c $GEN_CPU "$LOADGEN" send \
			--to $E2E_GW_IP:51820 --responder "$GW_PUB" --seed "flood$k" \
			--count $((LG_RATE * JSECS)) --duration-ms $((JSECS * 1000)) \
			--sources "$LG_SOURCES" --src-base 192.168.78.1 "${lgargs[@]}" \
			>"$TMP/pg-$kind.out" 2>&1 &
		;;
	*)
		ip netns exec "$C" taskset -c $GEN_CPU "$PKTGEN" --dev vc --dst $E2E_GW_IP \
			--dst-mac "$G_MAC" --responder "$GW_PUB" --seed "flood$k" \
			--victim "$VICTIM" --kind "$kind" --sources "$SOURCES" \
			--duration "$JSECS" >"$TMP/pg-$kind.out" 2>&1 &
		;;
	esac
	pg=$!
	sleep 2
	# jitwg-loadgen builds its initiations first: contact once they flow.
	case $kind in fresh | forged-unique)
		wait_for 30 eval '[ $(($(metric jitwg_xdp_events_total) - ev0)) -ge $LG_RATE ]' ||
			echo "bench-flood: the $kind flood did not reach jitwgd" >&2
	esac
	new=$(contact N$k)
	client_restart R
	ret=$(contact R)
	wait "$pg"
	ticks1=$(cpu_ticks "$JW_PID")
	jw_alive || fail "jitwgd died under the $kind flood"
	ev1=$(metric jitwg_xdp_events_total)
	echo "$kind $c0 -> $(counters)" >>"$TMP/jcounters"
	printf '%-14s %10s %12s %12s %9s %8s %9s %15s %10s\n' "$kind" \
		"$(sed -n -e 's/^total sent=.* pps=\([0-9]*\)$/\1/p' \
			-e 's/^loadgen: round 1: sent \([0-9]*\) initiations in \([0-9.]*\) s$/\1 \2/p' \
			"$TMP/pg-$kind.out" | awk 'NF == 2 { printf "%d", $1 / $2; next } { print }')" \
		"$new" "$ret" \
		"$(calc "100 * ($ticks1 - $ticks0) / $(getconf CLK_TCK) / $JSECS")" \
		"$(rss_mb "$JW_PID")" \
		"$(jwlog_count "outcome=installed")" \
		"$(jwlog_count "peer=$(fp "$VICTIM") outcome=installed")" \
		"$(((ev1 - ev0) / JSECS))"
	sleep 3 # the queue drains between kinds
done
echo
echo "jitwgd's counters before -> after each kind (cumulative):"
awk '{print "  " $0}' "$TMP/jcounters"
