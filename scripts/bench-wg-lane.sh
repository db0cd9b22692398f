#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# One backend's half of `make bench-wg` (scripts/bench-wg.sh prints the
# tables): uapi = wireguard-go on this host, netlink = kernel WireGuard
# (run inside tests/vm/run-in-vm.sh). For each size, wgdev (one call) and
# wg(8) (setconf to install, set ... remove to remove, show dump to list)
# do the same work on the same device in the same run. Then the time from
# install-and-initiate to a completed handshake, against wg(8) setting the
# same peer with a persistent keepalive (the same role inversion, polled).
# Output lines:
#   R BACKEND TOOL OP N SECONDS [LISTED]  (OP: install list remove; N asked)
#   M BACKEND TOOL PEERS             largest count taken (asked for BENCH_MAX)
#   H BACKEND TOOL MILLISECONDS [WG_WALL_MS]   one handshake
set -u
umask 077
backend=$1
cd "$(dirname "$0")/.."
ROOT=$PWD
CTL=$ROOT/build/wgdevctl
SIZES=${BENCH_SIZES:-"1000 10000"}
MAX=${BENCH_MAX:-100000}
REPS=${BENCH_REPS:-5}
ID=${JITWG_RUNID:-$$}
NS=jw${ID}b
tmp=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	for n in $NS ${NS}c ${NS}g; do
		ip netns pids "$n" 2>/dev/null | xargs -r kill 2>/dev/null
	done
	sleep 0.3
	for n in $NS ${NS}c ${NS}g; do ip netns del "$n" 2>/dev/null; done
	rm -rf "$tmp"
	rm -f /var/run/wireguard/jw${ID}[bcg]*.sock
}
trap cleanup EXIT
trap 'exit 143' TERM INT

now() { date +%s.%N; }
since() { echo "$(now) $1" | awk '{printf "%.4f", $1 - $2}'; }

# mkdev NS DEV: a WireGuard device of this lane's kind, up, port 51820.
mkdev() {
	local ns=$1 dev=$2
	wg genkey >"$tmp/$dev.key"
	if [ "$backend" = uapi ]; then
		WG_PROCESS_FOREGROUND=1 ip netns exec "$ns" wireguard-go "$dev" \
			>/dev/null 2>&1 &
		pids+=($!)
		for _ in $(seq 100); do
			[ -S "/var/run/wireguard/$dev.sock" ] && break
			sleep 0.05
		done
	else
		ip -n "$ns" link add "$dev" type wireguard || exit 1
	fi
	ip netns exec "$ns" wg set "$dev" private-key "$tmp/$dev.key" \
		listen-port 51820 || exit 1
	ip -n "$ns" link set "$dev" up
}

in_ns() { ip netns exec "$NS" "$@"; }
count() { in_ns wg show "$DEV" peers | wc -l; }

# One size: wgdev then wg(8), each leaving the device empty.
bench_size() {
	local n=$1 line t
	line=$(in_ns "$CTL" -b "$backend" "$DEV" bench "$n" 2>"$tmp/err")
	echo "$line" | grep -q '^bench' || {
		echo "bench-wg: wgdevctl bench $n: $(cat "$tmp/err")" >&2
		return 1
	}
	set -- $line
	local inst=${3#*=} listed=${4#*=}
	if [ "$inst" = yes ]; then
		echo "R $backend wgdev install $n ${5#*=}"
	fi
	echo "R $backend wgdev list $n ${6#*=} $listed"
	echo "R $backend wgdev remove $n ${7#*=}"
	[ "$inst" = yes ] || echo "M $backend wgdev $listed"
	[ "$n" = "$MAX" ] && [ "$inst" = yes ] && echo "M $backend wgdev $listed"

	# wg(8): setconf with the same peers (and the device's own key/port).
	{
		echo "[Interface]"
		echo "PrivateKey = $(cat "$tmp/$DEV.key")"
		echo "ListenPort = 51820"
		"$CTL" gen "$n" setconf | tail -n +2
	} >"$tmp/conf"
	"$CTL" gen "$n" keys >"$tmp/keys"
	t=$(now)
	if in_ns wg setconf "$DEV" "$tmp/conf" 2>"$tmp/err"; then
		echo "R $backend wg-setconf install $n $(since "$t")"
		inst=yes
	else
		inst=no
	fi
	listed=$(count)
	t=$(now)
	in_ns wg show "$DEV" dump >/dev/null
	echo "R $backend wg-show-dump list $n $(since "$t") $listed"
	t=$(now)
	# 1,000 peers per wg(8) call keeps the arguments under ARG_MAX.
	sed 's/.*/peer & remove/' "$tmp/keys" |
		in_ns xargs -n 3000 wg set "$DEV"
	echo "R $backend wg-set remove $n $(since "$t")"
	[ "$inst" = yes ] || echo "M $backend wg $listed"
	[ "$n" = "$MAX" ] && [ "$inst" = yes ] && echo "M $backend wg $listed"
	[ "$(count)" = 0 ] || echo "bench-wg: $(count) peers left after removal" >&2
}

# Install and initiate, timed, REPS times; then wg(8) doing the same.
bench_handshake() {
	local c=${NS}c g=${NS}g cdev=jw${ID}bc gdev=jw${ID}bg cpub gpub i out t
	ip netns add "$c" && ip netns add "$g" || return 1
	ip -n "$c" link set lo up
	ip -n "$g" link set lo up
	ip link add "jw${ID}vc" netns "$c" type veth peer name "jw${ID}vg" netns "$g"
	ip -n "$c" addr add 10.200.0.1/24 dev "jw${ID}vc"
	ip -n "$g" addr add 10.200.0.2/24 dev "jw${ID}vg"
	ip -n "$c" link set "jw${ID}vc" up
	ip -n "$g" link set "jw${ID}vg" up
	mkdev "$c" "$cdev"
	mkdev "$g" "$gdev"
	ip -n "$c" addr add 10.201.0.1/24 dev "$cdev"
	ip -n "$g" addr add 10.201.0.2/24 dev "$gdev"
	cpub=$(wg pubkey <"$tmp/$cdev.key")
	gpub=$(wg pubkey <"$tmp/$gdev.key")
	for tool in wgdev wg-set no-initiate; do
		reps=$REPS
		[ $tool = no-initiate ] && reps=${BENCH_RETRY_REPS:-2}
		for i in $(seq "$reps"); do
			# A fresh start on both sides: no session, no endpoint.
			ip netns exec "$g" wg set "$gdev" peer "$cpub" remove
			ip netns exec "$c" wg set "$cdev" peer "$gpub" remove
			ip netns exec "$c" wg set "$cdev" peer "$gpub" \
				allowed-ips 10.201.0.2/32
			sleep 0.2
			case $tool in
			wgdev)
				# In-process: from the install call to the handshake.
				out=$(ip netns exec "$g" "$CTL" -b "$backend" "$gdev" \
					initiate "$cpub" endpoint 10.200.0.1:51820 \
					allowed-ips 10.201.0.1/32 keepalive 25 wait 10 \
					restore 0) || continue
				echo "H $backend wgdev ${out#handshake_ms=}"
				;;
			wg-set)
				# wg(8) setting the same peer with a keepalive (the
				# same role inversion): from wg's return to the
				# handshake, polled in-process by wgdevctl; wg's own
				# wall time (process start included) beside it.
				t=$(now)
				ip netns exec "$g" wg set "$gdev" peer "$cpub" \
					endpoint 10.200.0.1:51820 \
					allowed-ips 10.201.0.1/32 persistent-keepalive 25
				t=$(since "$t")
				out=$(ip netns exec "$g" "$CTL" -b "$backend" "$gdev" \
					wait "$cpub" 10) || continue
				echo "H $backend wg-set ${out#handshake_ms=} $t" |
					awk '{printf "H %s %s %s %.2f\n", $2, $3, $4, $5 * 1000}'
				;;
			no-initiate)
				# Without initiating back: the client (given the
				# endpoint) initiates first and is dropped, the peer
				# is installed without keepalive, the handshake waits
				# for the client's retry (REKEY_TIMEOUT, 5 s).
				ip netns exec "$c" wg set "$cdev" peer "$gpub" \
					endpoint 10.200.0.2:51820
				ip netns exec "$c" ping -c 1 -W 1 10.201.0.2 >/dev/null 2>&1 &
				sleep 0.3
				out=$(ip netns exec "$g" sh -c "$CTL -b $backend $gdev set $cpub \
					allowed-ips 10.201.0.1/32 && $CTL -b $backend $gdev \
					wait $cpub 12") || {
					[ -n "${BENCH_DEBUG:-}" ] && {
						ip netns exec "$c" wg show "$cdev"
						ip netns exec "$g" wg show "$gdev"
					} >&2
					continue
				}
				echo "H $backend no-initiate ${out#handshake_ms=}"
				;;
			esac
		done
	done
}

ip netns add "$NS" || exit 1
ip -n "$NS" link set lo up
DEV=jw${ID}bd
mkdev "$NS" "$DEV"
for n in $SIZES $MAX; do
	bench_size "$n"
done
bench_handshake
