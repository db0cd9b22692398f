// SPDX-License-Identifier: MIT
/*
 * The control socket (include/control.h): one thread accepts a connection,
 * reads one request line, calls the daemon, writes one JSON reply and
 * closes. Requests are served one at a time: they are rare (an operator, a
 * script), and it keeps the daemon's callbacks free of races between them.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "control.h"
#include "keys.h"

enum {
	/* A connected client has this long to send its line / read the reply.
	 */
	SERVER_IO_TIMEOUT_MS = 2000,
	LISTEN_BACKLOG = 16,
};

struct control_server {
	const struct control_ops *ops;
	void *ctx;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	int fd;
	int stop_pipe[2];
	dev_t dev;
	ino_t ino;
	pthread_t thread;
};

int control_default_path(char *out, size_t size, const char *dev)
{
	int n = snprintf(out, size, "%s/%s.sock", CONTROL_DIR, dev);

	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

void control_set_error(struct json_object *reply, int err, const char *msg)
{
	const char *name = strerrorname_np(err < 0 ? -err : err);

	json_object_object_add(reply, "ok", json_object_new_boolean(0));
	if (!json_object_object_get_ex(reply, "error", NULL))
		json_object_object_add(
		    reply, "error",
		    json_object_new_string(msg ? msg : strerror(-err)));
	json_object_object_add(reply, "errno",
			       json_object_new_string(name ? name : "?"));
}

static int sun_of(struct sockaddr_un *sun, const char *path)
{
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	if (!*path || strlen(path) >= sizeof(sun->sun_path))
		return -ENAMETOOLONG;
	strcpy(sun->sun_path, path);
	return 0;
}

static int connect_to(const char *path, int *out)
{
	struct sockaddr_un sun;
	int fd, err;

	err = sun_of(&sun, path);
	if (err)
		return err;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun))) {
		err = -errno;
		close(fd);
		return err;
	}
	*out = fd;
	return 0;
}

/*
 * What is at path: nothing (0), a stale socket (removed, 0), a live one
 * (-EADDRINUSE) or something else (-EEXIST).
 */
static int clear_path(const char *path)
{
	struct stat st;
	int fd, err;

	if (lstat(path, &st))
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode))
		return -EEXIST;
	err = connect_to(path, &fd);
	if (!err) {
		close(fd);
		return -EADDRINUSE;
	}
	if (err != -ECONNREFUSED)
		return err;
	return unlink(path) && errno != ENOENT ? -errno : 0;
}

static int make_parent(const char *path)
{
	char dir[PATH_MAX];
	char *slash;

	if (strlen(path) >= sizeof(dir))
		return -ENAMETOOLONG;
	strcpy(dir, path);
	slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = '\0';
	if (mkdir(dir, 0700) && errno != EEXIST)
		return -errno;
	return 0;
}

/*
 * Bound under a temporary name, made 0600, then renamed into place: the
 * socket is never reachable with a wider mode, whatever the umask.
 */
static int bind_private(struct control_server *s)
{
	struct sockaddr_un sun;
	char tmp[sizeof(s->path) + 32];
	struct stat st;
	int err, n;

	n = snprintf(tmp, sizeof(tmp), "%s.%d.tmp", s->path, (int)getpid());
	if (n < 0 || (size_t)n >= sizeof(sun.sun_path))
		return -ENAMETOOLONG;
	err = sun_of(&sun, tmp);
	if (err)
		return err;
	unlink(tmp);
	if (bind(s->fd, (struct sockaddr *)&sun, sizeof(sun)))
		return -errno;
	if (chmod(tmp, 0600) || stat(tmp, &st)) {
		err = -errno;
		goto err_unlink;
	}
	if (listen(s->fd, LISTEN_BACKLOG) || rename(tmp, s->path)) {
		err = -errno;
		goto err_unlink;
	}
	s->dev = st.st_dev;
	s->ino = st.st_ino;
	return 0;
err_unlink:
	unlink(tmp);
	return err;
}

/* One line, at most CONTROL_REQUEST_MAX bytes, within the timeout. */
static int read_line(int fd, char *buf, size_t cap)
{
	size_t len = 0;
	ssize_t n;
	char *nl;

	for (;;) {
		if (len + 1 >= cap)
			return -E2BIG;
		n = recv(fd, buf + len, cap - 1 - len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EAGAIN ? -ETIMEDOUT : -errno;
		if (n == 0)
			break;
		len += (size_t)n;
		buf[len] = '\0';
		nl = memchr(buf, '\n', len);
		if (nl) {
			*nl = '\0';
			len = (size_t)(nl - buf);
			break;
		}
	}
	buf[len] = '\0';
	if (len && buf[len - 1] == '\r')
		buf[--len] = '\0';
	return 0;
}

static int write_all(int fd, const char *p, size_t len)
{
	ssize_t n;

	while (len) {
		n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static const struct {
	const char *name;
	enum control_verb verb;
	enum { ARG_NONE, ARG_KEY, ARG_OPT_KEY, ARG_WORD } arg;
} verbs[] = {
    {"status", CONTROL_STATUS, ARG_NONE},
    {"peers", CONTROL_PEERS, ARG_NONE},
    {"evict", CONTROL_EVICT, ARG_KEY},
    {"revalidate", CONTROL_REVALIDATE, ARG_OPT_KEY},
    {"sweep", CONTROL_SWEEP, ARG_NONE},
    {"log-level", CONTROL_LOG_LEVEL, ARG_WORD},
};

int control_parse_request(char *line, struct control_request *req,
			  const char **msg)
{
	char *verb, *arg, *rest, *save = NULL;
	size_t i;

	memset(req, 0, sizeof(*req));
	verb = strtok_r(line, " \t", &save);
	arg = strtok_r(NULL, " \t", &save);
	rest = strtok_r(NULL, " \t", &save);
	*msg = "empty request";
	if (!verb)
		return -EINVAL;
	*msg = "too many arguments";
	if (rest)
		return -EINVAL;
	for (i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		if (!strcmp(verb, verbs[i].name))
			break;
	*msg = "unknown verb (status, peers, evict, revalidate, sweep, "
	       "log-level)";
	if (i == sizeof(verbs) / sizeof(verbs[0]))
		return -EINVAL;
	req->verb = verbs[i].verb;
	switch (verbs[i].arg) {
	case ARG_NONE:
		*msg = "this verb takes no argument";
		if (arg)
			return -EINVAL;
		break;
	case ARG_KEY:
	case ARG_OPT_KEY:
		*msg = "this verb needs a key";
		if (!arg && verbs[i].arg == ARG_KEY)
			return -EINVAL;
		*msg = "not a base64 public key";
		if (arg && key_from_base64(req->key, arg))
			return -EINVAL;
		req->has_key = arg != NULL;
		break;
	case ARG_WORD:
		*msg = "this verb needs an argument";
		if (!arg)
			return -EINVAL;
		req->arg = arg;
		break;
	}
	*msg = NULL;
	return 0;
}

/* Parse the line and call the daemon; fills reply. */
static void dispatch(struct control_server *s, char *line,
		     struct json_object *reply)
{
	const struct control_ops *o = s->ops;
	struct control_request req;
	const char *msg;
	int err;

	err = control_parse_request(line, &req, &msg);
	if (err)
		goto out;
	err = -EOPNOTSUPP;
	switch (req.verb) {
	case CONTROL_STATUS:
		if (o->status)
			err = o->status(s->ctx, reply);
		break;
	case CONTROL_PEERS:
		if (o->peers)
			err = o->peers(s->ctx, reply);
		break;
	case CONTROL_EVICT:
		if (o->evict)
			err = o->evict(s->ctx, req.key, reply);
		break;
	case CONTROL_REVALIDATE:
		if (o->revalidate)
			err = o->revalidate(
			    s->ctx, req.has_key ? req.key : NULL, reply);
		break;
	case CONTROL_SWEEP:
		if (o->sweep)
			err = o->sweep(s->ctx, reply);
		break;
	case CONTROL_LOG_LEVEL:
		if (o->log_level)
			err = o->log_level(s->ctx, req.arg, reply);
		break;
	}
out:
	if (err)
		control_set_error(reply, err, msg);
	else
		json_object_object_add(reply, "ok", json_object_new_boolean(1));
}

static void serve_one(struct control_server *s, int fd)
{
	const struct timeval tv = {.tv_sec = SERVER_IO_TIMEOUT_MS / 1000,
				   .tv_usec =
				       SERVER_IO_TIMEOUT_MS % 1000 * 1000};
	char line[CONTROL_REQUEST_MAX + 1];
	struct json_object *reply;
	struct ucred cred;
	socklen_t len = sizeof(cred);
	const char *text;
	size_t tlen;
	int err;

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	reply = json_object_new_object();
	if (!reply)
		return;
	/*
	 * The socket's mode already keeps others out; a peer with another
	 * uid (other than root) got in through a copied descriptor or a
	 * loosened mode, and is refused.
	 */
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) ||
	    (cred.uid != 0 && cred.uid != geteuid())) {
		control_set_error(reply, -EPERM, "not the daemon's user");
		goto send;
	}
	err = read_line(fd, line, sizeof(line));
	if (err) {
		control_set_error(
		    reply, err, err == -E2BIG ? "request line too long" : NULL);
		goto send;
	}
	dispatch(s, line, reply);
send:
	text = json_object_to_json_string_length(reply, JSON_C_TO_STRING_PLAIN,
						 &tlen);
	if (text && !write_all(fd, text, tlen))
		write_all(fd, "\n", 1);
	json_object_put(reply);
}

static void *serve(void *arg)
{
	struct control_server *s = arg;
	struct pollfd pfd[2] = {
	    {.fd = s->fd, .events = POLLIN},
	    {.fd = s->stop_pipe[0], .events = POLLIN},
	};
	int fd;

	for (;;) {
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pfd[1].revents)
			break;
		if (!(pfd[0].revents & POLLIN))
			continue;
		fd = accept4(s->fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		serve_one(s, fd);
		close(fd);
	}
	return NULL;
}

int control_server_start(struct control_server **out, const char *path,
			 const struct control_ops *ops, void *ctx)
{
	struct control_server *s;
	int err;

	*out = NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->ops = ops;
	s->ctx = ctx;
	s->fd = -1;
	s->stop_pipe[0] = s->stop_pipe[1] = -1;
	if (strlen(path) >= sizeof(s->path) - 16) {
		err = -ENAMETOOLONG;
		goto err_free;
	}
	strcpy(s->path, path);
	err = make_parent(path);
	if (err)
		goto err_free;
	err = clear_path(path);
	if (err)
		goto err_free;
	s->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s->fd < 0 || pipe2(s->stop_pipe, O_CLOEXEC)) {
		err = -errno;
		goto err_close;
	}
	err = bind_private(s);
	if (err)
		goto err_close;
	err = -pthread_create(&s->thread, NULL, serve, s);
	if (err)
		goto err_unlink;
	*out = s;
	return 0;
err_unlink:
	unlink(s->path);
err_close:
	if (s->fd >= 0)
		close(s->fd);
	if (s->stop_pipe[0] >= 0) {
		close(s->stop_pipe[0]);
		close(s->stop_pipe[1]);
	}
err_free:
	free(s);
	return err;
}

void control_server_stop(struct control_server *s)
{
	struct stat st;

	if (!s)
		return;
	if (write(s->stop_pipe[1], "x", 1) == 1)
		pthread_join(s->thread, NULL);
	/* Another daemon may have replaced a socket it found stale. */
	if (!lstat(s->path, &st) && st.st_dev == s->dev && st.st_ino == s->ino)
		unlink(s->path);
	close(s->fd);
	close(s->stop_pipe[0]);
	close(s->stop_pipe[1]);
	free(s);
}

int control_call(const char *path, const char *request, int timeout_ms,
		 struct json_object **reply)
{
	struct json_tokener *tok = NULL;
	struct json_object *obj = NULL;
	struct timespec start, now;
	struct pollfd pfd;
	char *buf = NULL, *p;
	size_t len = 0, cap = 0;
	ssize_t n;
	int fd = -1, err, left;

	*reply = NULL;
	if (strlen(request) >= CONTROL_REQUEST_MAX || strchr(request, '\n'))
		return -EINVAL;
	err = connect_to(path, &fd);
	if (err)
		return err;
	err = write_all(fd, request, strlen(request));
	if (!err)
		err = write_all(fd, "\n", 1);
	if (err)
		goto out;
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		left =
		    timeout_ms - (int)((now.tv_sec - start.tv_sec) * 1000 +
				       (now.tv_nsec - start.tv_nsec) / 1000000);
		if (left <= 0) {
			err = -ETIMEDOUT;
			goto out;
		}
		pfd = (struct pollfd){.fd = fd, .events = POLLIN};
		if (poll(&pfd, 1, left) <= 0)
			continue;
		if (len + 65536 > cap) {
			if (cap >= CONTROL_REPLY_MAX) {
				err = -EFBIG;
				goto out;
			}
			cap = cap ? cap * 2 : 65536 * 2;
			p = realloc(buf, cap + 1);
			if (!p) {
				err = -ENOMEM;
				goto out;
			}
			buf = p;
		}
		n = recv(fd, buf + len, cap - len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err = -errno;
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	err = -EPROTO;
	if (!len)
		goto out;
	tok = json_tokener_new();
	if (!tok) {
		err = -ENOMEM;
		goto out;
	}
	obj = json_tokener_parse_ex(tok, buf, (int)len);
	if (!obj || !json_object_is_type(obj, json_type_object)) {
		json_object_put(obj);
		goto out;
	}
	*reply = obj;
	err = 0;
out:
	if (tok)
		json_tokener_free(tok);
	free(buf);
	close(fd);
	return err;
}
