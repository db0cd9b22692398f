// SPDX-License-Identifier: MIT
/*
 * jitwg-pktgen: WireGuard-shaped traffic at line rate from one core, for
 * floods and benchmarks (make bench-flood, tests/test_xdp.sh).
 *
 *   jitwg-pktgen --dev DEV --dst ADDR [--dst-mac MAC] --responder PUB_B64
 *                --kind KIND[:RATE] [--kind ...] [--duration S] [--count N]
 *                [--src ADDR] [--sources N] [--seed S] [--first I]
 *                [--identities N] [--messages N] [--victim PUB_B64]
 *                [--sport P] [--dport P] [--udp-port P]
 *
 * Frames are made by bpf/pktgen.bpf.c run through BPF_PROG_TEST_RUN with
 * live frames on DEV and transmitted by XDP_TX: a veth's peer then receives
 * them as if from a wire. The peer must have an XDP program or GRO on, or the
 * veth drops them silently. Kinds (RATE in packets/s, or "max", the default):
 *
 *   valid        initiations from --identities clients, client i's key as
 *                jitwg-loadgen derives it (--seed, --first); one message per
 *                client, so after the first round they are replays
 *   replay       copies of one valid initiation (client --first)
 *   forged       initiations claiming --victim's key (default: client
 *                --first's), each sealed with another random key
 *   random       --messages random type-1 payloads of 148 bytes, bad mac1
 *   random-mac1  the same with a valid mac1 for --responder
 *   unique       random type-1 payloads with the packet counter over the
 *                sender index and the start of the ephemeral key: no two
 *                packets alike, none a copy of another (mac1 bad)
 *   mac2         valid initiations with random bytes as mac2
 *   data         --messages type-4 (transport data) messages of 128 bytes
 *   udp          64 bytes of UDP to --udp-port, background
 *
 * Sources count up from --src, one per packet, over --sources addresses:
 * IPv4 addresses, or for IPv6 one /64 each (the second 32 bits count). It
 * prints what it sent per kind and in total: "kind=K sent=N pps=R".
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <net/if.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <sodium.h>

#include "jitwg.h"
#include "keys.h"
#include "noise.h"
#include "noise_crypto.h"
#include "pktgen.h"
#include "pktgen.skel.h"
#include "synth.h"

enum kind_id {
	K_VALID,
	K_REPLAY,
	K_FORGED,
	K_RANDOM,
	K_RANDOM_MAC1,
	K_UNIQUE,
	K_MAC2,
	K_DATA,
	K_UDP,
	K_NUM,
};

static const char *const kind_names[K_NUM] = {
	[K_VALID] = "valid",   [K_REPLAY] = "replay",
	[K_FORGED] = "forged", [K_RANDOM] = "random",
	[K_RANDOM_MAC1] = "random-mac1", [K_UNIQUE] = "unique",
	[K_MAC2] = "mac2",
	[K_DATA] = "data",     [K_UDP] = "udp",
};

enum {
	DATA_LEN = 128,     /* a transport message with 80 bytes of data */
	UDP_BG_LEN = 64,
	CHUNK_MAX = 8192,   /* frames per test run at "max": ~2 ms here */
	CHUNK_PACED = 1024, /* at most per test run when paced */
	OFF_MAC1 = 116,
	OFF_MAC2 = 132,
};

struct kind {
	enum kind_id id;
	double rate;            /* packets/s; 0 = as fast as it goes */
	unsigned long long sent;
	uint8_t frame[ETH_HLEN + sizeof(struct ipv6hdr) + sizeof(struct udphdr) +
		      PKTGEN_MSG_LEN];
	size_t len;
};

struct opts {
	const char *dev, *seed, *victim_b64, *resp_b64;
	uint8_t dst[16], src[16], dst_mac[ETH_ALEN], src_mac[ETH_ALEN];
	int family;
	unsigned long sources, identities, messages, first;
	uint16_t sport, dport, udp_port;
	double duration;
	unsigned long long count;
};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* 16-bit ones' complement sum of len bytes loaded as host words, folded. */
static uint32_t sum16(const void *p, size_t len, uint32_t sum)
{
	const uint8_t *b = p;
	uint16_t w;
	size_t i;

	for (i = 0; i + 1 < len; i += 2) {
		memcpy(&w, b + i, 2);
		sum += w;
	}
	if (len & 1) {
		w = 0;
		memcpy(&w, b + len - 1, 1);
		sum += w;
	}
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return sum;
}

/* A whole number in 0..max, or -EINVAL with a message naming the option. */
static int number(const char *opt, const char *s, unsigned long long max,
		  unsigned long long *out)
{
	char *end;

	errno = 0;
	*out = strtoull(s, &end, 10);
	if (errno || !*s || *end || *out > max || s[0] == '-') {
		fprintf(stderr, "pktgen: %s: '%s' is not a number 0..%llu\n", opt,
			s, max);
		return -EINVAL;
	}
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: jitwg-pktgen --dev DEV --dst ADDR --kind KIND[:RATE] [options]\n"
		"  --dev DEV           sending device (a veth whose peer has XDP or GRO)\n"
		"  --dst ADDR          destination IPv4 or IPv6 address\n"
		"  --dst-mac MAC       destination MAC (default ff:ff:ff:ff:ff:ff)\n"
		"  --kind KIND[:RATE]  valid, replay, forged, random, random-mac1, unique,\n"
		"                      mac2, data, udp; RATE packets/s or max (repeatable)\n"
		"  --responder PUB     the gateway's public key (initiation kinds)\n"
		"  --duration S        stop after S seconds (default 5)\n"
		"  --count N           stop each kind after N packets\n"
		"  --src ADDR          first source address (198.18.0.1 / 2001:db8:f100::1)\n"
		"  --sources N         sources counted from --src (default 1)\n"
		"  --seed S --first I --identities N   synthetic clients, as jitwg-loadgen\n"
		"  --messages N        payloads of random and data kinds (default 256)\n"
		"  --victim PUB        key the forged kind claims\n"
		"  --sport P --dport P --udp-port P   (40000, 51820, 9)\n");
}

static int parse_mac(uint8_t mac[ETH_ALEN], const char *s)
{
	unsigned int b[ETH_ALEN];
	int i;

	if (sscanf(s, "%x:%x:%x:%x:%x:%x", &b[0], &b[1], &b[2], &b[3], &b[4],
		   &b[5]) != ETH_ALEN)
		return -EINVAL;
	for (i = 0; i < ETH_ALEN; i++) {
		if (b[i] > 0xff)
			return -EINVAL;
		mac[i] = b[i];
	}
	return 0;
}

static int dev_mac(const char *dev, uint8_t mac[ETH_ALEN])
{
	struct ifreq ifr = {};
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), err = 0;

	if (fd < 0)
		return -errno;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", dev);
	if (ioctl(fd, SIOCGIFHWADDR, &ifr))
		err = -errno;
	else
		memcpy(mac, ifr.ifr_hwaddr.sa_data, ETH_ALEN);
	close(fd);
	return err;
}

/* Parse an address of the destination's family into 16 bytes (v4 in 0..3). */
static int parse_addr(const char *s, int family, uint8_t out[16])
{
	memset(out, 0, 16);
	return inet_pton(family == 4 ? AF_INET : AF_INET6, s, out) == 1 ? 0 : -EINVAL;
}

/*
 * The payload table of one kind: n messages from *next on. Client keys as
 * jitwg-loadgen derives them; the private keys are wiped.
 */
static int build_msgs(const struct opts *o, enum kind_id id,
		      const uint8_t responder[32], const uint8_t victim[32],
		      struct pktgen_msg *out, unsigned long n)
{
	struct noise_mac_key mac1;
	uint8_t mac1_key[32], priv[32], ts[NOISE_TIMESTAMP_LEN];
	unsigned long i;
	int err = 0;

	noise_hash2(mac1_key, "mac1----", 8, responder, 32);
	noise_mac_key_init(&mac1, mac1_key);
	noise_timestamp_now(ts);
	for (i = 0; i < n && !err; i++) {
		struct pktgen_msg *m = &out[i];
		struct noise_initiator *in;
		size_t len = PKTGEN_MSG_LEN;

		memset(m, 0, sizeof(*m));
		switch (id) {
		case K_VALID:
		case K_REPLAY:
		case K_MAC2:
		case K_FORGED:
			if (id == K_FORGED)
				randombytes_buf(priv, sizeof(priv));
			else
				synth_key(priv, NULL, o->seed, (uint32_t)(o->first + i));
			err = noise_initiator_new(&in, priv, responder);
			sodium_memzero(priv, sizeof(priv));
			if (err)
				break;
			if (id == K_FORGED)
				noise_initiator_forge_identity(in, victim);
			err = noise_build_initiation(in, randombytes_random(), ts, 0,
						     m->data);
			noise_initiator_free(in);
			if (!err && id == K_MAC2)
				randombytes_buf(m->data + OFF_MAC2, 16);
			break;
		case K_RANDOM:
		case K_RANDOM_MAC1:
		case K_UNIQUE:
			randombytes_buf(m->data, PKTGEN_MSG_LEN);
			m->data[0] = 1; /* type 1, reserved zero (paper §5.4.2) */
			m->data[1] = m->data[2] = m->data[3] = 0;
			memset(m->data + OFF_MAC2, 0, 16);
			if (id == K_UNIQUE) /* the program writes a counter here */
				memset(m->data + PKTGEN_STAMP_OFF, 0, 8);
			if (id == K_RANDOM_MAC1)
				err = noise_mac_with(m->data + OFF_MAC1, &mac1,
						     m->data, OFF_MAC1);
			break;
		case K_DATA:
			len = DATA_LEN;
			randombytes_buf(m->data, DATA_LEN);
			m->data[0] = 4;
			m->data[1] = m->data[2] = m->data[3] = 0;
			memcpy(m->data + 8, &i, 4); /* counter, little-endian */
			memset(m->data + 12, 0, 4);
			break;
		default:
			break;
		}
		m->sum = sum16(m->data, len, 0);
	}
	sodium_memzero(&mac1, sizeof(mac1));
	sodium_memzero(mac1_key, sizeof(mac1_key));
	return err ? -EIO : 0;
}

/*
 * The template frame of kind k and what the program rewrites in it. The
 * template carries the first source and, for table kinds, the first
 * message; the checksums are the template's.
 */
static void build_frame(const struct opts *o, struct kind *k,
			const struct pktgen_msg *first, struct pktgen_kind *pk)
{
	struct ethhdr *eth = (void *)k->frame;
	uint8_t *l3 = k->frame + ETH_HLEN, *payload, pseudo[40] = {};
	size_t plen = k->id == K_DATA ? DATA_LEN :
		      k->id == K_UDP ? UDP_BG_LEN : WG_INITIATION_LEN;
	struct udphdr *udp;
	uint32_t sum, w;

	memset(k->frame, 0, sizeof(k->frame));
	memcpy(eth->h_dest, o->dst_mac, ETH_ALEN);
	memcpy(eth->h_source, o->src_mac, ETH_ALEN);
	memset(pk, 0, sizeof(*pk));
	if (o->family == 4) {
		struct iphdr *ip = (void *)l3;

		eth->h_proto = htons(ETH_P_IP);
		ip->version = 4;
		ip->ihl = 5;
		ip->ttl = 64;
		ip->protocol = IPPROTO_UDP;
		ip->tot_len = htons(sizeof(*ip) + sizeof(*udp) + plen);
		memcpy(&ip->saddr, o->src, 4);
		memcpy(&ip->daddr, o->dst, 4);
		ip->check = ~sum16(ip, sizeof(*ip), 0) & 0xffff;
		udp = (void *)(ip + 1);
		pk->src_off = ETH_HLEN + offsetof(struct iphdr, saddr);
		pk->ip_csum_off = ETH_HLEN + offsetof(struct iphdr, check);
		pk->ip_csum = ip->check;
		memcpy(pseudo, o->src, 4);
		memcpy(pseudo + 4, o->dst, 4);
		pseudo[9] = IPPROTO_UDP;
		w = htons(sizeof(*udp) + plen);
		memcpy(pseudo + 10, &w, 2);
		sum = sum16(pseudo, 12, 0);
	} else {
		struct ipv6hdr *ip6 = (void *)l3;

		eth->h_proto = htons(ETH_P_IPV6);
		ip6->version = 6;
		ip6->nexthdr = IPPROTO_UDP;
		ip6->hop_limit = 64;
		ip6->payload_len = htons(sizeof(*udp) + plen);
		memcpy(&ip6->saddr, o->src, 16);
		memcpy(&ip6->daddr, o->dst, 16);
		udp = (void *)(ip6 + 1);
		/* bytes 4-7 of the address: each source its own /64 */
		pk->src_off = ETH_HLEN + offsetof(struct ipv6hdr, saddr) + 4;
		memcpy(pseudo, o->src, 16);
		memcpy(pseudo + 16, o->dst, 16);
		w = htonl(sizeof(*udp) + plen);
		memcpy(pseudo + 32, &w, 4);
		pseudo[39] = IPPROTO_UDP;
		sum = sum16(pseudo, 40, 0);
	}
	udp->source = htons(o->sport);
	udp->dest = htons(k->id == K_UDP ? o->udp_port : o->dport);
	udp->len = htons(sizeof(*udp) + plen);
	payload = (uint8_t *)(udp + 1);
	sum = sum16(udp, sizeof(*udp), sum);
	if (first) {
		memcpy(payload, first->data, plen);
	} else {
		memset(payload, 0x5a, plen);
		sum = sum16(payload, plen, sum); /* constant: in the header sum */
	}
	memcpy(&w, k->frame + pk->src_off, 4);
	pk->src_base = ntohl(w);
	pk->src_count = o->sources;
	pk->udp_csum_off = (uint8_t *)&udp->check - k->frame;
	pk->payload_off = payload - k->frame;
	pk->hdr_sum = sum;
	pk->msg_len = plen;
	k->len = payload + plen - k->frame;
}

static int parse_kind(const char *s, struct kind *k)
{
	const char *colon = strchr(s, ':');
	size_t n = colon ? (size_t)(colon - s) : strlen(s);
	int i;

	for (i = 0; i < K_NUM; i++)
		if (strlen(kind_names[i]) == n && !strncmp(s, kind_names[i], n))
			break;
	if (i == K_NUM)
		return -EINVAL;
	memset(k, 0, sizeof(*k));
	k->id = i;
	if (colon && strcmp(colon + 1, "max")) {
		char *end;

		k->rate = strtod(colon + 1, &end);
		if (*end || k->rate <= 0)
			return -EINVAL;
	}
	return 0;
}

/* One test run: n frames of kind index ki. */
static int send_frames(struct pktgen_bpf *skel, int ifindex, unsigned int ki,
		       const struct kind *k, unsigned int n)
{
	struct xdp_md ctx = { .data_end = k->len, .ingress_ifindex = ifindex };
	LIBBPF_OPTS(bpf_test_run_opts, t, .data_in = k->frame,
		    .data_size_in = k->len, .ctx_in = &ctx,
		    .ctx_size_in = sizeof(ctx), .repeat = n,
		    .flags = BPF_F_TEST_XDP_LIVE_FRAMES);

	skel->bss->cur = ki;
	if (bpf_prog_test_run_opts(bpf_program__fd(skel->progs.pktgen_xdp), &t))
		return -errno;
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "dev", required_argument, NULL, 'd' },
		{ "dst", required_argument, NULL, 'D' },
		{ "dst-mac", required_argument, NULL, 'M' },
		{ "kind", required_argument, NULL, 'k' },
		{ "responder", required_argument, NULL, 'r' },
		{ "duration", required_argument, NULL, 't' },
		{ "count", required_argument, NULL, 'c' },
		{ "src", required_argument, NULL, 'S' },
		{ "sources", required_argument, NULL, 'n' },
		{ "seed", required_argument, NULL, 's' },
		{ "first", required_argument, NULL, 'f' },
		{ "identities", required_argument, NULL, 'i' },
		{ "messages", required_argument, NULL, 'm' },
		{ "victim", required_argument, NULL, 'v' },
		{ "sport", required_argument, NULL, 'P' },
		{ "dport", required_argument, NULL, 'p' },
		{ "udp-port", required_argument, NULL, 'u' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	struct opts o = { .seed = "jitwg", .sources = 1, .identities = 256,
			  .messages = 256, .sport = 40000, .dport = WG_DEFAULT_PORT,
			  .udp_port = 9, .duration = 5 };
	const char *dst = NULL, *src = NULL, *mac = NULL;
	struct kind kinds[PKTGEN_KINDS_MAX];
	struct pktgen_msg *table = NULL;
	struct pktgen_bpf *skel = NULL;
	uint8_t responder[32] = {}, victim[32];
	unsigned int nk = 0, i, used = 0;
	unsigned long long total = 0;
	int c, ifindex, err, ret = 1;
	double t0, t1, elapsed;
	unsigned long long v;

	while ((c = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
		switch (c) {
		case 'd': o.dev = optarg; break;
		case 'D': dst = optarg; break;
		case 'M': mac = optarg; break;
		case 'k':
			if (nk == PKTGEN_KINDS_MAX || parse_kind(optarg, &kinds[nk])) {
				fprintf(stderr, "pktgen: bad --kind %s\n", optarg);
				return 2;
			}
			nk++;
			break;
		case 'r': o.resp_b64 = optarg; break;
		case 't': {
			char *end;

			o.duration = strtod(optarg, &end);
			if (*end || o.duration < 0) {
				fprintf(stderr, "pktgen: --duration: '%s' is not seconds\n", optarg);
				return 2;
			}
			break;
		}
		case 'c':
			if (number("--count", optarg, ~0ull, &o.count))
				return 2;
			break;
		case 'S': src = optarg; break;
		case 'n':
			if (number("--sources", optarg, UINT32_MAX, &v))
				return 2;
			o.sources = v;
			break;
		case 's': o.seed = optarg; break;
		case 'f':
			if (number("--first", optarg, UINT32_MAX, &v))
				return 2;
			o.first = v;
			break;
		case 'i':
		case 'm':
			if (number(c == 'i' ? "--identities" : "--messages", optarg,
				   PKTGEN_MSGS_MAX, &v))
				return 2;
			*(c == 'i' ? &o.identities : &o.messages) = v;
			break;
		case 'v': o.victim_b64 = optarg; break;
		case 'P':
		case 'p':
		case 'u':
			if (number(c == 'P' ? "--sport" : c == 'p' ? "--dport" : "--udp-port",
				   optarg, 65535, &v))
				return 2;
			*(c == 'P' ? &o.sport : c == 'p' ? &o.dport : &o.udp_port) = v;
			break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc || !o.dev || !dst || !nk) {
		usage(stderr);
		return 2;
	}
	o.family = strchr(dst, ':') ? 6 : 4;
	if (parse_addr(dst, o.family, o.dst) ||
	    parse_addr(src ? src : o.family == 4 ? "198.18.0.1" : "2001:db8:f100::1",
		       o.family, o.src)) {
		fprintf(stderr, "pktgen: --dst and --src must be addresses of one family\n");
		return 2;
	}
	if (!o.sources || !o.identities || !o.messages) {
		fprintf(stderr, "pktgen: --sources, --identities and --messages are at least 1\n");
		return 2;
	}
	memset(o.dst_mac, 0xff, ETH_ALEN);
	if (mac && parse_mac(o.dst_mac, mac)) {
		fprintf(stderr, "pktgen: bad --dst-mac %s\n", mac);
		return 2;
	}
	ifindex = if_nametoindex(o.dev);
	if (!ifindex || dev_mac(o.dev, o.src_mac)) {
		fprintf(stderr, "pktgen: no device %s here (run in its namespace)\n", o.dev);
		return 1;
	}
	if (sodium_init() < 0)
		return 1;
	if (o.resp_b64 && key_from_base64(responder, o.resp_b64)) {
		fprintf(stderr, "pktgen: bad --responder key\n");
		return 2;
	}
	if (o.victim_b64 ? key_from_base64(victim, o.victim_b64) : 0) {
		fprintf(stderr, "pktgen: bad --victim key\n");
		return 2;
	}
	if (!o.victim_b64) {
		uint8_t priv[32];

		synth_key(priv, victim, o.seed, (uint32_t)o.first);
		sodium_memzero(priv, sizeof(priv));
	}

	table = calloc(PKTGEN_MSGS_MAX, sizeof(*table));
	skel = pktgen_bpf__open_and_load();
	if (!table || !skel) {
		fprintf(stderr, "pktgen: cannot load the sender program: %s (root?)\n",
			strerror(errno));
		goto out;
	}
	for (i = 0; i < nk; i++) {
		struct kind *k = &kinds[i];
		struct pktgen_kind *pk = &skel->bss->kinds[i];
		unsigned long n = 0;

		switch (k->id) {
		case K_VALID: case K_FORGED: case K_MAC2: n = o.identities; break;
		case K_REPLAY: n = 1; break;
		case K_RANDOM: case K_RANDOM_MAC1: case K_DATA: n = o.messages; break;
		case K_UNIQUE: n = 1; break;
		default: break;
		}
		if (k->id != K_UDP && k->id != K_DATA && k->id != K_RANDOM &&
		    k->id != K_UNIQUE && !o.resp_b64) {
			fprintf(stderr, "pktgen: --kind %s needs --responder\n",
				kind_names[k->id]);
			goto out;
		}
		if (n > PKTGEN_MSGS_MAX - used) {
			fprintf(stderr, "pktgen: at most %d messages over all kinds\n",
				PKTGEN_MSGS_MAX);
			goto out;
		}
		if (n && build_msgs(&o, k->id, responder, victim, table + used, n)) {
			fprintf(stderr, "pktgen: cannot build %s messages\n",
				kind_names[k->id]);
			goto out;
		}
		build_frame(&o, k, n ? &table[used] : NULL, pk);
		pk->msg_first = used;
		pk->msg_count = n;
		pk->stamp = k->id == K_UNIQUE;
		used += n;
	}
	{
		__u32 *keys = calloc(used ? used : 1, sizeof(*keys)), cnt = used;

		for (i = 0; keys && i < used; i++)
			keys[i] = i;
		err = !keys ? -ENOMEM :
		      used ? bpf_map_update_batch(bpf_map__fd(skel->maps.msgs),
						  keys, table, &cnt, NULL) : 0;
		free(keys);
		if (err) {
			fprintf(stderr, "pktgen: cannot fill the message table: %s\n",
				strerror(errno));
			goto out;
		}
	}

	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	t0 = now_s();
	for (;;) {
		bool busy = false, left = false;
		double next = 1e-3;

		elapsed = now_s() - t0;
		if (stop || (o.duration > 0 && elapsed >= o.duration))
			break;
		for (i = 0; i < nk; i++) {
			struct kind *k = &kinds[i];
			unsigned long long want;

			if (o.count && k->sent >= o.count)
				continue;
			left = true;
			if (k->rate) {
				double due = k->rate * elapsed - (double)k->sent;

				want = due >= 1 ? (unsigned long long)due : 0;
				if (want > CHUNK_PACED)
					want = CHUNK_PACED;
				if (!want && (1 - due) / k->rate < next)
					next = (1 - due) / k->rate;
			} else {
				want = CHUNK_MAX;
			}
			if (o.count && want > o.count - k->sent)
				want = o.count - k->sent;
			if (!want)
				continue;
			err = send_frames(skel, ifindex, i, k, want);
			if (err == -EINTR)
				break;
			if (err) {
				fprintf(stderr, "pktgen: BPF_PROG_TEST_RUN with live frames on %s: %s\n",
					o.dev, strerror(-err));
				goto out;
			}
			k->sent += want;
			busy = true;
		}
		if (!left)
			break;
		/* Pacing is only as fine as the sleep: bursts of a few frames. */
		if (!busy)
			usleep(next > 1e-3 ? 1000 : (useconds_t)(next * 1e6) + 1);
	}
	t1 = now_s();
	elapsed = t1 - t0 > 0 ? t1 - t0 : 1e-9;
	for (i = 0; i < nk; i++) {
		printf("kind=%s sent=%llu pps=%.0f\n", kind_names[kinds[i].id],
		       kinds[i].sent, kinds[i].sent / elapsed);
		total += kinds[i].sent;
	}
	printf("total sent=%llu seconds=%.3f pps=%.0f\n", total, elapsed,
	       total / elapsed);
	ret = 0;
out:
	pktgen_bpf__destroy(skel);
	free(table);
	return ret;
}
