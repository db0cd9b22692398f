// SPDX-License-Identifier: MIT
#include <arpa/inet.h>
#include <string.h>

#include "frames.h"

static const uint8_t def4[4] = { 192, 0, 2, 1 };
static const uint8_t dst4[4] = { 192, 0, 2, 254 };
static const uint8_t def6[16] = { 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1,
				  0, 0, 0, 0, 0, 0, 0, 1 };
static const uint8_t dst6[16] = { 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0xff,
				  0, 0, 0, 0, 0, 0, 0, 0xfe };

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = v >> 8;
	p[1] = v;
}

static uint16_t csum(const uint8_t *p, size_t n)
{
	uint32_t s = 0;
	size_t i;

	for (i = 0; i + 1 < n; i += 2)
		s += p[i] << 8 | p[i + 1];
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return ~s;
}

size_t frame_build(uint8_t *buf, const struct frame_spec *spec,
		   struct frame_layout *layout)
{
	size_t o = 12, udp_len = 8 + spec->payload_len;
	int proto = spec->l4proto ? spec->l4proto : 17;
	int v;

	memset(buf, 0, FRAME_MAX);
	memcpy(buf, "\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01", 12);
	for (v = 0; v < spec->vlans; v++) {
		put16(buf + o, v == 0 && spec->vlans == 2 ? 0x88a8 : 0x8100);
		put16(buf + o + 2, 100 + v);
		o += 4;
	}
	put16(buf + o, spec->family == 4 ? 0x0800 :
		       spec->family == 6 ? 0x86dd : 0x0806);
	o += 2;
	layout->l3 = o;
	if (spec->family == 4) {
		size_t hl = 20 + spec->ip_opts;

		buf[o] = 0x40 | hl / 4;
		put16(buf + o + 2, hl + udp_len);
		put16(buf + o + 6, spec->frag);
		buf[o + 8] = 64;
		buf[o + 9] = proto;
		memcpy(buf + o + 12, spec->saddr ? spec->saddr : def4, 4);
		memcpy(buf + o + 16, dst4, 4);
		memset(buf + o + 20, 1, spec->ip_opts); /* NOP options */
		put16(buf + o + 10, csum(buf + o, hl));
		o += hl;
	} else if (spec->family == 6) {
		size_t ip6 = o, ext = 0;
		int i;

		buf[o] = 0x60;
		buf[o + 6] = spec->n_ext ? spec->ext[0] : proto;
		buf[o + 7] = 64;
		memcpy(buf + o + 8, spec->saddr ? spec->saddr : def6, 16);
		memcpy(buf + o + 24, dst6, 16);
		o += 40;
		/* RFC 8200 §4: next header, length in 8-octet units after the
		 * first 8; options padded with PadN, routing type 4 with no
		 * segments left, fragment offset 0 with M set. */
		for (i = 0; i < spec->n_ext; i++) {
			size_t hl = spec->ext[i] == 43 ? 16 : 8;

			buf[o] = i + 1 < spec->n_ext ? spec->ext[i + 1] : proto;
			if (spec->ext[i] == 44) {
				put16(buf + o + 2, 0x0001);
				memcpy(buf + o + 4, "\x12\x34\x56\x78", 4);
			} else {
				buf[o + 1] = hl / 8 - 1;
				if (spec->ext[i] == 43)
					buf[o + 2] = 4;
				else
					buf[o + 2] = 1, buf[o + 3] = hl - 4;
			}
			o += hl;
			ext += hl;
		}
		put16(buf + ip6 + 4, ext + udp_len);
	} else {
		memset(buf + o, 0xab, 28); /* some ARP-sized body */
		layout->l4 = layout->payload = layout->len = o + 28;
		return layout->len;
	}
	layout->l4 = o;
	put16(buf + o, spec->sport);
	put16(buf + o + 2, spec->dport);
	put16(buf + o + 4, udp_len);
	o += 8;
	layout->payload = o;
	memcpy(buf + o, spec->payload, spec->payload_len);
	o += spec->payload_len;
	layout->len = o < 60 ? 60 : o;
	return layout->len;
}

void frame_initiation(uint8_t msg[148], uint8_t seed)
{
	int i;

	for (i = 0; i < 148; i++)
		msg[i] = (uint8_t)(seed * 31 + i * 7 + 1);
	msg[0] = 1;
	msg[1] = msg[2] = msg[3] = 0;
}
