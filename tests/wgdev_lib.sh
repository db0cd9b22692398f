# SPDX-License-Identifier: MIT
# The wgdev suite and install-and-initiate end to end, shared by the
# wireguard-go lane (tests/test_wgdev.sh) and the kernel lane
# (tests/vm/guest-wgdev.sh).
#
# wgdev_suite BACKEND MAKE_DEV NOT_WG_TYPE...: the shared suite
# (tests/test_wgdev.c) over BACKEND against a device MAKE_DEV NS DEV creates
# in a fresh namespace (a fresh key on port 51820; it sets WG_PUB), with a
# link "ip link add jw<id>d type NOT_WG_TYPE..." as the device that is not
# WireGuard. The suite must pass, its bulk case included.
wgdev_suite() {
	local backend=$1 make_dev=$2 n dev out rc
	shift 2
	netns_add s
	n=$(ns s)
	dev=jw${RUNID}s
	"$make_dev" "$n" "$dev"
	check "$1 link" ip -n "$n" link add "jw${RUNID}d" type "$@"
	out=$(mktemp)
	on_exit "rm -f $out"
	ip netns exec "$n" env WGDEV_NAME="$dev" WGDEV_BACKEND="$backend" \
		WGDEV_PUBLIC="$WG_PUB" WGDEV_PORT=51820 \
		WGDEV_NOT_WG="jw${RUNID}d" "$BUILD/tests/test_wgdev" >"$out" 2>&1
	rc=$?
	cat "$out"
	grep -q '^FAIL:' "$out" && fail "the suite failed over $backend"
	[ "$rc" -eq 0 ] || fail "test_wgdev exited with $rc"
	grep -q '^PASS: bulk: 10000 peers' "$out" || fail "the bulk case did not run"
}

# initiate_e2e BACKEND MAKE_DEV PING_S WAIT_S: MAKE_DEV NS DEV creates a
# WireGuard device with a fresh key on port 51820 and sets WG_PUB; PING_S is
# the ping timeout, WAIT_S how long tcpdump may take to see the first packet.
#
# Install and initiate, end to end:
#
#   [ns c: client]  veth 10.200.0.1 ---- 10.200.0.2 veth  [ns g: gateway]
#   tunnel 10.201.0.1   peer = gateway, NO endpoint      tunnel 10.201.0.2   no peers
#
# The client cannot initiate (it has no endpoint for the gateway), so a
# completed handshake and a ping through the tunnel prove the gateway
# initiated. tcpdump on the client's veth confirms the first WireGuard
# packet is an initiation (type 1) from the gateway.
initiate_e2e() {
	local backend=$1 make_dev=$2 ping_s=$3 wait_s=$4
	local c g cdev gdev cpub gpub cap out first ka
	veth_pair c "jw${RUNID}vc" 10.200.0.1/24 g "jw${RUNID}vg" 10.200.0.2/24
	c=$(ns c) g=$(ns g)
	cdev=jw${RUNID}c gdev=jw${RUNID}g
	"$make_dev" "$c" "$cdev"
	cpub=$WG_PUB
	"$make_dev" "$g" "$gdev"
	gpub=$WG_PUB
	ip -n "$c" addr add 10.201.0.1/24 dev "$cdev"
	ip -n "$g" addr add 10.201.0.2/24 dev "$gdev"
	check "client peer" ip netns exec "$c" wg set "$cdev" peer "$gpub" \
		allowed-ips 10.201.0.2/32

	cap=$(mktemp)
	on_exit "rm -f $cap"
	ip netns exec "$c" tcpdump -n -i "jw${RUNID}vc" -c 1 -w "$cap" \
		udp port 51820 >/dev/null 2>"$cap.log" &
	local tpid=$!
	on_exit "kill $tpid; rm -f $cap.log"
	wait_for 20 grep -q "listening on" "$cap.log" || fail "tcpdump did not start"

	out=$(ip netns exec "$g" "$BUILD/wgdevctl" -b "$backend" "$gdev" initiate "$cpub" \
		endpoint 10.200.0.1:51820 allowed-ips 10.201.0.1/32 \
		keepalive 25 wait 10 restore 0) ||
		fail "install and initiate: $out"
	echo "  $out"
	check "ping through the tunnel" ip netns exec "$g" ping -c 1 -W "$ping_s" 10.201.0.1
	check "ping from the client" ip netns exec "$c" ping -c 1 -W "$ping_s" 10.201.0.2
	wait_for "$wait_s" sh -c "! kill -0 $tpid" || fail "tcpdump saw no packet"
	# First packet: from the gateway, WireGuard type 1 (initiation).
	first=$(tcpdump -n -r "$cap" -x 2>/dev/null | head -5 | tr -d '\n')
	echo "$first" | grep -q '10.200.0.2.51820 > 10.200.0.1.51820' ||
		fail "first WireGuard packet not from the gateway: $first"
	# IPv4 header 20 bytes + UDP 8: type 1 and 3 reserved zero bytes
	# are the 7th and 8th 16-bit groups of the second dump line.
	echo "$first" | grep -Eq 'length 148.*0x0010: +([0-9a-f]{4} ){6}0100 0000' ||
		fail "first packet is not an initiation: $first"
	ka=$(ip netns exec "$g" wg show "$gdev" persistent-keepalive | awk '{print $2}')
	expect_eq "$ka" off "keepalive restored to the configured value"
}
