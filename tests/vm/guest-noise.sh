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
	C=$(ns c) G=$(ns g)
	veth_pair c "jw${RUNID}vc" 192.0.2.1/24 g "jw${RUNID}vg" 192.0.2.2/24
	tmp_dir
}

# kdev NS DEV: a kernel WireGuard device.
kdev() {
	check "ip link add type wireguard" \
		ip -n "$1" link add "$2" type wireguard
}

# A kernel WireGuard client aimed at our responder key; what it sends to
# 192.0.2.2:51820 must decode to its key and a timestamp of about now
# (tests/lib.sh). Slow under TCG: 20 s to capture, 30 s behind allowed.
case_kernel_client_decode() {
	topo
	noise_decode_client kdev "$C" "jw${RUNID}k" "$G" 20 30
}

# A kernel WireGuard gateway with our initiator's key as a peer answers our
# initiation with a 92-byte type-2 response; a stranger and a forged claim
# of the known key get silence.
case_kernel_gateway() {
	local out rc
	topo
	noise_gateway_up kdev "$G" "jw${RUNID}k"

	# Slow under TCG: a generous wait for answers (20 s); silence counts
	# after five times the time an answer took, at least 2 s.
	noise_gateway_checks "$C" "$GW_PUB" 192.0.2.2:51820 20000 2000
}

# Sourced for one case (below), the script only defines functions.
[ "${BASH_SOURCE[0]}" = "$0" ] || return 0

cases=("$@")
[ ${#cases[@]} -gt 0 ] || cases=(kernel_client_decode kernel_gateway)
. tests/vm/guest-lib.sh
guest_main tests/vm/guest-noise.sh "${cases[@]}"
