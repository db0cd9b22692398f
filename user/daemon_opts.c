// SPDX-License-Identifier: MIT
/*
 * jitwgd's options. Every long option is also a config-file setting with
 * the same name ("idle-timeout = 300"); the command line wins over the file.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "daemon.h"

/* K_FLAG sets its bool, K_NOT_FLAG clears it ("no-initiate-back"). */
enum opt_kind { K_STR, K_UINT, K_FLAG, K_NOT_FLAG, K_BACKEND, K_XDP_MODE, K_LEVEL, K_SYNC,
	       K_COOKIE, K_CONSUME };

struct opt_def {
	const char *name;
	enum opt_kind kind;
	size_t off;
	unsigned int min, max; /* K_UINT */
	const char *help;
};

#define OFF(f) offsetof(struct daemon_opts, f)

static const struct opt_def defs[] = {
	{ "wg-dev", K_STR, OFF(wg_dev), 0, 0,
	  "WireGuard device to provision (required)" },
	{ "xdp-dev", K_STR, OFF(xdp_dev), 0, 0,
	  "device to attach the XDP capture to (required unless --pin-dir)" },
	{ "api", K_STR, OFF(api_url), 0, 0,
	  "control plane base URL, e.g. https://cp.example/v1 (required)" },
	{ "api-token-file", K_STR, OFF(api_token_file), 0, 0,
	  "file holding the bearer token for the control plane" },
	{ "ca-file", K_STR, OFF(ca_file), 0, 0,
	  "CA bundle to verify the control plane's TLS certificate" },
	{ "cache-dir", K_STR, OFF(cache_dir), 0, 0,
	  "LMDB cache directory (default /var/lib/jitwg)" },
	{ "cache-sync", K_SYNC, OFF(cache_sync), 0, 0,
	  "full|nometa|periodic: cache durability on an OS crash (default full)" },
	{ "cache-max-mib", K_UINT, OFF(cache_max_mib), 1, 1 << 20,
	  "ceiling of the cache on disk, MiB (default 4096; docs/security.md)" },
	{ "max-stale", K_UINT, OFF(max_stale), 1, 86400 * 30,
	  "use a cached answer at most S seconds past its ttl, and only while "
	  "the control plane fails (default 3600)" },
	{ "idle-timeout", K_UINT, OFF(idle_timeout), 1, 86400 * 30,
	  "evict managed peers with no handshake for S seconds (default 300)" },
	{ "evict-interval", K_UINT, OFF(evict_interval), 1, 86400,
	  "seconds between eviction sweeps (default 30)" },
	{ "handshake-window", K_UINT, OFF(handshake_window), 1, 3600,
	  "evict installed peers with no handshake after S seconds (default 30)" },
	{ "backend", K_BACKEND, OFF(backend), 0, 0,
	  "device API: auto|netlink|uapi (default auto)" },
	{ "xdp-mode", K_XDP_MODE, OFF(xdp_mode), 0, 0,
	  "auto|native|generic|pinned (default auto)" },
	{ "pin-dir", K_STR, OFF(pin_dir), 0, 0,
	  "use the maps bpftool pinned here (it loaded and attached the program, "
	  "which stays attached on exit)" },
	{ "no-initiate-back", K_NOT_FLAG, OFF(initiate_back), 0, 0,
	  "do not start the handshake towards a new peer; wait for its retry" },
	{ "adopt", K_FLAG, OFF(adopt), 0, 0,
	  "at start-up, manage every peer on the device that no cache record "
	  "claims (after a lost cache directory): they are evicted as jitwgd's own" },
	{ "consume", K_CONSUME, OFF(consume), 0, 0,
	  "[=auto|always|never] XDP drops captured initiations and jitwgd gives "
	  "WireGuard those it can use, a new peer's once installed (answered, "
	  "not initiated back): under load (auto, the default: initiations "
	  "faster than 1,000/s or the XDP global budget spent), always (a bare "
	  "--consume), or never" },
	{ "cookie", K_COOKIE, OFF(cookie), 0, 0,
	  "auto|always|never: answer new sources with cookie replies instead of "
	  "Diffie-Hellmans while the workers fall behind (auto, the default), "
	  "always (tests), or never (docs/security.md)" },
	{ "workers", K_UINT, OFF(workers), 1, OPT_MAX_WORKERS,
	  "decoder threads (default: online CPUs)" },
	{ "max-cpu", K_UINT, OFF(max_cpu), 0, 100,
	  "percent of one core that Diffie-Hellmans may use under a flood; "
	  "handshakes from verified sources and rekeys first (default 50; "
	  "0: no limit)" },
	{ "config", K_STR, OFF(config), 0, 0,
	  "config file of \"name = value\" lines, names as the long options" },
	{ "metrics-listen", K_STR, OFF(metrics_listen), 0, 0,
	  "serve Prometheus metrics on ADDR:PORT (port 9089 if omitted); off unless set" },
	{ "control-socket", K_STR, OFF(control_socket), 0, 0,
	  "control socket for jitwgctl (default /run/jitwg/WGDEV.sock; none: off)" },
	{ "log-level", K_LEVEL, OFF(log_level), 0, 0,
	  "error|warn|info|debug (default info)" },
};

#define N_DEFS (sizeof(defs) / sizeof(defs[0]))

void opts_init(struct daemon_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->idle_timeout = OPT_DEFAULT_IDLE_TIMEOUT;
	o->evict_interval = OPT_DEFAULT_EVICT_INTERVAL;
	o->cache_max_mib = (unsigned int)(CACHE_DEFAULT_MAP_SIZE >> 20);
	o->max_stale = CACHE_DEFAULT_MAX_STALE;
	o->handshake_window = OPT_DEFAULT_HANDSHAKE_WINDOW;
	o->max_cpu = OPT_DEFAULT_MAX_CPU;
	o->backend = WGDEV_AUTO;
	o->xdp_mode = CAPTURE_AUTO;
	o->initiate_back = true;
	o->log_level = LOG_INFO;
}

void opts_free(struct daemon_opts *o)
{
	size_t i;

	for (i = 0; i < N_DEFS; i++)
		if (defs[i].kind == K_STR) {
			char **p = (char **)((char *)o + defs[i].off);

			free(*p);
			*p = NULL;
		}
}

void opts_usage(FILE *f)
{
	size_t i;

	fprintf(f, "usage: jitwgd --wg-dev DEV --xdp-dev DEV --api URL [options]\n\n"
		   "Provisions WireGuard peers just in time: captures handshake\n"
		   "initiations with XDP, authenticates them, fetches the peer from\n"
		   "the control plane (or the cache) and installs it.\n\noptions:\n");
	for (i = 0; i < N_DEFS; i++) {
		char arg[48];

		snprintf(arg, sizeof(arg), "--%s%s", defs[i].name,
			 defs[i].kind == K_FLAG || defs[i].kind == K_NOT_FLAG ||
			 defs[i].kind == K_CONSUME ? "" :
			 defs[i].kind == K_UINT ? " N" : " VALUE");
		fprintf(f, "  %-26s %s\n", arg, defs[i].help);
	}
	fprintf(f, "  %-26s %s\n", "--help", "this text");
	fprintf(f, "\nSignals: SIGHUP sweeps idle peers now; SIGTERM/SIGINT stop.\n");
}

static const struct opt_def *lookup(const char *name)
{
	size_t i;

	for (i = 0; i < N_DEFS; i++)
		if (!strcmp(defs[i].name, name))
			return &defs[i];
	return NULL;
}

static int parse_bool(const char *v, bool *out)
{
	if (!v || !*v || !strcasecmp(v, "true") || !strcasecmp(v, "yes") ||
	    !strcmp(v, "1") || !strcasecmp(v, "on")) {
		*out = true;
		return 0;
	}
	if (!strcasecmp(v, "false") || !strcasecmp(v, "no") || !strcmp(v, "0") ||
	    !strcasecmp(v, "off")) {
		*out = false;
		return 0;
	}
	return -EINVAL;
}

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* For enum options: the index of value in names (the enum's spellings). */
static int name_index(const char *value, const char *const *names, size_t n)
{
	for (size_t i = 0; value && i < n; i++)
		if (!strcmp(value, names[i]))
			return (int)i;
	return -1;
}

int opts_set(struct daemon_opts *o, const char *name, const char *value,
	     char *err, size_t errlen)
{
	const struct opt_def *d = lookup(name);
	void *p;

	if (!d) {
		snprintf(err, errlen, "unknown option '%s' (see --help)", name);
		return -EINVAL;
	}
	p = (char *)o + d->off;
	switch (d->kind) {
	case K_STR: {
		char *s;

		if (!value || !*value) {
			snprintf(err, errlen, "option '%s' needs a value", name);
			return -EINVAL;
		}
		s = strdup(value);
		if (!s) {
			snprintf(err, errlen, "out of memory");
			return -ENOMEM;
		}
		free(*(char **)p);
		*(char **)p = s;
		return 0;
	}
	case K_UINT: {
		char *end;
		unsigned long v;

		errno = 0;
		if (!value || !isdigit((unsigned char)*value))
			goto bad;
		v = strtoul(value, &end, 10);
		if (errno || *end || v < d->min || v > d->max) {
			snprintf(err, errlen,
				 "invalid value '%s' for '%s': want an integer from %u to %u",
				 value, name, d->min, d->max);
			return -EINVAL;
		}
		*(unsigned int *)p = (unsigned int)v;
		return 0;
	}
	case K_FLAG:
	case K_NOT_FLAG: {
		bool b;

		if (parse_bool(value, &b))
			goto bad;
		*(bool *)p = d->kind == K_FLAG ? b : !b;
		return 0;
	}
	case K_BACKEND: {
		static const char *const names[] = {
			[WGDEV_AUTO] = "auto",
			[WGDEV_NETLINK] = "netlink",
			[WGDEV_UAPI] = "uapi",
		};
		int i = name_index(value, names, ARRAY_LEN(names));

		if (i < 0)
			goto bad;
		*(enum wgdev_backend *)p = (enum wgdev_backend)i;
		return 0;
	}
	case K_XDP_MODE:
		if (!value || capture_mode_parse(value, (enum capture_mode *)p))
			goto bad;
		return 0;
	case K_LEVEL:
		if (!value || log_level_parse(value, (enum log_level *)p))
			goto bad;
		return 0;
	case K_SYNC: {
		static const char *const names[] = {
			[CACHE_SYNC_FULL] = "full",
			[CACHE_SYNC_NOMETA] = "nometa",
			[CACHE_SYNC_PERIODIC] = "periodic",
		};
		int i = name_index(value, names, ARRAY_LEN(names));

		if (i < 0)
			goto bad;
		*(enum cache_sync *)p = (enum cache_sync)i;
		return 0;
	}
	case K_COOKIE: {
		static const char *const names[] = {
			[COOKIE_AUTO] = "auto",
			[COOKIE_ALWAYS] = "always",
			[COOKIE_NEVER] = "never",
		};
		int i = name_index(value, names, ARRAY_LEN(names));

		if (i < 0)
			goto bad;
		*(enum cookie_mode *)p = (enum cookie_mode)i;
		return 0;
	}
	case K_CONSUME: {
		static const char *const names[] = {
			[CONSUME_AUTO] = "auto",
			[CONSUME_ALWAYS] = "always",
			[CONSUME_NEVER] = "never",
		};
		int i = name_index(value, names, ARRAY_LEN(names));
		bool b;

		/* A bare --consume (and "consume = true" in a config file,
		 * from when it was a flag) is always. */
		if (i < 0 && !parse_bool(value, &b))
			i = b ? CONSUME_ALWAYS : CONSUME_NEVER;
		if (i < 0)
			goto bad;
		*(enum consume_mode *)p = (enum consume_mode)i;
		return 0;
	}
	}
bad:
	snprintf(err, errlen, "invalid value '%s' for '%s' (see --help)",
		 value ? value : "", name);
	return -EINVAL;
}

static char *trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

int opts_load_string(struct daemon_opts *o, const char *text, size_t len,
		     const char *origin, char *err, size_t errlen)
{
	char line[4096], e2[256];
	unsigned int lineno = 0;
	size_t pos = 0;
	int ret = 0;

	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - (text + pos)) : len - pos;
		char *s, *eq, *name, *value;

		lineno++;
		if (n >= sizeof(line)) {
			snprintf(err, errlen, "%s:%u: line too long", origin, lineno);
			return -EINVAL;
		}
		memcpy(line, text + pos, n);
		line[n] = '\0';
		pos += n + (nl ? 1 : 0);
		if (strlen(line) != n) {
			snprintf(err, errlen, "%s:%u: NUL byte", origin, lineno);
			return -EINVAL;
		}
		s = trim(line);
		if (!*s || *s == '#' || *s == ';')
			continue;
		eq = strchr(s, '=');
		if (eq) {
			*eq = '\0';
			value = trim(eq + 1);
		} else {
			value = NULL; /* a bare flag: "no-initiate-back" */
		}
		name = trim(s);
		if (!strncmp(name, "--", 2))
			name += 2;
		/* Quotes around a value are allowed and dropped. */
		if (value && value[0] == '"' && strlen(value) >= 2 &&
		    value[strlen(value) - 1] == '"') {
			value[strlen(value) - 1] = '\0';
			value++;
		}
		if (!strcmp(name, "config")) {
			snprintf(err, errlen, "%s:%u: 'config' cannot be set in a config file",
				 origin, lineno);
			return -EINVAL;
		}
		if (lookup(name) && lookup(name)->kind != K_NOT_FLAG &&
		    lookup(name)->kind != K_FLAG && lookup(name)->kind != K_CONSUME &&
		    !value) {
			snprintf(err, errlen, "%s:%u: '%s' needs '= value'", origin,
				 lineno, name);
			return -EINVAL;
		}
		ret = opts_set(o, name, value, e2, sizeof(e2));
		if (ret) {
			snprintf(err, errlen, "%s:%u: %s", origin, lineno, e2);
			return ret;
		}
	}
	return 0;
}

int opts_load_file(struct daemon_opts *o, const char *path, char *err,
		   size_t errlen)
{
	enum { MAX_CONFIG = 1 << 20 };
	char *buf;
	size_t len = 0;
	FILE *f;
	int ret;

	f = fopen(path, "re");
	if (!f) {
		ret = -errno;
		snprintf(err, errlen, "cannot read config file %s: %s", path,
			 strerror(errno));
		return ret;
	}
	buf = malloc(MAX_CONFIG + 1);
	if (!buf) {
		fclose(f);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	len = fread(buf, 1, MAX_CONFIG + 1, f);
	ret = ferror(f) ? -EIO : 0;
	fclose(f);
	if (!ret && len > MAX_CONFIG) {
		snprintf(err, errlen, "config file %s is larger than 1 MiB", path);
		ret = -EINVAL;
	} else if (ret) {
		snprintf(err, errlen, "cannot read config file %s", path);
	} else {
		ret = opts_load_string(o, buf, len, path, err, errlen);
	}
	free(buf);
	return ret;
}

int opts_parse(struct daemon_opts *o, int argc, char **argv, char *err,
	       size_t errlen)
{
	struct option lopts[N_DEFS + 2];
	size_t i;
	int c, idx, ret;

	for (i = 0; i < N_DEFS; i++) {
		lopts[i].name = defs[i].name;
		lopts[i].has_arg = defs[i].kind == K_FLAG || defs[i].kind == K_NOT_FLAG ?
					   no_argument :
				   defs[i].kind == K_CONSUME ? optional_argument :
							       required_argument;
		lopts[i].flag = NULL;
		lopts[i].val = 0x100 + (int)i;
	}
	lopts[N_DEFS] = (struct option){ "help", no_argument, NULL, 'h' };
	lopts[N_DEFS + 1] = (struct option){ 0 };

	/* Pass 1: --help and --config only. */
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":h", lopts, &idx)) != -1) {
		if (c == 'h') {
			opts_usage(stdout);
			return 1;
		}
		if (c >= 0x100 && !strcmp(defs[c - 0x100].name, "config")) {
			ret = opts_set(o, "config", optarg, err, errlen);
			if (ret)
				return ret;
		}
	}
	if (o->config) {
		ret = opts_load_file(o, o->config, err, errlen);
		if (ret)
			return -EINVAL;
	}
	/* Pass 2: everything, overriding the file. */
	optind = 1;
	while ((c = getopt_long(argc, argv, ":h", lopts, &idx)) != -1) {
		if (c == '?') {
			if (optopt)
				snprintf(err, errlen, "unknown option '-%c' (see --help)", optopt);
			else
				snprintf(err, errlen, "unknown option '%s' (see --help)",
					 argv[optind - 1]);
			return -EINVAL;
		}
		if (c == ':') {
			snprintf(err, errlen, "option '%s' needs a value",
				 argv[optind - 1]);
			return -EINVAL;
		}
		if (c < 0x100)
			continue;
		if (!strcmp(defs[c - 0x100].name, "config"))
			continue;
		ret = opts_set(o, defs[c - 0x100].name, optarg, err, errlen);
		if (ret)
			return -EINVAL;
	}
	if (optind < argc) {
		snprintf(err, errlen, "unexpected argument '%s' (see --help)",
			 argv[optind]);
		return -EINVAL;
	}
	return 0;
}

int opts_validate(const struct daemon_opts *o, char *err, size_t errlen)
{
	if (!o->wg_dev) {
		snprintf(err, errlen, "--wg-dev is required (the WireGuard device)");
		return -EINVAL;
	}
	if (strlen(o->wg_dev) >= IFNAMSIZ) {
		snprintf(err, errlen, "--wg-dev '%s' is longer than %d characters",
			 o->wg_dev, IFNAMSIZ - 1);
		return -EINVAL;
	}
	if (!o->xdp_dev && o->xdp_mode != CAPTURE_PINNED && !o->pin_dir) {
		snprintf(err, errlen, "--xdp-dev is required (the device receiving WireGuard's UDP)");
		return -EINVAL;
	}
	if (o->xdp_mode == CAPTURE_PINNED && !o->pin_dir) {
		snprintf(err, errlen, "--xdp-mode pinned needs --pin-dir");
		return -EINVAL;
	}
	if (o->pin_dir && o->xdp_mode != CAPTURE_PINNED && o->xdp_mode != CAPTURE_AUTO) {
		snprintf(err, errlen,
			 "--pin-dir uses a program bpftool loaded and attached: drop --xdp-mode %s",
			 o->xdp_mode == CAPTURE_NATIVE ? "native" : "generic");
		return -EINVAL;
	}
	if (o->xdp_dev && !strcmp(o->xdp_dev, o->wg_dev)) {
		snprintf(err, errlen, "--xdp-dev %s is the WireGuard device itself: "
			 "give the device receiving WireGuard's UDP (the uplink)", o->xdp_dev);
		return -EINVAL;
	}
	/* Re-delivered initiations arrive through the loopback device (auto
	 * does not consume there: jitwgd.c). */
	if (o->consume == CONSUME_ALWAYS && o->xdp_dev && !strcmp(o->xdp_dev, "lo")) {
		snprintf(err, errlen, "--consume re-delivers through the loopback "
			 "device: it cannot also capture there (--xdp-dev lo)");
		return -EINVAL;
	}
	if (!o->api_url) {
		snprintf(err, errlen, "--api is required (the control plane's base URL)");
		return -EINVAL;
	}
	if (strncmp(o->api_url, "http://", 7) && strncmp(o->api_url, "https://", 8)) {
		snprintf(err, errlen, "--api '%s' must be an http:// or https:// URL",
			 o->api_url);
		return -EINVAL;
	}
	return 0;
}
