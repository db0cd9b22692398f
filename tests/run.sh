#!/usr/bin/env bash
# The one test runner. Runs, in order:
#   - C test programs build/tests/test_*   (print PASS:/FAIL:/SKIP: lines)
#   - shell suites tests/test_*.sh, tests/*/test_*.sh: every test_* function,
#     each in its own bash process with its own cleanup (tests/lib.sh)
#   - libFuzzer targets build/fuzz/fuzz_* for $FUZZ_TIME seconds each
# and ends with "N passed, N failed, N skipped". Arguments, if any, are
# substrings: only tests whose name contains one of them run.
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
export JITWG_ROOT=$ROOT JITWG_RUNID=$$
FUZZ_TIME=${FUZZ_TIME:-20}
TEST_TIMEOUT=${TEST_TIMEOUT:-600}
pass=0 fail=0 skip=0
failed_names=()

wanted() {
	local name=$1
	[ ${#FILTERS[@]} -eq 0 ] && return 0
	local f
	for f in "${FILTERS[@]}"; do
		case "$name" in *"$f"*) return 0 ;; esac
	done
	return 1
}
FILTERS=("$@")

if [ "$(id -u)" -ne 0 ]; then
	echo "tests need root (network namespaces, BPF, XDP)" >&2
	exit 1
fi
mount | grep -q ' /sys/fs/bpf type bpf' || mount -t bpf bpf /sys/fs/bpf

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
	wanted "$(basename "$t")" || continue
	echo "== $t"
	timeout -k 5 "$TEST_TIMEOUT" "$t" 2>&1 | tee "$tmp"
	count "$tmp" "${PIPESTATUS[0]}" "$t"
done

for file in tests/test_*.sh tests/*/test_*.sh; do
	[ -f "$file" ] || continue
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
	[ -x "$fz" ] || continue
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
