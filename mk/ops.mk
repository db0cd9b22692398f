# Operator tools' helpers: the captured-frame parser of `jitwgctl decode`
# (user/frame_text.c) and its fuzzer.
$(BUILD)/jitwgctl: $(OBJ)/user/frame_text.o

FUZZ_BINS += $(BUILD)/fuzz/fuzz_frame_text
$(BUILD)/fuzz/fuzz_frame_text: tests/fuzz_frame_text.c user/frame_text.c \
		include/frame_text.h
	$(fuzzlink)

# What libxdp's dispatcher adds per packet; run first by `make bench-xdp`.
$(BUILD)/bench_xdp_multi: $(OBJ)/tests/bench_xdp_multi.o $(OBJ)/tests/frames.o \
		$(CAPTURE_OBJS) $(COMMON_OBJS)
	$(link)

.PHONY: bench-xdp-multi
bench-xdp-multi: $(BUILD)/bench_xdp_multi
	@scripts/setup.sh
	$(BUILD)/bench_xdp_multi
bench-xdp: bench-xdp-multi
