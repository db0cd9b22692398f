# A real Prometheus server (Debian package prometheus) for tests: started in
# a test's namespace, scraping targets there every second, queried through
# its HTTP API. Needs tmp_dir (TMP) from tests/lib.sh.
#
#   prom_start NS TARGET...     start it in NS (listens on 127.0.0.1:9090 of
#                               NS), scraping each TARGET (ADDR:PORT), job
#                               "jitwg"; stopped on exit; waits until ready
#   prom_query EXPR             the instant query's JSON result (PROM_NS)
#   prom_value EXPR             the first sample's value, or nothing
#   prom_series EXPR            how many series the query returns
#   prom_wait_scrapes N         until every target was scraped N times
#   prom_targets_healthy        every target up, with no scrape error
#   prom_wait_value S EXPR V    until EXPR's value is V, for at most S seconds

PROM_PORT=9090

prom_start() {
	local n=$1 t targets=""
	shift
	command -v prometheus >/dev/null || skip "prometheus not installed"
	PROM_NS=$n
	PROM_DIR=$TMP/prom
	mkdir -p "$PROM_DIR/data"
	for t in "$@"; do targets="$targets'$t', "; done
	cat >"$PROM_DIR/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 900ms
  evaluation_interval: 1s
scrape_configs:
  - job_name: jitwg
    static_configs:
      - targets: [${targets%, }]
EOF
	ip netns exec "$n" prometheus --config.file="$PROM_DIR/prometheus.yml" \
		--storage.tsdb.path="$PROM_DIR/data" \
		--web.listen-address=127.0.0.1:$PROM_PORT \
		--log.level=warn >"$PROM_DIR/log" 2>&1 &
	PROM_PID=$!
	on_exit "kill $PROM_PID; sleep 0.3; kill -9 $PROM_PID"
	wait_for 30 ip netns exec "$n" curl -sf --max-time 1 \
		"http://127.0.0.1:$PROM_PORT/-/ready" ||
		fail "prometheus did not start: $(tail -5 "$PROM_DIR/log")"
}

prom_query() {
	ip netns exec "$PROM_NS" curl -s --max-time 5 \
		--data-urlencode "query=$1" \
		"http://127.0.0.1:$PROM_PORT/api/v1/query"
}

# prom_field FIELD EXPR: value (first sample) or series (count) of a query.
prom_field() {
	prom_query "$2" | python3 -c '
import json, sys
what = sys.argv[1]
try:
    d = json.load(sys.stdin)
except ValueError:
    sys.exit(1)
if d.get("status") != "success":
    print(d.get("error", "query failed"), file=sys.stderr)
    sys.exit(1)
r = d["data"]["result"]
kind = d["data"]["resultType"]
if what == "series":
    print(len(r) if kind in ("vector", "matrix") else 1)
elif kind in ("scalar", "string"):
    print(r[1])
elif r:
    print(r[0]["value"][1] if kind == "vector" else r[0]["values"][-1][1])
' "$1"
}

prom_value() { prom_field value "$1"; }
prom_series() { prom_field series "$1"; }

# A query costs a curl and a python (~0.2 s): bounded by the clock, not by
# a count of tries as wait_for is.
prom_wait_value() {
	local end=$((SECONDS + $1)) v
	while [ $SECONDS -lt $end ]; do
		v=$(prom_value "$2")
		[ "$v" = "$3" ] && return 0
		sleep 0.2
	done
	return 1
}

prom_wait_scrapes() {
	local n=$1 end=$((SECONDS + 30)) v
	while [ $SECONDS -lt $end ]; do
		v=$(prom_value 'min(count_over_time(up{job="jitwg"}[5m]))')
		[ "${v:-0}" -ge "$n" ] && return 0
		sleep 0.2
	done
	fail "prometheus did not scrape $n times: $(prom_query 'up')"
}

prom_targets_healthy() {
	ip netns exec "$PROM_NS" curl -s --max-time 5 \
		"http://127.0.0.1:$PROM_PORT/api/v1/targets" | python3 -c '
import json, sys
t = json.load(sys.stdin)["data"]["activeTargets"]
bad = [(x["scrapeUrl"], x["health"], x["lastError"]) for x in t
       if x["health"] != "up" or x["lastError"]]
print(bad or "", file=sys.stderr)
sys.exit(1 if bad or not t else 0)'
}
