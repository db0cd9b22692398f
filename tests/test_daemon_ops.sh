# Operating a live jitwgd (tests/e2e_lib.sh topology): a real Prometheus
# scrapes its /metrics in the gateway namespace, every dashboard expression
# returns data, promtool accepts the exposition; jitwgctl talks to it over
# the control socket.
#
#   ns "c": wireguard-go client A        ns "g": wireguard-go gateway, jitwgd
#                                               --metrics-listen 127.0.0.1:9089
#                                               --control-socket $TMP/ctl.sock
#                                               (or the default /run/jitwg/DEV.sock)
#                                               prometheus 127.0.0.1:9090,
#                                               control plane (loopback)

. "$ROOT/tests/e2e_lib.sh"
. "$ROOT/tests/prom_lib.sh"

CTL=$BUILD/jitwgctl

# ops_start [ctl]: the topology, client A registered, jitwgd with metrics;
# "ctl": its control socket at $TMP/ctl.sock instead of the default.
ops_start() {
	e2e_begin
	e2e_client A 10.77.0.2
	cp_add "$A_PUB" 10.77.0.2/32
	if [ "${1:-}" = ctl ]; then
		e2e_jitwgd --metrics-listen 127.0.0.1:9089 --control-socket "$TMP/ctl.sock"
	else
		e2e_jitwgd --metrics-listen 127.0.0.1:9089
	fi
}

scrape() { ip netns exec "$G" curl -s --max-time 5 http://127.0.0.1:9089/metrics; }
jctl() { "$CTL" "$@" --socket "$TMP/ctl.sock"; }

# A real Prometheus scrapes jitwgd: the first client's peer shows as
# jitwg_device_peers 1 (the issue's chart), and every expression of the
# Grafana dashboard returns data after two scrapes or more.
test_e2e_metrics_prometheus() {
	local e n bad=0
	command -v prometheus >/dev/null || skip "prometheus not installed"
	ops_start
	# The default control socket, found by device name; gone at stop.
	on_exit "rm -f /run/jitwg/$WGG.sock"
	"$CTL" status --dev "$WGG" | grep -q "^device: $WGG$" ||
		fail "jitwgctl status --dev: no answer on /run/jitwg/$WGG.sock"
	prom_start "$G" 127.0.0.1:9089
	# Before any client: every series exists at 0.
	prom_wait_scrapes 1
	expect_eq "$(prom_value 'jitwg_device_peers')" 0 "device peers before any client"
	expect_eq "$(prom_value 'jitwg_provisions_total{outcome="installed"}')" 0 "installed before any client"
	check "ping through the tunnel" cping A 1 5
	wait_for 5 grep -q "msg=handshake peer=$(fp "$A_PUB") outcome=done" "$JW_LOG" ||
		fail "no handshake: $(cat "$JW_LOG")"
	prom_wait_value 10 jitwg_device_peers 1 ||
		fail "jitwg_device_peers: $(prom_query jitwg_device_peers)"
	expect_eq "$(prom_value 'jitwg_managed_peers')" 1 "managed peers"
	expect_eq "$(prom_value 'jitwg_provisions_total{outcome="installed"}')" 1 "installed"
	expect_eq "$(prom_value 'jitwg_first_contact_seconds_count')" 1 "first contacts observed"
	prom_wait_scrapes 3
	check "every scrape parsed" prom_targets_healthy
	"$ROOT/scripts/dashboard-exprs.py" "$ROOT/dashboards/jitwg.json" >"$TMP/exprs" ||
		fail "cannot extract the dashboard's expressions"
	while read -r e; do
		n=$(prom_series "$e")
		if [ "${n:-0}" -lt 1 ]; then
			echo "  no data: $e"
			bad=$((bad + 1))
		fi
	done <"$TMP/exprs"
	[ "$bad" -eq 0 ] || fail "$bad dashboard expressions returned no data"
	echo "  $(wc -l <"$TMP/exprs") dashboard expressions returned data"
	scrape >"$TMP/metrics.txt"
	check "promtool check metrics on jitwgd's exposition" \
		promtool check metrics <"$TMP/metrics.txt"
	e2e_jitwgd_stop
	[ -e "/run/jitwg/$WGG.sock" ] && fail "default socket left after stop"
	return 0
}

# jitwgctl against the running daemon: status, peers (text and --json),
# evict (the peer leaves the device), revalidate, sweep, log-level.
test_e2e_control_socket() {
	local out
	ops_start ctl
	expect_eq "$(stat -c %a "$TMP/ctl.sock")" 600 "control socket mode"
	check "ping through the tunnel" cping A 1 5
	wait_for 5 grep -q "msg=handshake peer=$(fp "$A_PUB") outcome=done" "$JW_LOG" ||
		fail "no handshake: $(cat "$JW_LOG")"
	out=$(jctl status) || fail "jitwgctl status: $out"
	echo "$out" | sed 's/^/  /'
	echo "$out" | grep -q "^device: $WGG$" || fail "status: no device line"
	echo "$out" | grep -q '^peers: device=1 managed=1$' || fail "status: peers"
	out=$(jctl peers) || fail "jitwgctl peers: $out"
	echo "$out" | sed 's/^/  /'
	echo "$out" | grep -F "$A_PUB" | grep -q '192.168.77.2:41001 *10.77.0.2/32 ' ||
		fail "peers: no line with A's key, endpoint and allowed IP"
	jctl peers --json | python3 -c '
import json, sys
r = json.load(sys.stdin)
assert r["ok"] and len(r["peers"]) == 1, r
p = r["peers"][0]
assert p["public_key"] == sys.argv[1] and p["allowed_ips"] == ["10.77.0.2/32"], p
assert p["last_handshake"] > 0 and p["installed_at"] > 0, p
' "$A_PUB" || fail "peers --json"
	out=$(jctl evict "$A_PUB") || fail "jitwgctl evict: $out"
	wait_for 5 eval '! gw_has "$A_PUB"' || fail "evicted peer still on the device"
	grep -q "msg=evict peer=$(fp "$A_PUB") outcome=evicted reason=operator" "$JW_LOG" ||
		fail "no evict line: $(tail -5 "$JW_LOG")"
	out=$(jctl evict "$A_PUB" 2>&1)
	[ $? -eq 1 ] || fail "evicting an unmanaged key: status not 1: $out"
	echo "$out" | grep -q "not a peer jitwgd manages" || fail "evict refusal: $out"
	# The client comes back on its next handshake, once past the floor the
	# eviction sealed for its key (1 s ahead: docs/security.md).
	sleep 1.2
	client_restart A
	cping A 1 5 || fail "ping after eviction: $(tail -5 "$JW_LOG")"
	wait_for 5 gw_has "$A_PUB" || fail "not back on the device"
	out=$(jctl log-level debug) || fail "jitwgctl log-level: $out"
	grep -q "msg=log_level level=debug" "$JW_LOG" || fail "log level not logged"
	# The sweep's own line is at debug level: it shows both took effect.
	out=$(jctl sweep) || fail "jitwgctl sweep: $out"
	wait_for 5 grep -q "msg=sweep device_peers=1 managed=1" "$JW_LOG" ||
		fail "no sweep after jitwgctl sweep: $(tail -3 "$JW_LOG")"
	out=$(jctl log-level loud 2>&1)
	[ $? -eq 1 ] || fail "log-level loud not refused with status 1: $out"
	# A revocation pushed by the operator: the control plane forgets the
	# key, jitwgctl revalidate asks again now (retried while the per-key
	# request interval of 4.5 s has not passed), the peer leaves.
	rm -f "$TMP/peers/$(printf %s "$A_PUB" | tr '/+' '_-').json"
	wait_for 10 "$CTL" revalidate "$A_PUB" --socket "$TMP/ctl.sock" ||
		fail "jitwgctl revalidate: $(jctl revalidate "$A_PUB" 2>&1)"
	wait_for 10 eval '! gw_has "$A_PUB"' || fail "revoked peer still on the device: $(tail -5 "$JW_LOG")"
	grep -q "peer=$(fp "$A_PUB") outcome=evicted reason=revoked" "$JW_LOG" ||
		fail "no revocation line: $(tail -5 "$JW_LOG")"
	out=$(jctl revalidate "$A_PUB" 2>&1)
	[ $? -eq 1 ] || fail "revalidating an unmanaged key: status not 1: $out"
	out=$(jctl revalidate) || fail "jitwgctl revalidate (all): $out"
	e2e_jitwgd_stop
	[ -e "$TMP/ctl.sock" ] && fail "socket left after stop"
	out=$(jctl status 2>&1)
	[ $? -eq 3 ] || fail "no daemon: status not 3: $out"
	echo "$out" | grep -q "no jitwgd is running" || fail "no daemon: message: $out"
}
