# WireGuard device backends (kernel netlink, userspace UAPI), their CLI,
# tests (host UAPI lane, kernel VM lane), fuzzers and benchmark.

WGDEV_OBJS := $(OBJ)/user/wgdev.o $(OBJ)/user/wgdev_netlink.o \
	      $(OBJ)/user/wgdev_uapi.o

BINS += $(BUILD)/wgdevctl
$(BUILD)/wgdevctl: $(OBJ)/user/wgdevctl.o $(WGDEV_OBJS) $(COMMON_OBJS)
	$(link)

TEST_BINS += $(BUILD)/tests/test_wgdev
$(BUILD)/tests/test_wgdev: $(OBJ)/tests/test_wgdev.o $(WGDEV_OBJS) \
		$(COMMON_OBJS)
	$(link)

FUZZ_BINS += $(BUILD)/fuzz/fuzz_wgdev_uapi $(BUILD)/fuzz/fuzz_wgdev_netlink
WGDEV_SRCS := user/wgdev.c user/wgdev_netlink.c user/wgdev_uapi.c user/keys.c \
	      user/wgdev_internal.h include/wgdev.h
$(BUILD)/fuzz/fuzz_wgdev_uapi: tests/fuzz_wgdev_uapi.c $(WGDEV_SRCS)
	$(fuzzlink)
$(BUILD)/fuzz/fuzz_wgdev_netlink: tests/fuzz_wgdev_netlink.c $(WGDEV_SRCS)
	$(fuzzlink)

.PHONY: bench-wg
bench-wg: $(BUILD)/wgdevctl
	@scripts/setup.sh
	@scripts/bench-wg.sh
