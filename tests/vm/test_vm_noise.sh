# SPDX-License-Identifier: MIT
# The Noise decoder and initiator against the kernel's WireGuard, in the VM
# lane (tests/vm/run-in-vm.sh, one boot; cases in tests/vm/guest-noise.sh).
# wireguard-go is covered on the host by tests/test_noise.sh.
test_vm_noise_kernel_interop() {
	[ -x "$BUILD/jitwgctl" ] || fail "$BUILD/jitwgctl not built (make)"
	vm_cases tests/vm/guest-noise.sh kernel_client_decode kernel_gateway
}
