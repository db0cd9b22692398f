# The reference control plane (scripts/control-plane.py) on its own: the
# lookup modes, the token, the counters and the switches the daemon tests
# rely on. The C client is tested in tests/test_api.c.
#
#   [ namespace jw<pid>cp: lo 127.0.0.1 ] control-plane.py <- curl

CP=$ROOT/scripts/control-plane.py

# cp_up ARGS: start the server in a fresh namespace; sets N, URL, D.
cp_up() {
	command -v python3 >/dev/null || skip "python3 not installed"
	netns_add cp
	N=$(ns cp)
	D=$(mktemp -d /tmp/jitwg-cp.XXXXXX)
	on_exit "rm -rf $D"
	bg ip netns exec "$N" python3 "$CP" --port 0 --port-file "$D/port" \
		--log "$D/log" "$@"
	wait_for 10 test -s "$D/port" || fail "server did not start"
	URL=http://127.0.0.1:$(cat "$D/port")
}

get() { ip netns exec "$N" curl -s --max-time 5 -o "$D/body" -w '%{http_code}' "$@"; }

# key32 BYTE: a base64 key of 32 equal bytes, and its base64url form.
b64() { python3 -c 'import base64,sys; print(base64.b64encode(bytes([int(sys.argv[1])])*32).decode())' "$1"; }
b64url() { python3 -c 'import base64,sys; print(base64.urlsafe_b64encode(bytes([int(sys.argv[1])])*32).decode().rstrip("="))' "$1"; }

stat_field() {
	ip netns exec "$N" curl -s --max-time 5 "$URL/_stats" |
		python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"
}

test_cp_map_file_and_token() {
	local k1 k2
	k1=$(b64 251)
	k2=$(b64 252)
	D0=$(mktemp -d /tmp/jitwg-cp0.XXXXXX)
	on_exit "rm -rf $D0"
	printf '{"%s": {"allowed_ips": ["10.9.0.2/32"], "ttl": 60}}\n' "$k1" >"$D0/peers.json"
	echo "tok-123" >"$D0/token"
	cp_up --peers "$D0/peers.json" --token-file "$D0/token"

	expect_eq "$(get -H 'Authorization: Bearer tok-123' "$URL/peers/$(b64url 251)")" 200 "known key"
	check "record served with its key" grep -qF "\"public_key\": \"$k1\"" "$D/body"
	expect_eq "$(get -H 'Authorization: Bearer tok-123' "$URL/peers/$(b64url 252)")" 404 "unknown key"
	expect_eq "$(get "$URL/peers/$(b64url 251)")" 401 "no token"
	expect_eq "$(get -H 'Authorization: Bearer tok-12' "$URL/peers/$(b64url 251)")" 401 "wrong token"
	expect_eq "$(get -H 'Authorization: Bearer tok-123' "$URL/peers/notakey")" 400 "bad key"
	expect_eq "$(stat_field peers_requests)" 5 "requests counted"
	check "token never logged" bash -c "! grep -q tok-123 $D/log"
	# The map file changes: the server sees it.
	printf '{"%s": {"allowed_ips": []}}\n' "$k2" >"$D0/peers.json.tmp"
	mv "$D0/peers.json.tmp" "$D0/peers.json"
	expect_eq "$(get -H 'Authorization: Bearer tok-123' "$URL/peers/$(b64url 252)")" 200 "map reloaded"
}

test_cp_directory_and_modes() {
	local k
	k=$(b64 7)
	D0=$(mktemp -d /tmp/jitwg-cp0.XXXXXX)
	on_exit "rm -rf $D0"
	cp_up --peers "$D0"
	expect_eq "$(get "$URL/peers/$(b64url 7)")" 404 "empty directory"
	# Any file name: found through the index, rebuilt on change.
	printf '{"public_key": "%s", "allowed_ips": ["10.9.0.7/32"]}\n' "$k" >"$D0/x.tmp"
	mv "$D0/x.tmp" "$D0/some-name.json"
	expect_eq "$(get "$URL/peers/$(b64url 7)")" 200 "found by scan"

	ip netns exec "$N" curl -s -X POST -d '{"status": 503}' "$URL/_mode" >/dev/null
	expect_eq "$(get "$URL/peers/$(b64url 7)")" 503 "status switch"
	ip netns exec "$N" curl -s -X POST -d '{"status": null, "malformed": "wrong-key"}' "$URL/_mode" >/dev/null
	expect_eq "$(get "$URL/peers/$(b64url 7)")" 200 "wrong-key answers 200"
	check "wrong-key changes public_key" bash -c "! grep -qF '$k' $D/body"
	ip netns exec "$N" curl -s -X POST -d '{"malformed": "json"}' "$URL/_mode" >/dev/null
	get "$URL/peers/$(b64url 7)" >/dev/null
	check "json mode is not JSON" bash -c "! python3 -m json.tool $D/body >/dev/null 2>&1"
	ip netns exec "$N" curl -s -X POST -d '{"malformed": "hang"}' "$URL/_mode" >/dev/null
	expect_eq "$(get --max-time 1 "$URL/peers/$(b64url 7)")" 000 "hang never answers"
	ip netns exec "$N" curl -s -X POST -d '{"malformed": null}' "$URL/_mode" >/dev/null
	expect_eq "$(get "$URL/peers/$(b64url 7)")" 200 "back to normal"
	ip netns exec "$N" curl -s -X POST "$URL/_reset" >/dev/null
	expect_eq "$(stat_field peers_requests)" 0 "reset"
}

test_cp_refuses_non_loopback_and_documents_switches() {
	command -v python3 >/dev/null || skip "python3 not installed"
	check "non-loopback refused" bash -c "! timeout 5 python3 $CP --listen 0.0.0.0 --port 0 2>/dev/null"
	check "--help documents /_mode" bash -c "python3 $CP --help | grep -q /_mode"
	check "--help documents hang" bash -c "python3 $CP --help | grep -q hang"
}
