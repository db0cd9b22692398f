# jitwgd, the provisioning daemon: program, load generator, unit test,
# end-to-end tests (tests/test_e2e.sh), demo (scripts/demo.sh), benchmark.

# The daemon's files; the stages in data-path order (user/daemon_internal.h).
DAEMON_OBJS := $(patsubst %,$(OBJ)/user/daemon_%.o,opts log capture clock counters \
	       peer_table prefix_index sched intake pending provision installer \
	       monitor evict revalidate cache_writer cookie budget lanes consume dirs) $(OBJ)/user/daemon.o

# The modules jitwgd links. Listed here by file because this fragment is
# read before theirs (their *_OBJS variables are still empty at this point).
JITWGD_DEP_SRCS := user/capture.c user/noise.c user/noise_crypto.c \
		   user/noise_input.c user/wgdev.c user/wgdev_netlink.c \
		   user/wgdev_uapi.c user/cache.c user/api.c user/api_json.c \
		   user/cookie.c
JITWGD_DEP_OBJS := $(patsubst %.c,$(OBJ)/%.o,$(JITWGD_DEP_SRCS))

TEST_BINS += $(BUILD)/tests/test_daemon
$(BUILD)/tests/test_daemon: $(OBJ)/tests/test_daemon.o $(DAEMON_OBJS) \
		$(OBJ)/user/redeliver.o $(JITWGD_DEP_OBJS) $(COMMON_OBJS)
	$(link)

# The pipeline against a fake cache, control plane and device (no root).
TEST_BINS += $(BUILD)/tests/test_pipeline
$(BUILD)/tests/test_pipeline: $(OBJ)/tests/test_pipeline.o $(DAEMON_OBJS) \
		$(OBJ)/user/redeliver.o $(JITWGD_DEP_OBJS) $(COMMON_OBJS)
	$(link)

# Re-delivery of consumed initiations (--consume), against the kernel.
TEST_BINS += $(BUILD)/tests/test_redeliver
$(BUILD)/tests/test_redeliver: $(OBJ)/tests/test_redeliver.o $(OBJ)/user/redeliver.o $(OBJ)/user/inet.o
	$(link)

# Until every module has landed, `make all` skips jitwgd instead of failing.
ifeq ($(words $(wildcard $(JITWGD_DEP_SRCS))),$(words $(JITWGD_DEP_SRCS)))
BINS += $(BUILD)/jitwgd $(BUILD)/jitwg-loadgen $(BUILD)/jitwg-cachefill
endif

$(BUILD)/jitwgd: $(OBJ)/user/jitwgd.o \
		$(OBJ)/user/redeliver.o $(DAEMON_OBJS) $(JITWGD_DEP_OBJS) $(COMMON_OBJS)
	$(link)

# Synthetic clients: N distinct initiators over UDP (tests, benchmark).
$(BUILD)/jitwg-loadgen: $(OBJ)/user/loadgen.o $(OBJ)/user/noise.o \
		$(OBJ)/user/noise_crypto.o $(OBJ)/user/noise_input.o $(COMMON_OBJS)
	$(link)

# Fills a cache directory with synthetic entries (benchmark).
$(BUILD)/jitwg-cachefill: $(OBJ)/user/cachefill.o $(OBJ)/user/cache.o \
		$(COMMON_OBJS)
	$(link)

BENCHES += bench-e2e
.PHONY: bench-e2e
bench-e2e: all
	@scripts/setup.sh
	@scripts/bench_e2e.sh

# First contact's timeline from packets (not part of make bench).
.PHONY: bench-fc-timeline
bench-fc-timeline: all
	@scripts/setup.sh
	@scripts/bench_fc_timeline.sh

# The config file parser reads operator input: fuzzed.
FUZZ_BINS += $(BUILD)/fuzz/fuzz_jitwgd_config
$(BUILD)/fuzz/fuzz_jitwgd_config: tests/fuzz_jitwgd_config.c user/daemon_opts.c user/daemon_log.c \
		user/keys.c user/capture.c user/daemon.h $(BUILD)/jitwg.skel.h
	$(fuzzlink)
