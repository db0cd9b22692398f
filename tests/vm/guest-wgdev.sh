#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Runs inside the VM (tests/vm/run-in-vm.sh): the wgdev suite against the
# kernel's WireGuard over netlink, and install-and-initiate end to end
# between two kernel WireGuard devices. Prints PASS:/FAIL: lines; exits
# non-zero if any case failed. Usage: guest-wgdev.sh [CASE...]
set -u
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	cd "$(dirname "$0")/../.." || exit 1
	export JITWG_ROOT=$PWD JITWG_RUNID=${JITWG_RUNID:-$$}
fi

# kwg NS DEV PORT: a kernel WireGuard device in NS with a fresh key;
# sets WG_PUB.
kwg() {
	local ns=$1 dev=$2 port=$3 key
	key=$(mktemp)
	wg genkey >"$key"
	WG_PUB=$(wg pubkey <"$key")
	check "ip link add type wireguard" ip -n "$ns" link add "$dev" type wireguard
	check "wg set" ip netns exec "$ns" wg set "$dev" private-key "$key" \
		listen-port "$port"
	rm -f "$key"
	check "link up" ip -n "$ns" link set "$dev" up
}

# The shared suite (tests/test_wgdev.c) against a kernel device.
case_netlink_suite() {
	local n dev out rc
	netns_add k
	n=$(ns k)
	dev=jw${RUNID}k
	kwg "$n" "$dev" 51820
	check "dummy link" ip -n "$n" link add "jw${RUNID}d" type dummy
	out=$(mktemp)
	ip netns exec "$n" env WGDEV_NAME="$dev" WGDEV_BACKEND=netlink \
		WGDEV_PUBLIC="$WG_PUB" WGDEV_PORT=51820 \
		WGDEV_NOT_WG="jw${RUNID}d" "$BUILD/tests/test_wgdev" >"$out" 2>&1
	rc=$?
	cat "$out"
	grep -q '^FAIL:' "$out" && fail "the suite failed on kernel WireGuard"
	[ "$rc" -eq 0 ] || fail "test_wgdev exited with $rc"
	grep -q '^PASS: bulk: 10000 peers' "$out" || fail "the bulk case did not run"
}

# Install and initiate between two kernel devices (same drawing as
# tests/test_wgdev.sh test_wgdev_uapi_initiate): the client has the
# gateway as a peer without endpoint, so only the gateway can initiate.
case_netlink_initiate() {
	local c g cdev gdev cpub gpub cap out first tpid ka
	netns_add c
	netns_add g
	c=$(ns c) g=$(ns g)
	cdev=jw${RUNID}c gdev=jw${RUNID}g
	check "veth" ip link add "jw${RUNID}vc" netns "$c" type veth \
		peer name "jw${RUNID}vg" netns "$g"
	ip -n "$c" addr add 10.200.0.1/24 dev "jw${RUNID}vc"
	ip -n "$g" addr add 10.200.0.2/24 dev "jw${RUNID}vg"
	ip -n "$c" link set "jw${RUNID}vc" up
	ip -n "$g" link set "jw${RUNID}vg" up
	kwg "$c" "$cdev" 51820
	cpub=$WG_PUB
	kwg "$g" "$gdev" 51820
	gpub=$WG_PUB
	ip -n "$c" addr add 10.201.0.1/24 dev "$cdev"
	ip -n "$g" addr add 10.201.0.2/24 dev "$gdev"
	check "client peer" ip netns exec "$c" wg set "$cdev" peer "$gpub" \
		allowed-ips 10.201.0.2/32

	cap=$(mktemp)
	ip netns exec "$c" tcpdump -n -i "jw${RUNID}vc" -c 1 -w "$cap" \
		udp port 51820 >/dev/null 2>"$cap.log" &
	tpid=$!
	on_exit "kill $tpid; rm -f $cap.log"
	wait_for 20 grep -q "listening on" "$cap.log" || fail "tcpdump did not start"

	out=$(ip netns exec "$g" "$BUILD/wgdevctl" -b netlink "$gdev" initiate \
		"$cpub" endpoint 10.200.0.1:51820 allowed-ips 10.201.0.1/32 \
		keepalive 25 wait 10 restore 0) || fail "install and initiate: $out"
	echo "  $out"
	check "ping through the tunnel" ip netns exec "$g" ping -c 1 -W 5 10.201.0.1
	check "ping from the client" ip netns exec "$c" ping -c 1 -W 5 10.201.0.2
	wait_for 10 sh -c "! kill -0 $tpid" || fail "tcpdump saw no packet"
	first=$(tcpdump -n -r "$cap" -x 2>/dev/null | head -5 | tr -d '\n')
	echo "$first" | grep -q '10.200.0.2.51820 > 10.200.0.1.51820' ||
		fail "first WireGuard packet not from the gateway: $first"
	echo "$first" | grep -Eq 'length 148.*0x0010: +([0-9a-f]{4} ){6}0100 0000' ||
		fail "first packet is not an initiation: $first"
	ka=$(ip netns exec "$g" wg show "$gdev" persistent-keepalive | awk '{print $2}')
	expect_eq "$ka" off "keepalive restored to the configured value"
}

# The standalone cases (fake UAPI server, missing devices) on this kernel.
case_standalone() {
	"$BUILD/tests/test_wgdev" || fail "test_wgdev without a device failed"
}

# Sourced for one case (below), the script only defines functions.
[ "${BASH_SOURCE[0]}" = "$0" ] || return 0

cases=("$@")
[ ${#cases[@]} -gt 0 ] || cases=(netlink_suite netlink_initiate standalone)
. tests/vm/guest-lib.sh
guest_main tests/vm/guest-wgdev.sh "${cases[@]}"
