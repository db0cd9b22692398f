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

# fc_fixture DIR: what bench_e2e.sh saves for make bench-fc-timeline
# (BENCH_SAVE_LOGS=DIR/fc BENCH_CAPTURE=1), made up: one floor client and one
# initiated back, their messages at known times. Between the second
# client's initiation and the gateway's, the gateway talks to the first
# (an initiation of its own and a keepalive, as wireguard-go does to peers
# still installed): all clients share one port, so only the handshake's
# indexes and mac1 tell which client a message is for.
fc_fixture() {
	$PY - "$1" <<'PY'
import base64, hashlib, struct, sys
d = sys.argv[1]
keys = [bytes([i]) * 32 for i in (1, 2)]
b64 = [base64.b64encode(k).decode() for k in keys]
with open(d + "/fc-keys.txt", "w") as f:
    f.write("%s 10.80.0.1/32 base\n%s 10.78.0.1/32 ib\n" % (b64[0], b64[1]))
def mac1(msg, pub, off):
    k = hashlib.blake2s(b"mac1----" + pub).digest()
    return msg[:off] + hashlib.blake2s(msg[:off], key=k, digest_size=16).digest() + msg[off + 16:]
def init(snd, pub=None):
    m = bytes([1, 0, 0, 0]) + struct.pack("<I", snd) + bytes(140)
    return mac1(m, pub, 116) if pub else m
def resp(snd, rcv, pub=None):
    m = bytes([2, 0, 0, 0]) + struct.pack("<II", snd, rcv) + bytes(80)
    return mac1(m, pub, 60) if pub else m
def data(rcv, n):
    return bytes([4, 0, 0, 0]) + struct.pack("<I", rcv) + bytes(n - 8)
T = 1000.0
pkts = [  # (seconds, from the gateway, message)
    (0.0000, 0, init(0x11)), (0.0007, 1, resp(0x21, 0x11, keys[0])),
    (0.0010, 0, data(0x21, 128)), (0.0013, 1, data(0x11, 128)),
    (0.1000, 0, init(0x12)),
    (0.1005, 1, init(0x31, keys[0])), (0.1010, 1, data(0x11, 32)),  # to the first
    (0.1030, 1, init(0x22, keys[1])), (0.1036, 0, resp(0x13, 0x22)),
    (0.1040, 1, data(0x13, 32)), (0.1042, 0, data(0x22, 128)), (0.1045, 1, data(0x13, 128)),
]
out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 256, 1)
for t, gw, m in pkts:
    udp = struct.pack("!HHHH", 51820 if gw else 42001, 42001 if gw else 51820, 8 + len(m), 0) + m
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, bytes(4), bytes(4))
    frame = bytes(12) + b"\x08\x00" + ip + udp
    sec = T + t
    out += struct.pack("<IIII", int(sec), int(round((sec - int(sec)) * 1e6)), len(frame), len(frame)) + frame
open(d + "/fc-ib.pcap", "wb").write(out)
with open(d + "/fc-ib.log", "w") as f:
    f.write("ts=2000-01-01T00:00:00.000Z level=info msg=provision peer=%s outcome=installed "
            "source=api endpoint=192.168.77.2:42001 queue_ms=0.300 identify_ms=0.100 auth_ms=1.000 "
            "fetch_ms=0.900 total_ms=3.600 install_ms=1.200 initiated=true allowed_ips=1 batch=1\n" % b64[1][:8])
with open(d + "/fc-cp.log", "w") as f:
    f.write("ts=946684800.000 method=GET path=/peers/ status=200 key=%s service_ms=0.400\n"
            % b64[1][:8].replace("+", "-").replace("/", "_"))
for k, v in (("base", "2.0"), ("ib", "5.0")):
    open("%s/fc-rtt-%s.txt" % (d, k), "w").write(v + "\n")
PY
}

# fc_p50 OUTPUT LABEL: the p50 column of the analyzer's row LABEL.
fc_p50() { grep -F "$2" <<<"$1" | head -1 | awk '{print $(NF - 2)}'; }

test_bench_fc_timeline() {
	local out
	tmp_dir
	PY=${PY:-python3}
	fc_fixture "$TMP" || fail "fixture"
	out=$($PY scripts/fc_timeline.py analyze "$TMP/fc" 2>&1) || fail "analyze failed: $out"
	grep -q 'complete runs: base 1, ib 1; 0 incomplete' <<<"$out" ||
		fail "clients not paired: $(head -1 <<<"$out")"
	# Floor: 0.7 to the response, 1.3 to the data reply.
	expect_eq "$(fc_p50 "$out" "  client's initiation -> gateway's response")" 0.700 "floor's response"
	expect_eq "$(grep -F 'wire: client' <<<"$out" | head -1 | awk '{print $(NF - 2)}')" 1.300 "floor's wire"
	# Initiated back: the gateway's initiation at 3.0 ms, not the stray
	# one to the first client at 0.5; its keepalive at 4.0, not the stray
	# at 1.0.
	expect_eq "$(fc_p50 "$out" "client's initiation -> gateway's initiation")" 3.000 "gateway's initiation"
	expect_eq "$(fc_p50 "$out" "client's response -> gateway's keepalive")" 0.400 "gateway's keepalive"
	expect_eq "$(fc_p50 "$out" "gateway's keepalive -> client's first data")" 0.200 "client's first data"
	# jitwgd's stages from the initiation: the set starts at 3.6 - 1.2.
	expect_eq "$(fc_p50 "$out" "= XDP -> the UAPI set's start")" 2.400 "the set's start"
	expect_eq "$(fc_p50 "$out" "the set's start -> its initiation")" 0.600 "wireguard-go's part"
	expect_eq "$(fc_p50 "$out" "fetch_ms beyond it")" 0.500 "the request beyond the server's time"
	expect_eq "$(fc_p50 "$out" "jitwgd's own work")" 2.000 "jitwgd's own work"
	expect_eq "$(fc_p50 "$out" "initiating back minus the floor")" 3.200 "the gap"
	grep -q 'the extra handshake leg .* 0.900$' <<<"$out" || fail "extra leg: $(grep 'extra' <<<"$out")"
}

# The cache benchmark at a small size runs through (a fresh cache refuses
# timestamps older than its creation: with 1970's it stopped after its first
# line, and `make bench` lost the section). Its figures are not judged here.
test_bench_cache_runs() {
	local out
	[ -x "$BUILD/bench_cache" ] || skip "build/bench_cache not built"
	out=$(BENCH_CACHE_N=1000 "$BUILD/bench_cache" 2>&1) || fail "bench_cache failed: $out"
	echo "$out"
	echo "$out" | grep -q "ts_accept, CACHE_SYNC_FULL" || fail "no timestamp row"
	echo "$out" | grep -q "full cache: 1000 entries" || fail "no full-cache row"
}
