#!/usr/bin/env bash
# scripts/bench_report.sh [IN_DIR [OUT_DIR]]: the benchmark report. Reads
# what `make bench` (scripts/bench_all.sh) left in IN_DIR (build/bench):
#   meta.txt                   "machine: …" and "date: …" lines
#   status.txt                 "target status seconds" per benchmark run
#   bench-*.txt                each benchmark's printed output (its tables)
#   e2e-first-contact-*.txt    first-contact samples in ms (bench_e2e.sh)
#   e2e-burst-*.txt            install times from the burst's send start, s
#   e2e-burst-addconf.txt      "peers seconds" of one wg addconf
#   e2e-startup.txt            "entries run startup_ms external_ms rss anon"
#   churn-R.dat, churn-R-first-contact.txt, churn.md, churn-params.txt
# and writes OUT_DIR/report.md with PNG plots (gnuplot) beside it. What is
# missing is said so in the report, not invented. Every figure names the
# machine, the date and the floor it is compared with.
set -u
cd "$(dirname "$0")/.."
IN=${1:-build/bench}
OUT=${2:-$IN}
mkdir -p "$OUT"
command -v gnuplot >/dev/null || { echo "bench-report: gnuplot missing (scripts/setup.sh installs gnuplot-nox)" >&2; exit 1; }
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

meta() { sed -n "s/^$1: //p" "$IN/meta.txt" 2>/dev/null | head -1; }
MACHINE=$(meta machine)
[ -n "$MACHINE" ] || MACHINE="$(nproc) CPUs, kernel $(uname -r)"
DATE=$(meta date)
[ -n "$DATE" ] || DATE=$(date -u -r "$IN" '+%Y-%m-%d %H:%M UTC')
STAMP="$MACHINE, $DATE"
TERM_PNG="pngcairo size 900,520 font 'sans,10'"
gnuplot -e "set terminal pngcairo" 2>/dev/null </dev/null || TERM_PNG="png size 900,520"

R=$OUT/report.md
FIGS=0
# plot NAME TITLE GNUPLOT_BODY: OUT/NAME.png, and its line in the report.
plot() {
	local name=$1 title=$2 body=$3
	if gnuplot 2>"$WORK/gp.err" <<EOF
set terminal $TERM_PNG
set output "$OUT/$name.png"
set termoption noenhanced
set title "$title\n$STAMP"
set grid
set key left top
$body
EOF
	then
		echo "![$title]($name.png)" >>"$R"
		echo >>"$R"
		FIGS=$((FIGS + 1))
	else
		echo "(plot $name failed: $(head -3 "$WORK/gp.err"))" >>"$R"
	fi
}
# cdf IN OUT: "value fraction" lines, sorted.
cdf() { sort -g "$1" | awk '{v[NR] = $1} END {for (i = 1; i <= NR; i++) print v[i], i / NR}' >"$2"; }
# q FILE P: the P-th percentile (nearest rank).
q() { sort -g "$1" | awk -v p="$2" '{a[NR]=$1} END {if (!NR) {print "-"; exit} i=int(p/100*NR+0.999999); if (i<1) i=1; printf "%.1f", a[i]}'; }
verbatim() {
	echo '```' >>"$R"
	cat "$1" >>"$R"
	echo '```' >>"$R"
	echo >>"$R"
}
missing() { echo "_Not in this run: $1._" >>"$R"; echo >>"$R"; }

{
	echo "# jitwg benchmark report"
	echo
	echo "Machine: $MACHINE. Date: $DATE. Regenerate with \`make bench\` (the"
	echo "report alone, from the files in \`$IN\`: \`scripts/bench_report.sh\`)."
	echo "Every figure is measured on this machine in this run, beside the floor it names."
	echo
} >"$R"

if [ -s "$IN/status.txt" ]; then
	{
		echo "| benchmark | result | seconds |"
		echo "|---|---|---|"
		awk '{printf "| %s | %s | %s |\n", $1, $2, $3}' "$IN/status.txt"
		echo
	} >>"$R"
fi

# ---- first contact ----------------------------------------------------------
echo "## First contact" >>"$R"
echo >>"$R"
series=() table=()
for ph in base ib kc cons nib; do
	f=$IN/e2e-first-contact-$ph.txt
	[ -s "$f" ] || continue
	case $ph in
	base) t="floor: peer already on the gateway" ;;
	ib) t="jitwgd (initiating back)" ;;
	kc) t="the floor's clients under jitwgd --consume" ;;
	cons) t="jitwgd --consume" ;;
	nib) t="jitwgd --no-initiate-back" ;;
	esac
	cdf "$f" "$WORK/fc-$ph"
	series+=("'$WORK/fc-$ph' using 1:2 with steps lw 2 title '$t'")
	table+=("| $t | $(wc -l <"$f") | $(q "$f" 50) | $(q "$f" 90) | $(q "$f" 99) |")
done
if [ ${#series[@]} -gt 0 ]; then
	echo "The client's first ping (it waits in the client's WireGuard until the handshake is done), clients one after another (\`make bench-e2e\`, section 1)." >>"$R"
	echo >>"$R"
	{
		echo "| clients | n | p50 ms | p90 ms | p99 ms |"
		echo "|---|---|---|---|---|"
		printf '%s\n' "${table[@]}"
		echo
	} >>"$R"
	plot first-contact "First contact: client's first ping, CDF (floor: peer preinstalled)" "
set xlabel 'ms'; set ylabel 'fraction of clients'; set logscale x; set yrange [0:1]
set key right center opaque box
plot $(IFS=,; echo "${series[*]}")"
else
	missing "bench-e2e first-contact samples"
fi

# ---- burst ------------------------------------------------------------------
echo "## Burst: installs over time" >>"$R"
echo >>"$R"
series=() table=()
for f in "$IN"/e2e-burst-*.txt; do
	[ -s "$f" ] || continue
	mode=$(basename "$f" .txt)
	mode=${mode#e2e-burst-}
	[ "$mode" = addconf ] && continue
	sort -g "$f" | awk '{print $1, NR}' >"$WORK/burst-$mode"
	series+=("'$WORK/burst-$mode' using 1:2 with lines lw 2 title 'jitwgd $mode'")
	table+=("| jitwgd $mode | $(wc -l <"$f") | $(sort -g "$f" | head -1) | $(sort -g "$f" | tail -1) |")
done
if [ -s "$IN/e2e-burst-addconf.txt" ]; then
	read -r n s <"$IN/e2e-burst-addconf.txt"
	# One configuration call: only its total is known; drawn at its mean rate.
	printf '0 0\n%s %s\n' "$s" "$n" >"$WORK/burst-addconf"
	series+=("'$WORK/burst-addconf' using 1:2 with lines lw 2 dt 2 title 'floor: one wg addconf (total time, mean rate)'")
	table+=("| floor: one wg addconf | $n | 0 | $s |")
fi
if [ ${#series[@]} -gt 0 ]; then
	echo "Synthetic clients' initiations sent within one second, keys in the cache (\`make bench-e2e\`, section 2). Times from the send start, estimated as the load generator's end minus its sending time (a few installs can show before 0). \`wg addconf\` is one call: only its total time is known." >>"$R"
	echo >>"$R"
	{
		echo "| installs by | peers | first s | last s |"
		echo "|---|---|---|---|"
		printf '%s\n' "${table[@]}"
		echo
	} >>"$R"
	plot burst "Burst: peers installed over time (floor: one wg addconf)" "
set xlabel 's from the send start (estimated: load generator end - its send time)'; set ylabel 'peers installed'
set key right bottom opaque box
plot $(IFS=,; echo "${series[*]}")"
else
	missing "bench-e2e burst samples"
fi

# ---- churn ------------------------------------------------------------------
echo "## Churn: device peers vs active peers" >>"$R"
echo >>"$R"
found=0
if [ -s "$IN/churn-params.txt" ]; then
	verbatim "$IN/churn-params.txt"
fi
[ -s "$IN/churn.md" ] && { cat "$IN/churn.md" >>"$R"; echo >>"$R"; }
fcs=()
for f in "$IN"/churn-*.dat; do
	[ -s "$f" ] || continue
	found=1
	reg=$(basename "$f" .dat)
	reg=${reg#churn-}
	ymax=$(awk '!/^#/ && $2 > m {m = $2} END {print (m ? m : 1) * 4}' "$f")
	plot "churn-$reg" "Churn, $reg registered: peers over time (floor: a push control plane holds all $reg)" "
set xlabel 's (one compressed day)'; set ylabel 'peers'; set logscale y; set yrange [1:$ymax]
set key right bottom
plot '$f' using 1:2 with lines lw 2 dt 2 title 'registered (push model)', \
     '' using 1:3 with lines lw 2 title 'on the device (jitwgd)', \
     '' using 1:4 with lines lw 1 title 'active (handshake or data within the idle timeout)', \
     '' using 1:5 with lines lw 1 dt 3 title 'present (in a session)'"
	# The same samples as a ratio: the log scale above hides the gap.
	plot "churn-$reg-ratio" "Churn, $reg registered: device peers / active peers (target <= 1.1 after warm-up)" "
set xlabel 's (one compressed day)'; set ylabel 'device / active'; set yrange [0.8:1.3]
set key right top opaque box
plot '$f' using 1:(\$4 > 0 ? \$3 / \$4 : 1/0) with lines lw 1 title 'device / active', \
     1.1 with lines lw 2 dt 2 title 'target 1.1'"
	if [ -s "$IN/churn-$reg-first-contact.txt" ]; then
		cdf "$IN/churn-$reg-first-contact.txt" "$WORK/cfc-$reg"
		fcs+=("'$WORK/cfc-$reg' using 1:2 with steps lw 2 title '$reg registered'")
	fi
done
if [ ${#fcs[@]} -gt 0 ]; then
	plot churn-first-contact "Churn: first contact vs registered population, CDF (floor: the smallest population)" "
set xlabel 'ms (first initiation to response)'; set ylabel 'fraction of sessions'; set logscale x; set yrange [0:1]
set key right center opaque box
plot $(IFS=,; echo "${fcs[*]}")"
fi
[ $found = 1 ] || missing "bench-churn data"

# ---- start-up and memory ----------------------------------------------------
echo "## Start-up time and memory vs cache size" >>"$R"
echo >>"$R"
if [ -s "$IN/e2e-startup.txt" ]; then
	grep -v '^#' "$IN/e2e-startup.txt" >"$WORK/startup"
	{
		echo "| cache entries | run | start-up ms | RSS MiB | anon MiB |"
		echo "|---|---|---|---|---|"
		awk '{printf "| %s | %s | %.1f | %.1f | %.1f |\n", $1, $2, $3, $5, $6}' "$WORK/startup"
		echo
	} >>"$R"
	xmax=$(awk 'BEGIN {m = 1} $1 > m {m = $1} END {print m * 4}' "$WORK/startup")
	plot startup "jitwgd start-up and memory by cache size (floor: empty cache)" "
set xlabel 'cache entries'; set ylabel 'start-up ms'; set y2label 'RSS MiB'
set y2tics; set ytics nomirror; set logscale x; set xrange [0.5:$xmax]; set yrange [0:*]; set y2range [0:*]
set key right bottom
plot '$WORK/startup' using (\$1 < 1 ? 1 : \$1):3 with points pt 7 ps 1.5 title 'start-up ms (0 entries drawn at 1)', \
     '' using (\$1 < 1 ? 1 : \$1):5 axes x1y2 with points pt 5 ps 1.5 title 'RSS MiB'"
else
	missing "bench-e2e start-up samples"
fi

# ---- XDP ----------------------------------------------------------------------
echo "## XDP cost per traffic kind" >>"$R"
echo >>"$R"
if [ -s "$IN/bench-xdp.txt" ]; then
	# Case names are the first 28 columns; then ns/pkt and the floor.
	awk 'length($0) > 40 { name = substr($0, 1, 28); rest = substr($0, 29); split(rest, f, " ");
		if (f[1] ~ /^[0-9.]+$/ && f[2] ~ /^[0-9.]+$/) { gsub(/ +$/, "", name); printf "\"%s\" %s %s\n", name, f[1], f[2] } }' \
		"$IN/bench-xdp.txt" >"$WORK/xdp"
	if [ -s "$WORK/xdp" ]; then
		plot xdp "XDP ns per packet by traffic kind (floor: a bare XDP_PASS program)" "
set style data histograms; set style histogram clustered gap 1; set style fill solid 0.8 border -1
set ylabel 'ns per packet'; set xtics rotate by -30 noenhanced; set yrange [0:*]; set key left top
set bmargin 7
plot '$WORK/xdp' using 2:xtic(1) title 'jitwg program', '' using 3 title 'floor: bare XDP_PASS'"
	else
		echo "_bench-xdp printed no rows to plot._" >>"$R"
		echo >>"$R"
	fi
else
	missing "bench-xdp"
fi

# ---- every benchmark's own tables ---------------------------------------------
echo "## Each benchmark's output" >>"$R"
echo >>"$R"
any=0
for f in "$IN"/bench-*.txt; do
	[ -s "$f" ] || continue
	any=1
	echo "### $(basename "$f" .txt)" >>"$R"
	echo >>"$R"
	verbatim "$f"
done
[ $any = 1 ] || missing "any benchmark output"
echo "bench-report: $R with $FIGS plots"
