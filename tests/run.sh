#!/usr/bin/env bash
# The one test runner. Runs, in order:
#   - C test programs build/tests/test_*   (print PASS:/FAIL:/SKIP: lines)
#   - shell suites tests/test_*.sh, tests/*/test_*.sh: every test_* function,
#     each in its own bash process with its own cleanup (tests/lib.sh)
#   - libFuzzer targets build/fuzz/fuzz_* for $FUZZ_TIME seconds each
# and ends with "N passed, N failed, N skipped". Arguments, if any, are
# substrings: only tests whose name contains one of them run.
#   PROGRAM:CHECK   runs C test programs matching PROGRAM and reports only
#                   their checks whose name contains CHECK (JITWG_CHECK)
#   --unit          only the C tests that need neither root nor network
#                   namespaces ($UNIT_TESTS), as any user: make check
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
export JITWG_ROOT=$ROOT JITWG_RUNID=$$
FUZZ_TIME=${FUZZ_TIME:-20}
TEST_TIMEOUT=${TEST_TIMEOUT:-600}
pass=0 fail=0 skip=0
failed_names=()

# wanted NAME: no arguments, or NAME contains one of the plain ones.
wanted() {
	local name=$1
	[ ${#FILTERS[@]} -eq 0 ] && [ ${#CHECKS[@]} -eq 0 ] && return 0
	local f
	for f in ${FILTERS[@]+"${FILTERS[@]}"}; do
		case "$name" in *"$f"*) return 0 ;; esac
	done
	return 1
}
UNIT_TESTS="test_daemon test_pipeline test_noise test_cache test_cookie"
unit=0
FILTERS=()
CHECKS=()   # PROGRAM:CHECK arguments
for a in "$@"; do
	case "$a" in
	--unit) unit=1 ;;
	*:*) CHECKS+=("$a") ;;
	*) FILTERS+=("$a") ;;
	esac
done

# The CHECK of the first PROGRAM:CHECK argument that names program $1.
check_filter() {
	local c
	for c in ${CHECKS[@]+"${CHECKS[@]}"}; do
		case "$1" in *"${c%%:*}"*) echo "${c#*:}"; return ;; esac
	done
}

if [ $unit -eq 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "tests need root (network namespaces, BPF, XDP); tests/run.sh --unit (make check) runs those that do not" >&2
		exit 1
	fi
	mount | grep -q ' /sys/fs/bpf type bpf' || mount -t bpf bpf /sys/fs/bpf
fi

# count OUTPUT_FILE STATUS NAME: tally the PASS/FAIL/SKIP lines a program
# printed; a program that failed without saying why counts as one failure.
count() {
	local out=$1 rc=$2 name=$3 p f s line
	p=$(grep -c '^PASS:' "$out")
	f=$(grep -c '^FAIL:' "$out")
	s=$(grep -c '^SKIP:' "$out")
	while read -r line; do failed_names+=("$line"); done < <(grep '^FAIL:' "$out")
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		echo "FAIL: $name exited with status $rc"
		failed_names+=("FAIL: $name exited with status $rc")
		f=1
	fi
	pass=$((pass + p)) fail=$((fail + f)) skip=$((skip + s))
}

tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT

for t in build/tests/test_*; do
	[ -x "$t" ] || continue
	wanted "$(basename "$t")" || [ -n "$(check_filter "$(basename "$t")")" ] || continue
	if [ $unit -eq 1 ]; then
		case " $UNIT_TESTS " in *" $(basename "$t") "*) ;; *) continue ;; esac
	fi
	echo "== $t"
	JITWG_CHECK=$(check_filter "$(basename "$t")") \
		timeout -k 5 "$TEST_TIMEOUT" "$t" 2>&1 | tee "$tmp"
	count "$tmp" "${PIPESTATUS[0]}" "$t"
done

for file in tests/test_*.sh tests/*/test_*.sh; do
	[ -f "$file" ] && [ $unit -eq 0 ] || continue
	fns=$(bash -c '. tests/lib.sh; . "$1"; declare -F' _ "$file" | awk '$3 ~ /^test_/ {print $3}')
	for fn in $fns; do
		wanted "$fn" || wanted "$file" || continue
		echo "== $file $fn"
		timeout -k 10 "$TEST_TIMEOUT" bash -c \
			'. tests/lib.sh; . "$1"; lib_run_test "$2"' _ "$file" "$fn" \
			>"$tmp" 2>&1
		rc=$?
		cat "$tmp"
		if [ "$rc" -eq 0 ]; then
			echo "PASS: $fn"
			pass=$((pass + 1))
		elif [ "$rc" -eq 77 ]; then
			why=$(grep '^SKIP-REASON:' "$tmp" | tail -1 | cut -d: -f2-)
			echo "SKIP: $fn:${why:- no reason given}"
			skip=$((skip + 1))
		else
			[ "$rc" -eq 124 ] && echo "  (timed out after ${TEST_TIMEOUT}s)"
			echo "FAIL: $fn (status $rc)"
			failed_names+=("FAIL: $fn ($file)")
			fail=$((fail + 1))
		fi
	done
done

for fz in build/fuzz/fuzz_*; do
	[ -x "$fz" ] && [ $unit -eq 0 ] || continue
	name=$(basename "$fz")
	wanted "$name" || continue
	echo "== $fz (${FUZZ_TIME}s)"
	corpus=build/corpus/$name
	mkdir -p "$corpus"
	seeds=tests/corpus/$name
	[ -d "$seeds" ] || seeds=
	if "$fz" -max_total_time="$FUZZ_TIME" -print_final_stats=0 \
		"$corpus" $seeds >"$tmp" 2>&1; then
		tail -1 "$tmp"
		echo "PASS: $name fuzzed ${FUZZ_TIME}s"
		pass=$((pass + 1))
	else
		tail -40 "$tmp"
		echo "FAIL: $name found a crash"
		failed_names+=("FAIL: $name")
		fail=$((fail + 1))
	fi
done

# Leftovers are a bug in the tests: report them.
[ $unit -eq 1 ] && left=0 ||
left=$(ip netns list 2>/dev/null | grep -c "jw$JITWG_RUNID" || true)
[ "$left" -eq 0 ] || echo "warning: $left network namespaces left behind"

if [ ${#failed_names[@]} -gt 0 ]; then
	echo
	echo "Failures:"
	printf '  %s\n' "${failed_names[@]}"
fi
echo
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
