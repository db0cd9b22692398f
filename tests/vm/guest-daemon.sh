#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Runs inside the VM (tests/vm/run-in-vm.sh): jitwgd end to end against the
# kernel's WireGuard over netlink, the lane tests/test_e2e.sh covers with
# wireguard-go. Prints PASS:/FAIL: lines; exits non-zero if any case
# failed. Usage: guest-daemon.sh [CASE...]
#
#   ns "c" (client)                           ns "g" (gateway)
#   kernel wg jw<id>c 10.77.0.2/32            kernel wg jw<id>g 10.77.0.1/16 :51820
#     peer = gateway                            no peers
#   veth vc 192.168.77.2/24  <------------->  veth vg 192.168.77.1/24 (XDP native)
#                                             control plane 127.0.0.1 (loopback of g)
#                                             jitwgd --backend netlink
#
# The CPU is emulated (qemu TCG): BPF loading and crypto are 10-50x slower
# than on the host, hence the long timeouts.
set -u
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	cd "$(dirname "$0")/../.." || exit 1
	export JITWG_ROOT=$PWD JITWG_RUNID=${JITWG_RUNID:-$$}
fi

# ktopo: as e2e_topo (tests/e2e_lib.sh) with kernel devices, plus one
# client A (A_NS, A_DEV, A_PUB as e2e_client sets them) and the control
# plane.
ktopo() {
	. tests/e2e_lib.sh
	[ -x "$JITWGD" ] || fail "build/jitwgd not built"
	tmp_dir
	G=$(ns g) C=$(ns c) WGG=jw${RUNID}g
	veth_pair c vc 192.168.77.2/24 g vg $E2E_GW_IP/24

	wg genkey >"$TMP/gw.key"
	GW_PUB=$(wg pubkey <"$TMP/gw.key")
	check "ip link add type wireguard (gateway)" \
		ip -n "$G" link add "$WGG" type wireguard
	check "wg set on the gateway" ip netns exec "$G" wg set "$WGG" \
		private-key "$TMP/gw.key" listen-port 51820
	ip -n "$G" addr add $E2E_GW_TUN/16 dev "$WGG"
	ip -n "$G" link set "$WGG" up

	A_NS=$C A_DEV=jw${RUNID}c
	wg genkey >"$TMP/a.key"
	A_PUB=$(wg pubkey <"$TMP/a.key")
	check "ip link add type wireguard (client)" \
		ip -n "$C" link add "$A_DEV" type wireguard
	check "wg set on the client" ip netns exec "$C" wg set "$A_DEV" \
		private-key "$TMP/a.key" listen-port 41001 \
		peer "$GW_PUB" endpoint $E2E_GW_IP:51820 allowed-ips $E2E_GW_TUN/32
	ip -n "$C" addr add 10.77.0.2/32 dev "$A_DEV"
	ip -n "$C" link set "$A_DEV" up
	ip -n "$C" route add $E2E_GW_TUN/32 dev "$A_DEV"

	e2e_cp
	cp_add "$A_PUB" 10.77.0.2/32
}

# kjitwgd [ARGS]: e2e_jitwgd with the netlink backend forced and a start-up
# timeout for an emulated CPU.
kjitwgd() {
	JW_LOG=$TMP/jitwgd.log
	ip netns exec "$G" "$JITWGD" --wg-dev "$WGG" --xdp-dev vg --xdp-mode native \
		--backend netlink --api "$CP_URL" --cache-dir "$TMP/cache" "$@" \
		2>>"$JW_LOG" &
	JW_PID=$!
	on_exit "kill $JW_PID 2>/dev/null; sleep 0.5; kill -9 $JW_PID 2>/dev/null"
	wait_for 90 grep -q "msg=ready" "$JW_LOG" || {
		cat "$JW_LOG" >&2
		fail "jitwgd did not start"
	}
	grep "msg=ready" "$JW_LOG" | sed 's/^/  /'
	grep -q "msg=ready .*backend=netlink .*xdp_mode=native" "$JW_LOG" ||
		fail "not the netlink backend with native XDP: $(grep msg=ready "$JW_LOG")"
}

# kping: ping the gateway's tunnel address from the client. Generous: the
# first one waits for the provisioning and both handshakes.
kping() { ip netns exec "$A_NS" ping -c 1 -W 30 -I "$A_DEV" $E2E_GW_TUN; }

jwlog() { sed 's/^/    /' "$JW_LOG"; }

# A client unknown to the gateway's device pings through it on its first
# try: jitwgd decrypts its initiation, fetches it from the control plane,
# installs it over netlink and makes the gateway initiate back.
case_kernel_provision() {
	local ka
	ktopo
	kjitwgd --idle-timeout 300
	# Initiations from the gateway's port: it initiated, not merely answered.
	gw_capture_start
	gw_has "$A_PUB" && fail "the client is on the gateway before it called"

	check "ping through the tunnel" kping
	gw_has "$A_PUB" || fail "peer not on the gateway: $(ip netns exec "$G" wg show "$WGG")"
	ip netns exec "$G" wg show "$WGG" allowed-ips | grep -q "^$A_PUB	10.77.0.2/32\$" ||
		fail "wrong allowed IPs: $(ip netns exec "$G" wg show "$WGG" allowed-ips)"
	ip netns exec "$G" wg show "$WGG" endpoints | grep -q "^$A_PUB	192.168.77.2:41001\$" ||
		fail "wrong endpoint: $(ip netns exec "$G" wg show "$WGG" endpoints)"
	grep -q "msg=provision peer=$(fp "$A_PUB") outcome=installed source=api .*initiated=true" "$JW_LOG" ||
		fail "no installed line with initiated=true: $(jwlog)"
	wait_for 60 grep -q "msg=handshake peer=$(fp "$A_PUB") outcome=done" "$JW_LOG" ||
		fail "handshake not logged: $(jwlog)"
	# The monitor saw the handshake: the record's keepalive (none) is back.
	ka=$(ip netns exec "$G" wg show "$WGG" persistent-keepalive | awk '{print $2}')
	expect_eq "$ka" off "keepalive restored after the handshake"
	expect_eq "$(cp_total)" 1 "control-plane requests"
	expect_eq "$(cp_requests "$A_PUB")" 1 "control-plane requests for the client"
	grep -q "level=error" "$JW_LOG" && fail "errors logged: $(jwlog)"

	sleep 1
	gw_capture_stop
	[ "$(gw_initiations)" -ge 1 ] || fail "no initiation from the gateway seen on the client's veth"
	grep -qF "$A_PUB" "$JW_LOG" && fail "a full public key in the log"
	return 0
}

# Eviction touches only what jitwgd installed: a peer added by hand stays
# through every sweep while the idle installed one goes, and comes back from
# the cache (no second control-plane request) on its next handshake.
case_kernel_evict_hand_peer_kept() {
	local hand
	ktopo
	hand=$(wg genkey | wg pubkey)
	check "hand-added peer" ip netns exec "$G" wg set "$WGG" peer "$hand" \
		allowed-ips 10.77.9.9/32 endpoint 192.168.77.9:5000
	# A handshake window longer than any slowness here: the eviction
	# below is for idleness.
	kjitwgd --idle-timeout 2 --evict-interval 1 --handshake-window 60
	check "ping through the tunnel" kping
	wait_for 60 eval '! gw_has "$A_PUB"' || fail "idle peer not evicted: $(jwlog)"
	grep -q "peer=$(fp "$A_PUB") outcome=evicted reason=idle" "$JW_LOG" ||
		fail "no eviction line: $(jwlog)"
	kill -HUP "$JW_PID"
	sleep 3
	gw_has "$hand" || fail "hand-added peer removed"
	grep -q "peer=$(fp "$hand")" "$JW_LOG" && fail "hand-added peer in the decisions: $(jwlog)"

	# As a rebooted client: no session, so the next packet initiates.
	client_restart A
	check "ping after the eviction" kping
	grep -q "msg=provision peer=$(fp "$A_PUB") outcome=installed source=cache" "$JW_LOG" ||
		fail "not reinstalled from the cache: $(jwlog)"
	expect_eq "$(cp_total)" 1 "control-plane requests (the return is served by the cache)"
	gw_has "$hand" || fail "hand-added peer removed"
	kill -0 "$JW_PID" || fail "jitwgd died"
}

# --consume against the kernel: every initiation is dropped by XDP and given
# back through the raw socket over loopback, so the ping works only if the
# kernel accepts the re-delivered initiation and answers the client (its
# endpoint is the client's, not loopback's); the gateway answers instead of
# initiating.
case_kernel_consume() {
	ktopo
	kjitwgd --consume --handshake-window 600
	grep -q "msg=ready .*consume=always" "$JW_LOG" ||
		fail "not consuming: $(grep msg=ready "$JW_LOG")"
	gw_capture_start
	check "ping through the tunnel" kping
	ip netns exec "$G" wg show "$WGG" endpoints | grep -q "^$A_PUB	192.168.77.2:41001\$" ||
		fail "wrong endpoint: $(ip netns exec "$G" wg show "$WGG" endpoints)"
	grep -q "msg=provision peer=$(fp "$A_PUB") outcome=installed source=api .*initiated=false" "$JW_LOG" ||
		fail "no installed line with initiated=false: $(jwlog)"
	sleep 1
	gw_capture_stop
	expect_eq "$(gw_initiations)" 0 "initiations from the gateway (it answers instead)"
	kill "$JW_PID"
	wait_for 30 grep -q "msg=stop" "$JW_LOG" || fail "no clean stop: $(jwlog)"
	grep -qE "msg=stop .*redelivered=[1-9][0-9]* redeliver_errors=0" "$JW_LOG" ||
		fail "stop line: $(grep msg=stop "$JW_LOG")"
	grep -q "level=error" "$JW_LOG" && fail "errors logged: $(jwlog)"
	return 0
}

# Cookie replies against the kernel's WireGuard client (--cookie always
# standing in for "under load"): its first initiation gets jitwgd's cookie
# reply from the gateway's port, its retry (REKEY_TIMEOUT, 5 s) carries a
# mac2 jitwgd verifies, and only then is it installed; the XDP program
# counted that retry on its cookie budget. With and without --consume.
case_kernel_cookie() {
	local mode
	ktopo
	for mode in plain consume; do
		if [ $mode = consume ]; then
			# A new client again: off the gateway, no cache, no session.
			ip netns exec "$G" wg set "$WGG" peer "$A_PUB" remove
			rm -rf "$TMP/cache"
			client_restart A
			kjitwgd --cookie always --log-level debug --consume --handshake-window 600
		else
			kjitwgd --cookie always --log-level debug --handshake-window 600
		fi
		check "$mode: ping through the tunnel after a cookie round" kping
		grep -q "msg=cookie action=reply endpoint=192.168.77.2:41001" "$JW_LOG" ||
			fail "$mode: no cookie reply logged: $(jwlog)"
		grep -q "msg=cookie mac2=valid endpoint=192.168.77.2:41001" "$JW_LOG" ||
			fail "$mode: the kernel's retry carried no valid mac2: $(jwlog)"
		grep -q "msg=provision peer=$(fp "$A_PUB") outcome=installed" "$JW_LOG" ||
			fail "$mode: not installed: $(jwlog)"
		grep -q "level=error" "$JW_LOG" && fail "$mode: errors logged: $(jwlog)"
		kill "$JW_PID"
		wait_for 30 grep -q "msg=stop" "$JW_LOG" || fail "$mode: no clean stop: $(jwlog)"
		mv "$JW_LOG" "$TMP/jitwgd-$mode.log"
	done
	return 0
}

# Sourced for one case (below), the script only defines functions.
[ "${BASH_SOURCE[0]}" = "$0" ] || return 0

cases=("$@")
[ ${#cases[@]} -gt 0 ] || cases=(kernel_provision kernel_evict_hand_peer_kept kernel_consume kernel_cookie)
. tests/vm/guest-lib.sh
guest_main tests/vm/guest-daemon.sh "${cases[@]}"
