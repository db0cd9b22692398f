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

# readme_block HEADING: the first ```sh block after the README line HEADING.
readme_block() {
	awk -v h="$1" '$0 == h {f = 1} f && /^```sh$/ {b = 1; next} b && /^```$/ {exit} b' \
		"$ROOT/README.md"
}

# The README's bpftool recipe, run as written by a new user, for a device in
# another namespace (every command under nsenter, as its note says): the
# device is vg in ns "g", the pins under a path of this run, build/ the
# tree's. A client's initiation is provisioned by jitwgd (the recipe's last
# command) and counted; jitwg-xdp --pin-dir returned at once, so jitwgd got
# it; the removal lines leave nothing behind.
#
#   ns "c": wireguard-go client  <- veth ->  ns "g": wireguard-go gateway,
#                                             XDP by bpftool on vg, jitwgd
test_ops_bpftool_recipe() {
	local pin=/sys/fs/bpf/jw-recipe-$RUNID nsx line
	[ -x "$JITWGD" ] || skip "build/jitwgd not built"
	tmp_dir
	e2e_topo
	e2e_cp
	e2e_client A 10.77.0.2
	cp_add "$A_PUB" 10.77.0.2/32
	nsx="nsenter --net=/run/netns/$G"
	on_exit "$nsx bpftool net detach xdp dev vg; rm -rf $pin"
	readme_block "### Deploying with bpftool" >"$TMP/recipe"
	[ -s "$TMP/recipe" ] || fail "no recipe in the README"
	grep -q "^mkdir -p /sys/fs/bpf/jitwg" "$TMP/recipe" || fail "recipe: no mkdir -p"
	JW_LOG=$TMP/jitwgd.log
	while IFS= read -r line; do
		# Joined continuation lines, comments and the mount dropped.
		while [[ $line == *\\ ]]; do
			IFS= read -r more
			line="${line%\\} $more"
		done
		line=${line%%#*}
		[[ $line =~ ^[[:space:]]*$ || $line == mount* ]] && continue
		line=${line//\/sys\/fs\/bpf\/jitwg/$pin}
		line=${line//dev eth0/dev vg}
		line=${line//build\//$BUILD/}
		case "$line" in
		*jitwgd*)
			# The placeholders: this topology's device and control plane.
			line=${line//--wg-dev wg0/--wg-dev $WGG}
			line=${line//--api …/--api $CP_URL --cache-dir $TMP/cache}
			echo "  \$ $line &"
			$nsx $line 2>>"$JW_LOG" &
			JW_PID=$!
			on_exit "kill $JW_PID 2>/dev/null"
			wait_for 10 grep -q msg=ready "$JW_LOG" || fail "jitwgd: $(cat "$JW_LOG")"
			check "ping through the tunnel" cping A 1 5
			grep -q "peer=$(fp "$A_PUB") outcome=installed" "$JW_LOG" ||
				fail "not provisioned: $(cat "$JW_LOG")"
			kill "$JW_PID"
			wait "$JW_PID" 2>/dev/null
			;;
		*)
			echo "  \$ $line"
			timeout 20 $nsx $line >"$TMP/out" 2>&1 || fail "recipe line failed: $line: $(cat "$TMP/out")"
			sed 's/^/    /' "$TMP/out"
			;;
		esac
	done <"$TMP/recipe"
	[ -e "$pin" ] && fail "pins left after the removal lines"
	ip -n "$G" link show vg | grep -q prog/xdp && fail "program left attached"
	return 0
}

# `jitwgctl initiate --send` to a jitwg gateway: the gateway installs the
# key and initiates the handshake itself instead of answering; that
# initiation, authenticated with the gateway's key, is success (exit 0).
#
#   ns "c": jitwgctl initiate --send  <- veth ->  ns "g": wireguard-go, jitwgd,
#                                                  control plane
test_ops_initiate_send_jitwg_gateway() {
	local out rc
	[ -x "$JITWGD" ] || skip "build/jitwgd not built"
	tmp_dir
	e2e_topo
	e2e_cp
	wg genkey >"$TMP/me.key"
	cp_add "$(wg pubkey <"$TMP/me.key")" 10.77.0.9/32
	e2e_jitwgd
	out=$(ip netns exec "$C" "$BUILD/jitwgctl" initiate --private-key-file "$TMP/me.key" \
		--peer "$GW_PUB" --send $E2E_GW_IP:51820 --timeout-ms 5000 2>&1); rc=$?
	echo "$out" | sed 's/^/  /'
	expect_eq "$rc" 0 "exit status"
	echo "$out" | grep -q "^response: the gateway initiated the handshake itself" ||
		fail "not recognised: $out"
	gw_has "$(wg pubkey <"$TMP/me.key")" || fail "not installed"
	# A stranger's initiation to the gateway still fails: nothing answers.
	wg genkey >"$TMP/stranger.key"
	out=$(ip netns exec "$C" "$BUILD/jitwgctl" initiate --private-key-file "$TMP/stranger.key" \
		--peer "$GW_PUB" --send $E2E_GW_IP:51820 --timeout-ms 1500 2>&1); rc=$?
	expect_eq "$rc" 1 "exit status for an unknown key"
}

# `jitwgctl decode` on what tcpdump prints, as a user would paste it: a real
# capture (IPv4 and IPv6, Ethernet on the veth and Linux cooked on "any")
# of jitwgctl's initiation, printed with -x (from the IP header), -xx (from
# the link header), -X and -XX (with the ASCII column), decodes to the
# sender's key.
#
#   ns "c": jitwgctl initiate --send  <- veth ->  ns "g": tcpdump -i vg / any
test_ops_decode_tcpdump() {
	local flag f out pub
	tmp_dir
	veth_pair c vc 192.168.77.2/24 g vg 192.168.77.1/24 fd77::2/64 fd77::1/64
	G=$(ns g) C=$(ns c)
	wg genkey >"$TMP/gw.key"
	wg genkey >"$TMP/me.key"
	pub=$(wg pubkey <"$TMP/me.key")
	for f in vg any; do
		ip netns exec "$G" tcpdump -i $f -n -U --immediate-mode -w "$TMP/$f.pcap" \
			udp port 51820 2>"$TMP/tcpdump-$f.log" &
		on_exit "kill $!"
		wait_for 60 grep -q "listening on" "$TMP/tcpdump-$f.log" || fail "tcpdump did not start"
	done
	for to in 192.168.77.1:51820 "[fd77::1]:51820"; do
		ip netns exec "$C" "$BUILD/jitwgctl" initiate --private-key-file "$TMP/me.key" \
			--peer "$(wg pubkey <"$TMP/gw.key")" --send "$to" --timeout-ms 200 >/dev/null
	done
	wait_for 10 eval '[ "$(tcpdump -r "$TMP/any.pcap" 2>/dev/null | wc -l)" -ge 2 ]' ||
		fail "capture incomplete"
	sleep 0.5
	for f in vg any; do
		for flag in -x -xx -X -XX; do
			for filter in ip ip6; do
				tcpdump -r "$TMP/$f.pcap" -n $flag $filter >"$TMP/dump" 2>/dev/null
				out=$("$BUILD/jitwgctl" decode --private-key-file "$TMP/gw.key" "$TMP/dump" 2>&1) ||
					fail "tcpdump $flag ($f, $filter) not decoded: $out
$(cat "$TMP/dump")"
				echo "$out" | grep -qx "initiator: $pub" || fail "wrong key ($f $flag $filter): $out"
				echo "  $f $flag $filter: $(echo "$out" | grep '^captured:')"
			done
		done
	done
	# A dump without an initiation is refused with the accepted forms named.
	ip netns exec "$C" ping -c 1 -W 1 192.168.77.1 >/dev/null
	echo "0x0000:  4500 0054 0000 4000 4001 b74d c0a8 4d02" >"$TMP/dump"
	out=$("$BUILD/jitwgctl" decode --private-key-file "$TMP/gw.key" "$TMP/dump" 2>&1)
	expect_eq "$?" 2 "exit status without an initiation"
	echo "$out" | grep -q "tcpdump -x, -xx, -X or -XX" || fail "message: $out"
}

# `wgdevctl DEV show` prints handshake ages as wg(8) does: a peer with a
# handshake "N seconds ago" (or "Now"), agreeing with `wg show` to within a
# second; one without, "never". --version on the three tools.
#
#   ns "c": wireguard-go client  <- veth ->  ns "g": wireguard-go gateway
#           (the gateway's peer)                     (the client's peer, and
#                                                     a peer that never knocks)
test_ops_wgdevctl_handshake_age() {
	local out wgsays mine t
	command -v wireguard-go >/dev/null || skip "wireguard-go not installed"
	tmp_dir
	e2e_topo
	e2e_client A 10.77.0.2
	ip netns exec "$G" wg set "$WGG" peer "$A_PUB" allowed-ips 10.77.0.2/32
	ip netns exec "$G" wg set "$WGG" peer "$(wg genkey | wg pubkey)" allowed-ips 10.77.0.3/32
	check "ping through the tunnel" cping A 1 5
	sleep 2
	out=$(ip netns exec "$G" "$BUILD/wgdevctl" "$WGG" show)
	echo "$out" | sed 's/^/  /'
	mine=$(echo "$out" | grep "^peer $A_PUB " | sed -n 's/.* latest-handshake "\([^"]*\)".*/\1/p')
	[[ $mine =~ ^[0-9]+\ seconds?\ ago$ ]] || fail "age of a handshake: '$mine'"
	wgsays=$(ip netns exec "$G" wg show "$WGG" | sed -n 's/^ *latest handshake: //p' | head -1)
	echo "  wg show: $wgsays; wgdevctl: $mine"
	t=${mine%% *}
	[[ $wgsays =~ ^($t|$((t - 1))|$((t + 1)))\ seconds?\ ago$ ]] || fail "wg says '$wgsays', wgdevctl '$mine'"
	expect_eq "$(echo "$out" | grep -c ' latest-handshake never ')" 1 "peers without a handshake"
	for t in jitwg-xdp jitwgctl wgdevctl; do
		out=$("$BUILD/$t" --version) || fail "$t --version"
		[[ $out =~ ^$t\ [0-9a-z.-]+$ ]] || fail "$t --version: $out"
	done
}

# jitwg-xdp's watch line: the wall-clock receive time (UTC, within seconds
# of now) and the device's name, not a monotonic count and an ifindex.
#
#   ns "c": jitwgctl initiate --send  <- veth ->  ns "g": jitwg-xdp --dev vg
test_ops_xdp_watch_line() {
	local line when now
	tmp_dir
	veth_pair c vc 192.168.77.2/24 g vg 192.168.77.1/24
	G=$(ns g) C=$(ns c)
	ip netns exec "$G" "$BUILD/jitwg-xdp" --dev vg --count 1 >"$TMP/events" 2>"$TMP/xdp.err" &
	on_exit "kill $!"
	wait_for 5 grep -q attached "$TMP/xdp.err" || fail "jitwg-xdp: $(cat "$TMP/xdp.err")"
	wg genkey >"$TMP/me.key"
	ip netns exec "$C" "$BUILD/jitwgctl" initiate --private-key-file "$TMP/me.key" \
		--peer "$(wg genkey | wg pubkey)" --send 192.168.77.1:51820 --timeout-ms 200 >/dev/null
	wait_for 5 grep -q " src=" "$TMP/events" || fail "no event"
	line=$(grep " src=" "$TMP/events")
	echo "  $line"
	[[ $line =~ ^([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2})\.[0-9]{6}Z\ dev=vg\ src=192\.168\.77\.2: ]] ||
		fail "line format: $line"
	when=$(date -u -d "${BASH_REMATCH[1]}" +%s)
	now=$(date -u +%s)
	[ $((now - when)) -ge 0 ] && [ $((now - when)) -le 10 ] ||
		fail "receive time ${BASH_REMATCH[1]} is not within seconds of now"
}

# A second jitwgd on the same device is refused while the first runs (its
# program is attached through a bpf_link, which no one else can replace);
# the first keeps provisioning. (Before, the second replaced the first's
# program as "stale" and the first ran on with nothing attached.)
#
#   ns "c": wireguard-go client  <- veth ->  ns "g": wireguard-go, jitwgd x2
test_ops_second_jitwgd_refused() {
	local out rc
	[ -x "$JITWGD" ] || skip "build/jitwgd not built"
	tmp_dir
	e2e_topo
	e2e_cp
	e2e_client A 10.77.0.2
	cp_add "$A_PUB" 10.77.0.2/32
	e2e_jitwgd
	out=$(ip netns exec "$G" timeout 20 "$JITWGD" --wg-dev "$WGG" --xdp-dev vg \
		--xdp-mode native --api "$CP_URL" --cache-dir "$TMP/cache2" 2>&1); rc=$?
	echo "$out" | sed 's/^/  second: /'
	expect_eq "$rc" 1 "exit status of the second jitwgd"
	echo "$out" | grep -q "stage=capture .*already has an XDP program" || fail "message: $out"
	echo "$out" | grep -q replaced_stale_program && fail "the second took the program over"
	jw_alive || fail "the first jitwgd died"
	check "the first still provisions" cping A 1 5
	grep -q "peer=$(fp "$A_PUB") outcome=installed" "$JW_LOG" || fail "not installed by the first"
}
