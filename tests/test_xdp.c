// SPDX-License-Identifier: MIT
/*
 * The XDP program on crafted frames through BPF_PROG_TEST_RUN: verdict,
 * whether an event came out, the event byte for byte, and the counters.
 * Then the rate limits.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <linux/bpf.h>

#include "capture.h"
#include "check.h"
#include "frames.h"

/* capture_open()'s message (the caller's buffer). */
static char cap_err[CAPTURE_ERR_LEN];

enum { MAX_EVENTS = 64 };

static struct capture *cap;
static struct jitwg_event events[MAX_EVENTS];
static int n_events;

static int on_event(void *ctx, const struct jitwg_event *ev)
{
	(void)ctx;
	if (n_events < MAX_EVENTS)
		events[n_events] = *ev;
	n_events++;
	return 0;
}

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

/* Run one frame; return the verdict, collect events, give counter deltas. */
static int run(const uint8_t *frame, size_t len, uint64_t delta[JITWG_CTR_MAX])
{
	uint64_t before[JITWG_CTR_MAX], after[JITWG_CTR_MAX];
	uint8_t out[FRAME_MAX];
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = frame, .data_size_in = len,
		    .data_out = out, .data_size_out = sizeof(out), .repeat = 1);
	int i;

	n_events = 0;
	if (capture_read_counters(cap, before))
		return -1;
	if (bpf_prog_test_run_opts(capture_prog_fd(cap), &o))
		return -errno;
	capture_poll(cap, 0);
	if (capture_read_counters(cap, after))
		return -1;
	for (i = 0; i < JITWG_CTR_MAX; i++)
		delta[i] = after[i] - before[i];
	/* The program never rewrites a frame it passes. */
	if (o.retval == XDP_PASS &&
	    (o.data_size_out != len || memcmp(out, frame, len)))
		return -EBADMSG;
	return o.retval;
}

enum want { NO_EVENT, EVENT };

struct row {
	const char *name;
	struct frame_spec spec;
	uint8_t type;        /* message type byte, default 1 */
	int reserved_byte;   /* 1..3: make that reserved byte non-zero */
	size_t truncate_at;  /* cut the frame: offset from a layout field */
	enum { CUT_NONE, CUT_L3, CUT_L4, CUT_PAYLOAD, CUT_ABS } cut;
	int udp_len_delta;   /* corrupt the UDP length field */
	enum want want;
	uint64_t wg_udp, matched, malformed;
};

static const uint8_t src_v4[4] = { 198, 51, 100, 7 };
static const uint8_t src_v6[16] = { 0x20, 0x01, 0x0d, 0xb8, 0xaa, 0xbb, 0xcc,
				    0xdd, 1, 2, 3, 4, 5, 6, 7, 8 };

/* Rows override the macros' defaults on purpose. */
#pragma GCC diagnostic ignored "-Woverride-init"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#define V4(...) { .family = 4, .saddr = src_v4, .sport = 40000, .dport = 51820, \
		  .payload_len = 148, __VA_ARGS__ }
#define V6(...) { .family = 6, .saddr = src_v6, .sport = 40001, .dport = 51820, \
		  .payload_len = 148, __VA_ARGS__ }

static const struct row rows[] = {
	/* valid initiations */
	{ "ipv4 initiation", V4(), .want = EVENT, .wg_udp = 1, .matched = 1 },
	{ "ipv6 initiation", V6(), .want = EVENT, .wg_udp = 1, .matched = 1 },
	{ "ipv4 one vlan tag", V4(.vlans = 1), .want = EVENT, .wg_udp = 1, .matched = 1 },
	{ "ipv6 one vlan tag", V6(.vlans = 1), .want = EVENT, .wg_udp = 1, .matched = 1 },
	{ "ipv4 two vlan tags", V4(.vlans = 2), .want = EVENT, .wg_udp = 1, .matched = 1 },
	{ "ipv6 two vlan tags", V6(.vlans = 2), .want = EVENT, .wg_udp = 1, .matched = 1 },
	{ "ipv4 with 8 option bytes", V4(.ip_opts = 8), .want = EVENT, .wg_udp = 1, .matched = 1 },
	{ "ipv4 with 40 option bytes", V4(.ip_opts = 40), .want = EVENT, .wg_udp = 1, .matched = 1 },
	{ "second port 51821", V4(.dport = 51821), .want = EVENT, .wg_udp = 1, .matched = 1 },
	/* not initiations */
	{ "udp to port 53", V4(.dport = 53) },
	{ "udp to port 51822", V6(.dport = 51822) },
	{ "tcp to 51820", V4(.l4proto = 6) },
	{ "not ip (arp)", { .family = 0 } },
	{ "type 2 response (92 bytes)", V4(.payload_len = 92), .type = 2, .wg_udp = 1 },
	{ "type 3 cookie (64 bytes)", V4(.payload_len = 64), .type = 3, .wg_udp = 1 },
	{ "type 4 data (96 bytes)", V4(.payload_len = 96), .type = 4, .wg_udp = 1 },
	{ "type 2 with 148 bytes", V4(), .type = 2, .wg_udp = 1 },
	{ "type 3 with 148 bytes", V6(), .type = 3, .wg_udp = 1 },
	{ "type 4 with 148 bytes", V4(), .type = 4, .wg_udp = 1 },
	{ "payload 147 bytes", V4(.payload_len = 147), .wg_udp = 1 },
	{ "payload 149 bytes", V4(.payload_len = 149), .wg_udp = 1 },
	{ "ipv6 payload 149 bytes", V6(.payload_len = 149), .wg_udp = 1 },
	{ "reserved byte 1 set", V4(), .reserved_byte = 1, .wg_udp = 1 },
	{ "reserved byte 2 set", V4(), .reserved_byte = 2, .wg_udp = 1 },
	{ "reserved byte 3 set", V6(), .reserved_byte = 3, .wg_udp = 1 },
	{ "ipv4 first fragment (MF)", V4(.frag = 0x2000) },
	{ "ipv4 later fragment", V4(.frag = 0x0010) },
	{ "ipv4 DF is not a fragment", V4(.frag = 0x4000), .want = EVENT, .wg_udp = 1, .matched = 1 },
	/* IPv6 extension headers */
	{ "ipv6 hop-by-hop + destination options", V6(.ext = { 0, 60 }, .n_ext = 2), .want = EVENT, .wg_udp = 1, .matched = 1 },
	{ "ipv6 routing header, two vlan tags", V6(.vlans = 2, .ext = { 43 }, .n_ext = 1), .want = EVENT, .wg_udp = 1, .matched = 1 },
	{ "ipv6 four extension headers", V6(.ext = { 0, 43, 60, 60 }, .n_ext = 4), .want = EVENT, .wg_udp = 1, .matched = 1 },
	{ "ipv6 five extension headers (not followed)", V6(.ext = { 0, 60, 60, 60, 60 }, .n_ext = 5) },
	{ "ipv6 fragment header", V6(.ext = { 44 }, .n_ext = 1) },
	{ "ipv6 destination options then fragment", V6(.ext = { 60, 44 }, .n_ext = 2) },
	{ "cut inside ipv6 extension header", V6(.ext = { 0, 43 }, .n_ext = 2), .cut = CUT_L3, .truncate_at = 52, .malformed = 1 },
	/* truncated inside every header, or lengths that disagree */
	{ "cut inside first vlan tag", V4(.vlans = 1), .cut = CUT_ABS, .truncate_at = 15, .malformed = 1 },
	{ "cut inside second vlan tag", V4(.vlans = 2), .cut = CUT_ABS, .truncate_at = 19, .malformed = 1 },
	{ "cut inside ipv4 header", V4(), .cut = CUT_L3, .truncate_at = 10, .malformed = 1 },
	{ "cut inside ipv4 options", V4(.ip_opts = 12), .cut = CUT_L3, .truncate_at = 24, .malformed = 1 },
	{ "cut inside ipv6 header", V6(), .cut = CUT_L3, .truncate_at = 30, .malformed = 1 },
	{ "cut inside udp header", V4(), .cut = CUT_L4, .truncate_at = 5, .malformed = 1 },
	{ "cut inside ipv6 udp header", V6(), .cut = CUT_L4, .truncate_at = 3, .malformed = 1 },
	{ "cut inside initiation", V4(), .cut = CUT_PAYLOAD, .truncate_at = 100, .wg_udp = 1, .malformed = 1 },
	{ "cut inside ipv6 initiation", V6(.vlans = 2), .cut = CUT_PAYLOAD, .truncate_at = 147, .wg_udp = 1, .malformed = 1 },
	{ "udp length says 148, ip says more", V4(.payload_len = 150), .udp_len_delta = -2, .wg_udp = 1, .malformed = 1 },
};

static void apply(const struct row *r, uint8_t *frame, size_t *len,
		  const struct frame_layout *l)
{
	if (l->payload < *len && r->type)
		frame[l->payload] = r->type;
	if (r->reserved_byte)
		frame[l->payload + r->reserved_byte] = 0x01;
	if (r->udp_len_delta) {
		uint16_t v = (frame[l->l4 + 4] << 8 | frame[l->l4 + 5]) + r->udp_len_delta;

		frame[l->l4 + 4] = v >> 8;
		frame[l->l4 + 5] = v;
	}
	switch (r->cut) {
	case CUT_L3: *len = l->l3 + r->truncate_at; break;
	case CUT_L4: *len = l->l4 + r->truncate_at; break;
	case CUT_PAYLOAD: *len = l->payload + r->truncate_at; break;
	case CUT_ABS: *len = r->truncate_at; break;
	case CUT_NONE: break;
	}
}

/* The event must be this frame's, byte for byte. */
static int event_matches(const struct jitwg_event *ev, const struct row *r,
			 const uint8_t *frame, const struct frame_layout *l,
			 uint64_t t0, uint64_t t1)
{
	uint8_t saddr[16] = {}, daddr[16] = {};
	int ok = 1;

	if (r->spec.family == 4) {
		saddr[10] = saddr[11] = daddr[10] = daddr[11] = 0xff;
		memcpy(saddr + 12, frame + l->l3 + 12, 4);
		memcpy(daddr + 12, frame + l->l3 + 16, 4);
	} else {
		memcpy(saddr, frame + l->l3 + 8, 16);
		memcpy(daddr, frame + l->l3 + 24, 16);
	}
	ok &= EXPECT(ev->ts_ns >= t0 && ev->ts_ns <= t1, "ts %llu in [%llu, %llu]",
		     (unsigned long long)ev->ts_ns, (unsigned long long)t0,
		     (unsigned long long)t1);
	ok &= EXPECT(ev->ifindex == 1, "ifindex %u (loopback in test runs)", ev->ifindex);
	ok &= EXPECT(ev->sport == r->spec.sport, "sport %u", ev->sport);
	ok &= EXPECT(ev->dport == r->spec.dport, "dport %u", ev->dport);
	ok &= EXPECT(!memcmp(ev->saddr, saddr, 16), "saddr");
	ok &= EXPECT(!memcmp(ev->daddr, daddr, 16), "daddr");
	ok &= EXPECT(ev->family == r->spec.family, "family %u", ev->family);
	ok &= EXPECT(ev->vlan_depth == r->spec.vlans, "vlan_depth %u", ev->vlan_depth);
	ok &= EXPECT(ev->flags == 0, "flags %u", ev->flags);
	ok &= EXPECT(!memcmp(ev->msg, frame + l->payload, 148), "msg bytes");
	return ok;
}

static void test_table(void)
{
	uint8_t frame[FRAME_MAX], msg[160];
	uint64_t d[JITWG_CTR_MAX];
	struct frame_layout l;
	size_t i, len;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const struct row *r = &rows[i];
		struct frame_spec spec = r->spec;
		uint64_t t0, t1;
		int verdict, ok = 1;

		memset(msg, 0, sizeof(msg));
		frame_initiation(msg, i);
		spec.payload = msg;
		len = frame_build(frame, &spec, &l);
		apply(r, frame, &len, &l);

		t0 = mono_ns();
		verdict = run(frame, len, d);
		t1 = mono_ns();
		ok &= EXPECT(verdict == XDP_PASS, "verdict %d", verdict);
		ok &= EXPECT(n_events == (r->want == EVENT), "%d events", n_events);
		if (n_events == 1 && r->want == EVENT)
			ok &= event_matches(&events[0], r, frame, &l, t0, t1);
		ok &= EXPECT(d[JITWG_CTR_PACKETS] == 1, "packets +%llu", (unsigned long long)d[JITWG_CTR_PACKETS]);
		ok &= EXPECT(d[JITWG_CTR_WG_UDP] == r->wg_udp, "wg_udp +%llu", (unsigned long long)d[JITWG_CTR_WG_UDP]);
		ok &= EXPECT(d[JITWG_CTR_MATCHED] == r->matched, "matched +%llu", (unsigned long long)d[JITWG_CTR_MATCHED]);
		ok &= EXPECT(d[JITWG_CTR_EVENTS] == (r->want == EVENT), "events +%llu", (unsigned long long)d[JITWG_CTR_EVENTS]);
		ok &= EXPECT(d[JITWG_CTR_MALFORMED] == r->malformed, "malformed +%llu", (unsigned long long)d[JITWG_CTR_MALFORMED]);
		ok &= EXPECT(d[JITWG_CTR_LIMITED_SRC] + d[JITWG_CTR_LIMITED_GLOBAL] +
				     d[JITWG_CTR_RINGBUF_FULL] == 0, "limited or full");
		CHECK(r->name, ok, "see above");
	}
}

/*
 * Send one valid IPv4/IPv6 initiation from saddr (with type, another message
 * of the same size); return events seen (0/1).
 */
static int knock_type(int family, const uint8_t *saddr, uint8_t type, int *verdict,
		      uint64_t d[JITWG_CTR_MAX])
{
	struct frame_spec spec = { .family = family, .saddr = saddr,
				   .sport = 12345, .dport = 51820,
				   .payload_len = 148 };
	uint8_t frame[FRAME_MAX], msg[148];
	struct frame_layout l;
	static uint8_t seq;
	size_t len;

	/* A new message each time, as a client's retries are (copies are
	 * refused under load: test_duplicates). */
	frame_initiation(msg, seq++);
	msg[0] = type;
	spec.payload = msg;
	len = frame_build(frame, &spec, &l);
	*verdict = run(frame, len, d);
	return n_events;
}

static int knock(int family, const uint8_t *saddr, int *verdict, uint64_t d[JITWG_CTR_MAX])
{
	return knock_type(family, saddr, WG_MSG_INITIATION, verdict, d);
}

/* Limits and fresh buckets; verified sources get vr/s, burst vb. */
static void set_limits_v(uint32_t sr, uint32_t sb, uint32_t gr, uint32_t gb,
			 uint32_t vr, uint32_t vb, uint32_t flags)
{
	struct jitwg_config cfg = { .src_rate = sr, .src_burst = sb,
				    .global_rate = gr, .global_burst = gb,
				    .verified_rate = vr, .verified_burst = vb,
				    .flags = flags };

	if (capture_set_limits(cap, &cfg) || capture_reset_limits(cap) ||
	    capture_forget_verified(cap))
		printf("  cannot set limits: %s\n", capture_error(cap));
}

static void set_limits(uint32_t sr, uint32_t sb, uint32_t gr, uint32_t gb, uint32_t flags)
{
	set_limits_v(sr, sb, gr, gb, 0, 0, flags);
}

/* IPv4-mapped form of a.b.c.d, as events carry it. */
static void mapped4(uint8_t out[16], const uint8_t a[4])
{
	memset(out, 0, 16);
	out[10] = out[11] = 0xff;
	memcpy(out + 12, a, 4);
}

/*
 * The fd of the program's map called name (a new fd, the caller closes it),
 * or -1: tests read maps the capture API does not expose.
 */
static int prog_map(const char *name)
{
	__u32 ids[32], n = 32, i, len;
	struct bpf_prog_info pi = { .nr_map_ids = n,
				    .map_ids = (__u64)(unsigned long)ids };
	struct bpf_map_info mi;
	int fd;

	len = sizeof(pi);
	if (bpf_obj_get_info_by_fd(capture_prog_fd(cap), &pi, &len))
		return -1;
	for (i = 0; i < pi.nr_map_ids && i < n; i++) {
		fd = bpf_map_get_fd_by_id(ids[i]);
		if (fd < 0)
			continue;
		memset(&mi, 0, sizeof(mi));
		len = sizeof(mi);
		if (!bpf_obj_get_info_by_fd(fd, &mi, &len) && !strcmp(mi.name, name))
			return fd;
		close(fd);
	}
	return -1;
}

/* The program's hash seed (verified_seed), 0 if it cannot be read. */
static uint64_t hash_seed(void)
{
	uint64_t seed = 0;
	__u32 zero = 0;
	int fd = prog_map("verified_seed");

	if (fd >= 0) {
		bpf_map_lookup_elem(fd, &zero, &seed);
		close(fd);
	}
	return seed;
}

/* The slot of IPv4 source a in src_buckets (JITWG_SRC_SLOT). */
static uint32_t src_slot4(const uint8_t a[4])
{
	uint64_t w[2];
	uint8_t k[16];

	mapped4(k, a);
	memcpy(w, k, 16);
	return JITWG_SRC_SLOT(w[0], w[1], hash_seed());
}

/* IPv4 source a's bucket word in src_buckets; -errno if unreadable. */
static int src_bucket4(const uint8_t a[4], uint64_t *tat)
{
	__u32 slot = src_slot4(a);
	int fd = prog_map("src_buckets"), err = 0;

	if (fd < 0)
		return -ENOENT;
	if (bpf_map_lookup_elem(fd, &slot, tat))
		err = -errno;
	close(fd);
	return err;
}

static void test_limits(void)
{
	uint8_t a[4] = { 10, 9, 0, 1 }, b[4] = { 10, 9, 0, 2 };
	uint8_t v6[16] = { 0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 2 };
	uint64_t d[JITWG_CTR_MAX];
	int i, v, got, ok;

	/* per-source burst: 3 pass, the 4th is limited, another source is
	 * not (one that does not share a's bucket: see JITWG_SRC_SLOT) */
	while (src_slot4(b) == src_slot4(a))
		b[3]++;
	set_limits(1, 3, 0, 0, 0);
	for (ok = 1, i = 0; i < 3; i++)
		ok &= EXPECT(knock(4, a, &v, d) == 1, "knock %d passed", i);
	ok &= EXPECT(knock(4, a, &v, d) == 0, "4th limited");
	ok &= EXPECT(d[JITWG_CTR_LIMITED_SRC] == 1 && d[JITWG_CTR_MATCHED] == 1,
		     "limited_src +%llu", (unsigned long long)d[JITWG_CTR_LIMITED_SRC]);
	ok &= EXPECT(v == XDP_PASS, "limited initiation still passes (verdict %d)", v);
	ok &= EXPECT(knock(4, b, &v, d) == 1, "other source unaffected");
	CHECK("per-source burst then limit", ok, "see above");

	/* tokens come back: 4/s, bucket of 1 → after 300 ms one more passes */
	set_limits(4, 1, 0, 0, 0);
	ok = EXPECT(knock(4, a, &v, d) == 1, "first passes");
	ok &= EXPECT(knock(4, a, &v, d) == 0, "second limited");
	usleep(300 * 1000);
	ok &= EXPECT(knock(4, a, &v, d) == 1, "refilled after 300 ms");
	ok &= EXPECT(knock(4, a, &v, d) == 0, "and only one token");
	CHECK("per-source tokens come back with time", ok, "see above");

	/* global bucket caps many distinct sources */
	set_limits(1000, 1000, 1, 10, 0);
	for (got = 0, i = 0; i < 20; i++) {
		uint8_t s[4] = { 10, 20, 0, (uint8_t)(i + 1) };

		got += knock(4, s, &v, d);
	}
	ok = EXPECT(got == 10, "%d of 20 sources passed, want 10", got);
	CHECK("global bucket caps many sources", ok, "see above");

	/*
	 * What the global budget refuses (a flood) is dropped, not passed to
	 * WireGuard to drown it; over a source's own limit it still passes.
	 * JITWG_F_PASS_FLOOD passes it as before.
	 */
	{
		uint8_t s[4] = { 10, 21, 0, 1 };

		set_limits(1000, 1000, 1, 1, 0);
		ok = EXPECT(knock(4, s, &v, d) == 1 && v == XDP_PASS, "first passes");
		s[3] = 2;
		ok &= EXPECT(knock(4, s, &v, d) == 0 && d[JITWG_CTR_LIMITED_GLOBAL] == 1 &&
				     v == XDP_DROP,
			     "over the global budget: dropped (verdict %d)", v);
		set_limits(1000, 1000, 1, 1, JITWG_F_PASS_FLOOD);
		ok &= EXPECT(knock(4, s, &v, d) == 1, "a new budget: passes");
		s[3] = 3;
		ok &= EXPECT(knock(4, s, &v, d) == 0 && d[JITWG_CTR_LIMITED_GLOBAL] == 1 &&
				     v == XDP_PASS,
			     "with JITWG_F_PASS_FLOOD: passed (verdict %d)", v);
		CHECK("a flood's excess is dropped, not passed to WireGuard", ok, "see above");
	}

	/* IPv6 sources in one /64 share a bucket */
	set_limits(1, 2, 0, 0, 0);
	v6[15] = 1;
	ok = EXPECT(knock(6, v6, &v, d) == 1, "::1 passes");
	v6[15] = 2;
	v6[9] = 0x77; /* different interface identifier, same /64 */
	ok &= EXPECT(knock(6, v6, &v, d) == 1, "::2 passes (2nd token)");
	v6[15] = 3;
	ok &= EXPECT(knock(6, v6, &v, d) == 0, "::3 limited: same /64");
	v6[7] = 3; /* another /64 */
	ok &= EXPECT(knock(6, v6, &v, d) == 1, "another /64 passes");
	CHECK("ipv6 sources in one /64 share a bucket", ok, "see above");

	/* drop option: over-limit initiations are dropped, others still pass */
	set_limits(1, 1, 0, 0, JITWG_F_DROP_LIMITED);
	ok = EXPECT(knock(4, a, &v, d) == 1 && v == XDP_PASS, "first passes");
	ok &= EXPECT(knock(4, a, &v, d) == 0 && v == XDP_DROP, "second dropped (verdict %d)", v);
	CHECK("drop option drops only initiations over the limit", ok, "see above");

	/* rate 0 disables a limit */
	set_limits(0, 0, 0, 0, 0);
	for (got = 0, i = 0; i < 50; i++)
		got += knock(4, a, &v, d);
	CHECK("rate 0 disables limits", got == 50, "%d of 50 passed", got);
}

static int mark(const uint8_t addr16[16], uint64_t until_ns)
{
	int err = capture_mark_verified(cap, addr16, until_ns);

	if (err)
		printf("  cannot mark: %s\n", capture_error(cap));
	return err;
}

/*
 * n initiations from IPv4 sources base + i * step (host order), one test run
 * each, every one a new message: a spoofed flood. Events are drained as
 * they come.
 */
static int flood_from(uint32_t base, uint32_t n, uint32_t step)
{
	struct frame_spec spec = { .family = 4, .sport = 12345, .dport = 51820,
				   .payload_len = 148 };
	uint8_t frame[FRAME_MAX], msg[148], s4[4] = { 100, 64, 0, 0 };
	struct frame_layout l;
	uint32_t i, a;
	size_t len;

	frame_initiation(msg, 9);
	spec.payload = msg;
	spec.saddr = s4;
	len = frame_build(frame, &spec, &l);
	for (i = 0; i < n; i++) {
		LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = frame,
			    .data_size_in = len, .repeat = 1);

		a = htonl(base + i * step);
		memcpy(frame + l.l3 + 12, &a, 4); /* the program ignores the IP checksum */
		/* a new message each time (its sender index), not copies of one */
		memcpy(frame + l.payload + JITWG_RECENT_HEAD_OFF, &i, 4);
		if (bpf_prog_test_run_opts(capture_prog_fd(cap), &o))
			return -errno;
		if (!(i & 4095))
			capture_poll(cap, 0);
	}
	capture_poll(cap, 0);
	return 0;
}

/* n initiations from the unseen sources 100.64.0.0 + i. */
static int flood_sources(uint32_t n)
{
	return flood_from(0x64400000u, n, 1);
}

static void test_verified(void)
{
	uint8_t v[4] = { 10, 7, 0, 1 }, w[4] = { 10, 8, 0, 3 };
	uint8_t s1[4] = { 10, 8, 0, 1 }, s2[4] = { 10, 8, 0, 2 }, r[4] = { 10, 7, 0, 9 };
	uint8_t v16[16], w16[16];
	uint64_t tat0 = 0, tat1 = 0;
	uint8_t v6[16] = { 0x20, 0x01, 0x0d, 0xb8, 0, 9, 0, 1, [15] = 1 };
	uint64_t d[JITWG_CTR_MAX], before[JITWG_CTR_MAX], after[JITWG_CTR_MAX];
	struct jitwg_config raised = { .src_rate = 1, .src_burst = 1,
				       .global_rate = 1000000000,
				       .global_burst = 2000000000 };
	int vd, ok;

	mapped4(v16, v);
	mapped4(w16, w);

	/*
	 * A flood of unseen sources twice the number of source buckets, global
	 * limit off so that every one of them is admitted where its bucket has
	 * a token. The verified source is still verified (it has no source
	 * bucket), and the bucket a real source spent is still spent: nothing
	 * is evicted. (With the LRU the flood pushed it out, and the source
	 * came back with a full bucket.)
	 */
	set_limits_v(1, 1, 0, 0, 1, 2, 0);
	ok = EXPECT(!mark(v16, mono_ns() + JITWG_VERIFIED_TTL_NS), "marked");
	ok &= EXPECT(knock(4, v, &vd, d) == 1 && d[JITWG_CTR_VERIFIED] == 1,
		     "verified source passes, counted verified");
	ok &= EXPECT(events[0].flags == JITWG_EV_VERIFIED,
		     "its event says verified (flags %u)", events[0].flags);
	ok &= EXPECT(d[JITWG_CTR_SRC_NEW] == 0, "verified source: no source bucket");
	ok &= EXPECT(knock(4, r, &vd, d) == 1 && d[JITWG_CTR_SRC_NEW] == 1,
		     "a real source takes its token");
	ok &= EXPECT(events[0].flags == 0, "a real source's event does not (flags %u)",
		     events[0].flags);
	ok &= EXPECT(knock(4, r, &vd, d) == 0 && d[JITWG_CTR_LIMITED_SRC] == 1,
		     "and is limited");
	ok &= EXPECT(!src_bucket4(r, &tat0) && tat0, "its bucket is in its slot");
	capture_read_counters(cap, before);
	ok &= EXPECT(flood_sources(2 * JITWG_SRC_MAP_ENTRIES) == 0, "flood ran");
	capture_read_counters(cap, after);
	ok &= EXPECT(after[JITWG_CTR_SRC_NEW] - before[JITWG_CTR_SRC_NEW] > 0,
		     "flood sources admitted");
	ok &= EXPECT(!src_bucket4(r, &tat1) && tat1 >= tat0,
		     "the real source's bucket survived the flood (%llu, was %llu)",
		     (unsigned long long)tat1, (unsigned long long)tat0);
	ok &= EXPECT(knock(4, v, &vd, d) == 1 && d[JITWG_CTR_VERIFIED] == 1 &&
			     d[JITWG_CTR_SRC_NEW] == 0,
		     "verified source still verified after the flood");
	CHECK("flood of unseen sources evicts neither a verified nor a real source",
	      ok, "see above");

	/*
	 * The global bucket is asked before a source's bucket is charged:
	 * refused globally, the source keeps its token for when the global
	 * limit lets it through. (s2 is chosen so that it does not share s1's
	 * bucket.)
	 */
	while (src_slot4(s2) == src_slot4(s1))
		s2[3]++;
	set_limits(1, 1, 1, 1, 0);
	ok = EXPECT(knock(4, s1, &vd, d) == 1 && d[JITWG_CTR_SRC_NEW] == 1,
		    "first source takes the global token");
	ok &= EXPECT(knock(4, s2, &vd, d) == 0 && d[JITWG_CTR_LIMITED_GLOBAL] == 1,
		     "second source refused globally");
	ok &= EXPECT(d[JITWG_CTR_SRC_NEW] == 0 && d[JITWG_CTR_LIMITED_SRC] == 0,
		     "and its bucket not charged");
	ok &= EXPECT(!capture_set_limits(cap, &raised), "raise the global limit");
	ok &= EXPECT(knock(4, s2, &vd, d) == 1,
		     "second source's own bucket untouched by the refusal");
	ok &= EXPECT(knock(4, s1, &vd, d) == 0 && d[JITWG_CTR_LIMITED_SRC] == 1,
		     "first source keeps its spent bucket");
	CHECK("global budget consulted before a source's bucket is charged", ok,
	      "see above");

	/*
	 * With the global budget spent by other sources, a verified source
	 * still passes on its own budget, which caps it too (NAT: a budget,
	 * not a free pass). Expired and unmarked sources are ordinary ones:
	 * refused globally once their prefix's reserve is spent (w is in
	 * s1's /24, whose reserve s1's admission spent; v's /24 has its
	 * reserve until v, unmarked, spends it).
	 */
	set_limits_v(100, 100, 1, 1, 1, 2, 0);
	ok = EXPECT(!mark(v16, mono_ns() + JITWG_VERIFIED_TTL_NS), "marked");
	ok &= EXPECT(!mark(w16, 1), "marked, long expired");
	ok &= EXPECT(knock(4, s1, &vd, d) == 1, "a source spends the global budget");
	ok &= EXPECT(knock(4, s2, &vd, d) == 0 && d[JITWG_CTR_LIMITED_GLOBAL] == 1,
		     "global budget spent");
	ok &= EXPECT(knock(4, v, &vd, d) == 1, "verified passes (1)");
	ok &= EXPECT(knock(4, v, &vd, d) == 1, "verified passes (2)");
	ok &= EXPECT(knock(4, v, &vd, d) == 0 && d[JITWG_CTR_LIMITED_VERIFIED] == 1 &&
			     d[JITWG_CTR_LIMITED_GLOBAL] == 0,
		     "verified: its own budget caps it");
	ok &= EXPECT(knock(4, w, &vd, d) == 0 && d[JITWG_CTR_LIMITED_GLOBAL] == 1 &&
			     d[JITWG_CTR_VERIFIED] == 0,
		     "expired mark: an ordinary source");
	ok &= EXPECT(!mark(v16, 0), "unmarked");
	ok &= EXPECT(knock(4, v, &vd, d) == 1 && d[JITWG_CTR_PREFIX_RESERVE] == 1 &&
			     d[JITWG_CTR_VERIFIED] == 0,
		     "unmarked: an ordinary source, on its prefix's reserve");
	ok &= EXPECT(knock(4, v, &vd, d) == 1 && d[JITWG_CTR_PREFIX_RESERVE] == 1,
		     "and on its prefix's other slot");
	ok &= EXPECT(knock(4, v, &vd, d) == 0 && d[JITWG_CTR_LIMITED_GLOBAL] == 1,
		     "then refused globally");
	/* IPv6: the mark covers the source's /64 */
	ok &= EXPECT(!mark(v6, mono_ns() + JITWG_VERIFIED_TTL_NS), "marked v6");
	v6[15] = 2;
	v6[9] = 0x42;
	ok &= EXPECT(knock(6, v6, &vd, d) == 1 && d[JITWG_CTR_VERIFIED] == 1,
		     "another address of the /64 is verified");
	v6[7] = 2;
	knock(6, v6, &vd, d);
	ok &= EXPECT(d[JITWG_CTR_VERIFIED] == 0 && d[JITWG_CTR_MATCHED] == 1,
		     "another /64 is not");
	CHECK("verified budget separate from the global one", ok, "see above");
	set_limits(0, 0, 0, 0, 0);
}

/* The hash of IPv4 source a's /20 (JITWG_PREFIX_HASH), for its two slots. */
static uint64_t prefix_hash4(const uint8_t a[4])
{
	uint8_t p[4] = { a[0], a[1], (uint8_t)(a[2] & 0xf0), 0 };
	uint64_t w[2];
	uint8_t k[16];

	mapped4(k, p);
	memcpy(w, k, 16);
	return JITWG_PREFIX_HASH(w[0], w[1], hash_seed());
}

/*
 * The prefix reserve: a flood from one /16 spends the global budget and
 * its own prefixes' reserve, and a client from another prefix still gets
 * in; a flood over all prefixes is held by the global budget (plus, once,
 * what the reserve held).
 */
static void test_prefix_reserve(void)
{
	uint8_t in16[4] = { 100, 64, 7, 9 }, other[4] = { 198, 51, 0, 7 };
	uint64_t d[JITWG_CTR_MAX], before[JITWG_CTR_MAX], after[JITWG_CTR_MAX];
	static uint8_t hit[JITWG_PREFIX_SLOTS];
	uint64_t admitted;
	uint32_t i;
	int vd, ok;

	/* another prefix with two slots of its own, none of which the flood's
	 * 16 /20s share */
	memset(hit, 0, sizeof(hit));
	for (i = 0; i < 256; i++) {
		uint8_t a[4] = { 100, 64, (uint8_t)i, 0 };

		hit[JITWG_PREFIX_SLOT_A(prefix_hash4(a))] = 1;
		hit[JITWG_PREFIX_SLOT_B(prefix_hash4(a))] = 1;
	}
	while (hit[JITWG_PREFIX_SLOT_A(prefix_hash4(other))] ||
	       hit[JITWG_PREFIX_SLOT_B(prefix_hash4(other))] ||
	       JITWG_PREFIX_SLOT_A(prefix_hash4(other)) ==
		       JITWG_PREFIX_SLOT_B(prefix_hash4(other)))
		other[2] += 16;

	set_limits(100, 100, 1, 1, 0);
	capture_read_counters(cap, before);
	ok = EXPECT(flood_from(0x64400000u, 65536, 1) == 0, "flood from 100.64/16 ran");
	capture_read_counters(cap, after);
	admitted = after[JITWG_CTR_EVENTS] - before[JITWG_CTR_EVENTS];
	ok &= EXPECT(admitted >= 1 && admitted <= 1 + 2 * 16,
		     "the flood got the global token and at most its 16 prefixes' "
		     "reserve (two slots each): %llu", (unsigned long long)admitted);
	ok &= EXPECT(knock(4, in16, &vd, d) == 0 && d[JITWG_CTR_LIMITED_GLOBAL] == 1,
		     "another source of the flooded /16 is refused");
	ok &= EXPECT(knock(4, other, &vd, d) == 1 && d[JITWG_CTR_PREFIX_RESERVE] == 1,
		     "a client of another prefix gets in on its prefix's reserve");
	ok &= EXPECT(knock(4, other, &vd, d) == 1 && d[JITWG_CTR_PREFIX_RESERVE] == 1,
		     "twice: on its other slot");
	ok &= EXPECT(knock(4, other, &vd, d) == 0 && d[JITWG_CTR_LIMITED_GLOBAL] == 1,
		     "not three times: its prefix's share is small");
	CHECK("a flood from one range leaves other prefixes their reserve", ok,
	      "see above");

	/* 262,144 sources, each in a /20 of its own (10.0.0.0 to
	 * 73.255.240.0): 16 a slot on average, so every slot */
	set_limits(100, 100, 1, 1, 0);
	capture_read_counters(cap, before);
	ok = EXPECT(flood_from(0x0a000000u, 262144, 4096) == 0, "flood over 10/8-73/8 ran");
	capture_read_counters(cap, after);
	admitted = after[JITWG_CTR_EVENTS] - before[JITWG_CTR_EVENTS];
	ok &= EXPECT(admitted <= 1 + JITWG_PREFIX_SLOTS,
		     "the global token and at most each slot's reserve: %llu",
		     (unsigned long long)admitted);
	ok &= EXPECT(knock(4, other, &vd, d) == 0 && d[JITWG_CTR_LIMITED_GLOBAL] == 1,
		     "then nobody gets in: the reserve is spent everywhere");
	CHECK("a flood over all prefixes is held by the global budget", ok,
	      "see above");
	set_limits(0, 0, 0, 0, 0);
}

static int seed_verdict;

/*
 * One initiation built from seed (the same seed: the same bytes) from
 * saddr; the verdict in seed_verdict.
 */
static int knock_seed(const uint8_t *saddr, uint8_t seed, uint64_t d[JITWG_CTR_MAX])
{
	struct frame_spec spec = { .family = 4, .saddr = saddr, .sport = 12345,
				   .dport = 51820, .payload_len = 148 };
	uint8_t frame[FRAME_MAX], msg[148];
	struct frame_layout l;
	size_t len;

	frame_initiation(msg, seed);
	spec.payload = msg;
	len = frame_build(frame, &spec, &l);
	seed_verdict = run(frame, len, d);
	return n_events;
}

/* The initiation msg from saddr; the verdict in seed_verdict. */
static int knock_msg(const uint8_t *saddr, const uint8_t msg[148],
		     uint64_t d[JITWG_CTR_MAX])
{
	struct frame_spec spec = { .family = 4, .saddr = saddr, .sport = 12345,
				   .dport = 51820, .payload = msg, .payload_len = 148 };
	uint8_t frame[FRAME_MAX];
	struct frame_layout l;
	size_t len;

	len = frame_build(frame, &spec, &l);
	seed_verdict = run(frame, len, d);
	return n_events;
}

/*
 * Copies of an initiation userspace already has spend a budget of their own
 * (JITWG_DUP_BURST, then JITWG_DUP_RATE/s) while the global bucket is not
 * full: never the global one, so a replay flood leaves it to others.
 */
static void test_duplicates(void)
{
	uint8_t a[4] = { 10, 11, 0, 1 }, s4[4] = { 10, 12, 0, 0 },
		e[4] = { 10, 11, 0, 4 };
	uint64_t d[JITWG_CTR_MAX], before[JITWG_CTR_MAX], after[JITWG_CTR_MAX];
	uint8_t m[148];
	int ok, i, got, dropped;

	/* global 1/s, burst 3 */
	set_limits(100, 100, 1, 3, 0);
	ok = EXPECT(knock_seed(a, 200, d) == 1, "first copy passes");
	capture_read_counters(cap, before);
	/* three bursts' worth: the refill while they run is far less */
	for (dropped = got = 0, i = 0; i < 3 * JITWG_DUP_BURST; i++) {
		s4[2] = i >> 8;
		s4[3] = i;
		got += knock_seed(s4, 200, d);
		dropped += d[JITWG_CTR_DUPLICATE] && seed_verdict == XDP_DROP;
	}
	capture_read_counters(cap, after);
	ok &= EXPECT(got >= JITWG_DUP_BURST && got < 3 * JITWG_DUP_BURST,
		     "%d copies passed, want their burst (%d) and a little refill",
		     got, JITWG_DUP_BURST);
	ok &= EXPECT(after[JITWG_CTR_DUPLICATE] - before[JITWG_CTR_DUPLICATE] ==
			     (uint64_t)(3 * JITWG_DUP_BURST - got) &&
			     after[JITWG_CTR_LIMITED_GLOBAL] == before[JITWG_CTR_LIMITED_GLOBAL],
		     "the rest refused as duplicates, none by the global bucket");
	ok &= EXPECT(dropped == 3 * JITWG_DUP_BURST - got,
		     "refused copies dropped (%d of %d): WireGuard has the original",
		     dropped, 3 * JITWG_DUP_BURST - got);
	ok &= EXPECT(knock_seed(e, 201, d) == 1 && knock_seed(e, 202, d) == 1,
		     "the global budget is intact: two new messages pass");
	ok &= EXPECT(knock_seed(e, 203, d) == 0 && d[JITWG_CTR_LIMITED_GLOBAL] == 1,
		     "then it is spent");
	CHECK("copies of a recent initiation spend their own budget", ok, "see above");

	/*
	 * A copy has the same head (sender index, start of the ephemeral
	 * key), whatever follows it: a message with another head is new,
	 * even with the copies' budget spent.
	 */
	set_limits(100, 100, 1, 1000, 0);
	frame_initiation(m, 220);
	ok = EXPECT(knock_msg(a, m, d) == 1, "the original passes");
	for (i = 0; i < 2 * JITWG_DUP_BURST; i++)
		knock_msg(a, m, d);
	ok &= EXPECT(knock_msg(a, m, d) == 0 && d[JITWG_CTR_DUPLICATE] == 1 &&
			     seed_verdict == XDP_DROP,
		     "copies' budget spent: a copy is dropped");
	m[WG_MAC1_OFF + 15] ^= 1;
	ok &= EXPECT(knock_msg(a, m, d) == 0 && d[JITWG_CTR_DUPLICATE] == 1,
		     "same head, another mac1: a copy");
	m[WG_MAC1_OFF + 15] ^= 1;
	m[JITWG_RECENT_HEAD_OFF + 7] ^= 1;
	ok &= EXPECT(knock_msg(a, m, d) == 1 && d[JITWG_CTR_DUPLICATE] == 0,
		     "same mac1, another head: new");
	m[JITWG_RECENT_HEAD_OFF] ^= 1;
	ok &= EXPECT(knock_msg(a, m, d) == 1 && d[JITWG_CTR_DUPLICATE] == 0,
		     "another sender index: new");
	CHECK("a copy is the same head", ok, "see above");

	/* reset forgets recent initiations; no global limit, never checked */
	set_limits(0, 0, 0, 0, 0);
	for (got = 0, i = 0; i < JITWG_DUP_BURST + 10; i++)
		got += knock_seed(a, 200, d);
	CHECK("copies pass without a global limit", got == JITWG_DUP_BURST + 10,
	      "%d passed", got);
}

/*
 * Reference matcher, written from the spec rather than from the BPF code:
 * returns 1 for an initiation (payload offset in *off), 0 for other
 * traffic, -1 for what the program must count as malformed.
 */
static int reference(const uint8_t *f, size_t len, size_t *off)
{
	size_t o = 12, l4len, hl;
	uint16_t proto, udplen, dport;
	int v;

	if (len < 14)
		return -1;
	proto = f[12] << 8 | f[13];
	o = 14;
	for (v = 0; v < 2 && (proto == 0x8100 || proto == 0x88a8); v++) {
		if (o + 4 > len)
			return -1;
		proto = f[o + 2] << 8 | f[o + 3];
		o += 4;
	}
	if (proto == 0x0800) {
		if (o + 20 > len)
			return -1;
		hl = (f[o] & 15) * 4;
		if ((f[o] >> 4) != 4 || hl < 20 || o + hl > len)
			return -1;
		if (f[o + 9] != 17 || ((f[o + 6] << 8 | f[o + 7]) & 0x3fff))
			return 0;
		if ((size_t)(f[o + 2] << 8 | f[o + 3]) < hl)
			return -1;
		l4len = (f[o + 2] << 8 | f[o + 3]) - hl;
		o += hl;
	} else if (proto == 0x86dd) {
		size_t plen, ext = 0;
		uint8_t next;

		if (o + 40 > len)
			return -1;
		if ((f[o] >> 4) != 6)
			return -1;
		plen = f[o + 4] << 8 | f[o + 5];
		next = f[o + 6];
		o += 40;
		/* RFC 8200 §4: up to 4 hop-by-hop, routing or destination
		 * options headers, (Hdr Ext Len + 1) * 8 bytes each. */
		for (v = 0; v < 4 && (next == 0 || next == 43 || next == 60); v++) {
			if (o + 2 > len || o + (f[o + 1] + 1) * 8 > len)
				return -1;
			hl = (f[o + 1] + 1) * 8;
			next = f[o];
			o += hl;
			ext += hl;
		}
		if (next != 17)
			return 0;
		if (plen < ext)
			return -1;
		l4len = plen - ext;
	} else {
		return 0;
	}
	if (o + 8 > len)
		return -1;
	dport = f[o + 2] << 8 | f[o + 3];
	udplen = f[o + 4] << 8 | f[o + 5];
	if (dport != 51820 && dport != 51821)
		return 0;
	if (udplen != 156)
		return 0;
	if (l4len != 156 || o + 8 + 148 > len)
		return -1;
	*off = o + 8;
	return f[o + 8] == 1 && !f[o + 9] && !f[o + 10] && !f[o + 11];
}

/*
 * Hostile input: valid frames of every shape with random bytes changed
 * and random cuts. The program must pass every frame, and agree with the
 * reference matcher on event and malformed counter.
 */
static void test_mutations(void)
{
	enum { ROUNDS = 20000 };
	static const struct frame_spec shapes[] = {
		V4(), V6(), V4(.vlans = 1), V6(.vlans = 2), V4(.ip_opts = 20),
		V4(.vlans = 2, .ip_opts = 4), V6(.ext = { 0, 43 }, .n_ext = 2),
		V6(.vlans = 1, .ext = { 60 }, .n_ext = 1),
	};
	enum { SHAPES = sizeof(shapes) / sizeof(shapes[0]) };
	uint8_t frame[FRAME_MAX], msg[148];
	uint64_t d[JITWG_CTR_MAX];
	struct frame_layout l;
	unsigned int seed = 0x5eed;
	int i, disagree = 0, got = 0, malformed = 0;

	for (i = 0; i < ROUNDS && disagree < 5; i++) {
		struct frame_spec spec = shapes[i % SHAPES];
		size_t len, off = 0, flips, k;
		int want, verdict;

		frame_initiation(msg, i);
		spec.payload = msg;
		len = frame_build(frame, &spec, &l);
		flips = rand_r(&seed) % 4;
		for (k = 0; k < flips; k++) {
			/* mostly in the headers, where the parser looks */
			size_t at = rand_r(&seed) % (l.payload + 4);

			frame[at] = rand_r(&seed) % 3 ? rand_r(&seed) : frame[at] ^ 1;
		}
		if (rand_r(&seed) % 4 == 0)
			len = 14 + rand_r(&seed) % (len - 13);
		want = reference(frame, len, &off);
		verdict = run(frame, len, d);
		if (verdict != XDP_PASS || n_events != (want == 1) ||
		    d[JITWG_CTR_MALFORMED] != (want == -1) ||
		    (n_events == 1 && memcmp(events[0].msg, frame + off, 148))) {
			printf("  round %d: verdict %d, %d events, malformed +%llu; reference says %d\n",
			       i, verdict, n_events,
			       (unsigned long long)d[JITWG_CTR_MALFORMED], want);
			disagree++;
		}
		got += n_events;
		malformed += want == -1;
	}
	CHECK("20000 mutated frames agree with the reference matcher",
	      !disagree && got > 100 && malformed > 100,
	      "%d disagreements (%d events, %d malformed)", disagree, got,
	      malformed);
}

/*
 * The consumer's lease (jitwgd --consume): while it runs, an initiation in
 * the ring buffer is dropped (the consumer re-delivers it); everything else
 * keeps its verdict, and a lapsed lease or a full ring means pass.
 */
static void test_lease(void)
{
	uint8_t a[4] = { 10, 9, 1, 1 };
	uint8_t v6[16] = { 0x20, 0x01, 0x0d, 0xb8, 0, 9, 0, 1 };
	uint64_t d[JITWG_CTR_MAX];
	uint8_t frame[FRAME_MAX], msg[148];
	struct frame_spec spec = { .family = 4, .saddr = a, .sport = 12345,
				   .dport = 51820, .payload_len = 148, .payload = msg };
	struct frame_layout l;
	size_t len;
	int v, ok;

	/* The frames' destinations (tests/frames.c) are this "host". */
	static const uint8_t local[2][16] = {
		{ [10] = 0xff, [11] = 0xff, [12] = 192, [13] = 0, [14] = 2, [15] = 254 },
		{ 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0xff, [15] = 0xfe },
	};
	static const uint8_t other[1][16] = {
		{ [10] = 0xff, [11] = 0xff, [12] = 192, [13] = 0, [14] = 2, [15] = 77 },
	};

	set_limits(0, 0, 0, 0, 0);
	ok = EXPECT(capture_set_local_addrs(cap, local, 2) == 0, "%s", capture_error(cap));
	ok &= EXPECT(capture_set_lease(cap, mono_ns() + 10000000000ull) == 0, "%s",
		     capture_error(cap));
	ok &= EXPECT(knock(4, a, &v, d) == 1 && v == XDP_DROP,
		     "IPv4 initiation: event and drop (verdict %d)", v);
	ok &= EXPECT(events[0].flags == JITWG_EV_CONSUMED, "flags %u", events[0].flags);
	ok &= EXPECT(d[JITWG_CTR_CONSUMED] == 1 && d[JITWG_CTR_EVENTS] == 1,
		     "consumed +%llu", (unsigned long long)d[JITWG_CTR_CONSUMED]);
	ok &= EXPECT(knock(6, v6, &v, d) == 1 && v == XDP_DROP,
		     "IPv6 initiation: event and drop (verdict %d)", v);
	CHECK("lease: initiations handed over are dropped", ok, "see above");

	ok = EXPECT(knock_type(4, a, WG_MSG_DATA, &v, d) == 0 && v == XDP_PASS,
		    "148-byte data message passes (verdict %d)", v);
	ok &= EXPECT(knock_type(4, a, WG_MSG_RESPONSE, &v, d) == 0 && v == XDP_PASS,
		     "type 2 passes (verdict %d)", v);
	ok &= EXPECT(d[JITWG_CTR_CONSUMED] == 0, "consumed +%llu",
		     (unsigned long long)d[JITWG_CTR_CONSUMED]);
	CHECK("lease: other traffic still passes", ok, "see above");

	/* Sent to another host through this one: never taken. */
	ok = EXPECT(capture_set_local_addrs(cap, other, 1) == 0, "%s", capture_error(cap));
	ok &= EXPECT(knock(4, a, &v, d) == 1 && v == XDP_PASS,
		     "transit initiation: event and pass (verdict %d)", v);
	ok &= EXPECT(events[0].flags == 0, "passed, yet flagged consumed");
	ok &= EXPECT(knock(6, v6, &v, d) == 1 && v == XDP_PASS,
		     "transit IPv6 initiation: event and pass (verdict %d)", v);
	ok &= EXPECT(capture_set_local_addrs(cap, local, 2) == 0, "%s", capture_error(cap));
	ok &= EXPECT(knock(4, a, &v, d) == 1 && v == XDP_DROP,
		     "local again: dropped (verdict %d)", v);
	CHECK("lease: an initiation to another host passes", ok, "see above");

	/* From one of this host's own addresses: a martian, never taken. */
	{
		static const uint8_t both[2][16] = {
			{ [10] = 0xff, [11] = 0xff, [12] = 192, [13] = 0, [14] = 2, [15] = 254 },
			{ [10] = 0xff, [11] = 0xff, [12] = 10, [13] = 9, [14] = 1, [15] = 1 },
		};

		ok = EXPECT(capture_set_local_addrs(cap, both, 2) == 0, "%s", capture_error(cap));
		ok &= EXPECT(knock(4, a, &v, d) == 1 && v == XDP_PASS,
			     "local source: event and pass (verdict %d)", v);
		ok &= EXPECT(events[0].flags == 0, "flagged consumed");
		ok &= EXPECT(capture_set_local_addrs(cap, local, 2) == 0, "%s", capture_error(cap));
		CHECK("lease: an initiation from this host's own address passes", ok, "see above");
	}

	/* Over the limit: not in the ring, so WireGuard must still get it. */
	set_limits(1, 1, 0, 0, 0);
	ok = EXPECT(knock(4, a, &v, d) == 1 && v == XDP_DROP, "first consumed");
	ok &= EXPECT(knock(4, a, &v, d) == 0 && v == XDP_PASS,
		     "limited one passes (verdict %d)", v);
	CHECK("lease: an initiation over the limit passes", ok, "see above");
	set_limits(0, 0, 0, 0, 0);

	/*
	 * A full ring: the reservation fails, the initiation passes. The
	 * ring holds JITWG_RINGBUF_BYTES / 208 events; send more, unread.
	 */
	frame_initiation(msg, 9);
	len = frame_build(frame, &spec, &l);
	{
		uint64_t before[JITWG_CTR_MAX], after[JITWG_CTR_MAX];
		LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = frame, .data_size_in = len,
			    .repeat = JITWG_RINGBUF_BYTES / 200 + 1000);
		int r;

		capture_read_counters(cap, before);
		r = bpf_prog_test_run_opts(capture_prog_fd(cap), &o);
		capture_read_counters(cap, after);
		while (capture_poll(cap, 0) > 0)
			;
		ok = EXPECT(r == 0, "test run: %s", strerror(errno));
		ok &= EXPECT(after[JITWG_CTR_RINGBUF_FULL] > before[JITWG_CTR_RINGBUF_FULL],
			     "ring never full");
		ok &= EXPECT(o.retval == XDP_PASS, "last verdict %u with the ring full",
			     o.retval);
		ok &= EXPECT(after[JITWG_CTR_CONSUMED] - before[JITWG_CTR_CONSUMED] ==
				     after[JITWG_CTR_EVENTS] - before[JITWG_CTR_EVENTS],
			     "consumed %llu != events %llu",
			     (unsigned long long)(after[JITWG_CTR_CONSUMED] - before[JITWG_CTR_CONSUMED]),
			     (unsigned long long)(after[JITWG_CTR_EVENTS] - before[JITWG_CTR_EVENTS]));
		CHECK("lease: with the ring full, initiations pass", ok, "see above");
	}

	/* Ran out a second ago: the program's coarse clock may lag a tick. */
	ok = EXPECT(capture_set_lease(cap, mono_ns() - 1000000000ull) == 0, "set");
	ok &= EXPECT(knock(4, a, &v, d) == 1 && v == XDP_PASS,
		     "lapsed lease: event and pass (verdict %d)", v);
	ok &= EXPECT(capture_set_lease(cap, 0) == 0, "set");
	ok &= EXPECT(knock(4, a, &v, d) == 1 && v == XDP_PASS,
		     "no lease: event and pass (verdict %d)", v);
	ok &= EXPECT(d[JITWG_CTR_CONSUMED] == 0, "consumed");
	CHECK("lease: lapsed or given back, initiations pass", ok, "see above");

	/*
	 * The automatic word: no lease, a global bucket of 10 refilling once
	 * a second. The first five pass; once half the bucket is
	 * spent the program consumes by itself, until the bucket is empty.
	 */
	{
		int passed = 0, consumed = 0, i, first_consumed = 0;

		set_limits(0, 0, 1, 10, 0);
		ok = EXPECT(capture_set_lease_auto(cap, mono_ns() + 10000000000ull) == 0, "%s",
			    capture_error(cap));
		for (i = 1; i <= 10; i++) {
			ok &= EXPECT(knock(4, a, &v, d) == 1, "knock %d: no event", i);
			if (v == XDP_PASS && !events[0].flags)
				passed++;
			else if (v == XDP_DROP && events[0].flags == JITWG_EV_CONSUMED &&
				 d[JITWG_CTR_CONSUMED] == 1 && ++consumed == 1)
				first_consumed = i;
		}
		ok &= EXPECT(passed == 5 && consumed == 5 && first_consumed == 6,
			     "passed %d, consumed %d from knock %d", passed, consumed,
			     first_consumed);
		CHECK("lease: the automatic word consumes once a burst spent half the budget",
		      ok, "see above");

		/* A big bucket: the trigger is JITWG_LEASE_AUTO_SPENT tokens. */
		set_limits(0, 0, 1, 1000, 0);
		passed = consumed = first_consumed = 0;
		ok = EXPECT(capture_set_lease_auto(cap, mono_ns() + 10000000000ull) == 0, "%s",
			    capture_error(cap));
		for (i = 1; i <= JITWG_LEASE_AUTO_SPENT + 8; i++) {
			ok &= EXPECT(knock(4, a, &v, d) == 1, "knock %d: no event", i);
			if (v == XDP_PASS && !events[0].flags)
				passed++;
			else if (v == XDP_DROP && ++consumed == 1)
				first_consumed = i;
		}
		ok &= EXPECT(passed == JITWG_LEASE_AUTO_SPENT && consumed == 8 &&
				     first_consumed == JITWG_LEASE_AUTO_SPENT + 1,
			     "passed %d, consumed %d from knock %d", passed, consumed,
			     first_consumed);
		CHECK("lease: a big bucket's automatic trigger is JITWG_LEASE_AUTO_SPENT tokens",
		      ok, "see above");

		/* Expired: the same burst passes whole. */
		set_limits(0, 0, 1, 10, 0);
		ok = EXPECT(capture_set_lease_auto(cap, mono_ns() - 1000000000ull) == 0, "set");
		for (i = 1; i <= 10; i++)
			ok &= EXPECT(knock(4, a, &v, d) == 1 && v == XDP_PASS && !events[0].flags,
				     "knock %d: verdict %d flags %u", i, v, events[0].flags);
		ok &= EXPECT(capture_set_lease_auto(cap, 0) == 0, "cleared");
		set_limits(0, 0, 0, 0, 0);
		CHECK("lease: an expired automatic word consumes nothing", ok, "see above");
	}
}

static void test_settings(void)
{
	struct jitwg_config bad = { .src_rate = 5, .src_burst = 0 };
	uint16_t none = 0;

	struct jitwg_config bad_v = { .verified_rate = 5 };

	CHECK("rate without burst refused", capture_set_limits(cap, &bad) == -EINVAL,
	      "accepted");
	CHECK("verified rate without burst refused",
	      capture_set_limits(cap, &bad_v) == -EINVAL, "accepted");
	CHECK("port 0 refused", capture_set_ports(cap, &none, 1) == -EINVAL, "accepted");
}

/* One initiation from saddr:sport (IPv4), with a non-zero mac2 or none. */
static int knock_mac2(const uint8_t *saddr, uint16_t sport, bool mac2, int *verdict,
		      uint64_t d[JITWG_CTR_MAX])
{
	struct frame_spec spec = { .family = 4, .saddr = saddr, .sport = sport,
				   .dport = 51820, .payload_len = 148 };
	uint8_t frame[FRAME_MAX], msg[148];
	struct frame_layout l;
	static uint8_t seq = 100;
	size_t len;

	frame_initiation(msg, seq++);
	memset(msg + 132, 0, 16);
	if (mac2)
		memset(msg + 132, 0xa5, 16);
	spec.payload = msg;
	len = frame_build(frame, &spec, &l);
	*verdict = run(frame, len, d);
	return n_events;
}

static int cookie_sent(const uint8_t a[4], uint16_t port, uint64_t until_ns)
{
	struct jitwg_cookie_key k;
	int err;

	memset(&k, 0, sizeof(k));
	mapped4(k.addr, a);
	k.port = port;
	err = capture_cookie_sent(cap, &k, 1, until_ns);
	if (err)
		printf("  cannot record a cookie source: %s\n", capture_error(cap));
	return err;
}

/*
 * With the global budget spent, a retry carrying mac2 from a source jitwgd
 * sent a cookie to (same address and port) still reaches it, on budgets of
 * its own (JITWG_COOKIE_SRC_BURST per source); mac2 from any other source
 * or port, and the cookie source without mac2, spend the global budget as
 * any initiation does.
 */
static void test_cookie_sources(void)
{
	uint8_t spender[4] = { 10, 5, 0, 9 }, c[4] = { 10, 5, 0, 1 }, o[4] = { 10, 5, 0, 2 };
	uint64_t d[JITWG_CTR_MAX];
	int v, i, ok;

	set_limits(100, 100, 1, 1, 0);
	ok = EXPECT(knock(4, spender, &v, d) == 1, "a source spends the global budget");
	ok &= EXPECT(knock_mac2(c, 41000, true, &v, d) == 0 && d[JITWG_CTR_LIMITED_GLOBAL] == 1 &&
			     d[JITWG_CTR_COOKIE_RETRY] == 0,
		     "mac2 from a source sent no cookie: the global budget, refused");
	ok &= EXPECT(!cookie_sent(c, 41000, mono_ns() + JITWG_COOKIE_TTL_NS), "recorded");
	ok &= EXPECT(!cookie_sent(o, 41000, 1), "recorded, long expired");
	ok &= EXPECT(knock_mac2(c, 41000, true, &v, d) == 1 && d[JITWG_CTR_COOKIE_RETRY] == 1 &&
			     d[JITWG_CTR_LIMITED_GLOBAL] == 0,
		     "its retry with mac2 reaches userspace");
	ok &= EXPECT(knock_mac2(c, 41000, false, &v, d) == 0 && d[JITWG_CTR_LIMITED_GLOBAL] == 1,
		     "without mac2 it is any initiation");
	ok &= EXPECT(knock_mac2(c, 41001, true, &v, d) == 0 && d[JITWG_CTR_LIMITED_GLOBAL] == 1,
		     "mac2 from another port is refused");
	ok &= EXPECT(knock_mac2(o, 41000, true, &v, d) == 0 && d[JITWG_CTR_LIMITED_GLOBAL] == 1,
		     "an expired cookie source is refused");
	for (i = 1; i < JITWG_COOKIE_SRC_BURST; i++)
		ok &= EXPECT(knock_mac2(c, 41000, true, &v, d) == 1, "retry %d within the burst", i);
	ok &= EXPECT(knock_mac2(c, 41000, true, &v, d) == 0 &&
			     d[JITWG_CTR_LIMITED_COOKIE] == 1,
		     "over its own burst: limited_cookie");
	ok &= EXPECT(!cookie_sent(c, 41000, mono_ns() + JITWG_COOKIE_TTL_NS), "recorded again");
	ok &= EXPECT(knock_mac2(c, 41000, true, &v, d) == 0 &&
			     d[JITWG_CTR_LIMITED_COOKIE] == 1,
		     "another reply does not refill its bucket");
	CHECK("cookie retries pass a spent global budget, on their own", ok, "see above");
	set_limits(0, 0, 0, 0, 0);
}

int main(void)
{
	static const uint16_t ports[] = { 51820, 51821 };
	struct capture_opts opts = { .mode = CAPTURE_LOAD_ONLY, .ports = ports,
				     .n_ports = 2 };
	struct jitwg_config wide = { .src_rate = 0, .global_rate = 0 };

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (capture_open(&cap, &opts, on_event, NULL, cap_err, sizeof(cap_err))) {
		printf("FAIL: load xdp program: %s\n", cap_err);
		return 1;
	}
	CHECK("load and configure", 1, "%s", "-");
	/* The table checks parsing; limits are off so every row is independent. */
	capture_set_limits(cap, &wide);
	test_table();
	test_mutations();
	test_limits();
	test_verified();
	test_prefix_reserve();
	test_duplicates();
	test_cookie_sources();
	test_lease();
	test_settings();
	capture_close(cap);
	CHECK_EXIT();
}
