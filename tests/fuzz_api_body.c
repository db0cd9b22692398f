// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: the control plane's 200 body (api_parse_body) and the
 * allowed-IP parser and overlap check it relies on. Invariants checked
 * beyond "no crash": a parsed peer has canonical allowed IPs (format then
 * re-parse gives the same prefix), each overlaps itself, and on failure the
 * output is wiped.
 */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "allowed_ip.h"
#include "api.h"
#include "keys.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t want[32] = { 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
					  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
					  1, 1, 1, 1, 1, 1, 1, 1, 1, 1 };
	struct api_peer p;
	char reason[API_REASON_LEN], buf[80];
	int ret;

	if (sodium_init() < 0)
		abort();
	/* Both with and without the public_key check. */
	ret = api_parse_body((const char *)data, size, (size && (data[0] & 1)) ? want : NULL,
			     API_DEFAULT_MAX_BODY, &p, reason, sizeof(reason));
	if (ret) {
		uint8_t zero[sizeof(p)] = { 0 };

		if (memcmp(&p, zero, sizeof(p)))
			abort();
		return 0;
	}
	if (p.n_allowed_ips > API_MAX_ALLOWED_IPS)
		abort();
	for (size_t i = 0; i < p.n_allowed_ips; i++) {
		struct wgdev_allowed_ip q;

		api_format_allowed_ip(&p.allowed_ips[i], buf, sizeof(buf));
		if (api_parse_allowed_ip(buf, &q) || q.cidr != p.allowed_ips[i].cidr ||
		    q.family != p.allowed_ips[i].family ||
		    !allowed_ip_overlaps(&q, &p.allowed_ips[i]))
			abort();
	}
	return 0;
}
