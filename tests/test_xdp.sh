# XDP capture against real traffic: a WireGuard client knocks on a gateway
# whose uplink runs the XDP program in native mode.
#
#   ns "c" (client)                         ns "g" (gateway)
#   wireguard-go jw<id>c                    UDP listener :51820 (records payloads)
#   veth c 192.0.2.2 / 2001:db8:7::2  <-->  veth g 192.0.2.1 / 2001:db8:7::1
#   listen-port 41414                       XDP jitwg (native) → jitwg-xdp --hex
#
# On a kernel with WireGuard (tests/vm) the client is kernel WireGuard.
# The events printed in userspace must carry the client's address and port,
# and the 148 bytes the listener received.

XDP=$BUILD/jitwg-xdp

# topo: namespaces, veth, a wireguard-go client aimed at ENDPOINT.
topo() {
	local endpoint=$1
	C=$(ns c) G=$(ns g) WGC=jw${RUNID}c
	veth_pair c vc 192.0.2.2/24 g vg 192.0.2.1/24 \
		2001:db8:7::2/64 2001:db8:7::1/64
	# native XDP on veth needs the peer to have XDP or GRO; plain is fine to receive

	# Kernel WireGuard where the kernel has it (the VM lane), else wireguard-go.
	if ip -n "$C" link add "$WGC" type wireguard 2>/dev/null; then
		echo "  client: kernel WireGuard"
	else
		wggo "$C" "$WGC"
		echo "  client: wireguard-go"
	fi
	wg genkey > "$TMP/c.key"
	GW_PUB=$(wg genkey | wg pubkey)
	ip netns exec "$C" wg set "$WGC" private-key "$TMP/c.key" listen-port 41414 \
		peer "$GW_PUB" endpoint "$endpoint" allowed-ips 198.51.100.1/32 ||
		fail "wg set on the client"
	ip -n "$C" addr add 198.51.100.2/32 dev "$WGC"
	ip -n "$C" link set "$WGC" up
	ip -n "$C" route add 198.51.100.1/32 dev "$WGC"
	C_PUB=$(wg pubkey < "$TMP/c.key")
}

# listener: record every UDP payload to :51820 as hex, one per line.
listener() {
	udp_recorder "$G" :: 51820 "$TMP/received"
}

# knock_and_check SRC_PATTERN: ping through the tunnel to trigger
# initiations, then compare events with what the listener received.
knock_and_check() {
	local want_src=$1 line msg n=0
	ip netns exec "$C" ping -c 1 -W 1 198.51.100.1 >/dev/null 2>&1 # no answer: no gateway
	wait_for 10 grep -q msg= "$TMP/events" || fail "no event within 10 s"
	wait_for 5 test -s "$TMP/received" || fail "listener got nothing (XDP must pass)"
	line=$(grep -m1 msg= "$TMP/events")
	echo "  event: ${line:0:120}..."
	case "$line" in
	*"src=$want_src:41414 "*) ;;
	*) fail "event source is not $want_src:41414: $line" ;;
	esac
	msg=${line##*msg=}
	expect_eq "${#msg}" 296 "initiation length in hex"
	grep -qx "$msg" "$TMP/received" || fail "event bytes differ from what the client sent"
	# Decrypting is the Noise work's; here: type 1 and mac1 for GW_PUB present.
	expect_eq "${msg:0:8}" 01000000 "message type and reserved bytes"
}

start_capture() {
	ip netns exec "$G" "$XDP" --dev vg --mode native --hex "$@" \
		>"$TMP/events" 2>"$TMP/xdp.err" &
	XDP_PID=$!
	on_exit "kill $XDP_PID"
	wait_for 5 grep -q attached "$TMP/xdp.err" || fail "jitwg-xdp: $(cat "$TMP/xdp.err")"
	grep -q "(native)" "$TMP/xdp.err" || fail "not native: $(cat "$TMP/xdp.err")"
}

test_xdp_native_real_client_ipv4() {
	tmp_dir
	topo 192.0.2.1:51820
	listener
	start_capture
	ip -n "$G" link show vg | grep -q "xdp" || fail "no XDP program on vg"
	knock_and_check 192.0.2.2
	kill -INT "$XDP_PID"
	wait "$XDP_PID"
	grep -q "^counters .*events=[1-9]" "$TMP/events" || fail "counters: $(tail -1 "$TMP/events")"
	ip -n "$G" link show vg | grep -q "xdp" && fail "XDP still attached after exit"
	return 0
}

test_xdp_native_real_client_ipv6() {
	tmp_dir
	topo "[2001:db8:7::1]:51820"
	listener
	start_capture
	knock_and_check "[2001:db8:7::2]"
}

# The bpftool deployment of the README: load and pin with bpftool, attach
# with bpftool, set the ports with jitwg-xdp --pin-dir, which exits at once:
# it never reads the ring buffer (jitwgd's job there: a second reader would
# take its events). The initiation is counted; a later run without --port
# keeps the ports (it changes only what it is given).
test_xdp_bpftool_pinned() {
	local out
	tmp_dir
	topo 192.0.2.1:51820
	listener
	local pin=/sys/fs/bpf/jitwg-test-$RUNID
	bpftool_deploy "$pin"
	out=$(timeout 10 "$XDP" --pin-dir "$pin/maps" --port 51820 --src-rate 50 2>&1) ||
		fail "jitwg-xdp --pin-dir did not set and exit: $out"
	echo "  $out"
	echo "$out" | grep -q "^settings ports=51820 src_rate=50 src_burst=200 " ||
		fail "settings: $out"
	ip netns exec "$C" ping -c 1 -W 1 198.51.100.1 >/dev/null 2>&1
	wait_for 10 test -s "$TMP/received" || fail "no initiation reached the listener"
	out=$(timeout 10 "$XDP" --pin-dir "$pin/maps" 2>&1) || fail "second run: $out"
	echo "$out" | grep -q "^settings ports=51820 src_rate=50 " || fail "settings not kept: $out"
	echo "$out" | grep -q "^counters .*initiations=[1-9][0-9]* events=[1-9]" ||
		fail "initiation not captured: $out"
	out=$(timeout 10 "$XDP" --pin-dir "$pin/maps" --hex 2>&1)
	expect_eq "$?" 2 "exit status for --pin-dir with a watch option"
	echo "$out" | grep -q "does not watch" || fail "message: $out"
	# The loader must not detach what bpftool attached.
	ip -n "$G" link show vg | grep -q xdp || fail "pinned program was detached"
}

# One-line errors with the remedy.
test_xdp_errors() {
	tmp_dir
	local out
	out=$("$XDP" --dev jw-nonexistent0 2>&1) && fail "accepted a missing device"
	echo "  $out"
	[[ $out == *"no such device"* ]] || fail "missing device: $out"

	out=$("$XDP" --pin-dir "$TMP" 2>&1) && fail "accepted a non-bpffs dir"
	echo "  $out"
	[[ $out == *"not on a BPF filesystem"*"mount -t bpf"* ]] || fail "bpffs: $out"

	local pin=/sys/fs/bpf/jitwg-empty-$RUNID
	mkdir -p "$pin"
	on_exit "rmdir $pin"
	out=$("$XDP" --pin-dir "$pin" 2>&1) && fail "accepted a dir without maps"
	echo "  $out"
	[[ $out == *"ring buffer map missing"* ]] || fail "ring buffer: $out"

	out=$(setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all \
		"$XDP" --dev lo 2>&1) && fail "loaded without privileges"
	echo "  $out"
	[[ $out == *"permission denied"*"CAP_BPF"* ]] || fail "not root: $out"

	# A real verifier rejection: strict alignment makes the kernel refuse
	# the word copies from the packet, as on an architecture without
	# efficient unaligned access. The message must carry the verifier's
	# reason, the end of its log (it once carried only the start).
	local n
	netns_add v
	n=$(ns v)
	ip -n "$n" link add va type veth peer name vb
	ip -n "$n" link set va up
	out=$(ip netns exec "$n" env JITWG_TEST_STRICT_ALIGNMENT=1 timeout 20 \
		"$XDP" --dev va 2>&1) && fail "loaded with strict alignment"
	echo "  $out"
	[[ $out == *"the kernel rejected the XDP program"*"misaligned packet access"* ]] ||
		fail "verifier rejection: $out"
	[[ $out == *"permission denied"* ]] && fail "reported as a permission problem: $out"
	return 0
}

# Bad option values: a usage error (status 2) that names the option and,
# for --mode, every mode capture_mode_parse() accepts.
test_xdp_bad_options() {
	local out o
	out=$("$XDP" --dev lo --mode warp 2>&1)
	expect_eq $? 2 "exit status for a bad --mode"
	expect_eq "$out" "jitwg-xdp: --mode: 'warp' is not auto, native, generic, multi or pinned" \
		"bad --mode"

	for o in --src-rate --src-burst --global-rate --global-burst --verified-rate \
		--verified-burst --port --count; do
		out=$("$XDP" --dev lo "$o" x 2>&1)
		expect_eq $? 2 "exit status for a bad $o"
		[[ $out == "jitwg-xdp: $o: 'x' is not a number 0.."* ]] || fail "bad $o: $out"
	done
}

# Non-matching traffic passes untouched with the program attached: a TCP
# connection and UDP to another port still work across the veth.
test_xdp_passes_other_traffic() {
	tmp_dir
	topo 192.0.2.1:51820
	start_capture
	ip netns exec "$G" python3 -c '
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("192.0.2.1", 8080)); s.listen(1)
c, _ = s.accept(); c.sendall(c.recv(100)[::-1]); c.close()
' &
	on_exit "kill $!"
	sleep 0.3
	local got
	got=$(ip netns exec "$C" python3 -c '
import socket
s = socket.create_connection(("192.0.2.1", 8080), timeout=5)
s.sendall(b"jitwg"); print(s.recv(100).decode())
') || fail "tcp across the XDP device"
	expect_eq "$got" gwtij "tcp echo"
	ip netns exec "$C" ping -c 2 -W 2 192.0.2.1 >/dev/null || fail "ping across XDP"
	kill -INT "$XDP_PID"
	wait "$XDP_PID"
	grep -q "^counters packets=[1-9].* initiations=0 " "$TMP/events" ||
		fail "counters: $(tail -1 "$TMP/events")"
}

# jitwg-pktgen sends the kinds it claims: each kind from its own source port
# through live frames on vc, received by jitwg-xdp (limits off) on vg and a
# UDP recorder behind it (which the kernel only feeds datagrams whose UDP
# checksum holds).
#
#   ns "c"                                   ns "g"
#   jitwg-pktgen (live frames, XDP_TX)       XDP jitwg (native) → jitwg-xdp --hex
#   veth vc 192.0.2.2 / 2001:db8:7::2  -->   veth vg 192.0.2.1 / 2001:db8:7::1
#                                            UDP recorder :51820
PKTGEN=$BUILD/jitwg-pktgen
LOADGEN=$BUILD/jitwg-loadgen
CTL=$BUILD/jitwgctl

# pktgen_topo: the drawing above; sets C, G, GW_PUB, G_MAC, XDP_PID.
pktgen_topo() {
	[ -x "$PKTGEN" ] && [ -x "$LOADGEN" ] && [ -x "$CTL" ] ||
		skip "jitwg-pktgen, jitwg-loadgen or jitwgctl not built"
	C=$(ns c) G=$(ns g)
	veth_pair c vc 192.0.2.2/24 g vg 192.0.2.1/24 \
		2001:db8:7::2/64 2001:db8:7::1/64
	wg genkey >"$TMP/gw.key"
	GW_PUB=$(wg pubkey <"$TMP/gw.key")
	G_MAC=$(ip -n "$G" -br link show vg | awk '{print $3}')
	udp_recorder "$G" :: 51820 "$TMP/received"
	start_capture --src-rate 0 --global-rate 0
}

# pktgen_send ARGS...: jitwg-pktgen in "c" towards vg; output in $TMP/pg.out.
pktgen_send() {
	ip netns exec "$C" "$PKTGEN" --dev vc --dst-mac "$G_MAC" \
		--responder "$GW_PUB" "$@" >"$TMP/pg.out" 2>&1 ||
		fail "jitwg-pktgen $*: $(cat "$TMP/pg.out")"
}

# decode_port PORT N: `jitwgctl decode` of the first N events from source
# port PORT, one "status initiator" line each, in $TMP/decoded.
decode_port() {
	local port=$1 n=$2 msg out
	: >"$TMP/decoded"
	grep ":$port dst=" "$TMP/events" | head -n "$n" | sed 's/.*msg=//' |
		while read -r msg; do
			echo "$msg" >"$TMP/m.hex"
			out=$("$CTL" decode --private-key-file "$TMP/gw.key" "$TMP/m.hex" 2>/dev/null)
			echo "$(echo "$out" | sed -n 's/^status: //p')" \
				"$(echo "$out" | sed -n 's/^\(claimed_\)\{0,1\}initiator: \([^ ]*\).*/\2/p')"
		done >"$TMP/decoded"
}

test_xdp_pktgen_kinds() {
	tmp_dir
	pktgen_topo
	local kinds=(valid replay forged random random-mac1 mac2 data udp unique) i n
	local keys
	keys=$("$LOADGEN" keys --seed flood --count 4 | awk '{print $1}')
	for i in "${!kinds[@]}"; do
		pktgen_send --dst 192.0.2.1 --kind "${kinds[i]}:2000" --count 20 \
			--sources 20 --seed flood --identities 4 --messages 4 \
			--sport $((41000 + i))
		grep -q "^kind=${kinds[i]} sent=20 " "$TMP/pg.out" ||
			fail "pktgen ${kinds[i]}: $(cat "$TMP/pg.out")"
	done
	# 8 kinds × 20 datagrams to :51820 (all but udp), checksums intact
	wait_for 5 eval "[ \$(wc -l <$TMP/received) -ge 160 ]" ||
		fail "recorder got $(wc -l <"$TMP/received") of 160 datagrams"
	kill -INT "$XDP_PID"
	wait "$XDP_PID"
	tail -1 "$TMP/events"
	grep -q "^counters .* wg_udp=160 initiations=140 events=140 " "$TMP/events" ||
		fail "counters: $(tail -1 "$TMP/events")"
	for i in 0 1 2 3 4 5 8; do
		n=$(grep -c ":$((41000 + i)) dst=" "$TMP/events")
		expect_eq "$n" 20 "events of ${kinds[i]}"
		n=$(grep ":$((41000 + i)) dst=" "$TMP/events" | sed 's/.* src=\([^:]*\):.*/\1/' |
			sort -u | wc -l)
		expect_eq "$n" 20 "distinct sources of ${kinds[i]}"
	done
	# valid: authenticated initiations of the synthetic clients
	decode_port 41000 8
	[ "$(awk '$1 == "ok"' "$TMP/decoded" | wc -l)" = 8 ] || fail "valid: $(cat "$TMP/decoded")"
	for k in $(awk '{print $2}' "$TMP/decoded"); do
		grep -qx "$k" <<<"$keys" || fail "valid: $k is not a synthetic client"
	done
	# replay: one message, byte for byte
	n=$(grep ":41001 dst=" "$TMP/events" | sed 's/.*msg=//' | sort -u | wc -l)
	expect_eq "$n" 1 "distinct replay messages"
	decode_port 41001 1
	grep -q "^ok " "$TMP/decoded" || fail "replay: $(cat "$TMP/decoded")"
	# forged: claims client 0, does not authenticate
	decode_port 41002 4
	expect_eq "$(sort -u "$TMP/decoded")" "bad_timestamp $(head -1 <<<"$keys")" "forged"
	decode_port 41003 4
	expect_eq "$(sort -u "$TMP/decoded")" "bad_mac1 " "random"
	decode_port 41004 4
	expect_eq "$(sort -u "$TMP/decoded")" "bad_static " "random-mac1"
	# mac2: authenticated, with a non-zero mac2 (the last 16 bytes)
	decode_port 41005 4
	[ "$(awk '$1 == "ok"' "$TMP/decoded" | wc -l)" = 4 ] || fail "mac2: $(cat "$TMP/decoded")"
	grep ":41005 dst=" "$TMP/events" | sed 's/.*msg=//' | cut -c265-296 |
		grep -qx '0\{32\}' && fail "mac2: a zero mac2"
	# unique: no two alike, nor two heads (bytes 4-11, what tells copies)
	n=$(grep ":41008 dst=" "$TMP/events" | sed 's/.*msg=//' | sort -u | wc -l)
	expect_eq "$n" 20 "distinct unique messages"
	n=$(grep ":41008 dst=" "$TMP/events" | sed 's/.*msg=//' | cut -c9-24 | sort -u | wc -l)
	expect_eq "$n" 20 "distinct unique heads"
	decode_port 41008 2
	expect_eq "$(sort -u "$TMP/decoded")" "bad_mac1 " "unique"
	return 0
}

# IPv6: each source its own /64, UDP checksums (mandatory in IPv6) intact.
test_xdp_pktgen_ipv6_sources() {
	tmp_dir
	pktgen_topo
	local n
	pktgen_send --dst 2001:db8:7::1 --kind replay:2000 --kind udp:2000 \
		--count 10 --sources 5
	grep -q "^total sent=20 " "$TMP/pg.out" || fail "pktgen: $(cat "$TMP/pg.out")"
	wait_for 5 eval "[ \$(wc -l <$TMP/received) -ge 10 ]" ||
		fail "recorder got $(wc -l <"$TMP/received") of 10 datagrams"
	kill -INT "$XDP_PID"
	wait "$XDP_PID"
	n=$(grep -o ' src=\[[^]]*\]' "$TMP/events" | sort -u | tr '\n' ' ')
	echo "  sources: $n"
	expect_eq "$(grep -Ec ' src=\[2001:db8:f100:([1-4]:)?:1\]:40000 ' "$TMP/events")" 10 \
		"events from 2001:db8:f100:0..4::1"
	expect_eq "$(grep -o ' src=\[[^]]*\]' "$TMP/events" | sort -u | wc -l)" 5 \
		"distinct /64 sources"
}

# jitwg-pktgen: usage errors (status 2) that name the option.
test_xdp_pktgen_bad_options() {
	[ -x "$PKTGEN" ] || skip "jitwg-pktgen not built"
	local out
	out=$("$PKTGEN" --dev lo --dst 192.0.2.1 --kind warp 2>&1)
	expect_eq $? 2 "exit status for a bad --kind"
	[[ $out == "pktgen: bad --kind warp" ]] || fail "bad --kind: $out"
	out=$("$PKTGEN" --dev lo --dst 192.0.2.1 --kind udp --sources x 2>&1)
	expect_eq $? 2 "exit status for a bad --sources"
	[[ $out == "pktgen: --sources: 'x' is not a number"* ]] || fail "bad --sources: $out"
	out=$("$PKTGEN" --dev lo --dst 192.0.2.1 --src 2001:db8::1 --kind udp 2>&1)
	expect_eq $? 2 "exit status for mixed families"
	out=$("$PKTGEN" --dev lo --dst 192.0.2.1 --kind replay 2>&1)
	[[ $out == *"needs --responder"* ]] || fail "replay without --responder: $out"
}
