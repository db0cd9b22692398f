# The Noise decoder and initiator against a real WireGuard (wireguard-go), in
# both directions, and the jitwgctl command line.
#
#   ns "a"                                   ns "b"
#   veth va 192.0.2.1/24 <-----------------> veth vb 192.0.2.2/24
#
# test_noise_interop_decode: wireguard-go client in "a", aimed at our responder
#   key at 192.0.2.2:51820; a UDP listener in "b" records what arrives;
#   `jitwgctl decode` must yield the client's public key and a timestamp
#   within seconds of now.
# test_noise_interop_gateway: wireguard-go gateway in "a" on :51820 with our
#   initiator's key as a peer; `jitwgctl initiate --send` from "b" must get a
#   92-byte type-2 response. A key the gateway does not know, a forged claim of
#   the known key, and defective messages must get silence.

CTL=$BUILD/jitwgctl

setup_common() {
	[ -x "$CTL" ] || fail "$CTL not built (make)"
	command -v wireguard-go >/dev/null || skip "wireguard-go not installed"
	command -v wg >/dev/null || skip "wg (wireguard-tools) not installed"
	[ -c /dev/net/tun ] || skip "no /dev/net/tun for wireguard-go"
	TMP=$(mktemp -d)
	on_exit "rm -rf $TMP"
	umask 077
}

topo() {
	A=$(ns a) B=$(ns b)
	netns_add a
	netns_add b
	ip link add va netns "$A" type veth peer name vb netns "$B" || fail "veth"
	ip -n "$A" addr add 192.0.2.1/24 dev va
	ip -n "$B" addr add 192.0.2.2/24 dev vb
	ip -n "$A" link set va up
	ip -n "$B" link set vb up
}

# start_wg NS IFNAME: wireguard-go in the foreground (so it dies with us).
start_wg() {
	local n=$1 ifname=$2
	ip netns exec "$n" wireguard-go -f "$ifname" >"$TMP/$ifname.log" 2>&1 &
	on_exit "kill $!; rm -f /var/run/wireguard/$ifname.sock"
	wait_for 5 test -S "/var/run/wireguard/$ifname.sock" ||
		fail "wireguard-go did not start: $(cat "$TMP/$ifname.log")"
}

test_noise_interop_decode() {
	local line n out pub ts full now last
	setup_common
	topo
	WGC=jw${RUNID}na
	wg genkey >"$TMP/client.key"
	wg genkey >"$TMP/responder.key"

	# Listener in "b": each datagram to :51820 as one hex line.
	udp_recorder "$B" 192.0.2.2 51820 "$TMP/received"

	start_wg "$A" "$WGC"
	check "wg set on the client" ip netns exec "$A" wg set "$WGC" \
		private-key "$TMP/client.key" listen-port 41414 \
		peer "$(wg pubkey <"$TMP/responder.key")" \
		endpoint 192.0.2.2:51820 allowed-ips 198.51.100.1/32
	ip -n "$A" addr add 198.51.100.2/32 dev "$WGC"
	ip -n "$A" link set "$WGC" up
	ip -n "$A" route add 198.51.100.1/32 dev "$WGC"
	# Traffic for the peer starts a handshake; nobody answers, so the client
	# retries every 5 s: one message is enough.
	ip netns exec "$A" ping -c 1 -W 1 198.51.100.1 >/dev/null 2>&1
	# (it retries by itself after 5 s if its socket was not bound yet)
	wait_for 15 test -s "$TMP/received" || fail "no initiation captured in 15 s"

	line=$(head -1 "$TMP/received")
	expect_eq "${#line}" 296 "captured datagram length (hex digits)"
	echo "$line" >"$TMP/msg.hex"
	out=$("$CTL" decode --private-key-file "$TMP/responder.key" "$TMP/msg.hex") ||
		fail "jitwgctl decode rejected wireguard-go's initiation: $out"
	echo "$out" | sed 's/^/  /'
	pub=$(echo "$out" | sed -n 's/^initiator: //p')
	expect_eq "$pub" "$(wg pubkey <"$TMP/client.key")" "decoded initiator key"

	# TAI64N seconds: 2^62 + 10 + Unix time.
	full=$(echo "$out" | sed -n 's/^timestamp: \([0-9a-f]\{24\}\) .*/\1/p')
	[ -n "$full" ] || fail "no timestamp printed"
	ts=${full:0:16}
	now=$(date +%s)
	n=$((0x$ts - 0x400000000000000a))
	[ $((n - now)) -le 5 ] && [ $((now - n)) -le 15 ] ||
		fail "timestamp $n is not within seconds of now ($now)"

	# The same bytes raw on standard input, and for another responder key.
	echo "$line" | xxd -r -p >"$TMP/msg.raw" 2>/dev/null ||
		python3 -c 'import sys; sys.stdout.buffer.write(bytes.fromhex(sys.argv[1]))' \
			"$line" >"$TMP/msg.raw"
	out=$("$CTL" decode --private-key-file "$TMP/responder.key" <"$TMP/msg.raw") ||
		fail "raw input on stdin rejected: $out"
	expect_eq "$(echo "$out" | sed -n 's/^initiator: //p')" "$pub" \
		"initiator from raw stdin"
	out=$("$CTL" decode --private-key-file "$TMP/client.key" "$TMP/msg.raw" 2>&1)
	expect_eq "$?" 1 "exit status for another responder's key"
	echo "$out" | grep -q '^status: bad_mac1' || fail "wrong reason: $out"

	# Replays: an equal and a newer last timestamp both reject it.
	for last in "$full" "${ts}ffffffff"; do
		out=$("$CTL" decode --private-key-file "$TMP/responder.key" \
			--last-timestamp "$last" "$TMP/msg.raw" 2>&1)
		expect_eq "$?" 1 "exit status for a replay (last $last)"
		echo "$out" | grep -q '^status: replay' || fail "wrong reason: $out"
	done
}

test_noise_interop_gateway() {
	local out rc ms WAIT
	setup_common
	topo
	WGG=jw${RUNID}ng
	wg genkey >"$TMP/gw.key"
	wg genkey >"$TMP/known.key"
	wg genkey >"$TMP/stranger.key"
	GW_PUB=$(wg pubkey <"$TMP/gw.key")

	start_wg "$A" "$WGG"
	check "wg set on the gateway" ip netns exec "$A" wg set "$WGG" \
		private-key "$TMP/gw.key" listen-port 51820 \
		peer "$(wg pubkey <"$TMP/known.key")" allowed-ips 198.51.100.9/32
	ip -n "$A" link set "$WGG" up
	wait_for 5 eval "ip netns exec $A ss -lun | grep -q ':51820 '" ||
		fail "the gateway does not listen on :51820"

	# send KEYFILE [ARGS...]: one initiation from "b", waiting $WAIT ms
	# for the answer; sets out and rc.
	send() {
		local key=$1
		shift
		out=$(ip netns exec "$B" "$CTL" initiate --private-key-file "$key" \
			--peer "$GW_PUB" --send 192.0.2.1:51820 --timeout-ms "$WAIT" \
			"$@" 2>&1)
		rc=$?
		echo "$out" | sed "s|^|  [$*] |"
	}

	# The gateway answers the key it knows (also proves it is up, so the
	# silence below means rejection)...
	WAIT=10000
	send "$TMP/known.key"
	expect_eq "$rc" 0 "the known key gets a handshake response"
	echo "$out" | grep -q '^response: type 2, 92 bytes' ||
		fail "not a 92-byte type-2 response: $out"
	# ...and silence counts after five times the time an answer took.
	ms=$(echo "$out" | sed -n 's/^response: .*after \([0-9]*\) ms$/\1/p')
	WAIT=$((5 * ${ms:-1000}))
	[ "$WAIT" -ge 1500 ] || WAIT=1500

	# ...and drops each of these without a word.
	send "$TMP/stranger.key"
	expect_eq "$rc" 1 "a key the gateway does not know gets no response"
	send "$TMP/stranger.key" --claim "$(wg pubkey <"$TMP/known.key")"
	expect_eq "$rc" 1 "a forged claim of the known key gets no response"
	for d in mac1 static timestamp low-order; do
		send "$TMP/known.key" --defect "$d"
		expect_eq "$rc" 1 "a message with a bad $d gets no response"
	done

	# Still answering: the silence was rejection, not a dead gateway.
	WAIT=10000
	send "$TMP/known.key"
	expect_eq "$rc" 0 "the known key still gets a handshake response"
	echo "$out" | grep -q '^response: type 2, 92 bytes' ||
		fail "not a 92-byte type-2 response: $out"
}

test_noise_cli() {
	local out rc
	[ -x "$CTL" ] || fail "$CTL not built (make)"
	command -v wg >/dev/null || skip "wg (wireguard-tools) not installed"
	TMP=$(mktemp -d)
	on_exit "rm -rf $TMP"
	umask 077
	wg genkey >"$TMP/r.key"
	wg genkey >"$TMP/i.key"
	"$CTL" initiate --private-key-file "$TMP/i.key" \
		--peer "$(wg pubkey <"$TMP/r.key")" >"$TMP/m.hex" || fail "initiate"
	out=$("$CTL" decode --private-key-file "$TMP/r.key" "$TMP/m.hex") ||
		fail "decode of our own initiation: $out"
	expect_eq "$(echo "$out" | sed -n 's/^initiator: //p')" \
		"$(wg pubkey <"$TMP/i.key")" "round trip through the CLI"

	# Hex with spaces and newlines (as xxd/tcpdump print it) is accepted.
	fold -w 32 "$TMP/m.hex" | sed 's/../& /g' >"$TMP/m.spaced"
	"$CTL" decode --private-key-file "$TMP/r.key" <"$TMP/m.spaced" >/dev/null ||
		fail "spaced hex rejected"

	# Garbage input, a missing key file and no arguments are usage errors (2).
	echo "hello" >"$TMP/garbage"
	"$CTL" decode --private-key-file "$TMP/r.key" "$TMP/garbage" 2>/dev/null
	expect_eq "$?" 2 "exit status for input that is no message"
	"$CTL" decode --private-key-file "$TMP/nonexistent" "$TMP/m.hex" 2>/dev/null
	expect_eq "$?" 2 "exit status for a missing key file"
	"$CTL" 2>/dev/null
	expect_eq "$?" 2 "exit status without a command"

	# Each defect maps to its own reason.
	for row in mac1:bad_mac1 static:bad_static timestamp:bad_timestamp \
		low-order:low_order; do
		"$CTL" initiate --private-key-file "$TMP/i.key" \
			--peer "$(wg pubkey <"$TMP/r.key")" --defect "${row%%:*}" \
			>"$TMP/d.hex" || fail "initiate --defect ${row%%:*}"
		out=$("$CTL" decode --private-key-file "$TMP/r.key" "$TMP/d.hex" 2>&1)
		rc=$?
		expect_eq "$rc" 1 "exit status for defect ${row%%:*}"
		echo "$out" | grep -q "^status: ${row#*:}\$" ||
			fail "defect ${row%%:*}: expected ${row#*:}, got: $out"
	done
}
