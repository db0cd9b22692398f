# Cookie replies and mac2 (user/daemon_cookie.c, docs/security.md "Cookies")
# against stock wireguard-go clients, with --cookie always standing in for
# "under load". Topology as tests/test_e2e.sh:
#
#   ns "c" (clients)                          ns "g" (gateway)
#   wireguard-go jw<id>c1.. 10.77.0.N/32      wireguard-go jw<id>g 10.77.0.1/16 :51820
#                                             jitwgd --cookie always (XDP native on vg)
#   veth vc 192.168.77.2/24  <------------->  veth vg 192.168.77.1/24
#           fd77::2/64                                 fd77::1/64
#                                             control plane 127.0.0.1 (loopback of g)

. "$ROOT/tests/e2e_lib.sh"

# cookie_metric NAME: its value in jitwgd's /metrics (first series), or 0.
cookie_metric() {
	ip netns exec "$G" curl -s --max-time 2 http://127.0.0.1:9089/metrics |
		awk -v m="$1" '$1 == m || index($1, m "{") == 1 { print $2; f = 1; exit } END { if (!f) print 0 }'
}

# wg_lines ERE: lines of the capture's text dump that match.
wg_lines() { tcpdump -nr "$TMP/vc.pcap" 2>/dev/null | grep -cE "$1"; }

# A new registered client over IPv4 and one over IPv6 each get a cookie
# reply (64 bytes, from the gateway's WireGuard port) to their first
# initiation, and are installed on the retry that carries mac2: a tunnel
# by the third initiation. $1: extra jitwgd arguments (--consume).
cookie_round() {
	local args=("$@") inits4 inits6
	e2e_begin
	e2e_client A 10.77.0.2
	e2e_client V6 10.77.0.4
	ip netns exec "$C" wg set "$V6_DEV" peer "$GW_PUB" endpoint "[fd77::1]:51820"
	cp_add "$A_PUB" 10.77.0.2/32
	cp_add "$V6_PUB" 10.77.0.4/32
	e2e_jitwgd --cookie always --metrics-listen 127.0.0.1:9089 --handshake-window 600 \
		"${args[@]}"
	gw_capture_start "udp port 51820"
	# The first initiation is answered with a cookie, the retry comes
	# after REKEY_TIMEOUT (5 s + jitter): well within 16 s.
	check "IPv4 client: tunnel after a cookie round" cping A 1 16
	check "IPv6 client: tunnel after a cookie round" cping V6 1 16
	sleep 0.5
	gw_capture_stop
	gw_has "$A_PUB" || fail "IPv4 client not installed"
	gw_has "$V6_PUB" || fail "IPv6 client not installed"
	# The cookie path, on the wire: replies from the gateway's port.
	[ "$(wg_lines "IP $E2E_GW_IP[.]51820 > 192[.]168[.]77[.]2[.]41001: UDP, length 64")" -ge 1 ] ||
		fail "no cookie reply to the IPv4 client: $(tcpdump -nr "$TMP/vc.pcap" 2>/dev/null)"
	[ "$(wg_lines "IP6 fd77::1[.]51820 > fd77::2[.]41002: UDP, length 64")" -ge 1 ] ||
		fail "no cookie reply to the IPv6 client: $(tcpdump -nr "$TMP/vc.pcap" 2>/dev/null)"
	inits4=$(wg_lines "192[.]168[.]77[.]2[.]41001 > $E2E_GW_IP[.]51820: UDP, length 148")
	inits6=$(wg_lines "fd77::2[.]41002 > fd77::1[.]51820: UDP, length 148")
	echo "initiations before the tunnel: IPv4 $inits4, IPv6 $inits6"
	[ "$inits4" -ge 2 ] && [ "$inits4" -le 3 ] || fail "IPv4 client sent $inits4 initiations, want 2 or 3"
	[ "$inits6" -ge 2 ] && [ "$inits6" -le 3 ] || fail "IPv6 client sent $inits6 initiations, want 2 or 3"
	# ... and in the counters: the replies, and the retries' valid mac2.
	[ "$(cookie_metric jitwg_cookie_replies_total)" -ge 2 ] ||
		fail "cookie replies counted: $(cookie_metric jitwg_cookie_replies_total)"
	[ "$(cookie_metric 'jitwg_mac2_total{result="valid"}')" -ge 2 ] ||
		fail "valid mac2 counted: $(cookie_metric 'jitwg_mac2_total{result="valid"}')"
	expect_eq "$(cookie_metric jitwg_cookie_send_errors_total)" 0 "cookie send errors"
	# The XDP program knew the retries' sources (jitwgd recorded them):
	# they came on the cookie budget, not the global one.
	[ "$(cookie_metric jitwg_xdp_cookie_retries_total)" -ge 2 ] ||
		fail "retries on the XDP cookie budget: $(cookie_metric jitwg_xdp_cookie_retries_total)"
	grep -q "msg=cookie op=mark_sources" "$JW_LOG" && fail "sources not recorded: $(cat "$JW_LOG")"
	expect_eq "$(cookie_metric 'jitwg_mac2_total{result="invalid"}')" 0 "invalid mac2"
	expect_eq "$(cp_requests "$A_PUB")" 1 "control plane requests for the IPv4 client"
	# An installed client's next handshake needs no cookie (a verified
	# source: its handshake completed).
	local before
	before=$(cookie_metric jitwg_cookie_replies_total)
	wait_for 10 eval '[ "$(cookie_metric jitwg_handshakes_total)" -ge 2 ]' ||
		fail "handshakes not counted: $(cookie_metric jitwg_handshakes_total)"
	# The monitor marks a source verified when it sees the handshake.
	sleep 1
	client_restart A
	check "installed client: new handshake without a cookie" cping A 1 4
	expect_eq "$(cookie_metric jitwg_cookie_replies_total)" "$before" "cookie replies to the returning client"
}

test_cookie_wireguard_go() {
	cookie_round
	grep -q "msg=provision peer=$(fp "$A_PUB") outcome=installed .*initiated=true" "$JW_LOG" ||
		fail "no installed line: $(cat "$JW_LOG")"
}

test_cookie_wireguard_go_consume() {
	cookie_round --consume
	grep -q "msg=provision peer=$(fp "$A_PUB") outcome=installed .*initiated=false" "$JW_LOG" ||
		fail "no installed line: $(cat "$JW_LOG")"
}

# --cookie never: the first initiation installs, and no reply is sent.
test_cookie_never() {
	e2e_begin
	e2e_client A 10.77.0.2
	cp_add "$A_PUB" 10.77.0.2/32
	e2e_jitwgd --cookie never --metrics-listen 127.0.0.1:9089
	gw_capture_start "udp port 51820"
	check "ping at once" cping A 1 4
	sleep 0.3
	gw_capture_stop
	expect_eq "$(wg_lines "UDP, length 64")" 0 "cookie replies on the wire"
	expect_eq "$(cookie_metric jitwg_cookie_replies_total)" 0 "cookie replies counted"
}

# jitwg-loadgen's synthetic clients answer cookies as stock clients do (so
# benchmarks under load measure real behaviour): with --cookie always,
# each gets a reply, keeps the cookie, and its retry with mac2 installs it.
test_cookie_loadgen_clients() {
	local out
	e2e_begin
	[ -x "$LOADGEN" ] || skip "build/jitwg-loadgen not built"
	"$LOADGEN" keys --seed cookieclients --count 3 --net 10.79.0.0 >"$TMP/keys"
	cp_add_keys "$TMP/keys" k
	e2e_jitwgd --cookie always --metrics-listen 127.0.0.1:9089 --handshake-window 600
	printf '0 0 6\n1 0 6\n2 0 6\n' >"$TMP/schedule"
	out=$(ip netns exec "$C" "$LOADGEN" clients --seed cookieclients \
		--to $E2E_GW_IP:51820 --responder "$GW_PUB" --schedule "$TMP/schedule" \
		--retry-ms 1000 --rekey-ms 60000 --keepalive-ms 1000 \
		--events "$TMP/events") || fail "loadgen clients failed: $out"
	echo "  $out"
	[ "$(echo "$out" | sed -n 's/.* cookies=\([0-9]*\).*/\1/p')" -ge 3 ] ||
		fail "fewer than 3 cookie replies: $out"
	echo "$out" | grep -q ' bad=0 errors=0' || fail "bad responses: $out"
	expect_eq "$(grep -c ' first_contact ' "$TMP/events")" 3 "first contacts (one per client)"
	[ "$(cookie_metric 'jitwg_mac2_total{result="valid"}')" -ge 3 ] ||
		fail "valid mac2 counted: $(cookie_metric 'jitwg_mac2_total{result="valid"}')"
	expect_eq "$(jwlog_count "outcome=installed")" 3 "installs"
}
