# The benchmark report generator (scripts/bench_report.sh) on a fixture:
# small made-up inputs of every kind `make bench` leaves in build/bench. No
# benchmark runs here and nothing is timed: the test checks that a report
# comes out with every plot, each a real PNG the report links to, and that a
# missing input is reported as missing.

# bench_fixture DIR: made-up inputs, labelled as such.
bench_fixture() {
	local d=$1 i
	mkdir -p "$d"
	printf 'machine: fixture (not a measurement)\ndate: 2000-01-01 00:00 UTC\n' >"$d/meta.txt"
	printf 'bench-xdp ok 1\nbench-e2e ok 2\nbench-churn ok 3\nbench-flood absent 0\n' >"$d/status.txt"
	{
		echo "XDP per-packet cost, BPF_PROG_TEST_RUN, 10 packets x 3 rounds (median)"
		echo
		printf '%-28s %10s %10s %10s %12s  %s\n' case ns/pkt floor "over floor" "target over" ""
		printf '%-28s %10.1f %10.1f %10.1f %12.0f  %s\n' "non-UDP" 11 10 1 5 meets
		printf '%-28s %10.1f %10.1f %10.1f %12.0f  %s\n' "initiation to ring" 90 10 80 150 meets
	} >"$d/bench-xdp.txt"
	echo "fixture e2e output" >"$d/bench-e2e.txt"
	for i in $(seq 1 20); do echo "$((2 + i % 3)).$i"; done >"$d/e2e-first-contact-base.txt"
	for i in $(seq 1 20); do echo "$((6 + i % 5)).$i"; done >"$d/e2e-first-contact-ib.txt"
	for i in $(seq 1 100); do echo "0.$((i + 100))"; done >"$d/e2e-burst-initiate.txt"
	echo "100 0.5" >"$d/e2e-burst-addconf.txt"
	printf '# entries run startup_ms external_ms rss_mib anon_mib\n0 1 20 25 10 2\n1000 1 22 27 12 3\n' >"$d/e2e-startup.txt"
	echo "# t_s registered device active present" >"$d/churn-1000.dat"
	for i in $(seq 0 60); do echo "$i 1000 $((i + 5)) $((i + 5)) $((i + 3))"; done >>"$d/churn-1000.dat"
	for i in $(seq 1 30); do echo "5.$i"; done >"$d/churn-1000-first-contact.txt"
	printf '| registered |\n|---|\n| 1000 |\n' >"$d/churn.md"
	echo "fixture parameters" >"$d/churn-params.txt"
}

# png_ok FILE: a PNG signature and a non-trivial size.
png_ok() {
	[ "$(head -c 8 "$1" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] &&
		[ "$(stat -c %s "$1")" -gt 2000 ]
}

test_bench_report() {
	local out png n
	command -v gnuplot >/dev/null || skip "gnuplot not installed (scripts/setup.sh)"
	tmp_dir
	bench_fixture "$TMP/in"
	out=$(scripts/bench_report.sh "$TMP/in" "$TMP/out" 2>&1) || fail "report failed: $out"
	echo "  $out"
	[ -s "$TMP/out/report.md" ] || fail "no report.md"
	# One plot per kind of input: first contact, burst, churn (counts and
	# ratio), churn first contact, start-up, XDP.
	for png in first-contact burst churn-1000 churn-1000-ratio churn-first-contact startup xdp; do
		grep -qF "]($png.png)" "$TMP/out/report.md" || fail "report does not link $png.png"
		png_ok "$TMP/out/$png.png" || fail "$png.png is not a PNG plot"
	done
	n=$(grep -c '^!\[' "$TMP/out/report.md")
	expect_eq "$n" 7 "plots in the report"
	grep -q 'Machine: fixture (not a measurement). Date: 2000-01-01' "$TMP/out/report.md" ||
		fail "the machine and date are not in the report"
	grep -q '^### bench-xdp' "$TMP/out/report.md" || fail "bench-xdp's own table missing"
	grep -q '| bench-flood | absent |' "$TMP/out/report.md" || fail "status table missing"

	# Without the churn data the report says so and has no churn plot.
	rm "$TMP/in"/churn-*
	scripts/bench_report.sh "$TMP/in" "$TMP/out2" >/dev/null 2>&1 || fail "report without churn failed"
	grep -q 'Not in this run: bench-churn data' "$TMP/out2/report.md" ||
		fail "missing churn data not reported"
	expect_eq "$(grep -c '^!\[' "$TMP/out2/report.md")" 4 "plots without churn"
}
