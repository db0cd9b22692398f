/* SPDX-License-Identifier: MIT */
/*
 * Handshake initiations in captured frames as people paste them
 * (user/frame_text.c): tcpdump -x/-xx/-X/-XX output, or a frame's bytes as
 * plain hex, parsed through the link (Ethernet with VLAN tags, Linux cooked
 * SLL/SLL2), IP (v4, v6) and UDP headers (jitwgctl decode).
 */
#ifndef JITWG_FRAME_TEXT_H
#define JITWG_FRAME_TEXT_H

#include <stddef.h>
#include <stdint.h>

#include "noise.h"

/*
 * The first packet of in[0..len) whose UDP payload is a whole handshake
 * initiation (148 bytes, type 1), copied to msg. *packet: which packet of
 * the dump (1-based); *offset: where its UDP payload starts in the frame.
 * 0, -ENOENT if there is none, -ENOMEM.
 */
int frame_text_initiation(const uint8_t *in, size_t len,
			  uint8_t msg[static NOISE_INITIATION_LEN],
			  unsigned int *packet, long *offset);

#endif
