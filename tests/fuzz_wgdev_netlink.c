// SPDX-License-Identifier: MIT
/*
 * libFuzzer: a stream of WG_CMD_GET_DEVICE dump messages, as the merge
 * across messages reads them (netlink headers, nested peers, allowed IPs).
 */
#include <stdlib.h>
#include <string.h>

#include "wgdev.h"
#include "../user/wgdev_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct wgdev dev = { .backend = WGDEV_NETLINK, .name = "fuzz0" };
	struct wgdev_info info;
	struct wgdev_peer *peers = NULL;
	size_t n = 0;
	/* libmnl reads headers in place: give it aligned memory. */
	void *buf = aligned_alloc(8, (size + 7) & ~(size_t)7);

	if (!buf)
		return 0;
	memcpy(buf, data, size);
	memset(&info, 0, sizeof(info));
	if (wgdev_netlink_parse(&dev, buf, size, &info, &peers, &n) == 0)
		wgdev_peers_free(peers, n);
	free(buf);
	return 0;
}
