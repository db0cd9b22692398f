// SPDX-License-Identifier: MIT
/*
 * jitwgctl's verbs for a running jitwgd: status, peers, evict, revalidate,
 * sweep, log-level. Each sends one request over the daemon's control socket
 * (include/control.h) and prints the reply, as text or (--json) as the
 * daemon sent it.
 *
 * Which daemon: --socket PATH, --dev WGDEV (CONTROL_DIR/WGDEV.sock),
 * $JITWG_CONTROL_SOCKET, or else the only socket in CONTROL_DIR.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <time.h>

#include <json-c/json.h>

#include "control.h"
#include "jitwgctl_daemon.h"

/* The same statuses as the rest of jitwgctl (user/jitwgctl.c). */
enum {
	EXIT_OK = 0,
	EXIT_REFUSED = 1,
	EXIT_USAGE = 2,
	EXIT_TOOL = 3,
};

enum { DEFAULT_TIMEOUT_MS = 10000 };

static const char *prog = "jitwgctl";

static const struct verb {
	const char *name;
	const char *args; /* usage of the argument, NULL: none */
	int arg_required;
	const char *summary;
} verbs[] = {
    {"status", NULL, 0, "a running jitwgd: device, peers, queues, counters"},
    {"peers", NULL, 0, "the peers a running jitwgd manages"},
    {"evict", "KEY", 1, "remove a managed peer from the device now"},
    {"revalidate", "[KEY]", 0,
     "ask the control plane again now (one peer, or every managed one)"},
    {"sweep", NULL, 0, "run an eviction sweep now"},
    {"log-level", "LEVEL", 1,
     "set jitwgd's log level (error, warn, info, debug)"},
};

#define NVERBS (sizeof(verbs) / sizeof(verbs[0]))

void jitwgctl_daemon_usage(FILE *f)
{
	size_t i;

	for (i = 0; i < NVERBS; i++)
		fprintf(f, "  %-10s %s\n", verbs[i].name, verbs[i].summary);
}

static void usage(FILE *f, const struct verb *v)
{
	fprintf(
	    f,
	    "usage: %s %s%s%s [--socket PATH | --dev WGDEV] [--json] "
	    "[--timeout-ms N]\n"
	    "  %s.\n"
	    "  --socket: jitwgd's --control-socket; --dev: the daemon of that\n"
	    "  WireGuard device (%s/WGDEV.sock); default: "
	    "$JITWG_CONTROL_SOCKET,\n"
	    "  or the only socket in %s. --json: the daemon's reply as is.\n",
	    prog, v->name, v->args ? " " : "", v->args ? v->args : "",
	    v->summary, CONTROL_DIR, CONTROL_DIR);
}

/* The only *.sock in CONTROL_DIR, or a message saying why not. */
static int find_socket(char *out, size_t size)
{
	struct dirent *de;
	char first[256] = "", names[512] = "";
	int n = 0, ret = EXIT_TOOL;
	size_t len;
	DIR *dir;

	dir = opendir(CONTROL_DIR);
	if (!dir) {
		fprintf(stderr,
			"%s: no jitwgd is running: no control socket in %s "
			"(%m); name one with --socket PATH\n",
			prog, CONTROL_DIR);
		return EXIT_TOOL;
	}
	while ((de = readdir(dir))) {
		len = strlen(de->d_name);
		if (len < 6 || strcmp(de->d_name + len - 5, ".sock"))
			continue;
		if (!n++)
			snprintf(first, sizeof(first), "%s", de->d_name);
		if (strlen(names) + len + 3 < sizeof(names))
			snprintf(names + strlen(names),
				 sizeof(names) - strlen(names), "%s%.*s",
				 *names ? ", " : "", (int)len - 5, de->d_name);
	}
	closedir(dir);
	if (n == 0) {
		fprintf(stderr,
			"%s: no jitwgd is running: no control socket in %s "
			"(name one with --socket PATH)\n",
			prog, CONTROL_DIR);
	} else if (n > 1) {
		fprintf(stderr,
			"%s: several jitwgd are running (%s): choose one with "
			"--dev WGDEV\n",
			prog, names);
		ret = EXIT_USAGE;
	} else if ((size_t)snprintf(out, size, "%s/%s", CONTROL_DIR, first) >=
		   size) {
		fprintf(stderr, "%s: socket path too long\n", prog);
	} else {
		ret = EXIT_OK;
	}
	return ret;
}

static void fmt_duration(char *out, size_t size, int64_t s)
{
	if (s < 0)
		s = 0;
	if (s < 60)
		snprintf(out, size, "%" PRId64 "s", s);
	else if (s < 3600)
		snprintf(out, size, "%" PRId64 "m%02" PRId64 "s", s / 60,
			 s % 60);
	else if (s < 86400)
		snprintf(out, size, "%" PRId64 "h%02" PRId64 "m", s / 3600,
			 s / 60 % 60);
	else
		snprintf(out, size, "%" PRId64 "d%02" PRId64 "h", s / 86400,
			 s / 3600 % 24);
}

/* status: every field as "name: value"; objects as "name: k=v k=v …". */
static void print_status(struct json_object *r)
{
	char d[32];

	json_object_object_foreach(r, k, v)
	{
		if (!strcmp(k, "ok"))
			continue;
		if (!strcmp(k, "uptime_s")) {
			fmt_duration(d, sizeof(d), json_object_get_int64(v));
			printf("uptime: %s\n", d);
			continue;
		}
		if (json_object_is_type(v, json_type_object)) {
			int first = 1;

			printf("%s:", k);
			json_object_object_foreach(v, k2, v2)
			{
				printf("%s%s=%s", first ? " " : " ", k2,
				       json_object_get_string(v2));
				first = 0;
			}
			printf("\n");
			continue;
		}
		printf("%s: %s\n", k, json_object_get_string(v));
	}
}

static const char *str_field(struct json_object *o, const char *name)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, name, &v) ||
	    json_object_is_type(v, json_type_null))
		return NULL;
	return json_object_get_string(v);
}

static int64_t int_field(struct json_object *o, const char *name)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, name, &v))
		return 0;
	return json_object_get_int64(v);
}

/* "12s ago", or "never" for 0. */
static void fmt_age(char *out, size_t size, int64_t now, int64_t when)
{
	char d[32];

	if (!when) {
		snprintf(out, size, "never");
		return;
	}
	fmt_duration(d, sizeof(d), now - when);
	snprintf(out, size, "%s ago", d);
}

/* peers: one line per peer in columns, as `wg show` names them. */
static void print_peers(struct json_object *r)
{
	struct json_object *peers, *p, *ips;
	char installed[48], hs[48], ipbuf[512];
	int64_t now = int_field(r, "now");
	size_t i, j, n;

	if (!now)
		now = (int64_t)time(NULL);
	if (!json_object_object_get_ex(r, "peers", &peers) ||
	    !json_object_is_type(peers, json_type_array))
		return;
	n = json_object_array_length(peers);
	printf("%-44s  %-22s  %-20s  %-11s  %-16s  %s\n", "peer", "endpoint",
	       "allowed ips", "installed", "latest handshake", "source");
	for (i = 0; i < n; i++) {
		p = json_object_array_get_idx(peers, i);
		ipbuf[0] = '\0';
		if (json_object_object_get_ex(p, "allowed_ips", &ips) &&
		    json_object_is_type(ips, json_type_array)) {
			for (j = 0; j < json_object_array_length(ips); j++) {
				size_t l = strlen(ipbuf);

				snprintf(
				    ipbuf + l, sizeof(ipbuf) - l, "%s%s",
				    j ? "," : "",
				    json_object_get_string(
					json_object_array_get_idx(ips, j)));
			}
		}
		fmt_age(installed, sizeof(installed), now,
			int_field(p, "installed_at"));
		fmt_age(hs, sizeof(hs), now, int_field(p, "last_handshake"));
		printf("%-44s  %-22s  %-20s  %-11s  %-16s  %s\n",
		       str_field(p, "public_key") ?: "?",
		       str_field(p, "endpoint") ?: "(none)",
		       *ipbuf ? ipbuf : "(none)", installed, hs,
		       str_field(p, "source") ?: "-");
	}
	printf("%zu managed peer%s\n", n, n == 1 ? "" : "s");
}

/* The other verbs: what the daemon says it did, as "name: value" lines. */
static void print_done(struct json_object *r)
{
	print_status(r);
}

static int connect_error(const char *path, int err)
{
	switch (-err) {
	case ENOENT:
	case ECONNREFUSED:
		fprintf(
		    stderr, "%s: no jitwgd is running on %s (%s)\n", prog, path,
		    err == -ENOENT ? "no such socket" : "nobody listens on it");
		break;
	case EACCES:
	case EPERM:
		fprintf(stderr,
			"%s: no permission for %s: run as root or as jitwgd's "
			"user\n",
			prog, path);
		break;
	case ETIMEDOUT:
		fprintf(stderr, "%s: jitwgd on %s did not answer in time\n",
			prog, path);
		break;
	case EPROTO:
		fprintf(stderr,
			"%s: %s answered something that is not a reply\n", prog,
			path);
		break;
	default:
		fprintf(stderr, "%s: cannot ask jitwgd on %s: %s\n", prog, path,
			strerror(-err));
	}
	return EXIT_TOOL;
}

int jitwgctl_daemon_main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"socket", required_argument, NULL, 's'},
	    {"dev", required_argument, NULL, 'd'},
	    {"json", no_argument, NULL, 'j'},
	    {"timeout-ms", required_argument, NULL, 'T'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)] = "";
	char request[CONTROL_REQUEST_MAX];
	const struct verb *v = NULL;
	struct json_object *reply = NULL, *okv;
	const char *sock = NULL, *dev = NULL, *arg = NULL, *msg;
	int c, json = 0, timeout_ms = DEFAULT_TIMEOUT_MS, err, ret;
	unsigned long t;
	char *end;
	size_t i;

	for (i = 0; i < NVERBS; i++)
		if (!strcmp(argv[0], verbs[i].name))
			v = &verbs[i];
	if (!v)
		return -1;
	while ((c = getopt_long(argc, argv, "s:d:jh", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			sock = optarg;
			break;
		case 'd':
			dev = optarg;
			break;
		case 'j':
			json = 1;
			break;
		case 'T':
			errno = 0;
			t = strtoul(optarg, &end, 10);
			if (errno || *end || !t || t > 600000) {
				fprintf(stderr,
					"%s: bad option value '%s' (see %s %s "
					"--help)\n",
					prog, optarg, prog, v->name);
				return EXIT_USAGE;
			}
			timeout_ms = (int)t;
			break;
		case 'h':
			usage(stdout, v);
			return EXIT_OK;
		default:
			usage(stderr, v);
			return EXIT_USAGE;
		}
	}
	if (optind < argc)
		arg = argv[optind++];
	if (optind < argc || (v->arg_required && !arg) || (!v->args && arg) ||
	    (sock && dev)) {
		usage(stderr, v);
		return EXIT_USAGE;
	}
	if (arg && (strchr(arg, ' ') || strchr(arg, '\n') ||
		    strlen(arg) > CONTROL_REQUEST_MAX / 2)) {
		fprintf(stderr, "%s: bad argument '%s'\n", prog, arg);
		return EXIT_USAGE;
	}

	if (!sock && !dev)
		sock = getenv("JITWG_CONTROL_SOCKET");
	if (sock && *sock) {
		if (strlen(sock) >= sizeof(path)) {
			fprintf(stderr, "%s: socket path too long\n", prog);
			return EXIT_USAGE;
		}
		strcpy(path, sock);
	} else if (dev) {
		if (control_default_path(path, sizeof(path), dev)) {
			fprintf(stderr, "%s: device name too long\n", prog);
			return EXIT_USAGE;
		}
	} else {
		ret = find_socket(path, sizeof(path));
		if (ret)
			return ret;
	}

	snprintf(request, sizeof(request), "%s%s%s", v->name, arg ? " " : "",
		 arg ? arg : "");
	err = control_call(path, request, timeout_ms, &reply);
	if (err)
		return connect_error(path, err);

	ret = EXIT_OK;
	if (!json_object_object_get_ex(reply, "ok", &okv) ||
	    !json_object_get_boolean(okv)) {
		msg = str_field(reply, "error");
		fprintf(stderr, "%s: %s: %s\n", prog, v->name,
			msg ? msg : "refused");
		ret = EXIT_REFUSED;
		if (!json)
			goto out;
	}
	if (json)
		printf("%s\n", json_object_to_json_string_ext(
				   reply, JSON_C_TO_STRING_PRETTY |
					      JSON_C_TO_STRING_NOSLASHESCAPE));
	else if (!strcmp(v->name, "status"))
		print_status(reply);
	else if (!strcmp(v->name, "peers"))
		print_peers(reply);
	else
		print_done(reply);
out:
	json_object_put(reply);
	return ret;
}
