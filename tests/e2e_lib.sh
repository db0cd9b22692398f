# Shared set-up for jitwgd's end-to-end tests (tests/test_e2e.sh), the demo
# (scripts/demo.sh) and the benchmark (scripts/bench_e2e.sh). Needs
# tests/lib.sh sourced first (ns, veth_pair, tmp_dir, on_exit, fail,
# wait_for).
#
#   ns "c" (clients)                          ns "g" (gateway)
#   wireguard-go jw<id>c* 10.77.0.N/32        wireguard-go jw<id>g 10.77.0.1/16, :51820
#   veth vc 192.168.77.2/24  <------------->  veth vg 192.168.77.1/24 (XDP native)
#           fd77::2/64                                 fd77::1/64
#                                             control plane 127.0.0.1:$CP_PORT
#                                             jitwgd --wg-dev jw<id>g --xdp-dev vg

E2E_GW_IP=192.168.77.1
E2E_GW_TUN=10.77.0.1
JITWGD=$BUILD/jitwgd
LOADGEN=$BUILD/jitwg-loadgen
CONTROL_PLANE=${CONTROL_PLANE:-$ROOT/scripts/control-plane.py}
PY=/usr/bin/python3
export WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1

# e2e_topo: both namespaces, the veth, the gateway device without peers.
e2e_topo() {
	G=$(ns g) C=$(ns c) WGG=jw${RUNID}g
	veth_pair c vc 192.168.77.2/24 g vg $E2E_GW_IP/24 fd77::2/64 fd77::1/64
	wggo "$G" "$WGG"
	wg genkey >"$TMP/gw.key"
	GW_PUB=$(wg pubkey <"$TMP/gw.key")
	ip netns exec "$G" wg set "$WGG" private-key "$TMP/gw.key" listen-port 51820 ||
		fail "wg set on the gateway"
	ip -n "$G" addr add $E2E_GW_TUN/16 dev "$WGG"
	ip -n "$G" link set "$WGG" up
	E2E_NCLIENTS=0
}

# e2e_client VAR TUN_IP [NS]: a wireguard-go client with a fresh key and the
# gateway as its only peer; VAR_DEV, VAR_PUB, VAR_KEY (file), VAR_NS are set.
e2e_client() {
	local var=$1 ip=$2 n=${3:-$C} dev
	E2E_NCLIENTS=$((E2E_NCLIENTS + 1))
	dev=jw${RUNID}c$E2E_NCLIENTS
	wggo "$n" "$dev"
	wg genkey >"$TMP/$dev.key"
	ip netns exec "$n" wg set "$dev" private-key "$TMP/$dev.key" \
		listen-port $((41000 + E2E_NCLIENTS)) \
		peer "$GW_PUB" endpoint $E2E_GW_IP:51820 allowed-ips $E2E_GW_TUN/32 ||
		fail "wg set on client $dev"
	ip -n "$n" addr add "$ip/32" dev "$dev"
	ip -n "$n" link set "$dev" up
	ip -n "$n" route add $E2E_GW_TUN/32 dev "$dev" 2>/dev/null
	printf -v "${var}_DEV" %s "$dev"
	printf -v "${var}_PUB" %s "$(wg pubkey <"$TMP/$dev.key")"
	printf -v "${var}_KEY" %s "$TMP/$dev.key"
	printf -v "${var}_NS" %s "$n"
}

# e2e_cp [ARGS]: the reference control plane inside the gateway namespace,
# on loopback, serving $TMP/peers/*.json; CP_URL, CP_PID set. Restarting it
# (e2e_cp_stop; e2e_cp) keeps the same port.
e2e_cp() {
	mkdir -p "$TMP/peers"
	local port=${CP_PORT:-0}
	rm -f "$TMP/cp.port"
	ip netns exec "$G" $PY "$CONTROL_PLANE" --peers "${CP_PEERS:-$TMP/peers}" \
		--port "$port" --port-file "$TMP/cp.port" --log "$TMP/cp.log" "$@" \
		2>>"$TMP/cp.err" &
	CP_PID=$!
	on_exit "kill $CP_PID 2>/dev/null"
	wait_for 5 test -s "$TMP/cp.port" || fail "control plane did not start: $(cat "$TMP/cp.err")"
	CP_PORT=$(cat "$TMP/cp.port")
	CP_URL=http://127.0.0.1:$CP_PORT
}

e2e_cp_stop() {
	kill "$CP_PID" 2>/dev/null
	wait "$CP_PID" 2>/dev/null
	return 0
}

# cp_add PUB IP...: register a peer.
cp_add() {
	local pub=$1 f
	shift
	f=$TMP/peers/$(printf %s "$pub" | tr '/+' '_-').json
	$PY -c 'import json,sys; print(json.dumps({"public_key": sys.argv[1], "allowed_ips": sys.argv[2:]}))' \
		"$pub" "$@" >"$f.tmp" && mv "$f.tmp" "$f"
}

cp_get() { ip netns exec "$G" curl -s --max-time 5 "$CP_URL$1"; }
cp_post() { ip netns exec "$G" curl -s --max-time 5 -X POST -d "$2" "$CP_URL$1" >/dev/null; }
cp_mode() { cp_post /_mode "$1"; }

# cp_requests PUB: /peers requests the control plane got for this key.
cp_requests() {
	local k
	k=$(printf %s "$1" | tr '/+' '_-' | tr -d '=')
	cp_get /_stats | $PY -c 'import json,sys; print(json.load(sys.stdin)["by_key"].get(sys.argv[1], 0))' "$k"
}
# cp_total: /peers requests the clients caused (jitwgd's start-up probe asks
# for the all-zero key, AAA…A, once: not counted).
cp_total() {
	cp_get /_stats | $PY -c 'import json,sys; s = json.load(sys.stdin); print(s["peers_requests"] - s["by_key"].get("A" * 43, 0))'
}

# e2e_jitwgd [ARGS]: jitwgd in the gateway namespace, native XDP on vg;
# waits for its "ready" line. JW_PID, JW_LOG set.
e2e_jitwgd() {
	JW_LOG=${JW_LOG:-$TMP/jitwgd.log}
	ip netns exec "$G" "$JITWGD" --wg-dev "$WGG" --xdp-dev vg --xdp-mode native \
		--api "$CP_URL" --cache-dir "$TMP/cache" "$@" 2>>"$JW_LOG" &
	JW_PID=$!
	on_exit "kill $JW_PID 2>/dev/null; sleep 0.2; kill -9 $JW_PID 2>/dev/null"
	wait_for 10 grep -q "msg=ready" "$JW_LOG" || {
		cat "$JW_LOG" >&2
		fail "jitwgd did not start"
	}
}

e2e_jitwgd_stop() {
	kill "$JW_PID" 2>/dev/null
	wait "$JW_PID" 2>/dev/null
	return 0
}

# fp PUB: the 8-character fingerprint jitwgd logs for a key, as a pattern
# for grep (basic or extended): '+' becomes [+].
fp() { local f=${1:0:8}; printf %s "${f//+/[+]}"; }

# gw_has PUB: the gateway device has this peer.
gw_has() { ip netns exec "$G" wg show "$WGG" peers | grep -qxF "$1"; }

# cping CLIENT_PREFIX [COUNT] [WAIT]: ping the gateway's tunnel address from
# a client (e2e_client variable prefix).
cping() {
	local n dev
	n=$(eval echo "\$${1}_NS")
	dev=$(eval echo "\$${1}_DEV")
	ip netns exec "$n" ping -c "${2:-1}" -W "${3:-5}" -I "$dev" $E2E_GW_TUN
}

# jwlog_count PATTERN: lines of the jitwgd log matching the ERE.
jwlog_count() { grep -cE "$1" "$JW_LOG"; }

# cp_add_raw NAME JSON: register a record as given (extra fields, ttl, …).
cp_add_raw() { printf '%s\n' "$2" >"$TMP/peers/$1.json.tmp" && mv "$TMP/peers/$1.json.tmp" "$TMP/peers/$1.json"; }

# synth SEED I: public key of the load generator's client I for SEED.
synth_pub() { "$LOADGEN" keys --seed "$1" --first "${2:-0}" --count 1 | cut -d' ' -f1; }

# lg ARGS: the load generator in the client namespace, aimed at the gateway.
lg() { ip netns exec "$C" "$LOADGEN" send --to $E2E_GW_IP:51820 --responder "$GW_PUB" "$@"; }
lg_resend() { ip netns exec "$C" "$LOADGEN" resend --to $E2E_GW_IP:51820 "$@"; }

# client_restart PREFIX: drop the client's session (as a rebooted client
# would) so that its next packet starts a handshake at once. A responder
# ignores a peer's initiations less than 20 ms apart (wireguard-go's
# HandshakeInitationRate, the kernel's INITIATIONS_PER_SECOND; see
# docs/protocol.md, "Timers"), and a test may get here a few ms after the
# last handshake (CI saw 18 ms, and the new initiation was ignored): wait
# that out first, as any real reboot does.
client_restart() {
	local n dev
	n=$(eval echo "\$${1}_NS")
	dev=$(eval echo "\$${1}_DEV")
	sleep 0.1
	ip netns exec "$n" wg set "$dev" peer "$GW_PUB" remove
	ip netns exec "$n" wg set "$dev" peer "$GW_PUB" endpoint $E2E_GW_IP:51820 \
		allowed-ips $E2E_GW_TUN/32 || fail "client $dev: gateway peer not set again"
	ip -n "$n" route replace $E2E_GW_TUN/32 dev "$dev"
}

jw_alive() { kill -0 "$JW_PID" 2>/dev/null; }

# e2e_sources N: N more client addresses 192.168.78.1..N for the load
# generator (--sources N --src-base 192.168.78.1): the XDP program limits
# initiations per source address (100/s, burst 200).
e2e_sources() {
	local i
	for ((i = 1; i <= $1; i++)); do echo "addr add 192.168.78.$i/24 dev vc"; done |
		ip -n "$C" -batch - || fail "source addresses"
	ip -n "$G" route add 192.168.78.0/24 dev vg || fail "route to the sources"
}

# cp_add_keys FILE NAME: register every "PUBKEY ALLOWED_IP" line of FILE
# (jitwg-loadgen keys), as records NAME0, NAME1, …
cp_add_keys() {
	local i=0 pub ip
	while read -r pub ip; do
		cp_add_raw "$2$i" "{\"public_key\": \"$pub\", \"allowed_ips\": [\"$ip\"]}"
		i=$((i + 1))
	done <"$1"
}

# e2e_begin: skip without jitwgd or wireguard-go; then the topology and
# the control plane (a test's start).
e2e_begin() {
	[ -x "$JITWGD" ] || skip "build/jitwgd not built"
	command -v wireguard-go >/dev/null || skip "wireguard-go not installed"
	tmp_dir
	e2e_topo
	e2e_cp
}

# gw_capture_start [FILTER] / gw_capture_stop: record in $TMP/vc.pcap, on
# the client's veth, the UDP the gateway sends from its port 51820 (or what
# the tcpdump FILTER matches). Immediate
# mode: otherwise packets wait in the kernel for a buffer timeout (up to a
# second) and a stop before it loses them.
# A small snapshot length: in immediate mode libpcap sizes each slot of its
# ring by it, and with the default (256 KiB) a 2 MiB ring held 8 packets,
# so a burst of the gateway's initiations was partly lost to the capture.
gw_capture_start() {
	ip netns exec "$C" tcpdump -i vc -n -s 512 -B 8192 -U --immediate-mode -w "$TMP/vc.pcap" \
		"${1:-udp and src host $E2E_GW_IP and src port 51820}" 2>"$TMP/tcpdump.log" &
	GW_CAP_PID=$!
	on_exit "kill $GW_CAP_PID 2>/dev/null"
	wait_for 60 grep -q "listening on" "$TMP/tcpdump.log" || fail "tcpdump did not start"
}
gw_capture_stop() {
	kill "$GW_CAP_PID" 2>/dev/null
	wait "$GW_CAP_PID" 2>/dev/null
	# A count from a lossy capture would blame the gateway.
	local dropped
	dropped=$(sed -n 's/^\([0-9]*\) packets\{0,1\} dropped by kernel.*/\1/p' "$TMP/tcpdump.log")
	if [ -z "$dropped" ]; then
		echo "  note: tcpdump printed no drop count"
	elif [ "$dropped" -gt 0 ]; then
		fail "the capture itself lost $dropped packets"
	fi
}

# gw_initiations [KEYS [TYPES]]: how many handshake initiations (Ethernet 14
# + IPv4 20 + UDP 8, then 148 bytes of type 1) the capture holds; with KEYS
# (lines "PUBKEY …"), for how many of those keys: mac1 is keyed with the
# recipient's public key (WireGuard paper §5.4.4). TYPES "12" also counts
# handshake responses (92 bytes of type 2).
gw_initiations() {
	$PY -c '
import base64, hashlib, struct, sys
keys = {}
if sys.argv[2]:
    for line in open(sys.argv[2]):
        pub = base64.b64decode(line.split()[0])
        keys[hashlib.blake2s(b"mac1----" + pub).digest()] = pub
shape = {1: (148, 116), 2: (92, 60)}  # type: (length, mac1 offset)
types = [int(t) for t in sys.argv[3]]
d = open(sys.argv[1], "rb").read()
off, n, seen = 24, 0, set()
while off + 16 <= len(d):
    incl = struct.unpack_from("<I", d, off + 8)[0]
    msg = d[off + 16 + 42: off + 16 + incl]
    off += 16 + incl
    if not msg or msg[0] not in types or len(msg) != shape[msg[0]][0]:
        continue
    n += 1
    m = shape[msg[0]][1]
    for k, pub in keys.items():
        if hashlib.blake2s(msg[:m], digest_size=16, key=k).digest() == msg[m:m + 16]:
            seen.add(pub)
print(len(seen) if sys.argv[2] else n)' "$TMP/vc.pcap" "${1:-}" "${2:-1}"
}
