#!/usr/bin/env bash
# make bench-churn: the churn simulation. A registered population at the
# reference control plane, synthetic clients (jitwg-loadgen clients) arriving,
# staying and leaving over one compressed day, jitwgd provisioning a
# wireguard-go gateway on the topology of tests/e2e_lib.sh. Sampled every
# second: peers on the device, active peers, registered peers (what a push
# control plane would keep on the device).
#
# Time is compressed by BENCH_CHURN_SCALE (10): jitwgd's timers and the
# clients' are the defaults divided by it, so their proportions are the
# defaults':
#   jitwgd --idle-timeout  I = 300/scale   (30 s)
#          --evict-interval V = 30/scale   (3 s)
#          --handshake-window  30/scale    (3 s)
#   client rekey           R = 120/scale   (12 s; WireGuard's REKEY_AFTER_TIME)
#   client keepalive       K = 25/scale    (2.5 s; a common persistent-keepalive)
#   client retry               5/scale     (0.5 s; REKEY_TIMEOUT)
#   mean session           S = 4 I         (120 s: sessions longer than the idle
#                                          timeout, as 20 min against 5 min)
# WireGuard's own timers do not compress (wireguard-go's 180 s key lifetime
# is longer than anything here, and the synthetic clients rekey on their own
# compressed schedule, which the gateway accepts).
#
# Active: a client that completed a handshake or sent data within the last I
# seconds (present or gone), counted by the load generator.
#
# Expected ratio, derived before measuring. A client's peer stays on the
# device until the first sweep after its last handshake + I, so for
# last + I + U with U in [0, V); it stays active until its last handshake or
# data + I. Its last handshake is within R of its leaving, its last data
# within K. By Little's law, in steady state
#   device / active = (S + I + V/2 - R/2) / (S + I - K/2)
#                   = (120 + 30 + 1.5 - 6) / (120 + 30 - 1.25) = 0.98
# and a sample can exceed 1 only by the peers of clients that left in the
# last sweep interval: at most 1 + V / (S + I) = 1.02 at a steady rate, and
# 1 + V / I = 1.1 were every session short. Target: device <= 1.1 x active at
# every sample after the warm-up (the first I + V seconds).
#
# Knobs: BENCH_CHURN_REGISTERED ("10000 100000": one run per size, the same
# day each time, to show first contact does not grow with the population),
# BENCH_CHURN_DAY_S (600), BENCH_CHURN_PEAK (800 clients present at the
# peak), BENCH_CHURN_SCALE (10), BENCH_OUT (build/bench).
SCRIPT=bench-churn
. "$(dirname "$0")/e2e_script.sh"
trap 'echo "interrupted"; exit 130' INT TERM

SIZES=${BENCH_CHURN_REGISTERED:-10000 100000}
DAY=${BENCH_CHURN_DAY_S:-600}
PEAK=${BENCH_CHURN_PEAK:-800}
SCALE=${BENCH_CHURN_SCALE:-10}
OUT=${BENCH_OUT:-$ROOT/build/bench}
SOURCES=16
# calc EXPR: floating-point arithmetic (awk; no bc needed).
calc() { awk "BEGIN { printf \"%.3f\", $1 }"; }
IDLE=$(calc "300 / $SCALE" | cut -d. -f1)
EVICT=$(calc "30 / $SCALE" | cut -d. -f1)
[ "$EVICT" -ge 1 ] || EVICT=1
REKEY_MS=$(calc "120000 / $SCALE" | cut -d. -f1)
KEEP_MS=$(calc "25000 / $SCALE" | cut -d. -f1)
RETRY_MS=$(calc "5000 / $SCALE" | cut -d. -f1)
SESSION=$((4 * IDLE))
WARMUP=$((IDLE + EVICT))

[ -x "$JITWGD" ] && [ -x "$LOADGEN" ] || { echo "bench-churn: run make first" >&2; exit 1; }
mkdir -p "$OUT"

tmp_dir
e2e_topo
e2e_sources $SOURCES

echo "churn simulation ($(nproc) CPUs, $(uname -r), $(date -u '+%Y-%m-%d %H:%M UTC'))"
echo "  one day in $DAY s, ~$PEAK clients present at the peak, mean session $SESSION s"
echo "  jitwgd --idle-timeout $IDLE --evict-interval $EVICT --handshake-window $EVICT" \
	"(defaults / $SCALE); clients rekey every $((REKEY_MS / 1000)) s, keepalive every ${KEEP_MS} ms"
echo "  expected device/active: $(calc "($SESSION + $IDLE + $EVICT / 2 - $REKEY_MS / 2000) / ($SESSION + $IDLE - $KEEP_MS / 2000)") in steady state," \
	"at most $(calc "1 + $EVICT / ($SESSION + $IDLE)") at a steady rate; target <= 1.1 after $WARMUP s"

: >"$OUT/churn.md"
summary=()
for R in $SIZES; do
	echo
	echo "registered population $R: keys and control plane"
	"$LOADGEN" keys --seed churn --count "$R" --net 10.128.0.0 >"$TMP/keys-$R"
	$PY -c 'import json,sys
out = {}
for line in open(sys.argv[1]):
    k, ip = line.split()
    out[k] = {"allowed_ips": [ip]}
json.dump(out, open(sys.argv[2], "w"))' "$TMP/keys-$R" "$TMP/peers-$R.json"
	[ -n "${CP_PID:-}" ] && e2e_cp_stop
	CP_PEERS=$TMP/peers-$R.json e2e_cp
	# The reference control plane indexes its map file on the first request.
	cp_get /peers/AAAA >/dev/null
	$PY "$ROOT/scripts/churn.py" schedule --registered "$R" --day "$DAY" \
		--peak "$PEAK" --session "$SESSION" >"$TMP/schedule-$R"
	# A new device each run, so that its peer count is this run's.
	ip netns exec "$G" wg show "$WGG" peers | sed 's/^/peer /; s/$/ remove/' | tr '\n' ' ' >"$TMP/rm"
	[ -s "$TMP/rm" ] && ip netns exec "$G" wg set "$WGG" $(cat "$TMP/rm")
	rm -rf "$TMP/cache"
	JW_LOG=$TMP/jw-$R.log e2e_jitwgd --idle-timeout "$IDLE" \
		--evict-interval "$EVICT" --handshake-window "$EVICT"
	echo "  $(wc -l <"$TMP/schedule-$R") sessions over $DAY s; progress every 60 s"
	t0=$(date +%s.%N)
	ip netns exec "$C" "$LOADGEN" clients --seed churn --to $E2E_GW_IP:51820 \
		--responder "$GW_PUB" --schedule "$TMP/schedule-$R" \
		--sources $SOURCES --src-base 192.168.78.1 \
		--rekey-ms "$REKEY_MS" --keepalive-ms "$KEEP_MS" --retry-ms "$RETRY_MS" \
		--active-window-ms $((IDLE * 1000)) --sample-ms 1000 \
		--events "$TMP/events-$R" --samples "$TMP/lg-$R" \
		>"$TMP/lg-$R.out" 2>"$TMP/lg-$R.err" &
	lg=$!
	on_exit "kill $lg 2>/dev/null"
	: >"$TMP/dev-$R"
	shown=0
	while kill -0 $lg 2>/dev/null; do
		echo "$(date +%s.%N) $(ip netns exec "$G" wg show "$WGG" peers | wc -l)" >>"$TMP/dev-$R"
		el=$(($(date +%s) - ${t0%.*}))
		if [ $((el / 60)) -gt $shown ]; then
			shown=$((el / 60))
			last=$(tail -1 "$TMP/lg-$R" 2>/dev/null)
			echo "  t=${el} s of $DAY: device $(tail -1 "$TMP/dev-$R" | cut -d' ' -f2)," \
				"present $(cut -d' ' -f2 <<<"$last"), active $(cut -d' ' -f3 <<<"$last")"
		fi
		sleep 1
	done
	wait $lg || echo "  load generator failed: $(cat "$TMP/lg-$R.err")"
	echo "  $(cat "$TMP/lg-$R.out")"
	echo "  jitwgd: $(grep -c outcome=installed "$TMP/jw-$R.log") installs," \
		"$(grep -c 'msg=evict .*outcome=evicted' "$TMP/jw-$R.log") evictions," \
		"$(grep -c 'outcome=installed source=api' "$TMP/jw-$R.log") of them from the control plane"
	e2e_jitwgd_stop
	cp "$TMP/jw-$R.log" "$OUT/churn-$R-jitwgd.log"
	cp "$TMP/events-$R" "$OUT/churn-$R-events.txt"
	res=$($PY "$ROOT/scripts/churn.py" analyze --loadgen-samples "$TMP/lg-$R" \
		--device-samples "$TMP/dev-$R" --events "$TMP/events-$R" --t0 "$t0" \
		--registered "$R" --warmup "$WARMUP" --out-dat "$OUT/churn-$R.dat" \
		--out-md "$TMP/churn-$R.md" --out-fc "$OUT/churn-$R-first-contact.txt")
	echo "  $res"
	summary+=("$res")
	if [ -s "$OUT/churn.md" ]; then
		tail -1 "$TMP/churn-$R.md" >>"$OUT/churn.md"
	else
		cat "$TMP/churn-$R.md" >>"$OUT/churn.md"
	fi
done

cat >"$OUT/churn-params.txt" <<EOF
machine: $(nproc) CPUs, kernel $(uname -r), $(date -u '+%Y-%m-%d %H:%M UTC')
day: $DAY s, peak ~$PEAK clients present, mean session $SESSION s, registered: $SIZES
jitwgd: --idle-timeout $IDLE --evict-interval $EVICT --handshake-window $EVICT (defaults / $SCALE)
clients: rekey $REKEY_MS ms, keepalive $KEEP_MS ms, retry $RETRY_MS ms
active: handshake or data within the last $IDLE s; warm-up $WARMUP s
expected device/active: $(calc "($SESSION + $IDLE + $EVICT / 2 - $REKEY_MS / 2000) / ($SESSION + $IDLE - $KEEP_MS / 2000)") steady state, <= $(calc "1 + $EVICT / ($SESSION + $IDLE)") at a steady rate, target <= 1.1
EOF
echo
echo "churn: peers on the device vs active (after the $WARMUP s warm-up) and first contact"
cat "$OUT/churn.md"
echo "data: $OUT/churn-*.dat (t registered device active present), parameters: $OUT/churn-params.txt"
