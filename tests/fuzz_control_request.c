// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: the control socket's request line parser
 * (control_parse_request in user/control.c), on arbitrary bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "control.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct control_request req;
	const char *msg;
	char *line;
	int err;

	if (size > CONTROL_REQUEST_MAX)
		return 0;
	line = malloc(size + 1);
	if (!line)
		return 0;
	memcpy(line, data, size);
	line[size] = '\0';
	err = control_parse_request(line, &req, &msg);
	if (err) {
		if (!msg || !*msg)
			abort();
	} else {
		if (req.verb > CONTROL_LOG_LEVEL)
			abort();
		/* The word points into the line, NUL-terminated there. */
		if (req.verb == CONTROL_LOG_LEVEL &&
		    (req.arg < line || req.arg + strlen(req.arg) > line + size))
			abort();
		if (req.verb == CONTROL_EVICT && !req.has_key)
			abort();
	}
	free(line);
	return 0;
}
