# Control-plane client (user/api.c, user/api_json.c): tests against the
# reference control plane (scripts/control-plane.py) and the body fuzzer.
API_OBJS := $(OBJ)/user/api.o $(OBJ)/user/api_json.o

TEST_BINS += $(BUILD)/tests/test_api
$(BUILD)/tests/test_api: $(OBJ)/tests/test_api.o $(API_OBJS) $(COMMON_OBJS)
	$(link)

FUZZ_BINS += $(BUILD)/fuzz/fuzz_api_body
$(BUILD)/fuzz/fuzz_api_body: tests/fuzz_api_body.c user/api_json.c user/keys.c
	$(fuzzlink)
