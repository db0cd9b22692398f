#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Runs inside the VM (tests/vm/run-in-vm.sh), on Debian's stock kernel:
# operating cases that this host's kernel cannot run. Prints PASS:/FAIL:
# lines; exits non-zero if any case failed. Usage: guest-ops.sh [CASE...]
#
#   multi_xdp_filter, multi_jitwgd: xdp-filter and jitwg (jitwg-xdp, then
#     jitwgd) share one device through libxdp's dispatcher (this host
#     refuses the dispatcher's extension programs).
#   unit_caps_netlink: jitwgd as nobody with the unit's capabilities minus
#     CAP_DAC_OVERRIDE against kernel WireGuard (netlink).
set -u
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	cd "$(dirname "$0")/../.." || exit 1
	export JITWG_ROOT=$PWD JITWG_RUNID=${JITWG_RUNID:-$$}
fi

# ktopo, kping, jwlog.
. tests/vm/guest-daemon.sh

#   ns "c"                                    ns "g"
#   jitwg-loadgen, UDP senders                UDP recorders :9998 :9999
#   veth vc 192.168.77.2  <--------------->   veth vg 192.168.77.1
#                                             libxdp dispatcher on vg:
#                                               prio 10  xdp-filter
#                                               prio 100 jitwg (jitwg-xdp)
case_multi_xdp_filter() {
	local nsx status n
	. tests/e2e_lib.sh
	tmp_dir
	G=$(ns g) C=$(ns c)
	veth_pair c vc 192.168.77.2/24 g vg 192.168.77.1/24
	# nsenter, not "ip netns exec": libxdp pins under /sys/fs/bpf.
	nsx="nsenter --net=/run/netns/$G"
	check "xdp-filter load" $nsx xdp-filter load vg -m native
	on_exit "$nsx xdp-filter unload vg --all"
	$nsx "$BUILD/jitwg-xdp" --dev vg --mode multi >"$TMP/xdp.out" 2>"$TMP/xdp.err" &
	local xpid=$!
	on_exit "kill $xpid"
	wait_for 60 grep -q "attached to vg" "$TMP/xdp.err" ||
		fail "jitwg-xdp --mode multi: $(cat "$TMP/xdp.err")"
	status=$($nsx xdp-loader status vg)
	echo "$status" | sed 's/^/    /'
	echo "$status" | grep -q xdp_dispatcher || fail "no dispatcher on vg"
	# The dispatcher runs its programs by priority, lowest first (xdp-filter
	# takes 10): jitwg (100) after the filter.
	echo "$status" | grep -qE "^ => +100 +jitwg_xdp" || fail "jitwg not at priority 100"
	expect_eq "$(echo "$status" | grep -oE "xdpfilt|jitwg_xdp" | paste -sd' ')" \
		"xdpfilt jitwg_xdp" "programs in run order"

	# Both run: jitwg captures an initiation...
	ip netns exec "$C" "$LOADGEN" send --to 192.168.77.1:51820 \
		--responder "$(wg genkey | wg pubkey)" --seed multi --count 1 >/dev/null ||
		fail "loadgen"
	wait_for 30 grep -q "src=192.168.77.2:" "$TMP/xdp.out" ||
		fail "jitwg captured nothing: $(cat "$TMP/xdp.out" "$TMP/xdp.err")"
	# ...and the filter drops what it denies, passes the rest.
	udp_recorder "$G" 192.168.77.1 9998 "$TMP/r9998"
	udp_recorder "$G" 192.168.77.1 9999 "$TMP/r9999"
	check "xdp-filter port 9999" $nsx xdp-filter port 9999 -p udp
	for n in 1 2 3; do
		ip netns exec "$C" bash -c 'echo a >/dev/udp/192.168.77.1/9998; echo b >/dev/udp/192.168.77.1/9999'
	done
	wait_for 30 test -s "$TMP/r9998" || fail "the filter dropped an allowed port"
	sleep 1
	[ -s "$TMP/r9999" ] && fail "the filter let a denied port through"

	# Order: the filter runs first, so what it drops never reaches jitwg.
	check "xdp-filter port 51820" $nsx xdp-filter port 51820 -p udp
	n=$(grep -c "src=" "$TMP/xdp.out")
	ip netns exec "$C" "$LOADGEN" send --to 192.168.77.1:51820 \
		--responder "$(wg genkey | wg pubkey)" --seed multi2 --count 3 >/dev/null
	sleep 2
	expect_eq "$(grep -c "src=" "$TMP/xdp.out")" "$n" "initiations jitwg saw behind the filter"

	# jitwg leaves; the filter stays.
	kill -INT "$xpid"
	wait "$xpid"
	status=$($nsx xdp-loader status vg)
	echo "$status" | grep -q jitwg_xdp && fail "jitwg still attached: $status"
	echo "$status" | grep -q xdpfilt || fail "xdp-filter went with jitwg: $status"
	return 0
}

# jitwgd itself with --xdp-mode multi behind xdp-filter: it provisions a
# kernel WireGuard client (ping), both programs in the dispatcher; its stop
# leaves the filter.
case_multi_jitwgd() {
	local nsx status
	ktopo
	nsx="nsenter --net=/run/netns/$G"
	check "xdp-filter load" $nsx xdp-filter load vg -m native
	on_exit "$nsx xdp-filter unload vg --all"
	JW_LOG=$TMP/jitwgd.log
	# nsenter: libxdp needs bpffs, which "ip netns exec" hides.
	$nsx "$JITWGD" --wg-dev "$WGG" --xdp-dev vg --xdp-mode multi --backend netlink \
		--api "$CP_URL" --cache-dir "$TMP/cache" 2>>"$JW_LOG" &
	JW_PID=$!
	on_exit "kill $JW_PID 2>/dev/null; sleep 0.5; kill -9 $JW_PID 2>/dev/null"
	wait_for 90 grep -q "msg=ready" "$JW_LOG" || fail "jitwgd did not start: $(jwlog)"
	status=$($nsx xdp-loader status vg)
	echo "$status" | sed 's/^/    /'
	expect_eq "$(echo "$status" | grep -oE "xdp_dispatcher|xdpfilt|jitwg_xdp" | paste -sd' ')" \
		"xdp_dispatcher xdpfilt jitwg_xdp" "programs on vg"
	check "ping through the tunnel" kping
	grep -q "msg=provision peer=$(fp "$A_PUB") outcome=installed" "$JW_LOG" ||
		fail "not installed: $(jwlog)"
	kill "$JW_PID"
	wait_for 30 grep -q "msg=stop" "$JW_LOG" || fail "no clean stop: $(jwlog)"
	status=$($nsx xdp-loader status vg)
	echo "$status" | grep -q jitwg_xdp && fail "jitwg left in the dispatcher: $status"
	echo "$status" | grep -q xdpfilt || fail "the filter went with jitwgd: $status"
	grep -q "level=error" "$JW_LOG" && fail "errors: $(jwlog)"
	return 0
}

# The unit's capability list minus CAP_DAC_OVERRIDE (kernel WireGuard needs
# no socket) is enough for jitwgd as nobody over netlink.
case_unit_caps_netlink() {
	local caps
	ktopo
	caps=$(sed -n 's/^CapabilityBoundingSet=//p' dist/jitwgd@.service.in | tr ' ' '\n' |
		grep -v CAP_DAC_OVERRIDE | sed -n 's/^CAP_\(.*\)/+\L\1/p' | paste -sd,)
	echo "  capabilities: $caps"
	chmod 711 "$TMP"
	mkdir -m 700 "$TMP/cache" && chown nobody:nogroup "$TMP/cache"
	JW_LOG=$TMP/jitwgd.log
	ip netns exec "$G" setpriv --reuid=nobody --regid=nogroup --clear-groups \
		--no-new-privs --bounding-set=-all,"$caps" --inh-caps=-all,"$caps" \
		--ambient-caps=-all,"$caps" \
		"$JITWGD" --wg-dev "$WGG" --xdp-dev vg --xdp-mode native \
		--backend netlink --api "$CP_URL" --cache-dir "$TMP/cache" --consume \
		2>>"$JW_LOG" &
	JW_PID=$!
	on_exit "kill $JW_PID 2>/dev/null; sleep 0.5; kill -9 $JW_PID 2>/dev/null"
	wait_for 90 grep -q "msg=ready" "$JW_LOG" || fail "jitwgd did not start: $(jwlog)"
	expect_eq "$(awk '/^Uid:/ {print $3}' /proc/$JW_PID/status)" 65534 "jitwgd's uid"
	check "ping through the tunnel" kping
	grep -q "msg=provision peer=$(fp "$A_PUB") outcome=installed" "$JW_LOG" ||
		fail "not installed: $(jwlog)"
	grep -q "level=error" "$JW_LOG" && fail "errors: $(jwlog)"
	return 0
}

[ "${BASH_SOURCE[0]}" = "$0" ] || return 0

cases=("$@")
[ ${#cases[@]} -gt 0 ] || cases=(multi_xdp_filter multi_jitwgd unit_caps_netlink)
. tests/vm/guest-lib.sh
guest_main tests/vm/guest-ops.sh "${cases[@]}"
