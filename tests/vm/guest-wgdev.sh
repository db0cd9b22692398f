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
. tests/wgdev_lib.sh

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

# The shared suite (tests/test_wgdev.c) against a kernel device
# (tests/wgdev_lib.sh); a dummy as the device that is not WireGuard.
kwg_51820() { kwg "$1" "$2" 51820; }
case_netlink_suite() {
	wgdev_suite netlink kwg_51820 dummy
}

# Install and initiate between two kernel devices (tests/wgdev_lib.sh).
case_netlink_initiate() {
	initiate_e2e netlink kwg_51820 5 10
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
