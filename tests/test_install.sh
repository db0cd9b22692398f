# make install and the systemd unit (dist/jitwgd@.service.in).
#
# PID 1 here is not systemd, so the unit is never started: it is checked
# with `systemd-analyze verify`, and its capability list is proven by
# running jitwgd as an unprivileged user with exactly those capabilities
# (setpriv), against wireguard-go in the e2e topology (tests/e2e_lib.sh):
#
#   ns "c"                                    ns "g"
#   wireguard-go client 10.77.0.2             wireguard-go jw<id>g, control plane
#   veth vc 192.168.77.2  <--------------->   veth vg 192.168.77.1 (XDP native)
#                                             jitwgd as nobody, unit's caps only

. "$ROOT/tests/e2e_lib.sh"

# install_prefix DIR: `make install` with every path under DIR (real paths,
# so that systemd-analyze can check the unit's commands exist).
install_prefix() {
	make -s -C "$ROOT" install PREFIX="$1/usr" SYSCONFDIR="$1/etc" >"$TMP/install.log" 2>&1 ||
		fail "make install: $(cat "$TMP/install.log")"
}

# unit_caps FILE KEY: the capabilities on KEY= in the unit, comma-separated
# in setpriv's form (+bpf,+perfmon,…).
unit_caps() {
	sed -n "s/^$2=//p" "$1" | tr ' ' '\n' | sed -n 's/^CAP_\(.*\)/+\L\1/p' | paste -sd,
}

# DESTDIR stages an install: everything lands under it, with the paths of
# PREFIX inside the files.
test_install_destdir() {
	local d f
	tmp_dir
	d=$TMP/stage
	make -s -C "$ROOT" install DESTDIR="$d" PREFIX=/opt/jw >"$TMP/install.log" 2>&1 ||
		fail "make install: $(cat "$TMP/install.log")"
	for f in sbin/jitwgd sbin/jitwg-xdp sbin/wgdevctl bin/jitwgctl \
		lib/jitwg/jitwg.bpf.o lib/systemd/system/jitwgd@.service \
		share/doc/jitwg/README.md; do
		[ -f "$d/opt/jw/$f" ] || fail "not installed: /opt/jw/$f ($(cd "$d" && find . -type f))"
	done
	[ -f "$d/etc/jitwg/example.conf" ] || fail "example config not installed"
	[ -x "$d/opt/jw/sbin/jitwgd" ] || fail "jitwgd not executable"
	grep -q '^ExecStart=/opt/jw/sbin/jitwgd --config /etc/jitwg/%i.conf --wg-dev %i ' \
		"$d/opt/jw/lib/systemd/system/jitwgd@.service" ||
		fail "unit does not run /opt/jw/sbin/jitwgd: $(grep ExecStart "$d/opt/jw/lib/systemd/system/jitwgd@.service")"
	# The installed object is the one bpftool users load: a real BPF ELF.
	bpftool prog loadall "$d/opt/jw/lib/jitwg/jitwg.bpf.o" /sys/fs/bpf/jw-inst-$RUNID \
		pinmaps /sys/fs/bpf/jw-inst-$RUNID-maps 2>"$TMP/bpftool.log" || {
		rm -rf /sys/fs/bpf/jw-inst-$RUNID /sys/fs/bpf/jw-inst-$RUNID-maps
		fail "bpftool cannot load the installed object: $(tail -3 "$TMP/bpftool.log")"
	}
	rm -rf /sys/fs/bpf/jw-inst-$RUNID /sys/fs/bpf/jw-inst-$RUNID-maps
	# Dashboards, when the tree has them.
	for f in "$ROOT"/dashboards/*.json; do
		[ -f "$f" ] || continue
		[ -f "$d/opt/jw/share/jitwg/dashboards/$(basename "$f")" ] ||
			fail "dashboard $(basename "$f") not installed"
	done
	make -s -C "$ROOT" uninstall DESTDIR="$d" PREFIX=/opt/jw >/dev/null 2>&1 ||
		fail "make uninstall"
	[ -z "$(find "$d" -type f)" ] || fail "left after uninstall: $(find "$d" -type f)"
}

# systemd-analyze verify passes on the installed unit, for an instance,
# without a single warning (unknown keys and bad values are only warnings).
test_install_unit_verify() {
	local out rc unitdir
	command -v systemd-analyze >/dev/null || skip "systemd-analyze not installed (Debian package systemd)"
	tmp_dir
	install_prefix "$TMP/p"
	unitdir=$TMP/p/usr/lib/systemd/system
	# From a directory without unit files: verify also loads those of the
	# working directory.
	out=$(cd "$unitdir" && SYSTEMD_UNIT_PATH=$unitdir: systemd-analyze verify --man=no \
		jitwgd@wg0.service 2>&1); rc=$?
	echo "$out" | sed 's/^/  verify: /'
	expect_eq "$rc" 0 "systemd-analyze verify status"
	expect_eq "$out" "" "systemd-analyze verify output"
	# The check is real: a misspelt key is reported.
	sed -i 's/^NoNewPrivileges=/NoNewPrivilege=/' "$unitdir/jitwgd@.service"
	out=$(cd "$unitdir" && SYSTEMD_UNIT_PATH=$unitdir: systemd-analyze verify --man=no \
		jitwgd@wg0.service 2>&1)
	echo "$out" | grep -q "Unknown key" || fail "a bad unit passed verify: $out"
	# The bounding set and the ambient set are the same list.
	install_prefix "$TMP/p"
	# systemd's own score of the sandbox, for the record (offline).
	(cd "$unitdir" && SYSTEMD_UNIT_PATH=$unitdir: systemd-analyze security --offline=true \
		"$unitdir/jitwgd@.service" 2>/dev/null | grep "Overall exposure" | sed 's/^/  /')
	expect_eq "$(unit_caps "$unitdir/jitwgd@.service" AmbientCapabilities)" \
		"$(unit_caps "$unitdir/jitwgd@.service" CapabilityBoundingSet)" "ambient vs bounding set"
	grep -q '^CapabilityBoundingSet=.*CAP_SYS_ADMIN' "$unitdir/jitwgd@.service" &&
		fail "the unit still grants CAP_SYS_ADMIN"
	return 0
}

# run_as_unit CAPS ARGS…: the installed jitwgd in the gateway namespace as
# nobody with exactly CAPS (bounding, inheritable, ambient; no new privileges);
# JW_PID, JW_LOG as e2e_jitwgd.
run_as_unit() {
	local caps=$1
	shift
	JW_LOG=${JW_LOG:-$TMP/jitwgd.log}
	ip netns exec "$G" setpriv --reuid=nobody --regid=nogroup --clear-groups \
		--no-new-privs --bounding-set=-all,"$caps" --inh-caps=-all,"$caps" \
		--ambient-caps=-all,"$caps" \
		"$TMP/p/usr/sbin/jitwgd" --wg-dev "$WGG" --xdp-dev vg --xdp-mode native \
		--api "$CP_URL" --cache-dir "$TMP/cache" "$@" 2>>"$JW_LOG" &
	JW_PID=$!
	on_exit "kill $JW_PID 2>/dev/null; sleep 0.2; kill -9 $JW_PID 2>/dev/null"
}

# jitwgd with the unit's capabilities and nothing else, as nobody, against
# wireguard-go: it starts, provisions a client (ping), gives initiations back
# with --consume, and after a kill -9 starts again on the same device (no
# stale program that only CAP_SYS_ADMIN could find). Without
# CAP_DAC_OVERRIDE it cannot reach wireguard-go's root-owned 0600 socket.
test_install_unit_caps_wireguard_go() {
	local caps want eff
	[ -x "$JITWGD" ] || skip "build/jitwgd not built"
	command -v wireguard-go >/dev/null || skip "wireguard-go not installed"
	command -v setpriv >/dev/null || skip "setpriv not installed (util-linux)"
	tmp_dir
	e2e_topo
	e2e_cp
	chmod 711 "$TMP"
	install_prefix "$TMP/p"
	caps=$(unit_caps "$TMP/p/usr/lib/systemd/system/jitwgd@.service" CapabilityBoundingSet)
	echo "  unit capabilities: $caps"
	mkdir -m 700 "$TMP/cache" && chown nobody:nogroup "$TMP/cache"
	e2e_client A 10.77.0.2
	cp_add "$A_PUB" 10.77.0.2/32
	e2e_client B 10.77.0.3
	cp_add "$B_PUB" 10.77.0.3/32

	run_as_unit "$caps" --consume
	wait_for 10 grep -q msg=ready "$JW_LOG" || fail "jitwgd did not start: $(cat "$JW_LOG")"
	# Really unprivileged, with exactly the unit's set.
	expect_eq "$(awk '/^Uid:/ {print $3}' /proc/$JW_PID/status)" 65534 "jitwgd's uid"
	want=$(for c in ${caps//,/ }; do echo "${c#+}"; done | sort | paste -sd,)
	eff=$(capsh --decode="$(awk '/^CapEff:/ {print $2}' /proc/$JW_PID/status)" |
		sed 's/.*=//' | tr ',' '\n' | sed 's/^cap_//' | sort | paste -sd,)
	expect_eq "$eff" "$want" "jitwgd's effective capabilities"
	check "ping through the tunnel" cping A 1 5
	grep -q "peer=$(fp "$A_PUB") outcome=installed .*initiated=false" "$JW_LOG" ||
		fail "not installed and answered by re-delivery: $(cat "$JW_LOG")"

	# A crash, then a restart with the same capabilities.
	kill -9 "$JW_PID"
	wait "$JW_PID" 2>/dev/null
	JW_LOG=$TMP/jitwgd2.log
	run_as_unit "$caps"
	wait_for 10 grep -q msg=ready "$JW_LOG" || fail "no restart after kill -9 without CAP_SYS_ADMIN: $(cat "$JW_LOG")"
	check "ping after the restart" cping B 1 5
	kill "$JW_PID"
	wait "$JW_PID" 2>/dev/null
	grep -q "level=error" "$TMP/jitwgd.log" "$JW_LOG" && fail "errors: $(grep level=error "$TMP/jitwgd.log" "$JW_LOG")"

	# CAP_DAC_OVERRIDE is what opens wireguard-go's socket.
	JW_LOG=$TMP/jitwgd3.log
	run_as_unit "$(echo "$caps" | tr ',' '\n' | grep -v dac_override | paste -sd,)"
	wait "$JW_PID"
	expect_eq "$?" 1 "exit status without CAP_DAC_OVERRIDE"
	grep -q "level=error msg=start" "$JW_LOG" || fail "no start error: $(cat "$JW_LOG")"
	echo "  without CAP_DAC_OVERRIDE: $(grep -o 'stage=.*' "$JW_LOG" | head -1)"
}
