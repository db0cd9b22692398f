// SPDX-License-Identifier: MIT
/* Handshake initiations in captured frames as text (frame_text.h). */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "frame_text.h"
#include "jitwg.h"

/*
 * Captured frames. tcpdump -x/-xx/-X/-XX print each packet as a summary
 * line, then lines "\t0x0010:  4500 00b0 …" of up to 8 groups of 4 hex
 * digits (the last may be 2), followed with -X/-XX by two spaces and an
 * ASCII column. -x starts at the IP header; -xx at the link-layer header
 * (Ethernet, or Linux cooked SLL/SLL2 with "-i any").
 */
enum { FRAME_CAP = 65536 };

static uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

/*
 * The UDP payload of an IP packet at f[0..len), if it is a whole
 * handshake initiation: its offset in f, or -1.
 */
static long ip_initiation(const uint8_t *f, size_t len)
{
	size_t ihl, udp, ulen;

	if (len >= 20 && f[0] >> 4 == 4) {
		ihl = (size_t)(f[0] & 0xf) * 4;
		/* UDP, not a fragment (MF clear, offset 0), whole. */
		if (ihl < 20 || f[9] != 17 || (be16(f + 6) & 0x3fff) ||
		    be16(f + 2) > len || be16(f + 2) < ihl + 8)
			return -1;
		udp = ihl;
	} else if (len >= 40 && f[0] >> 4 == 6) {
		/* UDP right after the fixed header (no extension headers). */
		if (f[6] != 17 || (size_t)be16(f + 4) + 40 > len)
			return -1;
		udp = 40;
	} else {
		return -1;
	}
	if (udp + 8 > len)
		return -1;
	ulen = be16(f + udp + 4);
	if (ulen != 8 + NOISE_INITIATION_LEN || udp + ulen > len ||
	    f[udp + 8] != WG_MSG_INITIATION)
		return -1;
	return (long)(udp + 8);
}

/*
 * The initiation in a captured frame: raw IP, Ethernet with up to two VLAN
 * tags, Linux cooked (SLL, 16 bytes) or SLL2 (20 bytes); its offset or -1.
 */
static long frame_initiation(const uint8_t *f, size_t len)
{
	size_t l2 = 12, tags;
	long off;

	if ((off = ip_initiation(f, len)) >= 0)
		return off;
	/* Ethernet: the ethertype after two MAC addresses, then VLAN tags. */
	for (tags = 0; tags <= 2 && l2 + 2 <= len; tags++, l2 += 4) {
		uint16_t type = be16(f + l2);

		if (type == 0x0800 || type == 0x86dd) {
			off = ip_initiation(f + l2 + 2, len - l2 - 2);
			return off < 0 ? -1 : off + (long)l2 + 2;
		}
		if (type != 0x8100 && type != 0x88a8)
			break;
	}
	/* SLL: protocol at 14; SLL2: at 0, header 20 bytes. */
	if (len > 16 && (be16(f + 14) == 0x0800 || be16(f + 14) == 0x86dd) &&
	    (off = ip_initiation(f + 16, len - 16)) >= 0)
		return off + 16;
	if (len > 20 && (be16(f) == 0x0800 || be16(f) == 0x86dd) &&
	    (off = ip_initiation(f + 20, len - 20)) >= 0)
		return off + 20;
	return -1;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * One line of tcpdump's hex dump ("0xOFFSET:  hhhh hhhh …") appended to
 * frame at *flen: 1 if it was one, 0 if not a dump line, -EINVAL if its
 * offset does not follow on from the previous line.
 */
static int dump_line(const char *p, const char *end, uint8_t *frame,
		     size_t *flen)
{
	unsigned long offset = 0;
	int groups, digits, spaces, v;

	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	if (end - p < 4 || p[0] != '0' || p[1] != 'x')
		return 0;
	for (p += 2, digits = 0; p < end && (v = hexval(*p)) >= 0;
	     p++, digits++)
		offset = offset * 16 + (unsigned long)v;
	if (!digits || digits > 8 || p == end || *p != ':')
		return 0;
	p++;
	/* A new packet starts at offset 0; otherwise it must follow on. */
	if (!offset)
		*flen = 0;
	else if (offset != *flen)
		return -EINVAL;
	for (groups = 0; groups < 8 && p < end; groups++) {
		for (spaces = 0; p < end && *p == ' '; p++)
			spaces++;
		/* Two spaces after a group: the ASCII column (-X) follows. */
		if (!spaces || (groups && spaces > 1))
			break;
		for (digits = 0; p + digits < end && hexval(p[digits]) >= 0;
		     digits++)
			;
		if ((digits != 4 && digits != 2) ||
		    (p + digits < end && p[digits] != ' '))
			break;
		for (v = 0; v < digits; v += 2) {
			if (*flen == FRAME_CAP)
				return -EINVAL;
			frame[(*flen)++] =
			    (uint8_t)(hexval(p[v]) << 4 | hexval(p[v + 1]));
		}
		p += digits;
		if (digits == 2)
			break;
	}
	return 1;
}

int frame_text_initiation(const uint8_t *in, size_t len,
			  uint8_t msg[static NOISE_INITIATION_LEN],
			  unsigned int *packet, long *offset)
{
	const char *p = (const char *)in, *end = p + len, *eol;
	uint8_t *frame = malloc(FRAME_CAP);
	size_t flen = 0, n;
	bool dump = false, open = false;
	int ret = -ENOENT, r;

	if (!frame)
		return -ENOMEM;
	*packet = 0;
	for (; p <= end; p = eol + 1) {
		eol = memchr(p, '\n', (size_t)(end - p));
		if (!eol)
			eol = end;
		r = dump_line(p, eol, frame, &flen);
		if (r == 1 && !open) {
			open = true;
			++*packet;
		}
		dump |= r == 1;
		/* A packet ends at a line that is not part of its dump. */
		if ((r != 1 || eol == end) && open) {
			open = false;
			if ((*offset = frame_initiation(frame, flen)) >= 0) {
				memcpy(msg, frame + *offset,
				       NOISE_INITIATION_LEN);
				ret = 0;
				goto out;
			}
		}
		if (eol == end)
			break;
	}
	if (dump)
		goto out;
	/* No dump lines: the whole input as the hex of one frame. */
	if (!sodium_hex2bin(frame, FRAME_CAP, (const char *)in, len,
			    " \t\r\n:", &n, NULL) &&
	    (*offset = frame_initiation(frame, n)) >= 0) {
		memcpy(msg, frame + *offset, NOISE_INITIATION_LEN);
		*packet = 1;
		ret = 0;
	}
out:
	sodium_memzero(frame, FRAME_CAP);
	free(frame);
	return ret;
}
