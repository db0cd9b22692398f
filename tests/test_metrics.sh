# Metrics against real Prometheus tools (Debian package prometheus): the
# /metrics server (user/metrics.c) scraped by a real Prometheus server, and
# the dashboard's PromQL checked by promtool. The live daemon is scraped in
# tests/test_e2e.sh.
#
#   [ namespace jw<pid>m: lo 127.0.0.1 ]
#     build/tests/test_metrics --serve 127.0.0.1:0  <-  prometheus :9090

. "$ROOT/tests/prom_lib.sh"

DASH=$ROOT/dashboards/jitwg.json

# Every expression of the dashboard, variables substituted, is valid PromQL:
# promtool checks each as a recording rule (and rejects a broken one).
test_metrics_dashboard_promql() {
	command -v promtool >/dev/null || skip "promtool not installed"
	tmp_dir
	"$ROOT/scripts/dashboard-exprs.py" "$DASH" >"$TMP/exprs" ||
		fail "cannot extract the dashboard's expressions"
	[ "$(wc -l <"$TMP/exprs")" -ge 10 ] || fail "too few expressions: $(cat "$TMP/exprs")"
	rules() {
		python3 -c '
import json, sys
rules = [{"record": "jitwg:check_%d" % i, "expr": e.strip()}
         for i, e in enumerate(open(sys.argv[1])) if e.strip()]
print(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))
' "$1" >"$2"
	}
	rules "$TMP/exprs" "$TMP/rules.yml"
	check "promtool accepts every dashboard expression" \
		promtool check rules "$TMP/rules.yml"
	echo 'sum(rate(jitwg_provisions_total[1m])' >"$TMP/broken"
	rules "$TMP/broken" "$TMP/broken.yml"
	promtool check rules "$TMP/broken.yml" >/dev/null 2>&1 &&
		fail "promtool accepted an unbalanced expression"
	# A variable left in the dashboard is an error of the extractor.
	python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
d["panels"][0]["targets"][0]["expr"] = "up{x=\"$nosuchvar\"}"
json.dump(d, open(sys.argv[2], "w"))
' "$DASH" "$TMP/dash.json"
	"$ROOT/scripts/dashboard-exprs.py" "$TMP/dash.json" >/dev/null 2>&1 &&
		fail "extractor let an unknown variable through"
	return 0
}

# A real Prometheus scrapes the metrics server and answers PromQL on what
# it wrote: a gauge, a labelled counter, histogram quantiles.
test_metrics_prometheus_scrape() {
	local n v
	[ -x "$BUILD/tests/test_metrics" ] || skip "build/tests/test_metrics not built"
	tmp_dir
	netns_add m
	n=$(ns m)
	bg ip netns exec "$n" "$BUILD/tests/test_metrics" --serve 127.0.0.1:0 "$TMP/port"
	wait_for 10 test -s "$TMP/port" || fail "metrics server did not start"
	prom_start "$n" "127.0.0.1:$(cat "$TMP/port")"
	prom_wait_scrapes 3
	expect_eq "$(prom_value 'up{job="jitwg"}')" 1 "target up"
	expect_eq "$(prom_value 'jitwg_device_peers')" 3 "gauge value"
	expect_eq "$(prom_series 'jitwg_provisions_total')" 3 "one series per outcome"
	expect_eq "$(prom_value 'jitwg_provisions_total{outcome="refused"}')" 14 "labelled counter"
	expect_eq "$(prom_value 'jitwg_build_info')" 1 "label value with quotes, backslash, newline ingested"
	# One observation of 20 ms per scrape: the median is in (0.01, 0.025].
	v=$(prom_value 'histogram_quantile(0.5, rate(jitwg_test_scrape_seconds_bucket[1m]))')
	python3 -c 'import sys; v = float(sys.argv[1]); sys.exit(not 0.01 < v <= 0.025)' "$v" ||
		fail "median of the per-scrape histogram: $v"
	# The last scrape parsed without an error.
	check "target healthy" prom_targets_healthy
}
