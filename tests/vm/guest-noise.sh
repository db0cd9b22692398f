#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Runs inside the VM (tests/vm/run-in-vm.sh): the Noise decoder and initiator
# against the *kernel's* WireGuard, the second real implementation beside
# wireguard-go (tests/test_noise.sh). Prints PASS:/FAIL: lines; exits
# non-zero if any case failed. Usage: guest-noise.sh [CASE...]
#
#   ns "c"  veth 192.0.2.1/24  <------>  ns "g"  veth 192.0.2.2/24
set -u
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	cd "$(dirname "$0")/../.." || exit 1
	export JITWG_ROOT=$PWD JITWG_RUNID=${JITWG_RUNID:-$$}
fi

topo() {
	CTL=$BUILD/jitwgctl
	netns_add c
	netns_add g
	C=$(ns c) G=$(ns g)
	check "veth" ip link add "jw${RUNID}vc" netns "$C" type veth \
		peer name "jw${RUNID}vg" netns "$G"
	ip -n "$C" addr add 192.0.2.1/24 dev "jw${RUNID}vc"
	ip -n "$G" addr add 192.0.2.2/24 dev "jw${RUNID}vg"
	ip -n "$C" link set "jw${RUNID}vc" up
	ip -n "$G" link set "jw${RUNID}vg" up
	TMP=$(mktemp -d)
	on_exit "rm -rf $TMP"
	umask 077
}

# A kernel WireGuard client aimed at our responder key; what it sends to
# 192.0.2.2:51820 must decode to its key and a timestamp of about now.
case_kernel_client_decode() {
	local dev=jw${RUNID}k line out pub ts now n
	topo
	wg genkey >"$TMP/client.key"
	wg genkey >"$TMP/responder.key"
	udp_recorder "$G" 192.0.2.2 51820 "$TMP/received"

	check "ip link add type wireguard" ip -n "$C" link add "$dev" type wireguard
	check "wg set" ip netns exec "$C" wg set "$dev" \
		private-key "$TMP/client.key" listen-port 41414 \
		peer "$(wg pubkey <"$TMP/responder.key")" \
		endpoint 192.0.2.2:51820 allowed-ips 198.51.100.1/32
	ip -n "$C" addr add 198.51.100.2/32 dev "$dev"
	ip -n "$C" link set "$dev" up
	ip -n "$C" route add 198.51.100.1/32 dev "$dev"
	ip netns exec "$C" ping -c 1 -W 1 198.51.100.1 >/dev/null 2>&1
	wait_for 20 test -s "$TMP/received" || fail "no initiation captured in 20 s"

	line=$(head -1 "$TMP/received")
	expect_eq "${#line}" 296 "captured datagram length (hex digits)"
	echo "$line" >"$TMP/msg.hex"
	out=$("$CTL" decode --private-key-file "$TMP/responder.key" "$TMP/msg.hex") ||
		fail "jitwgctl decode rejected the kernel's initiation: $out"
	echo "$out" | sed 's/^/  /'
	pub=$(echo "$out" | sed -n 's/^initiator: //p')
	expect_eq "$pub" "$(wg pubkey <"$TMP/client.key")" "decoded initiator key"
	ts=$(echo "$out" | sed -n 's/^timestamp: \([0-9a-f]\{16\}\).*/\1/p')
	[ -n "$ts" ] || fail "no timestamp printed"
	now=$(date +%s)
	n=$((0x$ts - 0x400000000000000a))
	[ $((n - now)) -le 5 ] && [ $((now - n)) -le 30 ] ||
		fail "timestamp $n is not within seconds of the guest's now ($now)"
}

# A kernel WireGuard gateway with our initiator's key as a peer answers our
# initiation with a 92-byte type-2 response; a stranger and a forged claim
# of the known key get silence.
case_kernel_gateway() {
	local dev=jw${RUNID}k out rc gw ms wait
	topo
	wg genkey >"$TMP/gw.key"
	wg genkey >"$TMP/known.key"
	wg genkey >"$TMP/stranger.key"
	gw=$(wg pubkey <"$TMP/gw.key")
	check "ip link add type wireguard" ip -n "$G" link add "$dev" type wireguard
	check "wg set" ip netns exec "$G" wg set "$dev" \
		private-key "$TMP/gw.key" listen-port 51820 \
		peer "$(wg pubkey <"$TMP/known.key")" allowed-ips 198.51.100.9/32
	ip -n "$G" link set "$dev" up

	send() {
		local key=$1 t=$2
		shift 2
		out=$(ip netns exec "$C" "$CTL" initiate --private-key-file "$key" \
			--peer "$gw" --send 192.0.2.2:51820 --timeout-ms "$t" "$@" 2>&1)
		rc=$?
		echo "$out" | sed "s|^|  [$*] |"
	}
	# Slow under TCG: a generous wait for answers; silence counts after
	# five times the time an answer took.
	send "$TMP/known.key" 20000
	expect_eq "$rc" 0 "the known key gets a handshake response"
	echo "$out" | grep -q '^response: type 2, 92 bytes' ||
		fail "not a 92-byte type-2 response: $out"
	ms=$(echo "$out" | sed -n 's/^response: .*after \([0-9]*\) ms$/\1/p')
	wait=$((5 * ${ms:-1000}))
	[ "$wait" -ge 2000 ] || wait=2000
	send "$TMP/stranger.key" "$wait"
	expect_eq "$rc" 1 "a key the gateway does not know gets no response"
	send "$TMP/stranger.key" "$wait" --claim "$(wg pubkey <"$TMP/known.key")"
	expect_eq "$rc" 1 "a forged claim of the known key gets no response"
	send "$TMP/known.key" 20000
	expect_eq "$rc" 0 "the known key still gets a handshake response"
}

# Sourced for one case (below), the script only defines functions.
[ "${BASH_SOURCE[0]}" = "$0" ] || return 0

cases=("$@")
[ ${#cases[@]} -gt 0 ] || cases=(kernel_client_decode kernel_gateway)
. tests/vm/guest-lib.sh
guest_main tests/vm/guest-noise.sh "${cases[@]}"
