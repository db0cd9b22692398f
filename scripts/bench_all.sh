#!/usr/bin/env bash
# make bench: every benchmark target that exists, one after another, each
# one's output in build/bench/TARGET.txt, then the report
# (scripts/bench_report.sh -> build/bench/report.md with its plots).
# BENCH_TARGETS="bench-xdp bench-churn" runs only those; every other BENCH_*
# knob goes to the benchmarks themselves (README, "Benchmarks").
set -u
cd "$(dirname "$0")/.."
OUT=$PWD/build/bench
TARGETS=${BENCH_TARGETS:-bench-xdp bench-noise bench-cache bench-api bench-wg bench-e2e bench-flood bench-churn}
mkdir -p "$OUT"
# Every figure in the report is from this run: earlier results go.
rm -f "$OUT"/*.png "$OUT"/report.md "$OUT"/status.txt "$OUT"/bench-*.txt \
	"$OUT"/e2e-* "$OUT"/churn*
export BENCH_OUT=$OUT
{
	echo "machine: $(nproc) CPUs, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), $(free -g | awk '/Mem:/ {print $2}') GiB, kernel $(uname -r)"
	echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
} >"$OUT/meta.txt"

set -- $TARGETS
total=$#
i=0
start=$(date +%s)
for t in "$@"; do
	i=$((i + 1))
	# A target that no mk/*.mk defines (yet) is listed as absent.
	if ! make -n "$t" >/dev/null 2>&1; then
		echo "[$i/$total] $t: no such target, skipped"
		echo "$t absent 0" >>"$OUT/status.txt"
		continue
	fi
	echo "[$i/$total] $t (started $(date -u +%H:%M:%S), $(($(date +%s) - start)) s into make bench; output in $OUT/$t.txt)"
	t0=$(date +%s)
	# The output goes to the file and, indented, to the terminal as progress.
	make -s --no-print-directory "$t" 2>&1 | tee "$OUT/$t.txt" | sed -u 's/^/    /'
	rc=${PIPESTATUS[0]}
	st=ok
	[ "$rc" -eq 0 ] || st="failed($rc)"
	echo "$t $st $(($(date +%s) - t0))" >>"$OUT/status.txt"
	echo "[$i/$total] $t: $st in $(($(date +%s) - t0)) s"
done
scripts/bench_report.sh "$OUT" "$OUT"
echo "make bench: $(($(date +%s) - start)) s; report: $OUT/report.md"
