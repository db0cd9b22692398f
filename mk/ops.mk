# Operator tools' helpers: the captured-frame parser of `jitwgctl decode`
# (user/frame_text.c) and its fuzzer.
$(BUILD)/jitwgctl: $(OBJ)/user/frame_text.o

FUZZ_BINS += $(BUILD)/fuzz/fuzz_frame_text
$(BUILD)/fuzz/fuzz_frame_text: tests/fuzz_frame_text.c user/frame_text.c \
		include/frame_text.h
	$(fuzzlink)
