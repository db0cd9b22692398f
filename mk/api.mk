# Control-plane client (user/api.c, user/api_json.c): tests against the
# reference control plane (scripts/control-plane.py) and the body fuzzer.
API_OBJS := $(OBJ)/user/api.o $(OBJ)/user/api_json.o

TEST_BINS += $(BUILD)/tests/test_api
$(BUILD)/tests/test_api: $(OBJ)/tests/test_api.o $(OBJ)/tests/cp_server.o $(API_OBJS) $(COMMON_OBJS)
	$(link)

FUZZ_BINS += $(BUILD)/fuzz/fuzz_api_body
$(BUILD)/fuzz/fuzz_api_body: tests/fuzz_api_body.c user/api_json.c user/keys.c user/allowed_ip.c
	$(fuzzlink)

BENCHES += bench-api
$(BUILD)/bench_api: $(OBJ)/tests/bench_api.o $(OBJ)/tests/cp_server.o $(API_OBJS) $(COMMON_OBJS)
	$(link)

.PHONY: bench-api
bench-api: $(BUILD)/bench_api
	@scripts/setup.sh
	JITWG_ROOT=$(CURDIR) $(BUILD)/bench_api
