# The build's version for --version: `git describe` of the tree (tag, or
# commit, "-dirty" with local changes), in build/version.h. Rewritten only
# when it changes, so that a new commit rebuilds only what prints it.
JITWG_VERSION := $(shell git -C $(CURDIR) describe --tags --always --dirty 2>/dev/null || echo unknown)

$(BUILD)/version.h: FORCE
	@mkdir -p $(BUILD)
	@echo '#define JITWG_VERSION "$(JITWG_VERSION)"' > $@.tmp
	@cmp -s $@.tmp $@ && rm -f $@.tmp || mv $@.tmp $@

.PHONY: FORCE
FORCE:

$(OBJ)/user/jitwg_xdp.o $(OBJ)/user/jitwgctl.o $(OBJ)/user/wgdevctl.o: $(BUILD)/version.h
