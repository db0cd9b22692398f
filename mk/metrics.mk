# Operating jitwgd: Prometheus metrics (user/metrics.c), the control socket
# (user/control.c), jitwgctl's verbs for a running daemon
# (user/jitwgctl_daemon.c), their unit tests, the dashboard check.
METRICS_OBJS := $(OBJ)/user/metrics.o $(OBJ)/user/hostport.o
CONTROL_OBJS := $(OBJ)/user/control.o $(OBJ)/user/keys.o

# jitwgctl's own rule is in mk/noise.mk; this adds the daemon verbs to it.
$(BUILD)/jitwgctl: $(OBJ)/user/jitwgctl_daemon.o $(CONTROL_OBJS)

TEST_BINS += $(BUILD)/tests/test_metrics $(BUILD)/tests/test_control
$(BUILD)/tests/test_metrics: $(OBJ)/tests/test_metrics.o $(METRICS_OBJS)
	$(link)
$(BUILD)/tests/test_control: $(OBJ)/tests/test_control.o $(CONTROL_OBJS)
	$(link)

# The control socket's request parser reads a client's bytes: fuzzed.
FUZZ_BINS += $(BUILD)/fuzz/fuzz_control_request
$(BUILD)/fuzz/fuzz_control_request: tests/fuzz_control_request.c user/control.c \
		user/keys.c include/control.h
	$(fuzzlink)

# The daemon's side (user/daemon_ops.c). Every program that links the
# daemon's stages links the metrics module too: they observe histograms.
$(BUILD)/jitwgd: $(OBJ)/user/daemon_ops.o $(METRICS_OBJS) $(CONTROL_OBJS)
$(BUILD)/tests/test_daemon $(BUILD)/tests/test_pipeline: $(METRICS_OBJS)
$(OBJ)/user/daemon_ops.o: $(BUILD)/version.h
