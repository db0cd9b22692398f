# Benchmarks as a whole: the synthetic handshaking clients, the churn
# simulation (scripts/bench_churn.sh) and `make bench`, which runs every
# bench-* target that exists and writes build/bench/report.md
# (scripts/bench_report.sh).

# jitwg-loadgen's "clients" mode (its rule is in mk/daemon.mk; a rule
# without a recipe only adds this object to the link).
$(BUILD)/jitwg-loadgen: $(OBJ)/user/loadgen_clients.o $(OBJ)/user/cookie.o

# The churn simulation: BENCH_CHURN_* knobs in scripts/bench_churn.sh.
BENCHES += bench-churn
.PHONY: bench-churn
bench-churn: all
	@scripts/setup.sh
	@scripts/bench_churn.sh

# Every benchmark, then the report with its plots: build/bench/report.md.
.PHONY: bench bench-report
bench: all
	@scripts/setup.sh
	@scripts/bench_all.sh

# The report alone, from what build/bench already holds.
bench-report:
	@scripts/bench_report.sh build/bench build/bench
