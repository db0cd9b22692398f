// SPDX-License-Identifier: MIT
/*
 * jitwg-xdp: attach the capture program to a device (or use the maps of one
 * that bpftool attached) and print one line per handshake initiation; the
 * counters on exit.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capture.h"

/* getopt values of the long options without a short form. */
enum {
	OPT_SRC_RATE = 256,
	OPT_SRC_BURST,
	OPT_GLOBAL_RATE,
	OPT_GLOBAL_BURST,
	OPT_VERIFIED_RATE,
	OPT_VERIFIED_BURST,
	OPT_DROP,
};

/* Largest rate or bucket size accepted. */
enum { LIMIT_MAX = 1000000000 };

struct cli {
	bool hex;
	long max_events;
	long seen;
};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: jitwg-xdp --dev DEV [options]\n"
		"       jitwg-xdp --pin-dir DIR [options]   (object loaded by bpftool)\n"
		"\n"
		"Print one line per WireGuard handshake initiation seen on DEV.\n"
		"\n"
		"  --dev DEV            device to attach to\n"
		"  --mode MODE          auto (native, else generic), native or generic\n"
		"  --pin-dir DIR        use the maps bpftool pinned in DIR; attach nothing\n"
		"  --port PORT          WireGuard UDP port (repeatable; default 51820)\n"
		"  --src-rate N         per-source initiations/s (0 = no limit; default %d)\n"
		"  --src-burst N        per-source bucket size (default %d)\n"
		"  --global-rate N      global initiations/s (0 = no limit; default %d)\n"
		"  --global-burst N     global bucket size (default %d)\n"
		"  --verified-rate N    per verified source initiations/s (0 = no limit;\n"
		"                       default %d)\n"
		"  --verified-burst N   per verified source bucket size (default %d)\n"
		"  --drop               drop initiations over the limits (default: pass)\n"
		"  --hex                print each initiation in hex\n"
		"  --count N            exit after N events\n"
		"  --help\n",
		JITWG_DEFAULT_SRC_RATE, JITWG_DEFAULT_SRC_BURST,
		JITWG_DEFAULT_GLOBAL_RATE, JITWG_DEFAULT_GLOBAL_BURST,
		JITWG_DEFAULT_VERIFIED_RATE, JITWG_DEFAULT_VERIFIED_BURST);
}

static int on_event(void *ctx, const struct jitwg_event *ev)
{
	struct cli *cli = ctx;
	char src[INET6_ADDRSTRLEN], dst[INET6_ADDRSTRLEN];
	int af = ev->family == 4 ? AF_INET : AF_INET6;
	const void *s = ev->family == 4 ? ev->saddr + 12 : ev->saddr;
	const void *d = ev->family == 4 ? ev->daddr + 12 : ev->daddr;
	uint32_t sender;
	int i;

	inet_ntop(af, s, src, sizeof(src));
	inet_ntop(af, d, dst, sizeof(dst));
	memcpy(&sender, ev->msg + 4, 4);
	printf("%llu.%06llu if=%u src=%s%s%s:%u dst=%s%s%s:%u vlans=%u sender=%08x",
	       (unsigned long long)ev->ts_ns / 1000000000ULL,
	       (unsigned long long)(ev->ts_ns % 1000000000ULL) / 1000,
	       ev->ifindex, af == AF_INET6 ? "[" : "", src,
	       af == AF_INET6 ? "]" : "", ev->sport, af == AF_INET6 ? "[" : "",
	       dst, af == AF_INET6 ? "]" : "", ev->dport, ev->vlan_depth,
	       sender);
	if (cli->hex) {
		printf(" msg=");
		for (i = 0; i < WG_INITIATION_LEN; i++)
			printf("%02x", ev->msg[i]);
	}
	printf("\n");
	if (cli->max_events && ++cli->seen >= cli->max_events)
		stop = 1;
	return 0;
}

static int number(const char *opt, const char *s, unsigned long max,
		  unsigned long *out)
{
	char *end;

	errno = 0;
	*out = strtoul(s, &end, 10);
	if (errno || !*s || *end || *out > max || s[0] == '-') {
		fprintf(stderr, "jitwg-xdp: %s: '%s' is not a number 0..%lu\n",
			opt, s, max);
		return -EINVAL;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "dev", required_argument, NULL, 'd' },
		{ "mode", required_argument, NULL, 'm' },
		{ "pin-dir", required_argument, NULL, 'P' },
		{ "port", required_argument, NULL, 'p' },
		{ "src-rate", required_argument, NULL, OPT_SRC_RATE },
		{ "src-burst", required_argument, NULL, OPT_SRC_BURST },
		{ "global-rate", required_argument, NULL, OPT_GLOBAL_RATE },
		{ "global-burst", required_argument, NULL, OPT_GLOBAL_BURST },
		{ "verified-rate", required_argument, NULL, OPT_VERIFIED_RATE },
		{ "verified-burst", required_argument, NULL, OPT_VERIFIED_BURST },
		{ "drop", no_argument, NULL, OPT_DROP },
		{ "hex", no_argument, NULL, 'x' },
		{ "count", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	struct jitwg_config limits = JITWG_CONFIG_DEFAULTS;
	struct capture_opts opts = { .limits = &limits };
	uint16_t ports[JITWG_MAX_PORTS];
	uint64_t ctr[JITWG_CTR_MAX];
	struct cli cli = {};
	struct capture *c;
	unsigned long v;
	int opt, err, i;

	while ((opt = getopt_long(argc, argv, "d:m:P:p:xc:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'd':
			opts.ifname = optarg;
			break;
		case 'm':
			if (capture_mode_parse(optarg, &opts.mode)) {
				fprintf(stderr,
					"jitwg-xdp: --mode: '%s' is not auto, native, generic or pinned\n",
					optarg);
				return 2;
			}
			break;
		case 'P':
			opts.pin_dir = optarg;
			break;
		case 'p':
			if (number("--port", optarg, 65535, &v) || !v)
				return 2;
			if (opts.n_ports == JITWG_MAX_PORTS) {
				fprintf(stderr, "jitwg-xdp: at most %d ports\n", JITWG_MAX_PORTS);
				return 2;
			}
			ports[opts.n_ports++] = v;
			break;
		case OPT_SRC_RATE:
			if (number("--src-rate", optarg, LIMIT_MAX, &v))
				return 2;
			limits.src_rate = v;
			break;
		case OPT_SRC_BURST:
			if (number("--src-burst", optarg, LIMIT_MAX, &v))
				return 2;
			limits.src_burst = v;
			break;
		case OPT_GLOBAL_RATE:
			if (number("--global-rate", optarg, LIMIT_MAX, &v))
				return 2;
			limits.global_rate = v;
			break;
		case OPT_GLOBAL_BURST:
			if (number("--global-burst", optarg, LIMIT_MAX, &v))
				return 2;
			limits.global_burst = v;
			break;
		case OPT_VERIFIED_RATE:
			if (number("--verified-rate", optarg, LIMIT_MAX, &v))
				return 2;
			limits.verified_rate = v;
			break;
		case OPT_VERIFIED_BURST:
			if (number("--verified-burst", optarg, LIMIT_MAX, &v))
				return 2;
			limits.verified_burst = v;
			break;
		case OPT_DROP:
			limits.flags |= JITWG_F_DROP_LIMITED;
			break;
		case 'x':
			cli.hex = true;
			break;
		case 'c':
			if (number("--count", optarg, 1000000000, &v))
				return 2;
			cli.max_events = v;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc || (!opts.ifname == !opts.pin_dir)) {
		fprintf(stderr, "jitwg-xdp: give either --dev DEV or --pin-dir DIR\n");
		usage(stderr);
		return 2;
	}
	if (opts.pin_dir)
		opts.mode = CAPTURE_PINNED;
	opts.ports = ports;

	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);

	err = capture_open(&c, &opts, on_event, &cli);
	if (err) {
		fprintf(stderr, "jitwg-xdp: %s\n", capture_open_error());
		return 1;
	}
	if (opts.mode == CAPTURE_PINNED)
		fprintf(stderr, "jitwg-xdp: using pinned maps in %s\n", opts.pin_dir);
	else
		fprintf(stderr, "jitwg-xdp: attached to %s (%s)\n", opts.ifname,
			capture_is_native(c) ? "native" : "generic");

	while (!stop) {
		err = capture_poll(c, 200);
		if (err < 0) {
			fprintf(stderr, "jitwg-xdp: %s\n", capture_error(c));
			break;
		}
	}
	if (!capture_read_counters(c, ctr)) {
		printf("counters");
		for (i = 0; i < JITWG_CTR_MAX; i++)
			printf(" %s=%llu", capture_counter_name(i),
			       (unsigned long long)ctr[i]);
		printf("\n");
	}
	capture_close(c);
	return err < 0 ? 1 : 0;
}
