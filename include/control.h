/* SPDX-License-Identifier: MIT */
/*
 * The daemon's control socket: a Unix stream socket (mode 0600), one request
 * per connection. The client sends one line, "VERB [ARG]\n" (at most
 * CONTROL_REQUEST_MAX bytes); the server answers one JSON object and a
 * newline, then closes:
 *
 *   {"ok": true, ...}                  what the verb returns
 *   {"ok": false, "error": "...", "errno": "ENOENT"}
 *
 * Verbs: status, peers, evict KEY, revalidate [KEY], sweep, log-level LEVEL
 * (KEY: a public key in base64, as wg(8) prints it).
 */
#ifndef JITWG_CONTROL_H
#define JITWG_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct json_object;

#define CONTROL_DIR "/run/jitwg"
enum {
	CONTROL_REQUEST_MAX = 512,
	CONTROL_KEY_LEN = 32,
	/* A reply bigger than this is refused by the client (peers listing). */
	CONTROL_REPLY_MAX = 256 << 20,
};

/*
 * What the daemon does for each verb. Each runs on the control thread, one
 * at a time, and returns 0 or -errno; it adds its fields to reply, and on an
 * error may add "error" (a one-line message; otherwise strerror is sent).
 * A NULL entry answers -EOPNOTSUPP.
 */
struct control_ops {
	int (*status)(void *ctx, struct json_object *reply);
	int (*peers)(void *ctx, struct json_object *reply);
	int (*evict)(void *ctx, const uint8_t key[CONTROL_KEY_LEN],
		     struct json_object *reply);
	/* key NULL: every managed peer. */
	int (*revalidate)(void *ctx, const uint8_t *key,
			  struct json_object *reply);
	int (*sweep)(void *ctx, struct json_object *reply);
	int (*log_level)(void *ctx, const char *level,
			 struct json_object *reply);
};

enum control_verb {
	CONTROL_STATUS,
	CONTROL_PEERS,
	CONTROL_EVICT,
	CONTROL_REVALIDATE,
	CONTROL_SWEEP,
	CONTROL_LOG_LEVEL,
};

struct control_request {
	enum control_verb verb;
	bool has_key;
	uint8_t key[CONTROL_KEY_LEN];
	const char *arg; /* log-level's word, inside the line */
};

/*
 * One request line (no newline; split in place). 0, or -EINVAL with a
 * one-line reason in *msg. Pure: the server's parser, and a fuzz target.
 */
int control_parse_request(char *line, struct control_request *req,
			  const char **msg);

struct control_server;

/* CONTROL_DIR/DEV.sock into out (size bytes); 0 or -ENAMETOOLONG. */
int control_default_path(char *out, size_t size, const char *dev);

/*
 * Listen on path with mode 0600 and serve on a thread of its own. The
 * parent directory is created (0700) if missing. A socket already at path
 * that answers belongs to a running daemon: -EADDRINUSE; one nobody
 * listens on is stale and replaced; anything else there: -EEXIST.
 */
int control_server_start(struct control_server **out, const char *path,
			 const struct control_ops *ops, void *ctx);
/* Stops the thread, removes the socket (if still ours), frees s. */
void control_server_stop(struct control_server *s);

/*
 * The client: send request (one line, no newline) to the socket at path
 * and parse the reply. 0 (whatever "ok" says) or -errno: -ENOENT (no
 * socket), -ECONNREFUSED (nobody listening), -EACCES, -ETIMEDOUT, -EPROTO
 * (not a JSON object), -EFBIG.
 */
int control_call(const char *path, const char *request, int timeout_ms,
		 struct json_object **reply);

/* Set ok=false, error=msg, errno=name for err in reply. */
void control_set_error(struct json_object *reply, int err, const char *msg);

#endif
