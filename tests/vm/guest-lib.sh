# Sourced by the guest case files (tests/vm/guest-*.sh) when run inside the
# VM: guest_main SCRIPT CASE... runs each function case_CASE of SCRIPT in its
# own bash process (tests/lib.sh, cleanup on exit) and prints
# "PASS: vm CASE" or "FAIL: vm CASE"; exits non-zero if any failed.
guest_main() {
	local script=$1 c failed=0
	shift
	[ -e /sys/module/wireguard ] || {
		echo "FAIL: kernel WireGuard: the wireguard module is not loaded"
		exit 1
	}
	for c in "$@"; do
		echo "== vm: $c ($(uname -r))"
		if bash -c '. tests/lib.sh; . "$1"; lib_run_test "case_$2"' _ \
			"$script" "$c"; then
			echo "PASS: vm $c"
		else
			echo "FAIL: vm $c"
			failed=1
		fi
	done
	exit $failed
}
