// SPDX-License-Identifier: MIT
/*
 * The control socket (user/control.c) against stand-in daemon callbacks:
 * the socket's mode, every verb and its argument checks, malformed and
 * oversized requests, stale and live sockets at start-up, the client's
 * errors when no daemon runs; then build/jitwgctl's daemon verbs
 * (user/jitwgctl_daemon.c) against the same server: output, --json, exit
 * statuses.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <json-c/json.h>

#include "check.h"
#include "control.h"
#include "keys.h"

/* Two keys: one the stand-in daemon manages, one it does not. */
static const char *KEY_A = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
static const char *KEY_B = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";

static struct {
	int evicted, revalidated, revalidated_all, sweeps;
	char level[32];
} seen;

static int st_status(void *ctx, struct json_object *r)
{
	struct json_object *peers = json_object_new_object();

	(void)ctx;
	json_object_object_add(r, "device", json_object_new_string("wg0"));
	json_object_object_add(r, "uptime_s", json_object_new_int64(3723));
	json_object_object_add(peers, "device", json_object_new_int(2));
	json_object_object_add(peers, "managed", json_object_new_int(1));
	json_object_object_add(r, "peers", peers);
	return 0;
}

static int st_peers(void *ctx, struct json_object *r)
{
	struct json_object *a = json_object_new_array(),
			   *p = json_object_new_object(),
			   *ips = json_object_new_array();

	(void)ctx;
	json_object_object_add(r, "now", json_object_new_int64(1000000));
	json_object_object_add(p, "public_key", json_object_new_string(KEY_A));
	json_object_object_add(p, "endpoint",
			       json_object_new_string("192.0.2.7:41001"));
	json_object_array_add(ips, json_object_new_string("10.0.0.2/32"));
	json_object_array_add(ips, json_object_new_string("fd00::2/128"));
	json_object_object_add(p, "allowed_ips", ips);
	json_object_object_add(p, "installed_at",
			       json_object_new_int64(1000000 - 75));
	json_object_object_add(p, "last_handshake", json_object_new_int64(0));
	json_object_object_add(p, "source", json_object_new_string("api"));
	json_object_array_add(a, p);
	json_object_object_add(r, "peers", a);
	return 0;
}

static int st_evict(void *ctx, const uint8_t key[CONTROL_KEY_LEN],
		    struct json_object *r)
{
	uint8_t a[KEY_LEN];

	(void)ctx;
	key_from_base64(a, KEY_A);
	if (memcmp(a, key, KEY_LEN)) {
		json_object_object_add(
			r, "error", json_object_new_string("not a managed peer"));
		return -ENOENT;
	}
	seen.evicted++;
	json_object_object_add(r, "evicted", json_object_new_int(1));
	return 0;
}

static int st_revalidate(void *ctx, const uint8_t *key, struct json_object *r)
{
	uint8_t a[KEY_LEN];

	(void)ctx;
	key_from_base64(a, KEY_A);
	if (!key)
		seen.revalidated_all++;
	else if (!memcmp(a, key, KEY_LEN))
		seen.revalidated++;
	else
		return -ENOENT;
	json_object_object_add(r, "queued", json_object_new_int(1));
	return 0;
}

static int st_sweep(void *ctx, struct json_object *r)
{
	(void)ctx;
	seen.sweeps++;
	json_object_object_add(r, "evicted", json_object_new_int(0));
	return 0;
}

static int st_log_level(void *ctx, const char *level, struct json_object *r)
{
	(void)ctx;
	(void)r;
	if (strcmp(level, "debug") && strcmp(level, "info"))
		return -EINVAL;
	snprintf(seen.level, sizeof(seen.level), "%s", level);
	return 0;
}

static const struct control_ops ops = {
	.status = st_status,
	.peers = st_peers,
	.evict = st_evict,
	.revalidate = st_revalidate,
	.sweep = st_sweep,
	.log_level = st_log_level,
};

static char dir[] = "/tmp/jitwg-ctl.XXXXXX";
static char sock[PATH_MAX];

/* Call and return the reply's "ok" (1/0), or -errno from the client. */
static int call(const char *req, struct json_object **out)
{
	struct json_object *r = NULL, *ok;
	int err = control_call(sock, req, 5000, &r);

	if (out)
		*out = r;
	if (err)
		return err;
	err = json_object_object_get_ex(r, "ok", &ok) &&
	      json_object_get_boolean(ok);
	if (!out)
		json_object_put(r);
	return err;
}

static const char *field(struct json_object *r, const char *name)
{
	struct json_object *v;

	return r && json_object_object_get_ex(r, name, &v) ?
		       json_object_get_string(v) :
		       "";
}

static void test_verbs(void)
{
	struct json_object *r;
	char req[128];
	int ok;

	ok = call("status", &r);
	CHECK("status: daemon's fields", ok == 1 && !strcmp(field(r, "device"), "wg0"),
	      "ok %d reply %s", ok, r ? json_object_to_json_string(r) : "-");
	json_object_put(r);
	ok = call("peers", &r);
	CHECK("peers: list", ok == 1 && strstr(field(r, "peers"), KEY_A), "ok %d", ok);
	json_object_put(r);

	snprintf(req, sizeof(req), "evict %s", KEY_A);
	CHECK("evict KEY: daemon called with the key",
	      call(req, NULL) == 1 && seen.evicted == 1, "evicted %d", seen.evicted);
	snprintf(req, sizeof(req), "evict %s", KEY_B);
	ok = call(req, &r);
	CHECK("evict: the daemon's refusal and message",
	      ok == 0 && !strcmp(field(r, "error"), "not a managed peer") &&
		      !strcmp(field(r, "errno"), "ENOENT"),
	      "ok %d reply %s", ok, r ? json_object_to_json_string(r) : "-");
	json_object_put(r);
	snprintf(req, sizeof(req), "revalidate %s", KEY_A);
	CHECK("revalidate KEY and revalidate (all)",
	      call(req, NULL) == 1 && call("revalidate", NULL) == 1 &&
		      seen.revalidated == 1 && seen.revalidated_all == 1,
	      "%d %d", seen.revalidated, seen.revalidated_all);
	CHECK("sweep", call("sweep", NULL) == 1 && seen.sweeps == 1, "sweeps %d",
	      seen.sweeps);
	CHECK("log-level LEVEL", call("log-level debug", NULL) == 1 &&
		      !strcmp(seen.level, "debug") &&
		      call("log-level loud", NULL) == 0,
	      "level %s", seen.level);
}

static void test_bad_requests(void)
{
	static const struct {
		const char *req;
		const char *why;
	} rows[] = {
		{ "", "empty" },
		{ "reboot", "unknown verb" },
		{ "evict", "evict without a key" },
		{ "evict notakey", "evict with a bad key" },
		{ "revalidate AAAA", "revalidate with a bad key" },
		{ "log-level", "log-level without a level" },
		{ "status now", "status with an argument" },
		{ "sweep a b", "too many arguments" },
	};
	struct json_object *r;
	size_t i;
	int bad = 0, ok;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		ok = call(rows[i].req, &r);
		bad += !EXPECT(ok == 0 && !strcmp(field(r, "errno"), "EINVAL") &&
				       *field(r, "error"),
			       "%s: ok %d reply %s", rows[i].why, ok,
			       r ? json_object_to_json_string(r) : "-");
		json_object_put(r);
	}
	CHECK("malformed requests answered EINVAL with a message (table)", !bad,
	      "%d rows wrong", bad);
	CHECK("side effects: none from the malformed requests",
	      seen.evicted == 1 && seen.sweeps == 1, "evicted %d sweeps %d",
	      seen.evicted, seen.sweeps);
}

/* A client that sends more than a request may be, with no newline. */
static void test_oversized(void)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	char big[4096], reply[512] = "";
	ssize_t n = 0;
	int fd;

	memset(big, 'a', sizeof(big));
	strcpy(sun.sun_path, sock);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd >= 0 && !connect(fd, (struct sockaddr *)&sun, sizeof(sun))) {
		n = send(fd, big, sizeof(big), MSG_NOSIGNAL);
		n = recv(fd, reply, sizeof(reply) - 1, MSG_WAITALL);
	}
	if (fd >= 0)
		close(fd);
	CHECK("an oversized request is refused (E2BIG)",
	      n > 0 && strstr(reply, "\"E2BIG\""), "reply '%s'", reply);
	CHECK("the server still answers afterwards", call("sweep", NULL) == 1,
	      "no");
}

/* Run build/jitwgctl with args; exit status, stdout+stderr in out. */
static int ctl(char *out, size_t size, const char *args)
{
	char cmd[PATH_MAX * 2];
	const char *root = getenv("JITWG_ROOT");
	FILE *p;
	size_t n;
	int st;

	snprintf(cmd, sizeof(cmd), "%s/build/jitwgctl %s 2>&1", root ? root : ".",
		 args);
	p = popen(cmd, "r");
	if (!p)
		return -1;
	n = fread(out, 1, size - 1, p);
	out[n] = '\0';
	st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_jitwgctl(void)
{
	char out[8192], args[PATH_MAX + 128];
	struct json_object *j;
	int st;

	snprintf(args, sizeof(args), "status --socket %s", sock);
	st = ctl(out, sizeof(out), args);
	CHECK("jitwgctl status: fields, uptime readable, exit 0",
	      st == 0 && strstr(out, "device: wg0\n") &&
		      strstr(out, "uptime: 1h02m\n") &&
		      strstr(out, "peers: device=2 managed=1\n"),
	      "exit %d: %s", st, out);

	snprintf(args, sizeof(args), "peers --socket %s", sock);
	st = ctl(out, sizeof(out), args);
	CHECK("jitwgctl peers: columns as wg show names them",
	      st == 0 && strstr(out, "latest handshake") && strstr(out, KEY_A) &&
		      strstr(out, "10.0.0.2/32,fd00::2/128") &&
		      strstr(out, "1m15s ago") && strstr(out, "never") &&
		      strstr(out, "1 managed peer\n"),
	      "exit %d: %s", st, out);

	snprintf(args, sizeof(args), "peers --json --socket %s", sock);
	st = ctl(out, sizeof(out), args);
	j = json_tokener_parse(out);
	CHECK("jitwgctl peers --json: the reply as JSON",
	      st == 0 && j && strstr(json_object_to_json_string(j), KEY_A), "exit %d: %s",
	      st, out);
	json_object_put(j);

	snprintf(args, sizeof(args), "evict %s --socket %s", KEY_B, sock);
	st = ctl(out, sizeof(out), args);
	CHECK("jitwgctl evict of an unmanaged key: one line, exit 1",
	      st == 1 && !strcmp(out, "jitwgctl: evict: not a managed peer\n"),
	      "exit %d: %s", st, out);
	snprintf(args, sizeof(args), "evict %s --socket %s", KEY_A, sock);
	st = ctl(out, sizeof(out), args);
	CHECK("jitwgctl evict KEY: exit 0", st == 0 && seen.evicted == 2,
	      "exit %d: %s", st, out);
	snprintf(args, sizeof(args), "revalidate --socket %s", sock);
	CHECK("jitwgctl revalidate: exit 0",
	      ctl(out, sizeof(out), args) == 0 && seen.revalidated_all == 2,
	      "%s", out);
	snprintf(args, sizeof(args), "log-level info --socket %s", sock);
	CHECK("jitwgctl log-level: exit 0",
	      ctl(out, sizeof(out), args) == 0 && !strcmp(seen.level, "info"),
	      "%s", out);
	st = ctl(out, sizeof(out), "evict");
	CHECK("jitwgctl evict without a key: usage, exit 2", st == 2,
	      "exit %d: %s", st, out);

	snprintf(args, sizeof(args), "status --socket %s/none.sock", dir);
	st = ctl(out, sizeof(out), args);
	CHECK("jitwgctl without a daemon: clear message, exit 3",
	      st == 3 && strstr(out, "no jitwgd is running on") &&
		      !strchr(strchr(out, '\n') + 1, '\n'),
	      "exit %d: %s", st, out);
}

static void test_lifecycle(void)
{
	struct control_server *s = NULL, *s2 = NULL;
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	char path[PATH_MAX];
	struct json_object *r;
	struct stat st;
	int err, fd;

	/* A parent directory that does not exist yet: created 0700. */
	snprintf(sock, sizeof(sock), "%s/run/wg0.sock", dir);
	err = control_server_start(&s, sock, &ops, NULL);
	CHECK("server starts, creating its directory", !err, "error %d", err);
	if (err)
		return;
	CHECK("socket mode 0600", !stat(sock, &st) && S_ISSOCK(st.st_mode) &&
		      (st.st_mode & 0777) == 0600,
	      "mode %o", st.st_mode & 0777);
	snprintf(path, sizeof(path), "%s/run", dir);
	CHECK("directory mode 0700", !stat(path, &st) && (st.st_mode & 0777) == 0700,
	      "mode %o", st.st_mode & 0777);

	err = control_server_start(&s2, sock, &ops, NULL);
	CHECK("a second server on a live socket: EADDRINUSE",
	      err == -EADDRINUSE && !s2, "error %d", err);
	CHECK("the first still answers", call("status", NULL) == 1, "no");

	test_verbs();
	test_bad_requests();
	test_oversized();
	test_jitwgctl();

	control_server_stop(s);
	CHECK("stop removes the socket; the client then says ENOENT",
	      stat(sock, &st) && errno == ENOENT &&
		      call("status", NULL) == -ENOENT,
	      "still there");

	/* A socket left by a killed daemon: bound, nobody listening. */
	strcpy(sun.sun_path, sock);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	close(fd);
	CHECK("client on a stale socket: ECONNREFUSED",
	      call("status", NULL) == -ECONNREFUSED, "no");
	err = control_server_start(&s, sock, &ops, NULL);
	CHECK("a stale socket is replaced", !err && call("status", &r) == 1,
	      "error %d", err);
	json_object_put(r);
	control_server_stop(s);

	/* Not a socket: never removed. */
	fd = open(sock, O_CREAT | O_WRONLY, 0600);
	close(fd);
	err = control_server_start(&s, sock, &ops, NULL);
	CHECK("a regular file at the path is refused (EEXIST), kept",
	      err == -EEXIST && !stat(sock, &st) && S_ISREG(st.st_mode),
	      "error %d", err);
	unlink(sock);

	/* A daemon without a verb answers EOPNOTSUPP. */
	err = control_server_start(&s, sock, &(struct control_ops){ 0 }, NULL);
	if (!err) {
		call("sweep", &r);
		CHECK("a verb the daemon lacks: EOPNOTSUPP",
		      !strcmp(field(r, "errno"), "EOPNOTSUPP"), "%s",
		      r ? json_object_to_json_string(r) : "-");
		json_object_put(r);
		control_server_stop(s);
	}
}

int main(void)
{
	char cmd[64];

	if (!mkdtemp(dir)) {
		printf("FAIL: mkdtemp\n");
		return 1;
	}
	test_lifecycle();
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd))
		printf("  could not remove %s\n", dir);
	CHECK_EXIT();
}
