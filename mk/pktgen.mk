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
