// SPDX-License-Identifier: MIT
/*
 * jitwg-xdp: two jobs. With --dev, attach the capture program to a device
 * and watch it: one line per handshake initiation, the counters on exit.
 * With --pin-dir, set the ports and limits of a program bpftool loaded and
 * pinned, show them and the counters, and exit: it never reads the ring
 * buffer there, where jitwgd is the reader (each event goes to one reader,
 * so a second one would take initiations from jitwgd).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <net/if.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "capture.h"
#include "version.h"

/* capture_open()'s message (the caller's buffer). */
static char cap_err[CAPTURE_ERR_LEN];

/* getopt values of the long options without a short form. */
enum {
	OPT_SRC_RATE = 256,
	OPT_SRC_BURST,
	OPT_GLOBAL_RATE,
	OPT_GLOBAL_BURST,
	OPT_VERIFIED_RATE,
	OPT_VERIFIED_BURST,
	OPT_DROP,
	OPT_VERSION,
};

/* Largest rate or bucket size accepted. */
enum { LIMIT_MAX = 1000000000 };

struct cli {
	bool hex;
	long max_events;
	long seen;
	unsigned int ifindex; /* of ifname, the last device named */
	char ifname[IF_NAMESIZE];
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
		"usage: jitwg-xdp --dev DEV [options]        attach and watch\n"
		"       jitwg-xdp --pin-dir DIR [settings]   set a pinned program's ports and\n"
		"                                            limits, show them, exit\n"
		"\n"
		"With --dev: print one line per WireGuard handshake initiation seen on DEV\n"
		"(wall-clock time, device, addresses) and the counters on exit (Ctrl-C).\n"
		"With --pin-dir (bpftool deployment): only the settings given change; the\n"
		"ring buffer is left to jitwgd.\n"
		"\n"
		"  --dev DEV            device to attach to\n"
		"  --mode MODE          auto (native, else generic), native, generic, or multi\n"
		"                       (libxdp's dispatcher: shares the device)\n"
		"  --pin-dir DIR        the maps bpftool pinned in DIR; attach nothing\n"
		"  --port PORT          WireGuard UDP port (repeatable; default 51820)\n"
		"  --src-rate N         per-source initiations/s (0 = no limit; default %d)\n"
		"  --src-burst N        per-source bucket size (default %d)\n"
		"  --global-rate N      global initiations/s (0 = no limit; default %d)\n"
		"  --global-burst N     global bucket size (default %d)\n"
		"  --verified-rate N    per verified source initiations/s (0 = no limit;\n"
		"                       default %d)\n"
		"  --verified-burst N   per verified source bucket size (default %d)\n"
		"  --drop               drop initiations over the limits (default: pass)\n"
		"  --hex                print each initiation in hex (--dev)\n"
		"  --count N            exit after N events (--dev)\n"
		"  --version\n"
		"  --help\n",
		JITWG_DEFAULT_SRC_RATE, JITWG_DEFAULT_SRC_BURST,
		JITWG_DEFAULT_GLOBAL_RATE, JITWG_DEFAULT_GLOBAL_BURST,
		JITWG_DEFAULT_VERIFIED_RATE, JITWG_DEFAULT_VERIFIED_BURST);
}

/*
 * The event's receive time on the wall clock: the program stamps it with
 * CLOCK_MONOTONIC, so take its age on that clock from the time now.
 */
static void wall_time(char *out, size_t len, uint64_t mono_ns)
{
	struct timespec rt, mono;
	int64_t age, wall;
	char day[32];
	time_t secs;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &rt);
	clock_gettime(CLOCK_MONOTONIC, &mono);
	age = (int64_t)mono.tv_sec * 1000000000 + mono.tv_nsec -
	      (int64_t)mono_ns;
	wall = (int64_t)rt.tv_sec * 1000000000 + rt.tv_nsec - age;
	secs = (time_t)(wall / 1000000000);
	gmtime_r(&secs, &tm);
	strftime(day, sizeof(day), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out, len, "%.19s.%06dZ", day, (int)(wall % 1000000000 / 1000));
}

static int on_event(void *ctx, const struct jitwg_event *ev)
{
	struct cli *cli = ctx;
	char src[INET6_ADDRSTRLEN], dst[INET6_ADDRSTRLEN];
	int af = ev->family == 4 ? AF_INET : AF_INET6;
	const void *s = ev->family == 4 ? ev->saddr + 12 : ev->saddr;
	const void *d = ev->family == 4 ? ev->daddr + 12 : ev->daddr;
	uint32_t sender;
	char when[40];
	int i;

	inet_ntop(af, s, src, sizeof(src));
	inet_ntop(af, d, dst, sizeof(dst));
	memcpy(&sender, ev->msg + 4, 4);
	wall_time(when, sizeof(when), ev->ts_ns);
	if (ev->ifindex != cli->ifindex) {
		if (!if_indextoname(ev->ifindex, cli->ifname))
			snprintf(cli->ifname, sizeof(cli->ifname), "if%u",
				 ev->ifindex);
		cli->ifindex = ev->ifindex;
	}
	printf("%s dev=%s src=%s%s%s:%u dst=%s%s%s:%u vlans=%u sender=%08x",
	       when, cli->ifname, af == AF_INET6 ? "[" : "", src,
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

static void print_counters(struct capture *c)
{
	uint64_t ctr[JITWG_CTR_MAX];
	int i;

	if (capture_read_counters(c, ctr))
		return;
	printf("counters");
	for (i = 0; i < JITWG_CTR_MAX; i++)
		printf(" %s=%llu", capture_counter_name(i),
		       (unsigned long long)ctr[i]);
	printf("\n");
}

/*
 * --pin-dir: change only the settings given (jitwgd, or an earlier run, set
 * the others), then print what the program now runs with.
 */
static int pinned_settings(struct capture *c, const struct capture_opts *opts,
			   const struct jitwg_config *given, bool src_rate,
			   bool src_burst, bool global_rate, bool global_burst,
			   bool drop)
{
	static const struct jitwg_config defaults = JITWG_CONFIG_DEFAULTS;
	static const struct jitwg_config zero;
	struct jitwg_config cur;
	uint16_t ports[JITWG_MAX_PORTS];
	size_t n, i;
	bool fresh;
	int err;

	err = capture_read_settings(c, &cur, ports, JITWG_MAX_PORTS, &n);
	/*
	 * Nothing was ever set (bpftool leaves the maps zeroed): start from the
	 * defaults, as a loader that attaches its own program does.
	 */
	fresh = !err && !n && !memcmp(&cur, &zero, sizeof(cur));
	if (fresh)
		cur = defaults;
	if (!err && (fresh || src_rate || src_burst || global_rate ||
		     global_burst || drop)) {
		if (src_rate)
			cur.src_rate = given->src_rate;
		if (src_burst)
			cur.src_burst = given->src_burst;
		if (global_rate)
			cur.global_rate = given->global_rate;
		if (global_burst)
			cur.global_burst = given->global_burst;
		if (drop)
			cur.flags |= JITWG_F_DROP_LIMITED;
		err = capture_set_limits(c, &cur);
	}
	if (!err && opts->n_ports)
		err = capture_set_ports(c, opts->ports, opts->n_ports);
	if (!err)
		err = capture_read_settings(c, &cur, ports, JITWG_MAX_PORTS, &n);
	if (err) {
		fprintf(stderr, "jitwg-xdp: %s\n", capture_error(c));
		return err;
	}
	printf("settings ports=");
	for (i = 0; i < n && i < JITWG_MAX_PORTS; i++)
		printf("%s%u", i ? "," : "", ports[i]);
	if (!n)
		printf("none");
	printf(" src_rate=%u src_burst=%u global_rate=%u global_burst=%u drop=%s\n",
	       cur.src_rate, cur.src_burst, cur.global_rate, cur.global_burst,
	       cur.flags & JITWG_F_DROP_LIMITED ? "yes" : "no");
	print_counters(c);
	if (!n)
		fprintf(stderr, "jitwg-xdp: no port set: nothing is captured until "
			"jitwgd starts or --port is given\n");
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
		{ "version", no_argument, NULL, OPT_VERSION },
		{},
	};
	struct jitwg_config limits = JITWG_CONFIG_DEFAULTS;
	struct capture_opts opts = { .limits = &limits };
	uint16_t ports[JITWG_MAX_PORTS];
	struct cli cli = {};
	struct capture *c;
	unsigned long v;
	/* Which settings the command line gives (--pin-dir sets only those). */
	bool set_src_rate = false, set_src_burst = false;
	bool set_global_rate = false, set_global_burst = false;
	bool set_drop = false;
	int opt, err;

	while ((opt = getopt_long(argc, argv, "d:m:P:p:xc:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'd':
			opts.ifname = optarg;
			break;
		case 'm':
			if (capture_mode_parse(optarg, &opts.mode)) {
				fprintf(stderr,
					"jitwg-xdp: --mode: '%s' is not auto, native, generic, multi or pinned\n",
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
			set_src_rate = true;
			break;
		case OPT_SRC_BURST:
			if (number("--src-burst", optarg, LIMIT_MAX, &v))
				return 2;
			limits.src_burst = v;
			set_src_burst = true;
			break;
		case OPT_GLOBAL_RATE:
			if (number("--global-rate", optarg, LIMIT_MAX, &v))
				return 2;
			limits.global_rate = v;
			set_global_rate = true;
			break;
		case OPT_GLOBAL_BURST:
			if (number("--global-burst", optarg, LIMIT_MAX, &v))
				return 2;
			limits.global_burst = v;
			set_global_burst = true;
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
			set_drop = true;
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
		case OPT_VERSION:
			printf("jitwg-xdp %s\n", JITWG_VERSION);
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
	opts.ports = ports;
	if (opts.pin_dir) {
		if (cli.hex || cli.max_events) {
			fprintf(stderr,
				"jitwg-xdp: --pin-dir sets and shows, it does not watch: "
				"jitwgd reads that ring buffer, and a second reader "
				"would take its initiations (watch with --dev on a "
				"device of its own)\n");
			return 2;
		}
		opts.mode = CAPTURE_PINNED;
		opts.keep_settings = true;
		err = capture_open(&c, &opts, NULL, NULL, cap_err, sizeof(cap_err));
		if (err) {
			fprintf(stderr, "jitwg-xdp: %s\n", cap_err);
			return 1;
		}
		err = pinned_settings(c, &opts, &limits, set_src_rate, set_src_burst,
				      set_global_rate, set_global_burst, set_drop);
		capture_close(c);
		return err ? 1 : 0;
	}

	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);

	err = capture_open(&c, &opts, on_event, &cli, cap_err, sizeof(cap_err));
	if (err) {
		fprintf(stderr, "jitwg-xdp: %s\n", cap_err);
		return 1;
	}
	fprintf(stderr, "jitwg-xdp: attached to %s (%s%s)\n", opts.ifname,
		capture_is_native(c) ? "native" : "generic",
		opts.mode == CAPTURE_MULTI ? ", libxdp dispatcher" : "");

	while (!stop) {
		err = capture_poll(c, 200);
		if (err < 0) {
			fprintf(stderr, "jitwg-xdp: %s\n", capture_error(c));
			break;
		}
	}
	print_counters(c);
	capture_close(c);
	return err < 0 ? 1 : 0;
}
