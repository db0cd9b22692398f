# Shared helpers for shell test suites. Each test_* function runs in its own
# bash process (tests/run.sh); everything it registers with on_exit runs when
# that process ends, however it ends.
#
#   ns NAME            a namespace name unique to this run: jw<pid>NAME
#   netns_add NAME     create that namespace; deleted (with its processes) on exit
#   veth_pair ...      two such namespaces joined by a veth pair (below)
#   tmp_dir            a private directory in TMP; removed on exit
#   bg CMD...          start CMD in the background; killed on exit; sets BG_PID
#   on_exit CMD        run CMD (a string) on exit, last registered first
#   check DESC CMD...  run CMD; on failure print DESC and fail the test
#   expect_eq A B DESC fail the test unless A = B
#   fail MSG           fail the test now
#   skip REASON        skip the test (exit 77) with a reason the runner prints

ROOT=${JITWG_ROOT:-$(pwd)}
RUNID=${JITWG_RUNID:-$$}
BUILD=$ROOT/build
_cleanups=()

on_exit() { _cleanups=("$1" "${_cleanups[@]}"); }

lib_cleanup() {
	local c
	for c in "${_cleanups[@]}"; do eval "$c" >/dev/null 2>&1 || true; done
	_cleanups=()
}

lib_run_test() {
	trap lib_cleanup EXIT
	trap 'exit 143' TERM INT
	"$1"
}

ns() { echo "jw${RUNID}$1"; }

netns_add() {
	local n
	n=$(ns "$1")
	ip netns add "$n" || fail "cannot create namespace $n"
	on_exit "ip netns pids $n | xargs -r kill -9; sleep 0.1; ip netns del $n"
	ip -n "$n" link set lo up
}

# veth_pair A DEV_A ADDR_A B DEV_B ADDR_B [ADDR6_A ADDR6_B]: namespaces
# $(ns A) and $(ns B) (netns_add), a veth pair between them with these
# addresses (IPv6 ones without DAD), both ends up:
#
#   ns A: DEV_A ADDR_A [ADDR6_A]  <-- veth -->  ns B: DEV_B ADDR_B [ADDR6_B]
veth_pair() {
	local a b
	netns_add "$1"
	netns_add "$4"
	a=$(ns "$1") b=$(ns "$4")
	check "veth" ip link add "$2" netns "$a" type veth \
		peer name "$5" netns "$b"
	ip -n "$a" addr add "$3" dev "$2"
	ip -n "$b" addr add "$6" dev "$5"
	if [ $# -ge 8 ]; then
		ip -n "$a" addr add "$7" dev "$2" nodad
		ip -n "$b" addr add "$8" dev "$5" nodad
	fi
	ip -n "$a" link set "$2" up
	ip -n "$b" link set "$5" up
}

# tmp_dir: TMP, a fresh directory only this test can read (umask 077 for
# everything it writes); removed on exit.
tmp_dir() {
	umask 077
	TMP=$(mktemp -d /tmp/jitwg.XXXXXX)
	on_exit "rm -rf $TMP"
}

# wggo NS DEV: wireguard-go for DEV inside NS, in the foreground (so it dies
# with the test), its log in $TMP/wggo-DEV.log; waits for its UAPI socket.
wggo() {
	local n=$1 dev=$2
	ip netns exec "$n" wireguard-go -f "$dev" >"$TMP/wggo-$dev.log" 2>&1 &
	on_exit "kill $! 2>/dev/null; rm -f /var/run/wireguard/$dev.sock"
	wait_for 5 test -S "/var/run/wireguard/$dev.sock" ||
		fail "wireguard-go $dev did not start: $(cat "$TMP/wggo-$dev.log")"
}

bg() {
	"$@" &
	BG_PID=$!
	on_exit "kill $BG_PID; sleep 0.2; kill -9 $BG_PID"
}

fail() {
	echo "  failed: $*" >&2
	exit 1
}

skip() {
	echo "SKIP-REASON: $*"
	exit 77
}

check() {
	local desc=$1
	shift
	"$@" || fail "$desc (command: $*)"
}

expect_eq() {
	[ "$1" = "$2" ] || fail "$3: expected '$2', got '$1'"
}

# wait_for TIMEOUT_S CMD...: poll CMD every 50 ms until it succeeds.
wait_for() {
	local t=$1 i
	shift
	for ((i = 0; i < t * 20; i++)); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.05
	done
	return 1
}

# udp_recorder NS ADDR PORT FILE: in namespace NS, record every UDP datagram
# to ADDR:PORT as one hex line in FILE; returns once it listens. ADDR "::"
# takes IPv4 and IPv6.
udp_recorder() {
	local n=$1 addr=$2 port=$3 file=$4
	ip netns exec "$n" python3 -c '
import socket, sys
addr, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET,
                  socket.SOCK_DGRAM)
if ":" in addr:
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind((addr, port))
out = open(sys.argv[3], "a")
while True:
    d, a = s.recvfrom(2048)
    out.write(d.hex() + "\n"); out.flush()
' "$addr" "$port" "$file" &
	on_exit "kill $!"
	wait_for 20 eval "ip netns exec $n ss -lun | grep -q ':$port '" ||
		fail "UDP recorder on $addr:$port did not start"
}

# bpftool_deploy PIN: the README's bpftool deployment of build/jitwg.bpf.o
# on veth vg in namespace $G, programs and maps pinned under PIN; detached
# and unpinned on exit.
bpftool_deploy() {
	local pin=$1
	mkdir -p "$pin"
	on_exit "nsenter --net=/run/netns/$G bpftool net detach xdp dev vg; rm -rf $pin"
	bpftool prog loadall "$BUILD/jitwg.bpf.o" "$pin/progs" pinmaps "$pin/maps" ||
		fail "bpftool prog loadall"
	# nsenter, not "ip netns exec": the latter remounts /sys and hides bpffs.
	nsenter --net=/run/netns/"$G" bpftool net attach xdpdrv pinned "$pin/progs/jitwg_xdp" dev vg ||
		fail "bpftool net attach"
}

# The Noise interop checks against a real WireGuard, shared by the
# wireguard-go lane (tests/test_noise.sh) and the kernel lane
# (tests/vm/guest-noise.sh). Both need CTL (jitwgctl) and TMP.
#
# noise_decode_client MAKE_DEV CLIENT_NS DEV RECV_NS WAIT_S PAST_S: a real
# WireGuard client DEV in CLIENT_NS (MAKE_DEV NS DEV creates the device),
# key $TMP/client.key, aimed at the responder key $TMP/responder.key at
# 192.0.2.2:51820, where a UDP recorder in RECV_NS takes what arrives.
# `jitwgctl decode` of its initiation (within WAIT_S) must yield the client's
# public key and a timestamp at most 5 s ahead of now and PAST_S behind.
# Sets NOISE_MSG (the initiation, hex, also in $TMP/msg.hex), NOISE_PUB (the
# decoded initiator key) and NOISE_TS (the TAI64N timestamp, 24 hex digits).
noise_decode_client() {
	local make_dev=$1 cn=$2 dev=$3 rn=$4 wait_s=$5 past_s=$6 out ts n now
	wg genkey >"$TMP/client.key"
	wg genkey >"$TMP/responder.key"

	# Each datagram to :51820 as one hex line.
	udp_recorder "$rn" 192.0.2.2 51820 "$TMP/received"

	"$make_dev" "$cn" "$dev"
	check "wg set on the client" ip netns exec "$cn" wg set "$dev" \
		private-key "$TMP/client.key" listen-port 41414 \
		peer "$(wg pubkey <"$TMP/responder.key")" \
		endpoint 192.0.2.2:51820 allowed-ips 198.51.100.1/32
	ip -n "$cn" addr add 198.51.100.2/32 dev "$dev"
	ip -n "$cn" link set "$dev" up
	ip -n "$cn" route add 198.51.100.1/32 dev "$dev"
	# Traffic for the peer starts a handshake; nobody answers, so the client
	# retries every 5 s: one message is enough.
	ip netns exec "$cn" ping -c 1 -W 1 198.51.100.1 >/dev/null 2>&1
	# (it retries by itself after 5 s if its socket was not bound yet)
	wait_for "$wait_s" test -s "$TMP/received" ||
		fail "no initiation captured in $wait_s s"

	NOISE_MSG=$(head -1 "$TMP/received")
	expect_eq "${#NOISE_MSG}" 296 "captured datagram length (hex digits)"
	echo "$NOISE_MSG" >"$TMP/msg.hex"
	out=$("$CTL" decode --private-key-file "$TMP/responder.key" "$TMP/msg.hex") ||
		fail "jitwgctl decode rejected the initiation of $dev: $out"
	echo "$out" | sed 's/^/  /'
	NOISE_PUB=$(echo "$out" | sed -n 's/^initiator: //p')
	expect_eq "$NOISE_PUB" "$(wg pubkey <"$TMP/client.key")" "decoded initiator key"

	# TAI64N seconds: 2^62 + 10 + Unix time.
	NOISE_TS=$(echo "$out" | sed -n 's/^timestamp: \([0-9a-f]\{24\}\) .*/\1/p')
	[ -n "$NOISE_TS" ] || fail "no timestamp printed"
	ts=${NOISE_TS:0:16}
	now=$(date +%s)
	n=$((0x$ts - 0x400000000000000a))
	[ $((n - now)) -le 5 ] && [ $((now - n)) -le "$past_s" ] ||
		fail "timestamp $n is not within seconds of now ($now)"
}

# noise_gateway_up MAKE_DEV GW_NS DEV: a real WireGuard gateway DEV in GW_NS
# (MAKE_DEV NS DEV creates the device), key $TMP/gw.key, on port 51820, up,
# with $TMP/known.key as its only peer; $TMP/stranger.key is a key it does
# not know. Sets GW_PUB.
noise_gateway_up() {
	local make_dev=$1 gn=$2 dev=$3
	wg genkey >"$TMP/gw.key"
	wg genkey >"$TMP/known.key"
	wg genkey >"$TMP/stranger.key"
	GW_PUB=$(wg pubkey <"$TMP/gw.key")
	"$make_dev" "$gn" "$dev"
	check "wg set on the gateway" ip netns exec "$gn" wg set "$dev" \
		private-key "$TMP/gw.key" listen-port 51820 \
		peer "$(wg pubkey <"$TMP/known.key")" allowed-ips 198.51.100.9/32
	ip -n "$gn" link set "$dev" up
}

# noise_send FROM_NS GW_PUB GW_ADDR KEYFILE TIMEOUT_MS [ARGS...]: one
# initiation (`jitwgctl initiate --send`, ARGS added) from FROM_NS to the
# gateway GW_PUB at GW_ADDR, waiting TIMEOUT_MS for an answer; sets out
# and rc.
noise_send() {
	local from=$1 gw=$2 addr=$3 key=$4 t=$5
	shift 5
	out=$(ip netns exec "$from" "$CTL" initiate --private-key-file "$key" \
		--peer "$gw" --send "$addr" --timeout-ms "$t" "$@" 2>&1)
	rc=$?
	echo "$out" | sed "s|^|  [$*] |"
}

# noise_gateway_checks FROM_NS GW_PUB GW_ADDR ANSWER_MS MIN_WAIT_MS
# [DEFECT...]: initiations from FROM_NS to a real WireGuard gateway (GW_PUB
# at GW_ADDR; noise_gateway_up). The known key gets a
# 92-byte type-2 response within ANSWER_MS; a key the gateway does not know
# ($TMP/stranger.key), a forged claim of the known key and a known-key
# initiation with each DEFECT (jitwgctl --defect) get silence; then the
# known key is answered again. Leaves that last answer in out.
noise_gateway_checks() {
	local to=("$1" "$2" "$3") answer_ms=$4 min_ms=$5 ms wait d
	shift 5
	# The gateway answers the key it knows (also proves it is up, so the
	# silence below means rejection)...
	noise_send "${to[@]}" "$TMP/known.key" "$answer_ms"
	expect_eq "$rc" 0 "the known key gets a handshake response"
	echo "$out" | grep -q '^response: type 2, 92 bytes' ||
		fail "not a 92-byte type-2 response: $out"
	# ...and silence counts after five times the time an answer took.
	ms=$(echo "$out" | sed -n 's/^response: .*after \([0-9]*\) ms$/\1/p')
	wait=$((5 * ${ms:-1000}))
	[ "$wait" -ge "$min_ms" ] || wait=$min_ms

	# ...and drops each of these without a word.
	noise_send "${to[@]}" "$TMP/stranger.key" "$wait"
	expect_eq "$rc" 1 "a key the gateway does not know gets no response"
	noise_send "${to[@]}" "$TMP/stranger.key" "$wait" \
		--claim "$(wg pubkey <"$TMP/known.key")"
	expect_eq "$rc" 1 "a forged claim of the known key gets no response"
	for d in "$@"; do
		noise_send "${to[@]}" "$TMP/known.key" "$wait" --defect "$d"
		expect_eq "$rc" 1 "a message with a bad $d gets no response"
	done

	# Still answering: the silence was rejection, not a dead gateway.
	noise_send "${to[@]}" "$TMP/known.key" "$answer_ms"
	expect_eq "$rc" 0 "the known key still gets a handshake response"
}

# vm_cases SCRIPT CASE...: boot the kernel VM lane (tests/vm), run the guest
# case file SCRIPT there, and fail unless every CASE printed "PASS: vm CASE".
# A VM that cannot boot fails the test (status 125), never skips it.
vm_cases() {
	local script=$1 out rc c
	shift
	out=$(mktemp)
	on_exit "rm -f $out"
	VM_QUIET=1 "$ROOT/tests/vm/run-in-vm.sh" "$script" >"$out" 2>&1
	rc=$?
	cat "$out"
	[ "$rc" -ne 125 ] || fail "the VM did not boot or did not report (status 125)"
	grep -q '^FAIL:' "$out" && fail "cases failed in the VM"
	[ "$rc" -eq 0 ] || fail "$script exited with $rc"
	for c in "$@"; do
		grep -q "^PASS: vm $c\$" "$out" || fail "case $c did not pass"
	done
}
