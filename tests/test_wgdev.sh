# SPDX-License-Identifier: MIT
# wgdev against userspace WireGuard: wireguard-go in network namespaces,
# driven through the UAPI socket. The kernel (netlink) lane is
# tests/vm/test_vm_wgdev.sh, running the same suite in a VM.

. "$ROOT/tests/wgdev_lib.sh"

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

# The shared suite (tests/test_wgdev.c) against a wireguard-go device
# (tests/wgdev_lib.sh); a veth as the device that is not WireGuard.
test_wgdev_uapi_suite() {
	wgdev_suite uapi wg_go veth peer name "jw${RUNID}e"
}

# Install and initiate on wireguard-go; the drawing is in tests/wgdev_lib.sh.
test_wgdev_uapi_initiate() {
	initiate_e2e uapi wg_go 2 5
}

# Misbehaving UAPI servers and missing devices (also run standalone as
# build/tests/test_wgdev): nothing here needs wireguard-go.
