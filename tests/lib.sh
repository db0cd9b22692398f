# Shared helpers for shell test suites. Each test_* function runs in its own
# bash process (tests/run.sh); everything it registers with on_exit runs when
# that process ends, however it ends.
#
#   ns NAME            a namespace name unique to this run: jw<pid>NAME
#   netns_add NAME     create that namespace; deleted (with its processes) on exit
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
