# SPDX-License-Identifier: MIT
# jitwgd end to end against the kernel's WireGuard (netlink backend), in the
# qemu TCG lane (tests/vm/run-in-vm.sh): this host has no WireGuard module,
# and tests/test_e2e.sh covers only wireguard-go. A VM that cannot boot is
# a failure, never a skip.

# Provision on the first packet, ping through, initiate back; eviction of
# an idle installed peer while a hand-added one stays; --consume (the kernel
# answers a re-delivered initiation); cookie replies to the kernel's client:
# one boot (tests/vm/guest-daemon.sh).
test_vm_daemon_kernel() {
	vm_cases tests/vm/guest-daemon.sh kernel_provision kernel_evict_hand_peer_kept kernel_consume \
		kernel_cookie
}
