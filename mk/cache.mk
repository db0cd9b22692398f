# LMDB cache (user/cache.c): unit tests, including a kill -9 consistency test.
CACHE_OBJS := $(OBJ)/user/cache.o

TEST_BINS += $(BUILD)/tests/test_cache $(BUILD)/bench_cache
$(BUILD)/tests/test_cache: $(OBJ)/tests/test_cache.o $(CACHE_OBJS) $(COMMON_OBJS)
	$(link)

BENCHES += bench-cache
$(BUILD)/bench_cache: $(OBJ)/tests/bench_cache.o $(CACHE_OBJS) $(COMMON_OBJS)
	$(link)

.PHONY: bench-cache
bench-cache: $(BUILD)/bench_cache
	@scripts/setup.sh
	$(BUILD)/bench_cache
