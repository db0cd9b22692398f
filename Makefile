# jitwg — top-level build. Each module adds its programs, tests, fuzzers and
# benchmarks in mk/<module>.mk; this file holds what they share.
#
#   make            build everything into build/
#   make test       install missing packages, build, run every test
#   make check      the unit tests that need neither root nor namespaces
#   make demo       install missing packages, build, run the demo
#   make bench-*    benchmarks (see README)
#   make install    PREFIX, DESTDIR, SYSCONFDIR (mk/install.mk)

BUILD    := build
OBJ      := $(BUILD)/obj
CC       := gcc
CLANG    := clang
BPFTOOL  := bpftool
PKGS     := libbpf libxdp libsodium libb2 lmdb libcurl json-c libmnl libmicrohttpd

# Recursive (=) so that pkg-config runs after scripts/setup.sh installed it.
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)

CFLAGS   ?= -O2 -g
CFLAGS   += -std=gnu11 -Wall -Wextra -Werror -D_GNU_SOURCE -Iinclude \
	    -I$(BUILD) -MMD -MP $(PKG_CFLAGS)
LDLIBS   = $(PKG_LIBS) -lpthread

# libFuzzer targets: clang with ASan and UBSan.
FUZZ_CFLAGS = -O1 -g -std=gnu11 -D_GNU_SOURCE -Iinclude -I$(BUILD) \
	      -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	      $(PKG_CFLAGS)
FUZZ_TIME ?= 20

BINS      :=
TEST_BINS :=
FUZZ_BINS :=
BENCHES   :=

# Used by most programs.
COMMON_OBJS := $(OBJ)/user/keys.o $(OBJ)/user/hostport.o $(OBJ)/user/allowed_ip.o \
	       $(OBJ)/user/inet.o

.PHONY: all tests fuzz-bins test check demo setup fuzz clean format
all:

# Object files of user/ and tests/ sources. Every user object waits for the
# BPF skeleton so that any of them may include it.
$(OBJ)/%.o: %.c | $(BUILD)/jitwg.skel.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

# Link rule shared by every program: name the objects as prerequisites.
define link
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(filter %.o,$^) -o $@ $(LDLIBS)
endef

# Fuzz binaries: name the sources as prerequisites.
define fuzzlink
	@mkdir -p $(dir $@)
	$(CLANG) $(FUZZ_CFLAGS) $(filter %.c,$^) -o $@ $(LDLIBS)
endef

include $(sort $(wildcard mk/*.mk))

all: $(BINS)
tests: all $(TEST_BINS)
fuzz-bins: $(FUZZ_BINS)

setup:
	@scripts/setup.sh

test:
	@scripts/setup.sh
	$(MAKE) tests fuzz-bins
	@FUZZ_TIME=$(FUZZ_TIME) tests/run.sh $(TESTS)

# Any user, no network: the tests tests/run.sh --unit lists.
UNIT_TEST_BINS = $(addprefix $(BUILD)/tests/,test_daemon test_pipeline test_noise test_cache test_cookie)
check: $(UNIT_TEST_BINS)
	@tests/run.sh --unit

demo:
	@scripts/setup.sh
	$(MAKE) all
	@scripts/demo.sh

fuzz: fuzz-bins
	@for f in $(FUZZ_BINS); do \
		echo "fuzz: $$f for $(FUZZ_TIME)s"; \
		mkdir -p $(BUILD)/corpus/$$(basename $$f); \
		$$f -max_total_time=$(FUZZ_TIME) $(BUILD)/corpus/$$(basename $$f) || exit 1; \
	done

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD)

-include $(shell find $(OBJ) -name '*.d' 2>/dev/null)
