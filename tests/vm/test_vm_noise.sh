# SPDX-License-Identifier: MIT
# The Noise decoder and initiator against the kernel's WireGuard, in the VM
# lane (tests/vm/run-in-vm.sh, one boot; cases in tests/vm/guest-noise.sh).
# wireguard-go is covered on the host by tests/test_noise.sh.
test_vm_noise_kernel_interop() {
	local out rc c
	[ -x "$BUILD/jitwgctl" ] || fail "$BUILD/jitwgctl not built (make)"
	out=$(mktemp)
	on_exit "rm -f $out"
	VM_QUIET=1 "$ROOT/tests/vm/run-in-vm.sh" tests/vm/guest-noise.sh >"$out" 2>&1
	rc=$?
	cat "$out"
	[ "$rc" -ne 125 ] || fail "the VM did not boot or did not report (status 125)"
	grep -q '^FAIL:' "$out" && fail "cases failed in the VM"
	[ "$rc" -eq 0 ] || fail "guest-noise.sh exited with $rc"
	for c in kernel_client_decode kernel_gateway; do
		grep -q "^PASS: vm $c\$" "$out" || fail "case $c did not pass"
	done
}
