# Cookie replies and mac2 (user/cookie.c, WireGuard paper §5.4.7): jitwgd
# links it (mk/daemon.mk); its unit test needs neither root nor network.
COOKIE_OBJS := $(OBJ)/user/cookie.o

TEST_BINS += $(BUILD)/tests/test_cookie
$(BUILD)/tests/test_cookie: $(OBJ)/tests/test_cookie.o $(COOKIE_OBJS) \
		$(OBJ)/user/noise.o $(OBJ)/user/noise_crypto.o $(OBJ)/user/noise_input.o \
		$(COMMON_OBJS)
	$(link)
