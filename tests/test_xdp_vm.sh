# The XDP capture on Debian's stock kernel (the one production gateways run),
# in the qemu VM of tests/vm: the BPF_PROG_TEST_RUN suite, then a kernel
# WireGuard client knocking over native XDP on veth. Fails, never skips,
# when the VM cannot boot.

test_xdp_debian_kernel_vm() {
	local out rc
	out=$(VM_QUIET=1 "$ROOT/tests/vm/run-in-vm.sh" bash -c \
		'build/tests/test_xdp && tests/run.sh test_xdp_native_real_client_ipv4' 2>&1)
	rc=$?
	echo "$out" | grep -E '^(FAIL|SKIP)|client:|passed,|run-in-vm' | sed 's/^/  vm: /'
	[ "$rc" -eq 0 ] || fail "VM run exited with status $rc"
	echo "$out" | grep -q '^FAIL' && fail "failures inside the VM"
	local passed
	passed=$(echo "$out" | grep -c '^PASS')
	[ "$passed" -ge 40 ] || fail "only $passed checks passed in the VM"
	echo "$out" | grep -q 'client: kernel WireGuard' || fail "client was not kernel WireGuard"
}
