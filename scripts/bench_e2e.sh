#!/usr/bin/env bash
# make bench-e2e: jitwgd end to end, on the topology of tests/e2e_lib.sh.
#
#  1. first initiation -> completed handshake, p50/p99 over BENCH_CLIENTS
#     (500) real wireguard-go clients of each kind: fresh ones provisioned by
#     jitwgd (initiating back, --consume, --no-initiate-back) and, alternating
#     with them, clients the gateway already knows (the floor); jitwgd's
#     stages and the control plane's own service time.
#  2. a burst of BENCH_BURST synthetic clients (jitwg-loadgen) within one
#     second, keys in the cache: the last install's lag behind the send end,
#     installs/s from the first install to the last; floor: the same peers
#     installed by one `wg addconf` (before and after the modes).
#  3. resident memory and start-up time with an empty cache and with
#     BENCH_CACHE_ENTRIES entries.
# BENCH_ONLY="2" runs only the listed sections; BENCH_BURST_MODES picks
# section 2's modes (auto: the defaults, --consume auto, which a burst
# engages; initiate: --consume=never, initiating back; consume: always;
# no-initiate; periodic: --cache-sync periodic), BENCH_JITWGD_ARGS
# adds options to its jitwgd, BENCH_SAVE_LOGS=PREFIX keeps its logs (and
# section 1's keys and round trips); BENCH_CAPTURE=1 with it also records the
# veth's WireGuard packets while each alternating phase runs (PREFIX-ib.pcap,
# PREFIX-cons.pcap, for scripts/bench_fc_timeline.sh).
# BENCH_OUT=DIR also writes the raw samples there for the report's plots
# (make bench, scripts/bench_report.sh): e2e-first-contact-PHASE.txt (ms, one
# a line), e2e-burst-MODE.txt (s from the send start to each install),
# e2e-burst-addconf.txt ("peers seconds"), e2e-startup.txt.
SCRIPT=bench-e2e
. "$(dirname "$0")/e2e_script.sh"
trap 'echo "interrupted"; exit 130' INT TERM

N=${BENCH_CLIENTS:-500}
# BENCH_JITWGD=PATH: another jitwgd binary (an older build, to compare).
JITWGD=${BENCH_JITWGD:-$JITWGD}
PAR=${BENCH_PARALLEL:-20}
BURST=${BENCH_BURST:-10000}
CACHE_N=${BENCH_CACHE_ENTRIES:-1000000}
# BENCH_ONLY="2 3": run only those sections.
want() { [ -z "${BENCH_ONLY:-}" ] || [[ " $BENCH_ONLY " == *" $1 "* ]]; }
# raw NAME: a file for raw samples under BENCH_OUT, or /dev/null.
raw() { if [ -n "${BENCH_OUT:-}" ]; then mkdir -p "$BENCH_OUT" && echo "$BENCH_OUT/$1"; else echo /dev/null; fi; }

[ -x "$JITWGD" ] && [ -x "$LOADGEN" ] || { echo "bench-e2e: run make first" >&2; exit 1; }

tmp_dir
e2e_topo

# pct FILE P: the P-th percentile (nearest rank) of the numbers in FILE.
pct() { sort -n "$1" | awk -v p="$2" '{a[NR]=$1} END {if (!NR) {print "-"; exit} i=int((p/100)*NR+0.999999); if (i<1) i=1; printf "%.1f", a[i]}'; }
row() { printf '  %-52s %12s %12s %8s %9s\n' "$1" "$2" "$3" "${4:-}" "${5:-}"; }
# calc EXPR: floating-point arithmetic (awk; no bc needed).
calc() { awk "BEGIN { printf \"%.6f\", $1 }"; }
logts() { sed -n 's/^ts=\([^ ]*\) .*/\1/p' | head -1 | xargs -I{} date -d {} +%s.%N; }

echo "jitwgd end-to-end benchmark ($(nproc) CPUs, shared machine: expect noise)"
echo "kernel $(uname -r), wireguard-go $(wireguard-go --version 2>/dev/null | head -1 | awk '{print $NF}')"

if want 1; then
# ---- 1. first-contact latency ----------------------------------------------
# Client devices in the client namespace, each with its own gateway address
# 10.77.100.D so their routes never collide; each client gives a device a
# new key (a new client). Kinds of client, by their keys:
#   base  peer added to the gateway by hand: the floor (no jitwgd in its way)
#   ib    fresh, provisioned by jitwgd (initiating back)
#   cons  fresh, provisioned by jitwgd --consume
#   kc    the base clients again, under jitwgd --consume: known to the
#         gateway, their initiation dropped in XDP and given back
#   nib   fresh, jitwgd --no-initiate-back (waits for the client's retry)
# base and ib alternate in one jitwgd run, kc and cons in another, so each
# comparison is made under the same host load. BENCH_NIB_CLIENTS (default
# 100, 0 skips) sizes the slow --no-initiate-back phase;
# BENCH_CONSUME_CLIENTS=0 skips the --consume one (kc and cons).
N_NIB=${BENCH_NIB_CLIENTS:-100}
[ "$N_NIB" -gt "$N" ] && N_NIB=$N
N_CONS=${BENCH_CONSUME_CLIENTS:-$N}
echo
echo "setting up $PAR client devices and $((3 * N + N_NIB)) client keys"
python_map='import json,sys
out = {}
for line in open(sys.argv[1]):
    k, ip = line.split()
    out[k] = {"allowed_ips": [ip]}
json.dump(out, open(sys.argv[2], "w"))'
# cip PHASE J: client J's tunnel address (10.78-10.81, up to 62,500 a phase).
cip() {
	local o
	case $1 in ib) o=78 ;; nib) o=79 ;; base | kc) o=80 ;; cons) o=81 ;; esac
	echo "10.$o.$(($2 / 250)).$(($2 % 250 + 1))"
}
: >"$TMP/keys.txt"
mkdir -p "$TMP/ck"
for phase in ib nib base cons; do
	cnt=$N
	[ $phase = nib ] && cnt=$N_NIB
	for ((j = 0; j < cnt; j++)); do
		wg genkey >"$TMP/ck/$phase-$j"
		echo "$(wg pubkey <"$TMP/ck/$phase-$j") $(cip $phase $j)/32 $phase" >>"$TMP/keys.txt"
	done
done
# The control plane knows the fresh clients; the base ones are the
# gateway's own (jitwgd never asks for them).
awk '$3 != "base" {print $1, $2}' "$TMP/keys.txt" >"$TMP/keys-cp.txt"
$PY -c "$python_map" "$TMP/keys-cp.txt" "$TMP/peers.json"
CP_PEERS=$TMP/peers.json e2e_cp
for ((d = 1; d <= PAR; d++)); do
	dev=jw${JITWG_RUNID}d$d
	wggo "$C" "$dev"
	ip netns exec "$C" wg set "$dev" listen-port $((42000 + d)) private-key "$TMP/ck/base-0" \
		peer "$GW_PUB" endpoint $E2E_GW_IP:51820 allowed-ips 10.77.100.$d/32
	ip -n "$C" link set "$dev" up
	ip -n "$C" addr add 10.77.250.$d/32 dev "$dev"
	ip -n "$C" route add 10.77.100.$d/32 dev "$dev"
	ip -n "$G" addr add 10.77.100.$d/32 dev "$WGG"
done
# The gateway's routes to the clients' addresses (its own is 10.77.0.1/16).
ip -n "$G" route add 10.78.0.0/15 dev "$WGG"
ip -n "$G" route add 10.80.0.0/15 dev "$WGG"
# The floor's peers, on the gateway before jitwgd starts (it lists them as
# the device's own).
awk '$3 == "base" {print "[Peer]\nPublicKey = " $1 "\nAllowedIPs = " $2 "\n"}' "$TMP/keys.txt" >"$TMP/base.conf"
ip netns exec "$G" wg addconf "$WGG" "$TMP/base.conf"

# one_client PHASE J D: device D becomes client J of PHASE and pings once;
# prints the first reply's round trip in ms (or "lost").
one_client() {
	local phase=$1 j=$2 d=$3 dev=jw${JITWG_RUNID}d$3 ip out keyf
	ip=$(cip "$phase" "$j")
	keyf=$TMP/ck/$phase-$j
	[ "$phase" = kc ] && keyf=$TMP/ck/base-$j
	ip netns exec "$C" wg set "$dev" private-key "$keyf"
	ip -n "$C" addr flush dev "$dev" to 10.0.0.0/8 2>/dev/null
	ip -n "$C" addr add "$ip/32" dev "$dev"
	ip -n "$C" route replace 10.77.100.$d/32 dev "$dev"
	out=$(ip netns exec "$C" ping -c 1 -W 12 -I "$ip" 10.77.100.$d 2>/dev/null)
	sed -n 's/.*time=\([0-9.]*\) ms.*/\1/p' <<<"$out" | grep . || echo lost
}

# alternate A B: client j of phase A, then client j of phase B, for every j,
# one at a time on device 1.
alternate() {
	local j
	: >"$TMP/rtt-$1"
	: >"$TMP/rtt-$2"
	for ((j = 0; j < N; j++)); do
		one_client "$1" "$j" 1 >>"$TMP/rtt-$1"
		one_client "$2" "$j" 1 >>"$TMP/rtt-$2"
		((j % 100 == 99)) && echo "  $((j + 1))/$N"
	done
}

# run_phase PHASE COUNT PARALLEL: COUNT clients of the phase, PARALLEL at a time.
run_phase() {
	local phase=$1 cnt=$2 par=$3 j b
	: >"$TMP/rtt-$phase"
	for ((b = 0; b < cnt; b += par)); do
		local pids=()
		for ((j = b; j < b + par && j < cnt; j++)); do
			one_client "$phase" "$j" $((j - b + 1)) >>"$TMP/rtt-$phase" &
			pids+=($!)
		done
		wait "${pids[@]}"
	done
}

# cap_start NAME / cap_stop NAME: with BENCH_CAPTURE and BENCH_SAVE_LOGS, the
# WireGuard packets on the client's side of the veth while a phase runs, in
# PREFIX-NAME.pcap. The client's side: an initiation XDP consumes on the
# gateway's side never reaches a capture there. Immediate mode and a small
# snapshot, as gw_capture_start (tests/e2e_lib.sh).
cap_start() {
	[ -n "${BENCH_CAPTURE:-}" ] && [ -n "${BENCH_SAVE_LOGS:-}" ] || return 0
	ip netns exec "$C" tcpdump -i vc -n -s 256 -B 8192 -U --immediate-mode \
		-w "$TMP/$1.pcap" udp port 51820 2>"$TMP/tcpdump-$1.log" &
	cap_pid=$!
	on_exit "kill $cap_pid 2>/dev/null"
	wait_for 60 grep -q "listening on" "$TMP/tcpdump-$1.log" || fail "tcpdump did not start"
}
cap_stop() {
	[ -n "${cap_pid:-}" ] || return 0
	kill "$cap_pid"
	wait "$cap_pid" 2>/dev/null
	cap_pid=
	cp "$TMP/$1.pcap" "$BENCH_SAVE_LOGS-$1.pcap"
	grep 'dropped by kernel' "$TMP/tcpdump-$1.log" | sed "s/^/  capture ($1): /"
}

# hs_times LOG: jitwgd's XDP-initiation -> handshake-seen times, in ms.
hs_times() { grep -o 'msg=handshake .*since_initiation_ms=[0-9.]*' "$1" | sed 's/.*since_initiation_ms=//'; }

t_sec1=$(date +%s)
JW_LOG=$TMP/jw-ib.log e2e_jitwgd
echo "floor and initiating back: $N clients each, alternating, one at a time"
cp_from=$(wc -l <"$TMP/cp.log")
cap_start ib
alternate base ib
sleep 1
hs_times "$TMP/jw-ib.log" >"$TMP/hs-ib"
if [ -n "${BENCH_SAVE_LOGS:-}" ]; then
	cp "$TMP/jw-ib.log" "$BENCH_SAVE_LOGS-ib.log"
	cp "$TMP/cp.log" "$BENCH_SAVE_LOGS-cp.log"
	# Public keys only: "PUBKEY ADDRESS KIND" a line.
	cp "$TMP/keys.txt" "$BENCH_SAVE_LOGS-keys.txt"
	cp "$TMP/rtt-base" "$BENCH_SAVE_LOGS-rtt-base.txt"
	cp "$TMP/rtt-ib" "$BENCH_SAVE_LOGS-rtt-ib.txt"
fi
cap_stop ib
# The control plane's own service time for these requests (its log).
tail -n +$((cp_from + 1)) "$TMP/cp.log" | grep 'path=/peers/ status=200' |
	sed -n 's/.*service_ms=\([0-9.]*\).*/\1/p' >"$TMP/cp-service"
e2e_jitwgd_stop

if [ "$N_CONS" -gt 0 ]; then
	JW_LOG=$TMP/jw-cons.log e2e_jitwgd --consume
	echo "--consume: $N known clients (the floor's) and $N new ones, alternating, one at a time"
	cap_start cons
	alternate kc cons
	sleep 1
	hs_times "$TMP/jw-cons.log" >"$TMP/hs-cons"
	cap_stop cons
	if [ -n "${BENCH_SAVE_LOGS:-}" ]; then
		cp "$TMP/jw-cons.log" "$BENCH_SAVE_LOGS-cons.log"
		cp "$TMP/cp.log" "$BENCH_SAVE_LOGS-cp.log"
		cp "$TMP/rtt-kc" "$BENCH_SAVE_LOGS-rtt-kc.txt"
		cp "$TMP/rtt-cons" "$BENCH_SAVE_LOGS-rtt-cons.txt"
	fi
	e2e_jitwgd_stop
fi

if [ "$N_NIB" -gt 0 ]; then
	JW_LOG=$TMP/jw-nib.log e2e_jitwgd --no-initiate-back
	echo "--no-initiate-back: $N_NIB new clients, $PAR at a time (each waits for its 5 s retry)"
	run_phase nib "$N_NIB" "$PAR"
	sleep 1
	hs_times "$TMP/jw-nib.log" >"$TMP/hs-nib"
	e2e_jitwgd_stop
fi

echo
echo "1. first initiation -> handshake (ms), $(($(date +%s) - t_sec1)) s; load average $(cut -d' ' -f1-3 /proc/loadavg)"
row "" p50 p99 n
for ph in base ib kc cons nib; do
	[ -f "$TMP/rtt-$ph" ] || continue
	grep -v lost "$TMP/rtt-$ph" >"$TMP/rtt-$ph.ok"
	case $ph in
	base) name="floor: peer preinstalled, client's first ping" ;;
	ib) name="jitwgd, initiate back: client's first ping" ;;
	kc) name="floor's clients under jitwgd --consume" ;;
	cons) name="jitwgd --consume: client's first ping" ;;
	nib) name="jitwgd, --no-initiate-back: client's first ping" ;;
	esac
	row "$name" "$(pct "$TMP/rtt-$ph.ok" 50)" "$(pct "$TMP/rtt-$ph.ok" 99)" \
		"$(wc -l <"$TMP/rtt-$ph.ok")/$(wc -l <"$TMP/rtt-$ph")"
	cp "$TMP/rtt-$ph.ok" "$(raw "e2e-first-contact-$ph.txt")"
	[ -s "$TMP/hs-$ph" ] || continue
	row "  jitwgd log: XDP initiation -> handshake seen" "$(pct "$TMP/hs-$ph" 50)" \
		"$(pct "$TMP/hs-$ph" 99)" "$(wc -l <"$TMP/hs-$ph")"
done
# stage LOG FIELD: the field's values in the log's installs.
stage() { grep 'outcome=installed' "$1" | sed -n "s/.* $2=\([0-9.]*\).*/\1/p"; }
echo "  jitwgd's stages, initiating back (its log, installed peers):"
for f in queue_ms identify_ms auth_ms fetch_ms install_ms total_ms; do
	stage "$TMP/jw-ib.log" $f >"$TMP/st"
	row "    $f" "$(pct "$TMP/st" 50)" "$(pct "$TMP/st" 99)" "$(wc -l <"$TMP/st")"
done
# What the stages leave out of total_ms: the managed record's write before
# the device call, the hops between threads.
grep 'outcome=installed' "$TMP/jw-ib.log" | awk '{
	for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
	printf "%.3f\n", v["total_ms"] - v["queue_ms"] - v["identify_ms"] - v["auth_ms"] - v["fetch_ms"] - v["install_ms"]
}' >"$TMP/st"
row "    the rest (managed record write, thread hops)" "$(pct "$TMP/st" 50)" "$(pct "$TMP/st" 99)" "$(wc -l <"$TMP/st")"
row "  control plane's service time (at the server)" "$(pct "$TMP/cp-service" 50)" \
	"$(pct "$TMP/cp-service" 99)" "$(wc -l <"$TMP/cp-service")"
# diff Q A B: quantile Q of A minus that of B.
qdiff() { calc "$(pct "$TMP/rtt-$2.ok" "$1") - $(pct "$TMP/rtt-$3.ok" "$1")" | xargs printf '%.1f'; }
over() { calc "$(qdiff "$1" ib base) - $(pct "$TMP/cp-service" "$1")" | xargs printf '%.1f'; }
row "jitwgd over the floor (initiating back)" "$(qdiff 50 ib base)" "$(qdiff 99 ib base)"
row "  less the control plane's service time" "$(over 50)" "$(over 99)"
echo "  target: <= 1 ms at p50, <= 3 ms at p99"
if [ "$N_CONS" -gt 0 ]; then
	row "--consume over the floor, known clients" "$(qdiff 50 kc base)" "$(qdiff 99 kc base)"
	echo "  target: <= 1 ms at p50"
fi

fi
# Sections 2 and 3 need a control plane only to start jitwgd.
[ -n "${CP_URL:-}" ] || { echo '{}' >"$TMP/peers.json" && CP_PEERS=$TMP/peers.json e2e_cp; }
if want 2; then
# ---- 2. burst ---------------------------------------------------------------
echo
echo "2. burst of $BURST synthetic clients within 1 s (keys in the cache)"
# 100 source addresses: the XDP program rate-limits per source (100/s, burst 200).
e2e_sources 100
mkdir -p "$TMP/burst-cache"
"$BUILD/jitwg-cachefill" "$TMP/burst-cache" "$BURST" burst 10.128.0.0 ||
	fail "cachefill"
# A device for the burst alone, so that its peer count is the burst's.
WGG_MAIN=$WGG
ip netns exec "$G" wg set "$WGG" listen-port 51899
WGG=jw${JITWG_RUNID}b
wggo "$G" "$WGG"
ip netns exec "$G" wg set "$WGG" private-key "$TMP/gw.key" listen-port 51820
ip -n "$G" link set "$WGG" up
echo "  cache on disk ($(df --output=fstype "$TMP" | tail -1)); the default --cache-sync full (fsync per commit) unless the mode says periodic"
# Floor: the same peers in one configuration call, on a device set up as
# jitwgd's (private key, listen port, up: wireguard-go starts each peer's
# routines as it adds it), measured before and after the modes so that the
# host's drift shows. addconf_floor WHEN prints the line; FLOOR_RATE keeps
# the faster of the two (peers/s).
"$LOADGEN" keys --seed burst --count "$BURST" | awk '{print "[Peer]\nPublicKey = " $1 "\nAllowedIPs = " $2 "\n"}' >"$TMP/burst.conf"
FLOOR_RATE=0 SUMMARY=() RATES=()
addconf_floor() {
	local fl=jw${JITWG_RUNID}f${1:0:1} a b s r
	wggo "$G" "$fl"
	ip netns exec "$G" wg set "$fl" private-key "$TMP/gw.key" listen-port 51898
	ip -n "$G" link set "$fl" up
	a=$(date +%s.%N)
	ip netns exec "$G" wg addconf "$fl" "$TMP/burst.conf"
	b=$(date +%s.%N)
	s=$(calc "$b - $a")
	r=$(calc "$BURST / $s")
	awk -v r="$r" -v f="$FLOOR_RATE" 'BEGIN { exit !(r > f) }' && FLOOR_RATE=$r
	[ "$1" = before ] && echo "$BURST $s" >"$(raw e2e-burst-addconf.txt)"
	ip -n "$G" link del "$fl" # its wireguard-go exits
	printf '  %-12s %d peers by one wg addconf (%s the modes): %.2f s (%.0f peers/s)\n' \
		floor "$BURST" "$1" "$s" "$r"
}
addconf_floor before
# initiate: jitwgd's defaults. periodic: the same with --cache-sync periodic.
for mode in ${BENCH_BURST_MODES:-auto initiate consume no-initiate periodic}; do
	log=$TMP/jw-burst-$mode.log
	case $mode in
	auto) args=() ;;
	initiate) args=(--consume=never) ;;
	periodic) args=(--cache-sync periodic --consume=never) ;;
	no-initiate) args=(--no-initiate-back --consume=never) ;;
	consume) args=(--consume) ;;
	*) fail "unknown burst mode $mode (auto initiate consume no-initiate periodic)" ;;
	esac
	ip netns exec "$G" wg show "$WGG" peers | sed 's/^/peer /; s/$/ remove/' | tr '\n' ' ' >"$TMP/rm"
	[ -s "$TMP/rm" ] && ip netns exec "$G" wg set "$WGG" $(cat "$TMP/rm")
	JW_LOG=$log e2e_jitwgd --cache-dir "$TMP/burst-cache" "${args[@]}" ${BENCH_JITWGD_ARGS:-}
	wgpid=$(pgrep -f "wireguard-go -f $WGG\$" | head -1)
	jw_cpu0=$(cpu_ticks "$JW_PID")
	wg_cpu0=$(cpu_ticks "$wgpid")
	ip netns exec "$C" "$LOADGEN" send --to $E2E_GW_IP:51820 --responder "$GW_PUB" \
		--seed burst --count "$BURST" --duration-ms 1000 --sources 100 \
		--src-base 192.168.78.1 >/dev/null 2>"$TMP/lg.err"
	t_end=$(date +%s.%N)
	# The load generator builds every message first; time the sending only.
	send_s=$(sed -n 's/.*sent [0-9]* initiations in \([0-9.]*\) s.*/\1/p' "$TMP/lg.err")
	t0=$(calc "$t_end - $send_s")
	# Polled twice a second: the times come from the log, and a tighter
	# poll (grep over a growing log) would take CPU from what is measured.
	for ((k = 0; k < 180; k++)); do
		[ "$(grep -c outcome=installed "$log")" -ge "$BURST" ] && break
		sleep 0.5
	done
	sleep 0.5
	got=$(grep -c outcome=installed "$log")
	first=$(grep -m1 outcome=installed "$log" | logts)
	last=$(grep outcome=installed "$log" | tail -1 | logts)
	rss=$(awk '/VmRSS/ {print $2}' /proc/"$JW_PID"/status)
	jw_cpu=$(calc "($(cpu_ticks "$JW_PID") - $jw_cpu0) / $(getconf CLK_TCK)")
	wg_cpu=$(calc "($(cpu_ticks "$wgpid") - $wg_cpu0) / $(getconf CLK_TCK)")
	grep outcome=installed "$log" | sed -n 's/.*queue_ms=\([0-9.]*\).*/\1/p' >"$TMP/q"
	# Every client sent the gateway's handshake message (its initiation,
	# or with --consume its response to the client's own): the peer has
	# sent bytes. Polled every 0.5 s after the installs, so an upper bound;
	# --no-initiate-back clients wait for their own retry, which synthetic
	# clients never send.
	answered=
	if [ $mode != no-initiate ]; then
		# A start older than 4 s after its initiation is dropped as stale
		# (the last was sent at ~1 s): once past 5 s, a count that has
		# not moved for 2 s is final, and waiting on holds the lock.
		n_prev=-1 still=0
		for ((k = 0; k < 40; k++)); do
			n_tx=$(ip netns exec "$G" wg show "$WGG" transfer | awk '$3 > 0' | wc -l)
			[ "$n_tx" -ge "$BURST" ] && break
			[ "$n_tx" = "$n_prev" ] && still=$((still + 1)) || still=0
			n_prev=$n_tx
			[ $still -ge 4 ] && awk -v t="$(calc "$(date +%s.%N) - $t0")" 'BEGIN { exit !(t > 5) }' && break
			sleep 0.5
		done
		answered="$n_tx of $BURST clients had the gateway's handshake message $(calc "$(date +%s.%N) - $t0" | xargs printf '%.1f') s after the send start"
		[ $mode = consume ] && answered="$answered (answers later than 4 s are left to the client's retry, which synthetic clients never send)"
	fi
	e2e_jitwgd_stop
	[ -n "${BENCH_SAVE_LOGS:-}" ] && cp "$log" "$BENCH_SAVE_LOGS-burst-$mode.log"
	# Each install's time from the send start (UTC times of day; the log's
	# ts is UTC).
	grep outcome=installed "$log" | sed -n 's/^ts=[^T]*T\([0-9:.]*\)Z.*/\1/p' |
		awk -F: -v t0="$t0" '{ printf "%.4f\n", $1 * 3600 + $2 * 60 + $3 - (t0 % 86400) }' \
		>"$(raw "e2e-burst-$mode.txt")"
	stats=$(grep msg=stop "$log")
	# Times from the send start: the send ends at send_s.
	rate=$(calc "$got / ($last - $first)")
	printf '  %-12s installed %5d/%d  send end %.2f s  first install %.2f s  last %.2f s  lag %.2f s (target <= 0.2)\n' \
		"$mode" "$got" "$BURST" "$send_s" "$(calc "$first - $t0")" "$(calc "$last - $t0")" \
		"$(calc "$last - $t_end")"
	printf '  %-12s installs/s first->last %5.0f\n' "" "$rate"
	SUMMARY+=("$(printf '  %-12s send end %.2f s  last install %.2f s  lag %.2f s  installs/s %5.0f' \
		"$mode" "$send_s" "$(calc "$last - $t0")" "$(calc "$last - $t_end")" "$rate")")
	RATES+=("$rate")
	printf '  %-12s CPU s: jitwgd %.2f, wireguard-go %.2f; XDP->worker queue p50 %s ms p99 %s ms; rss %d MiB\n' \
		"" "$jw_cpu" "$wg_cpu" "$(pct "$TMP/q" 50)" "$(pct "$TMP/q" 99)" $((rss / 1024))
	echo "               $(grep -o 'events=[0-9]* .*queue_full=[0-9]*' <<<"$stats")"
	[ -n "$answered" ] && printf '  %-12s %s (polled every 0.5 s)\n' "" "$answered"
done
addconf_floor after
echo "  against the faster floor, $(printf %.0f "$FLOOR_RATE") peers/s (targets: lag <= 0.2 s, installs/s >= 80 % of the floor's):"
for ((k = 0; k < ${#SUMMARY[@]}; k++)); do
	printf '%s  %3.0f %% of wg addconf\n' "${SUMMARY[k]}" "$(calc "100 * ${RATES[k]} / $FLOOR_RATE")"
done
WGG=$WGG_MAIN

fi
if want 3; then
# ---- 3. memory and start-up --------------------------------------------------
echo
echo "3. start-up and memory (fresh device with no peers; cache on disk)"
SD=jw${JITWG_RUNID}s
wggo "$G" "$SD"
ip netns exec "$G" wg set "$SD" private-key "$TMP/gw.key" listen-port 51830
ip -n "$G" link set "$SD" up
mkdir -p "$TMP/empty" "$TMP/full"
t0=$(date +%s)
"$BUILD/jitwg-cachefill" "$TMP/full" "$CACHE_N" || fail "cachefill"
echo "  (filled $CACHE_N entries in $(($(date +%s) - t0)) s; $(du -sh "$TMP/full" | cut -f1) on disk)"
row "" "startup ms" "external ms" "RSS MiB" "anon MiB"
echo "# entries run startup_ms external_ms rss_mib anon_mib" >"$(raw e2e-startup.txt)"
for which in empty full; do
	for run in 1 2 3; do
		log=$TMP/jw-start-$which-$run.log
		: >"$log"
		t0=$(date +%s.%N)
		ip netns exec "$G" "$JITWGD" --wg-dev "$SD" --xdp-dev vg --xdp-mode native \
			--api "$CP_URL" --cache-dir "$TMP/$which" 2>>"$log" &
		pid=$!
		wait_for 10 grep -q msg=ready "$log" || fail "jitwgd did not start: $(cat "$log")"
		ready=$(grep msg=ready "$log")
		ext=$(calc "($(logts <<<"$ready") - $t0) * 1000")
		# A few lookups touch the cache, as serving traffic would.
		ip netns exec "$C" "$LOADGEN" send --to $E2E_GW_IP:51830 --responder "$GW_PUB" \
			--seed rss --count 200 >/dev/null 2>&1
		sleep 0.5
		rss=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
		anon=$(awk '/RssAnon/ {print $2}' /proc/$pid/status)
		kill $pid
		wait $pid 2>/dev/null
		label="empty cache"
		[ $which = full ] && label="cache of $CACHE_N entries"
		echo "$([ $which = full ] && echo "$CACHE_N" || echo 0) $run" \
			"$(sed -n 's/.* startup_ms=\([0-9.]*\).*/\1/p' <<<"$ready") $(printf %.1f "$ext")" \
			"$(calc "$rss / 1024") $(calc "$anon / 1024")" >>"$(raw e2e-startup.txt)"
		row "$label, run $run" \
			"$(sed -n 's/.* startup_ms=\([0-9.]*\).*/\1/p' <<<"$ready")" \
			"$(printf %.1f "$ext")" "$(printf %.1f "$(calc "$rss / 1024")")" \
			"$(printf %.1f "$(calc "$anon / 1024")")"
	done
	echo "    of which BPF load + attach (floor): $(sed -n 's/.* capture_ms=\([0-9.]*\).*/\1/p' <<<"$ready") ms, cache open: $(sed -n 's/.* cache_ms=\([0-9.]*\).*/\1/p' <<<"$ready") ms"
done
echo "  target: start-up < 100 ms whatever the cache size"

fi