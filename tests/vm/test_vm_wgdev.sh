# SPDX-License-Identifier: MIT
# The kernel WireGuard lane: Debian's stock kernel under qemu TCG
# (tests/vm/run-in-vm.sh). This host has no WireGuard module, so these are
# the only tests of the netlink backend against the real kernel. A VM that
# cannot boot is a failure, never a skip.

# The tool itself: output, exit status and the shared folder come back.
test_vm_boot() {
	local out dir rc
	dir=$(mktemp -d)
	on_exit "rm -rf $dir"
	out=$(VM_QUIET=1 VM_OUT=$dir "$ROOT/tests/vm/run-in-vm.sh" sh -c \
		'echo "kernel $(uname -r) in $(pwd)"; test -e /sys/module/wireguard &&
		 echo ok >"$VM_OUT/flag"; touch /tmp/w && ip netns add t && exit 7')
	rc=$?
	echo "$out"
	[ "$rc" -ne 125 ] || fail "the VM did not boot (run-in-vm.sh status 125)"
	expect_eq "$rc" 7 "CMD's exit status"
	echo "$out" | grep -q "^kernel .* in $ROOT\$" || fail "no output or wrong cwd"
	echo "$out" | grep -q "^kernel $(uname -r) " &&
		fail "ran on the host kernel, not in the VM"
	expect_eq "$(cat "$dir/flag" 2>/dev/null)" ok "file written in VM_OUT"
}

# The wgdev suite over netlink, install-and-initiate between two kernel
# devices, and the standalone cases: one boot (tests/vm/guest-wgdev.sh).
test_vm_wgdev_netlink() {
	vm_cases tests/vm/guest-wgdev.sh netlink_suite netlink_initiate standalone
}
