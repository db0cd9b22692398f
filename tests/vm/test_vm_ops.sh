# SPDX-License-Identifier: MIT
# Operating jitwg on Debian's stock kernel, in the qemu TCG lane
# (tests/vm/guest-ops.sh): sharing the XDP hook with xdp-filter through
# libxdp's dispatcher (this host's kernel refuses the dispatcher), and
# jitwgd as nobody with the unit's capabilities over netlink. A VM that
# cannot boot is a failure, never a skip.
test_vm_ops() {
	vm_cases tests/vm/guest-ops.sh multi_xdp_filter multi_jitwgd unit_caps_netlink
}
