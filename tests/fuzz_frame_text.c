// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: frame_text_initiation() on arbitrary text, as pasted
 * into `jitwgctl decode`. Besides memory errors: a success must hand back
 * an initiation (type 1) found inside a frame at a plausible offset.
 */
#include <stdint.h>
#include <stdlib.h>

#include "frame_text.h"
#include "jitwg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t msg[NOISE_INITIATION_LEN];
	unsigned int packet;
	long offset;

	if (!frame_text_initiation(data, size, msg, &packet, &offset) &&
	    (msg[0] != WG_MSG_INITIATION || packet < 1 || offset < 28 ||
	     offset > 65536 - NOISE_INITIATION_LEN))
		abort();
	return 0;
}
