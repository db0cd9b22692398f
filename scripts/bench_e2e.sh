#!/usr/bin/env bash
# make bench-e2e: jitwgd end to end, on the topology of tests/e2e_lib.sh.
#
#  1. first initiation -> completed handshake, p50/p99 over BENCH_CLIENTS
#     real wireguard-go clients, with initiating back and with
#     --no-initiate-back; floor: clients the gateway already knows.
#  2. a burst of BENCH_BURST synthetic clients (jitwg-loadgen) within one
#     second, keys in the cache: the last install's lag behind the send end,
#     installs/s from the first install to the last; floor: the same peers
#     installed by one `wg addconf` (before and after the modes).
#  3. resident memory and start-up time with an empty cache and with
#     BENCH_CACHE_ENTRIES entries.
# BENCH_ONLY="2" runs only the listed sections; BENCH_BURST_MODES picks
# section 2's modes (initiate consume no-initiate periodic), BENCH_JITWGD_ARGS
# adds options to its jitwgd, BENCH_SAVE_LOGS=PREFIX keeps its logs.
# BENCH_OUT=DIR also writes the raw samples there for the report's plots
# (make bench, scripts/bench_report.sh): e2e-first-contact-PHASE.txt (ms, one
# a line), e2e-burst-MODE.txt (s from the send start to each install),
# e2e-burst-addconf.txt ("peers seconds"), e2e-startup.txt.
SCRIPT=bench-e2e
. "$(dirname "$0")/e2e_script.sh"
trap 'echo "interrupted"; exit 130' INT TERM

N=${BENCH_CLIENTS:-100}
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
row() { printf '  %-52s %12s %12s %8s %9s\n' "$1" "$2" "$3" "$4" "${5:-}"; }
# calc EXPR: floating-point arithmetic (awk; no bc needed).
calc() { awk "BEGIN { printf \"%.6f\", $1 }"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
logts() { sed -n 's/^ts=\([^ ]*\) .*/\1/p' | head -1 | xargs -I{} date -d {} +%s.%N; }

echo "jitwgd end-to-end benchmark ($(nproc) CPUs, shared machine: expect noise)"
echo "kernel $(uname -r), wireguard-go $(wireguard-go --version 2>/dev/null | head -1 | awk '{print $NF}')"

if want 1; then
# ---- 1. first-contact latency ----------------------------------------------
# PAR client devices, each with its own gateway address 10.77.100.D so their
# routes never collide; each round gives a device a new key (a new client).
echo
echo "setting up $PAR client devices and $((3 * N + 20)) client keys"
python_map='import json,sys
out = {}
for line in open(sys.argv[1]):
    k, ip = line.split()
    out[k] = {"allowed_ips": [ip]}
json.dump(out, open(sys.argv[2], "w"))'
: >"$TMP/keys.txt"
mkdir -p "$TMP/ck"
for phase in ib nib base cons; do
	cnt=$N
	[ $phase = base ] && cnt=20
	o=1
	[ $phase = nib ] && o=2
	[ $phase = base ] && o=3
	[ $phase = cons ] && o=4
	for ((j = 0; j < cnt; j++)); do
		wg genkey >"$TMP/ck/$phase-$j"
		echo "$(wg pubkey <"$TMP/ck/$phase-$j") 10.77.$o.$((j + 1))/32" >>"$TMP/keys.txt"
	done
done
grep -v '10\.77\.3\.' "$TMP/keys.txt" >"$TMP/keys-cp.txt"
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

# one_client PHASE J D: device D becomes client J of PHASE and pings once;
# prints the first reply's round trip in ms (or "lost").
one_client() {
	local phase=$1 j=$2 d=$3 dev=jw${JITWG_RUNID}d$3 o ip out
	case $phase in ib) o=1 ;; nib) o=2 ;; base) o=3 ;; cons) o=4 ;; esac
	ip=10.77.$o.$((j + 1))
	ip netns exec "$C" wg set "$dev" private-key "$TMP/ck/$phase-$j"
	ip -n "$C" addr add "$ip/32" dev "$dev"
	ip -n "$C" addr del "10.77.250.$d/32" dev "$dev" 2>/dev/null
	ip -n "$C" addr flush dev "$dev" to 10.77.0.0/16 2>/dev/null
	ip -n "$C" addr add "$ip/32" dev "$dev" 2>/dev/null
	ip -n "$C" route replace 10.77.100.$d/32 dev "$dev"
	out=$(ip netns exec "$C" ping -c 1 -W 12 -I "$ip" 10.77.100.$d 2>/dev/null)
	sed -n 's/.*time=\([0-9.]*\) ms.*/\1/p' <<<"$out" | grep . || echo lost
}

# run_phase PHASE PARALLEL: every client of the phase, PARALLEL at a time.
run_phase() {
	local phase=$1 par=$2 cnt=$N j b
	[ $phase = base ] && cnt=20
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

# Floor: peers the gateway already has (no jitwgd), first ping = handshake.
for ((j = 0; j < 20; j++)); do
	ip netns exec "$G" wg set "$WGG" peer "$(wg pubkey <"$TMP/ck/base-$j")" allowed-ips 10.77.3.$((j + 1))/32
done
echo "floor: 20 clients already installed on the gateway, one at a time"
run_phase base 1

JW_LOG=$TMP/jw-ib.log e2e_jitwgd
echo "initiating back: $N new clients, one at a time"
run_phase ib 1
sleep 1
grep -o 'msg=handshake .*since_initiation_ms=[0-9.]*' "$TMP/jw-ib.log" |
	sed 's/.*since_initiation_ms=//' >"$TMP/hs-ib"
e2e_jitwgd_stop

JW_LOG=$TMP/jw-cons.log e2e_jitwgd --consume
echo "--consume: $N new clients, one at a time (the gateway answers the client's first initiation)"
run_phase cons 1
sleep 1
grep -o 'msg=handshake .*since_initiation_ms=[0-9.]*' "$TMP/jw-cons.log" |
	sed 's/.*since_initiation_ms=//' >"$TMP/hs-cons"
e2e_jitwgd_stop

JW_LOG=$TMP/jw-nib.log e2e_jitwgd --no-initiate-back
echo "--no-initiate-back: $N new clients, $PAR at a time (each waits for its 5 s retry)"
run_phase nib "$PAR"
sleep 1
grep -o 'msg=handshake .*since_initiation_ms=[0-9.]*' "$TMP/jw-nib.log" |
	sed 's/.*since_initiation_ms=//' >"$TMP/hs-nib"
e2e_jitwgd_stop

echo
echo "1. first initiation -> handshake (ms)"
row "" p50 p99 n
for ph in base ib cons nib; do
	grep -v lost "$TMP/rtt-$ph" >"$TMP/rtt-$ph.ok"
	case $ph in
	base) name="floor: peer preinstalled, client's first ping" ;;
	ib) name="jitwgd, initiate back: client's first ping" ;;
	cons) name="jitwgd --consume: client's first ping" ;;
	nib) name="jitwgd, --no-initiate-back: client's first ping" ;;
	esac
	row "$name" "$(pct "$TMP/rtt-$ph.ok" 50)" "$(pct "$TMP/rtt-$ph.ok" 99)" \
		"$(wc -l <"$TMP/rtt-$ph.ok")/$(wc -l <"$TMP/rtt-$ph")"
	cp "$TMP/rtt-$ph.ok" "$(raw "e2e-first-contact-$ph.txt")"
	[ $ph = base ] && continue
	row "  jitwgd log: XDP initiation -> handshake seen" "$(pct "$TMP/hs-$ph" 50)" \
		"$(pct "$TMP/hs-$ph" 99)" "$(wc -l <"$TMP/hs-$ph")"
done
grep 'outcome=installed' "$TMP/jw-ib.log" | sed -n 's/.*fetch_ms=\([0-9.]*\).*/\1/p' >"$TMP/fetch-ib"
grep 'outcome=installed' "$TMP/jw-ib.log" | sed -n 's/.*install_ms=\([0-9.]*\).*/\1/p' >"$TMP/inst-ib"
row "  of which control plane fetch (initiate back)" "$(pct "$TMP/fetch-ib" 50)" "$(pct "$TMP/fetch-ib" 99)" "$(wc -l <"$TMP/fetch-ib")"
row "  of which device install (initiate back)" "$(pct "$TMP/inst-ib" 50)" "$(pct "$TMP/inst-ib" 99)" "$(wc -l <"$TMP/inst-ib")"
echo "  target: p99 < 20 ms with a local control plane (initiating back)"

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
for mode in ${BENCH_BURST_MODES:-initiate consume no-initiate periodic}; do
	log=$TMP/jw-burst-$mode.log
	case $mode in
	initiate) args=() ;;
	periodic) args=(--cache-sync periodic) ;;
	no-initiate) args=(--no-initiate-back) ;;
	consume) args=(--consume) ;;
	*) fail "unknown burst mode $mode (initiate consume no-initiate periodic)" ;;
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