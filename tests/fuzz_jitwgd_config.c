// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: jitwgd's config file parser. Any input must be accepted
 * or rejected with a message; never crash, read out of bounds or leak.
 */
#include <stddef.h>
#include <stdint.h>

#include "../user/daemon.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct daemon_opts o;
	char err[256];

	opts_init(&o);
	if (opts_load_string(&o, (const char *)data, size, "fuzz", err, sizeof(err)) == 0)
		(void)opts_validate(&o, err, sizeof(err));
	opts_free(&o);
	return 0;
}
