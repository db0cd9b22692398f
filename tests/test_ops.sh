# What an operator runs into around the XDP program and the tools
# (issue 14): sharing the XDP hook, jitwg-xdp's jobs, jitwgctl decode of
# tcpdump output, initiate --send against a jitwg gateway, wgdevctl's
# handshake ages, --version.

. "$ROOT/tests/e2e_lib.sh"

# --mode multi on this host: either libxdp's dispatcher loads (then jitwg
# joins it), or the error says so and names the alternatives, and nothing
# is left attached. Never libxdp's silent fallback to a plain attachment,
# which no other program could join. (Sharing with xdp-filter for real:
# tests/vm/test_vm_ops.sh, on Debian's kernel, where the dispatcher loads.)
test_ops_xdp_multi_here() {
	local out rc nsx
	tmp_dir
	veth_pair c vc 192.168.77.2/24 g vg 192.168.77.1/24
	G=$(ns g)
	nsx="nsenter --net=/run/netns/$G"
	out=$($nsx timeout 5 "$BUILD/jitwg-xdp" --dev vg --mode multi --count 1 2>&1); rc=$?
	echo "  $out"
	if echo "$out" | grep -q "attached to vg"; then
		$nsx xdp-loader status vg | grep -q xdp_dispatcher ||
			fail "attached without the dispatcher"
		return 0
	fi
	expect_eq "$rc" 1 "exit status when the dispatcher cannot load"
	echo "$out" | grep -q "libxdp's dispatcher cannot load on this kernel (.*failed.*): XDP programs cannot share vg here; attach jitwg alone with --xdp-mode native or generic" ||
		fail "message: $out"
	ip -n "$G" link show vg | grep -q "prog/xdp" && fail "a program was left on vg"
	return 0
}
