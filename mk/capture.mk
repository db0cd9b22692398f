# XDP capture: BPF object, skeleton, loader, CLI, tests, benchmark.

# Built against vmlinux.h from the running kernel's BTF. The program reads
# only wire formats (Ethernet, IP, UDP) and the xdp_md context, whose layouts
# never move, so no CO-RE relocation is emitted (BPF_NO_PRESERVE_ACCESS_INDEX):
# libbpf then skips parsing the kernel's BTF at load, 60 ms → 9 ms.
BPF_CFLAGS := -target bpf -mcpu=v3 -O2 -g -Wall -Werror -D__bpf__ -DBPF_NO_PRESERVE_ACCESS_INDEX \
	      -D__TARGET_ARCH_x86 -Iinclude -I$(BUILD)

$(BUILD)/vmlinux.h:
	@mkdir -p $(BUILD)
	$(BPFTOOL) btf dump file /sys/kernel/btf/vmlinux format c > $@.tmp
	mv $@.tmp $@

$(BUILD)/jitwg.bpf.o: bpf/jitwg.bpf.c include/jitwg.h $(BUILD)/vmlinux.h mk/capture.mk
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(BUILD)/jitwg.skel.h: $(BUILD)/jitwg.bpf.o
	$(BPFTOOL) gen skeleton $< name jitwg_bpf > $@.tmp
	mv $@.tmp $@

CAPTURE_OBJS := $(OBJ)/user/capture.o

BINS += $(BUILD)/jitwg.bpf.o $(BUILD)/jitwg-xdp
$(BUILD)/jitwg-xdp: $(OBJ)/user/jitwg_xdp.o $(CAPTURE_OBJS) $(COMMON_OBJS)
	$(link)

TEST_BINS += $(BUILD)/tests/test_xdp
$(BUILD)/tests/test_xdp: $(OBJ)/tests/test_xdp.o $(OBJ)/tests/frames.o \
		$(CAPTURE_OBJS) $(COMMON_OBJS)
	$(link)

$(BUILD)/bench_xdp: $(OBJ)/tests/bench_xdp.o $(OBJ)/tests/frames.o \
		$(CAPTURE_OBJS) $(COMMON_OBJS)
	$(link)

.PHONY: bench-xdp
bench-xdp: $(BUILD)/bench_xdp
	@scripts/setup.sh
	$(BUILD)/bench_xdp
