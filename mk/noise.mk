# Noise_IKpsk2 first message (user/noise*.c): decoder, initiator, jitwgctl,
# unit tests, interop tests (tests/test_noise.sh), fuzzer, benchmark.
NOISE_OBJS := $(OBJ)/user/noise.o $(OBJ)/user/noise_crypto.o \
	      $(OBJ)/user/noise_input.o

BINS += $(BUILD)/jitwgctl
$(BUILD)/jitwgctl: $(OBJ)/user/jitwgctl.o $(NOISE_OBJS) $(COMMON_OBJS)
	$(link)

TEST_BINS += $(BUILD)/tests/test_noise
$(BUILD)/tests/test_noise: $(OBJ)/tests/test_noise.o $(NOISE_OBJS) \
		$(COMMON_OBJS)
	$(link)

FUZZ_BINS += $(BUILD)/fuzz/fuzz_noise
$(BUILD)/fuzz/fuzz_noise: tests/fuzz_noise.c user/noise.c user/noise_crypto.c \
		user/noise_input.c user/keys.c include/noise.h \
		include/noise_crypto.h include/noise_input.h include/keys.h
	$(fuzzlink)

BENCHES += bench-noise
$(BUILD)/bench_noise: $(OBJ)/tests/bench_noise.o $(NOISE_OBJS) $(COMMON_OBJS)
	$(link)

.PHONY: bench-noise
bench-noise: $(BUILD)/bench_noise
	@scripts/setup.sh
	$(BUILD)/bench_noise
