// SPDX-License-Identifier: MIT
/* libFuzzer: a UAPI get=1 reply from an untrusted userspace implementation. */
#include <stdlib.h>
#include <string.h>

#include "wgdev.h"
#include "../user/wgdev_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct wgdev dev = { .backend = WGDEV_UAPI, .name = "fuzz0" };
	struct wgdev_info info;
	struct wgdev_peer *peers = NULL;
	size_t n = 0;
	char *text = malloc(size + 1);

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = 0;
	memset(&info, 0, sizeof(info));
	if (wgdev_uapi_parse(&dev, text, &info, &peers, &n) == 0)
		wgdev_peers_free(peers, n);
	free(text);
	return 0;
}
