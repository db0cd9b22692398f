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
	tmp_dir
}

topo() {
	A=$(ns a) B=$(ns b)
	veth_pair a va 192.0.2.1/24 b vb 192.0.2.2/24
}

test_noise_interop_decode() {
	local line out pub ts full last
	setup_common
	topo
	# wireguard-go client in "a", listener in "b"; checks in tests/lib.sh.
	noise_decode_client wggo "$A" "jw${RUNID}na" "$B" 15 15
	line=$NOISE_MSG pub=$NOISE_PUB full=$NOISE_TS
	ts=${full:0:16}

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
	local out rc
	setup_common
	topo
	# wireguard-go gateway in "a" (tests/lib.sh).
	noise_gateway_up wggo "$A" "jw${RUNID}ng"
	wait_for 5 eval "ip netns exec $A ss -lun | grep -q ':51820 '" ||
		fail "the gateway does not listen on :51820"

	# From "b": answers within 10 s, silence after at least 1.5 s, and each
	# defect jitwgctl can make (tests/lib.sh).
	noise_gateway_checks "$B" "$GW_PUB" 192.0.2.1:51820 10000 1500 \
		mac1 static timestamp low-order
	# The last answer (left in out) is a 92-byte type-2 response too.
	echo "$out" | grep -q '^response: type 2, 92 bytes' ||
		fail "not a 92-byte type-2 response: $out"
}

test_noise_cli() {
	local out rc
	[ -x "$CTL" ] || fail "$CTL not built (make)"
	command -v wg >/dev/null || skip "wg (wireguard-tools) not installed"
	tmp_dir
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

# test_noise_interop_clients: wireguard-go gateway in "a" knows two
# synthetic clients (jitwg-loadgen keys); `jitwg-loadgen clients` in "b" runs
# them for 4 s with a 1 s rekey. Each must complete handshakes the gateway
# accepts: the gateway's latest-handshake is set and it received the
# keepalives (transfer rx > 0), and every response opened (bad=0).
test_noise_interop_clients() {
	local out gw_pub keys pub rx hs line
	setup_common
	[ -x "$BUILD/jitwg-loadgen" ] || fail "jitwg-loadgen not built (make)"
	topo
	wggo "$A" "jw${RUNID}nc"
	wg genkey >"$TMP/gw.key"
	gw_pub=$(wg pubkey <"$TMP/gw.key")
	keys=$("$BUILD/jitwg-loadgen" keys --seed interop --count 2)
	check "wg set on the gateway" ip netns exec "$A" wg set "jw${RUNID}nc" \
		private-key "$TMP/gw.key" listen-port 51820
	while read -r pub line; do
		check "peer $pub" ip netns exec "$A" wg set "jw${RUNID}nc" \
			peer "$pub" allowed-ips "$line"
	done <<<"$keys"
	ip -n "$A" link set "jw${RUNID}nc" up
	printf '0 0 4\n1 0.5 4\n' >"$TMP/schedule"
	out=$(ip netns exec "$B" "$BUILD/jitwg-loadgen" clients --seed interop \
		--to 192.0.2.1:51820 --responder "$gw_pub" \
		--schedule "$TMP/schedule" --rekey-ms 1000 --keepalive-ms 500 \
		--retry-ms 1000 --events "$TMP/events" --samples "$TMP/samples") ||
		fail "loadgen clients failed: $out"
	echo "  $out"
	echo "$out" | grep -q ' bad=0 errors=0' || fail "bad responses: $out"
	while read -r pub line; do
		hs=$(ip netns exec "$A" wg show "jw${RUNID}nc" latest-handshakes |
			awk -v k="$pub" '$1 == k {print $2}')
		rx=$(ip netns exec "$A" wg show "jw${RUNID}nc" transfer |
			awk -v k="$pub" '$1 == k {print $2}')
		[ "${hs:-0}" -gt 0 ] || fail "no handshake completed for $pub"
		[ "${rx:-0}" -gt 0 ] || fail "no data received from $pub"
	done <<<"$keys"
	expect_eq "$(grep -c ' first_contact ' "$TMP/events")" 2 \
		"first contacts (one per client)"
	[ "$(grep -c ' rekey ' "$TMP/events")" -ge 2 ] ||
		fail "no rekeys: $(cat "$TMP/events")"
	[ -s "$TMP/samples" ] || fail "no samples written"
}
