# jitwg-pktgen: WireGuard-shaped floods at line rate through live-frames
# BPF_PROG_TEST_RUN (bpf/pktgen.bpf.c + user/pktgen.c), and bench-flood.
# BPF_CFLAGS and vmlinux.h come from mk/capture.mk.

$(BUILD)/pktgen.bpf.o: bpf/pktgen.bpf.c include/pktgen.h $(BUILD)/vmlinux.h mk/pktgen.mk
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(BUILD)/pktgen.skel.h: $(BUILD)/pktgen.bpf.o
	$(BPFTOOL) gen skeleton $< name pktgen_bpf > $@.tmp
	mv $@.tmp $@

$(OBJ)/user/pktgen.o: $(BUILD)/pktgen.skel.h

BINS += $(BUILD)/jitwg-pktgen
$(BUILD)/jitwg-pktgen: $(OBJ)/user/pktgen.o $(OBJ)/user/noise.o \
		$(OBJ)/user/noise_crypto.o $(OBJ)/user/noise_input.o $(COMMON_OBJS)
	$(link)

# The floors of bench-flood: attached with ip link, no loader needed.
BINS += $(BUILD)/xdp_pass.bpf.o $(BUILD)/xdp_drop.bpf.o
$(BUILD)/xdp_pass.bpf.o: bpf/xdp_pass.bpf.c $(BUILD)/vmlinux.h mk/pktgen.mk
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@
$(BUILD)/xdp_drop.bpf.o: bpf/xdp_pass.bpf.c $(BUILD)/vmlinux.h mk/pktgen.mk
	$(CLANG) $(BPF_CFLAGS) -DFLOOR_DROP -c $< -o $@

BENCHES += bench-flood
.PHONY: bench-flood
bench-flood: all
	@scripts/setup.sh
	@scripts/bench_flood.sh
