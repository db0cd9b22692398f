# SPDX-License-Identifier: MIT
# wgdev against userspace WireGuard: wireguard-go in network namespaces,
# driven through the UAPI socket. The kernel (netlink) lane is
# tests/vm/test_vm_wgdev.sh, running the same suite in a VM.

# wg_go NS DEV: start wireguard-go in namespace NS with a fresh key and
# port 51820, bring it up; sets WG_PUB (base64 public key).
wg_go() {
	local ns=$1 dev=$2 key
	key=$(mktemp)
	on_exit "rm -f $key"
	wg genkey >"$key"
	WG_PUB=$(wg pubkey <"$key")
	WG_PROCESS_FOREGROUND=1 ip netns exec "$ns" wireguard-go "$dev" \
		>/dev/null 2>&1 &
	local pid=$!
	on_exit "kill $pid; rm -f /var/run/wireguard/$dev.sock"
	wait_for 10 test -S "/var/run/wireguard/$dev.sock" ||
		fail "wireguard-go did not create its UAPI socket"
	check "set key" ip netns exec "$ns" wg set "$dev" private-key "$key" \
		listen-port 51820
	check "link up" ip -n "$ns" link set "$dev" up
}

# The shared suite (tests/test_wgdev.c) against a wireguard-go device.
test_wgdev_uapi_suite() {
	local n dev out
	netns_add u
	n=$(ns u)
	dev=jw${RUNID}u
	wg_go "$n" "$dev"
	check "veth link" ip -n "$n" link add "jw${RUNID}d" type veth \
		peer name "jw${RUNID}e"
	out=$(mktemp)
	on_exit "rm -f $out"
	ip netns exec "$n" env WGDEV_NAME="$dev" WGDEV_BACKEND=uapi \
		WGDEV_PUBLIC="$WG_PUB" WGDEV_PORT=51820 \
		WGDEV_NOT_WG="jw${RUNID}d" "$BUILD/tests/test_wgdev" >"$out" 2>&1
	local rc=$?
	cat "$out"
	grep -q '^FAIL:' "$out" && fail "the suite failed on wireguard-go"
	[ "$rc" -eq 0 ] || fail "test_wgdev exited with $rc"
	grep -q '^PASS: bulk: 10000 peers' "$out" || fail "the bulk case did not run"
}

# Install and initiate, end to end:
#
#   [ns c: client, wireguard-go]  veth 10.200.0.1 ---- 10.200.0.2 veth  [ns g: gateway, wireguard-go]
#   tunnel 10.201.0.1   peer = gateway, NO endpoint      tunnel 10.201.0.2   no peers
#
# The client cannot initiate (it has no endpoint for the gateway), so a
# completed handshake and a ping through the tunnel prove the gateway
# initiated. tcpdump on the client's veth confirms the first WireGuard
# packet is an initiation (type 1) from the gateway.
test_wgdev_uapi_initiate() {
	local c g cdev gdev cpub gpub cap
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
	wg_go "$c" "$cdev"
	cpub=$WG_PUB
	wg_go "$g" "$gdev"
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

	out=$(ip netns exec "$g" "$BUILD/wgdevctl" -b uapi "$gdev" initiate "$cpub" \
		endpoint 10.200.0.1:51820 allowed-ips 10.201.0.1/32 \
		keepalive 25 wait 10 restore 0) ||
		fail "install and initiate: $out"
	echo "  $out"
	check "ping through the tunnel" ip netns exec "$g" ping -c 1 -W 2 10.201.0.1
	check "ping from the client" ip netns exec "$c" ping -c 1 -W 2 10.201.0.2
	wait_for 5 sh -c "! kill -0 $tpid" || fail "tcpdump saw no packet"
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

# Misbehaving UAPI servers and missing devices (also run standalone as
# build/tests/test_wgdev): nothing here needs wireguard-go.
