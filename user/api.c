// SPDX-License-Identifier: MIT
/*
 * Control-plane client: libcurl's multi interface driven by one private
 * thread. See include/api.h for the contract and the threading rules.
 *
 * Why a thread and not fds in the daemon's loop: the packet path must never
 * wait for the control plane (the 2025 Fly.io gateway stall was exactly an
 * install path blocked on the central API). Submitting only takes a mutex for
 * a hash lookup and wakes the thread; all network I/O, timeouts, retries and
 * backoff timers live on the API thread.
 *
 * Locking: c->mu protects the request table, the FIFO, the counters and every
 * request's state and waiters. Curl handles and response buffers are touched
 * only by the API thread (and by api_destroy after it joined). Callbacks run
 * without c->mu held.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <sodium.h>

#include "api.h"
#include "keys.h"

enum {
	HASH_BUCKETS = 4096,
	MAX_TOKEN = 4096,
	PRUNE_EVERY_MS = 1000,
	IDLE_POLL_MS = 1000,
};

enum req_state {
	R_QUEUED,   /* in the FIFO, waiting for a transfer slot */
	R_RUNNING,  /* easy handle added to the multi handle */
	R_BACKOFF,  /* waiting for next_ms before the next attempt */
	R_DONE,     /* completed; kept until the rate-limit window passes */
};

struct req {
	uint8_t key[32];
	enum req_state state;
	struct req *hnext;         /* hash chain */
	struct req *qnext;         /* FIFO or backoff list */
	uint64_t started_ms;       /* start of this logical request */
	uint64_t submit_us;
	uint64_t next_ms;          /* R_BACKOFF: when to try again */
	unsigned attempts;
	void *waiters[API_MAX_WAITERS];
	unsigned n_waiters;
	/* API thread only: */
	struct api_client *c;
	CURL *easy;
	char *body;
	size_t body_len;
	bool too_big;
	int err;
	long http_status;
	char reason[API_REASON_LEN];
	struct hdrs *hdrs;         /* the headers its handle was given */
};

/*
 * The request headers, the token among them, shared by every request whose
 * handle was set up while they were current. refs: the client's own while
 * current, plus one per such request; changed under mu (or once the API
 * thread has stopped). After a token reload the old set is wiped and freed
 * as soon as the last of its requests is.
 */
struct hdrs {
	struct curl_slist *list;
	unsigned refs;
	unsigned *live;            /* the client's count of sets alive */
};

struct api_client {
	struct api_config cfg;
	char *base;                /* URL without trailing '/' */
	char *ca_file;
	struct hdrs *hdrs;         /* current; the pointer read and swapped under mu */
	CURLM *multi;
	struct api_peer *peer;     /* API thread's parse buffer, locked memory */
	pthread_t thread;
	bool started;

	pthread_mutex_t mu;
	bool stop;
	struct req *table[HASH_BUCKETS];
	uint8_t hash_key[crypto_shorthash_KEYBYTES];
	unsigned header_sets;      /* hdrs alive (a reload's old ones included) */
	struct req *fifo_head, *fifo_tail;
	struct req *backoff;       /* unordered list, API thread walks it */
	unsigned running;
	struct api_stats st;
	uint64_t last_prune_ms;
};

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static uint64_t now_ms(void)
{
	return now_us() / 1000;
}

static unsigned bucket(const struct api_client *c, const uint8_t key[32])
{
	uint8_t h[crypto_shorthash_BYTES];
	uint64_t v;

	/*
	 * Whoever sends initiations chooses the keys: a few thousand keygens
	 * would put many in one bucket of a plain prefix hash, and every
	 * lookup under mu would scan that chain. SipHash with a secret key.
	 */
	crypto_shorthash(h, key, 32, c->hash_key);
	memcpy(&v, h, sizeof(v));
	return (unsigned)(v % HASH_BUCKETS);
}

static struct req *find(struct api_client *c, const uint8_t key[32])
{
	struct req *r;

	for (r = c->table[bucket(c, key)]; r; r = r->hnext)
		if (!memcmp(r->key, key, 32))
			return r;
	return NULL;
}

static void hdrs_put(struct hdrs *h);

/* c->mu held, or the API thread stopped. */
static void free_req(struct req *r)
{
	if (r->easy)
		curl_easy_cleanup(r->easy);
	hdrs_put(r->hdrs); /* after the handle that points to them */
	if (r->body) {
		sodium_memzero(r->body, r->body_len);
		free(r->body);
	}
	free(r);
}

static void say(char *reason, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, len, fmt, ap);
	va_end(ap);
}

/* Read the token: first line, surrounding whitespace stripped. */
static int read_token(const char *path, char **out)
{
	char *buf = sodium_malloc(MAX_TOKEN + 1);
	size_t len = 0, s = 0;
	ssize_t n;
	int fd, ret = 0;

	if (!buf)
		return -ENOMEM;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		goto out;
	}
	while (len < MAX_TOKEN &&
	       (n = read(fd, buf + len, MAX_TOKEN - len)) > 0)
		len += (size_t)n;
	if (n < 0)
		ret = -errno;
	close(fd);
	if (ret)
		goto out;
	buf[len] = 0;
	buf[strcspn(buf, "\r\n")] = 0;
	len = strlen(buf);
	while (len && (buf[len - 1] == ' ' || buf[len - 1] == '\t'))
		buf[--len] = 0;
	while (buf[s] == ' ' || buf[s] == '\t')
		s++;
	if (!buf[s]) {
		ret = -EINVAL;
		goto out;
	}
	/* A header value must not carry control characters (CRLF injection). */
	for (size_t i = s; buf[i]; i++) {
		if ((unsigned char)buf[i] < 0x20 || buf[i] == 0x7f) {
			ret = -EINVAL;
			goto out;
		}
	}
	*out = sodium_malloc(strlen(buf + s) + sizeof("Authorization: Bearer "));
	if (!*out) {
		ret = -ENOMEM;
		goto out;
	}
	sprintf(*out, "Authorization: Bearer %s", buf + s);
out:
	sodium_memzero(buf, MAX_TOKEN + 1);
	sodium_free(buf);
	return ret;
}

static void free_headers(struct curl_slist *h)
{
	for (struct curl_slist *s = h; s; s = s->next)
		sodium_memzero(s->data, strlen(s->data));
	curl_slist_free_all(h);
}

static void hdrs_put(struct hdrs *h)
{
	if (h && !--h->refs) {
		if (h->live)
			(*h->live)--;
		free_headers(h->list);
		free(h);
	}
}

/* The request headers: Authorization when token_file is set, Accept. */
static int make_headers(const char *token_file, struct hdrs **out,
			char *errbuf, size_t errlen)
{
	struct curl_slist *h = NULL, *n;
	char *auth = NULL;
	int ret;

	*out = calloc(1, sizeof(**out));
	if (!*out)
		goto nomem;

	if (token_file) {
		ret = read_token(token_file, &auth);
		if (ret) {
			say(errbuf, errlen, "cannot read the API token file: %s",
			    ret == -EINVAL ? "empty or invalid" : strerror(-ret));
			free(*out);
			*out = NULL;
			return ret;
		}
		h = curl_slist_append(NULL, auth);
		sodium_memzero(auth, strlen(auth));
		sodium_free(auth);
		if (!h)
			goto nomem;
	}
	n = curl_slist_append(h, "Accept: application/json");
	if (!n)
		goto nomem;
	(*out)->list = n;
	(*out)->refs = 1;
	return 0;
nomem:
	free_headers(h);
	free(*out);
	*out = NULL;
	say(errbuf, errlen, "out of memory");
	return -ENOMEM;
}

int api_reload_token(struct api_client *c, const char *token_file,
		     char *errbuf, size_t errlen)
{
	struct hdrs *h;
	int ret;

	ret = make_headers(token_file, &h, errbuf, errlen);
	if (ret)
		return ret;
	pthread_mutex_lock(&c->mu);
	h->live = &c->header_sets;
	c->header_sets++;
	hdrs_put(c->hdrs);
	c->hdrs = h;
	pthread_mutex_unlock(&c->mu);
	return 0;
}


/* Accumulate the body; abort the transfer as soon as it passes max_body. */
static size_t on_data(char *p, size_t size, size_t nmemb, void *arg)
{
	struct req *r = arg;
	size_t n = size * nmemb, max = r->c->cfg.max_body;
	char *nb;

	if (n > max - r->body_len || r->body_len + n > max) {
		r->too_big = true;
		return 0; /* CURLE_WRITE_ERROR: libcurl closes the connection */
	}
	/* Grow to the exact need: bodies are small, max_body bounds them. */
	nb = malloc(r->body_len + n);
	if (!nb)
		return 0;
	if (r->body) {
		memcpy(nb, r->body, r->body_len);
		sodium_memzero(r->body, r->body_len);
		free(r->body);
	}
	memcpy(nb + r->body_len, p, n);
	r->body = nb;
	r->body_len += n;
	return n;
}

static void reset_body(struct req *r)
{
	if (r->body) {
		sodium_memzero(r->body, r->body_len);
		free(r->body);
	}
	r->body = NULL;
	r->body_len = 0;
	r->too_big = false;
}

/* API thread. Returns 0 or -errno (the request is then finished by caller). */
static int start_attempt(struct api_client *c, struct req *r)
{
	char url[4096], k[KEY_B64URL_LEN];
	CURLMcode mrc;

	reset_body(r);
	r->http_status = 0;
	if (!r->easy) {
		r->easy = curl_easy_init();
		if (!r->easy)
			return -ENOMEM;
		key_to_base64url(k, r->key);
		snprintf(url, sizeof(url), "%s/peers/%s", c->base, k);
		curl_easy_setopt(r->easy, CURLOPT_URL, url);
		curl_easy_setopt(r->easy, CURLOPT_PRIVATE, r);
		curl_easy_setopt(r->easy, CURLOPT_WRITEFUNCTION, on_data);
		curl_easy_setopt(r->easy, CURLOPT_WRITEDATA, r);
		pthread_mutex_lock(&c->mu);
		r->hdrs = c->hdrs;
		r->hdrs->refs++;
		pthread_mutex_unlock(&c->mu);
		curl_easy_setopt(r->easy, CURLOPT_HTTPHEADER, r->hdrs->list);
		curl_easy_setopt(r->easy, CURLOPT_HTTPGET, 1L);
		curl_easy_setopt(r->easy, CURLOPT_USERAGENT, "jitwgd");
		curl_easy_setopt(r->easy, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(r->easy, CURLOPT_FOLLOWLOCATION, 0L);
		curl_easy_setopt(r->easy, CURLOPT_PROTOCOLS_STR, "http,https");
		curl_easy_setopt(r->easy, CURLOPT_CONNECTTIMEOUT_MS,
				 (long)c->cfg.connect_timeout_ms);
		curl_easy_setopt(r->easy, CURLOPT_TIMEOUT_MS,
				 (long)c->cfg.total_timeout_ms);
		curl_easy_setopt(r->easy, CURLOPT_MAXFILESIZE_LARGE,
				 (curl_off_t)c->cfg.max_body);
		curl_easy_setopt(r->easy, CURLOPT_SSL_VERIFYPEER, 1L);
		curl_easy_setopt(r->easy, CURLOPT_SSL_VERIFYHOST, 2L);
		if (c->ca_file)
			curl_easy_setopt(r->easy, CURLOPT_CAINFO, c->ca_file);
		sodium_memzero(url, sizeof(url));
	}
	r->attempts++;
	mrc = curl_multi_add_handle(c->multi, r->easy);
	if (mrc != CURLM_OK) {
		say(r->reason, sizeof(r->reason), "curl: %s",
		    curl_multi_strerror(mrc));
		return -ENOMEM;
	}
	return 0;
}

/* Map a transport failure; returns true if another attempt may succeed. */
static bool classify(struct req *r, CURLcode rc)
{
	const char *what = curl_easy_strerror(rc);

	switch (rc) {
	case CURLE_OPERATION_TIMEDOUT:
		r->err = -ETIMEDOUT;
		say(r->reason, sizeof(r->reason), "timeout: %s", what);
		return true;
	case CURLE_COULDNT_CONNECT:
		r->err = -ECONNREFUSED;
		say(r->reason, sizeof(r->reason), "cannot connect: %s", what);
		return true;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		r->err = -EHOSTUNREACH;
		say(r->reason, sizeof(r->reason), "cannot resolve: %s", what);
		return true;
	case CURLE_WRITE_ERROR:
	case CURLE_FILESIZE_EXCEEDED:
		if (r->too_big || rc == CURLE_FILESIZE_EXCEEDED) {
			r->err = -EMSGSIZE;
			say(r->reason, sizeof(r->reason),
			    "body over the %zu byte limit, transfer aborted",
			    r->c->cfg.max_body);
			return false;
		}
		r->err = -ENOMEM;
		say(r->reason, sizeof(r->reason), "out of memory");
		return false;
	case CURLE_GOT_NOTHING:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_PARTIAL_FILE:
		r->err = -EPROTO;
		say(r->reason, sizeof(r->reason), "connection failed: %s",
		    what);
		return true;
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
		r->err = -EPROTO;
		say(r->reason, sizeof(r->reason), "TLS: %s", what);
		return false;
	default:
		r->err = -EPROTO;
		say(r->reason, sizeof(r->reason), "curl: %s", what);
		return false;
	}
}

/* Exponential backoff with "equal jitter": [d/2, d], d doubling per retry. */
static uint64_t backoff_ms(struct api_client *c, unsigned attempts)
{
	uint64_t d = c->cfg.backoff_initial_ms;

	for (unsigned i = 1; i < attempts && d < c->cfg.backoff_max_ms; i++)
		d *= 2;
	if (d > c->cfg.backoff_max_ms)
		d = c->cfg.backoff_max_ms;
	return d / 2 + randombytes_uniform((uint32_t)(d - d / 2 + 1));
}

/*
 * Finish r: hand its waiters their callbacks. API thread (or api_destroy
 * after the thread stopped). Called without c->mu.
 */
static void finish(struct api_client *c, struct req *r, enum api_status status,
		   const struct api_peer *peer)
{
	void *waiters[API_MAX_WAITERS];
	struct api_result res;
	uint8_t key[32];
	unsigned n, i;

	memset(&res, 0, sizeof(res));
	res.status = status;
	res.err = status == API_ERROR ? r->err : 0;
	res.http_status = r->http_status;
	res.attempts = r->attempts;
	res.elapsed_us = now_us() - r->submit_us;
	res.peer = status == API_FOUND ? peer : NULL;
	snprintf(res.reason, sizeof(res.reason), "%s",
		 status == API_FOUND ? "ok"
		 : status == API_NOT_FOUND ? "not found (404)"
					   : r->reason);
	memcpy(key, r->key, 32);
	reset_body(r);
	if (r->easy) {
		curl_easy_cleanup(r->easy);
		r->easy = NULL;
	}

	pthread_mutex_lock(&c->mu);
	/* The next request for this key takes the headers current then: a
	 * token rotated meanwhile must not stay alive through this one. */
	hdrs_put(r->hdrs);
	r->hdrs = NULL;
	n = r->n_waiters;
	memcpy(waiters, r->waiters, n * sizeof(waiters[0]));
	r->n_waiters = 0;
	r->state = R_DONE;
	if (status == API_FOUND)
		c->st.found++;
	else if (status == API_NOT_FOUND)
		c->st.not_found++;
	else
		c->st.errors++;
	c->st.inflight--;
	pthread_mutex_unlock(&c->mu);

	for (i = 0; i < n; i++)
		c->cfg.done(key, &res, waiters[i], c->cfg.arg);
}

/* A transfer completed (API thread). */
static void completed(struct api_client *c, CURL *easy, CURLcode rc)
{
	struct api_peer *peer = c->peer;
	struct req *r;
	bool retry = false;
	int ret;

	long conns = 0;

	curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&r);
	curl_multi_remove_handle(c->multi, easy);
	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &r->http_status);
	/* Kept-alive connections live in the multi handle's cache, not in the
	 * per-request easy handle: counted, since a new TCP connection per
	 * request would double a first contact's round trips. */
	curl_easy_getinfo(easy, CURLINFO_NUM_CONNECTS, &conns);
	pthread_mutex_lock(&c->mu);
	c->st.connects += (uint64_t)conns;
	pthread_mutex_unlock(&c->mu);

	if (rc != CURLE_OK) {
		retry = classify(r, rc);
	} else if (r->http_status == 200) {
		ret = api_parse_body(r->body ? r->body : "", r->body_len, r->key,
				     c->cfg.max_body, peer, r->reason,
				     sizeof(r->reason));
		if (!ret) {
			finish(c, r, API_FOUND, peer);
			sodium_memzero(peer, sizeof(*peer));
			goto out;
		}
		r->err = ret;
	} else if (r->http_status == 404) {
		finish(c, r, API_NOT_FOUND, NULL);
		goto out;
	} else if (r->http_status == 401 || r->http_status == 403) {
		r->err = -EACCES;
		say(r->reason, sizeof(r->reason),
		    "HTTP %ld: token missing or refused", r->http_status);
	} else {
		r->err = -EPROTO;
		say(r->reason, sizeof(r->reason), "HTTP %ld", r->http_status);
		retry = r->http_status == 429 || r->http_status >= 500;
	}

	if (retry && r->attempts < c->cfg.max_attempts) {
		pthread_mutex_lock(&c->mu);
		r->state = R_BACKOFF;
		r->next_ms = now_ms() + backoff_ms(c, r->attempts);
		r->qnext = c->backoff;
		c->backoff = r;
		c->running--;
		pthread_mutex_unlock(&c->mu);
		return;
	}
	if (r->attempts > 1) {
		size_t l = strlen(r->reason);

		snprintf(r->reason + l, sizeof(r->reason) - l,
			 " (after %u attempts)", r->attempts);
	}
	finish(c, r, API_ERROR, NULL);
out:
	pthread_mutex_lock(&c->mu);
	c->running--;
	pthread_mutex_unlock(&c->mu);
}

/* Forget completed requests whose rate-limit window has passed. c->mu held. */
static void prune(struct api_client *c, uint64_t now)
{
	for (unsigned b = 0; b < HASH_BUCKETS; b++) {
		struct req **pp = &c->table[b];

		while (*pp) {
			struct req *r = *pp;

			if (r->state == R_DONE &&
			    (c->cfg.no_rate_limit ||
			     now >= r->started_ms + c->cfg.min_interval_ms)) {
				*pp = r->hnext;
				free_req(r);
			} else {
				pp = &r->hnext;
			}
		}
	}
}

static void *run(void *arg)
{
	struct api_client *c = arg;

	for (;;) {
		struct req *start = NULL, *r, **pp;
		uint64_t now = now_ms(), wake = now + IDLE_POLL_MS;
		bool progress = false;
		CURLMsg *m;
		int still, left;

		pthread_mutex_lock(&c->mu);
		if (c->stop) {
			pthread_mutex_unlock(&c->mu);
			break;
		}
		/* Retries whose time has come first, then new requests. */
		for (pp = &c->backoff; *pp;) {
			r = *pp;
			if (r->next_ms <= now &&
			    c->running < c->cfg.max_inflight) {
				*pp = r->qnext;
				r->state = R_RUNNING;
				r->qnext = start;
				start = r;
				c->running++;
				c->st.attempts++;
			} else {
				/* Due but no slot: a completion will wake us. */
				if (r->next_ms > now && r->next_ms < wake)
					wake = r->next_ms;
				pp = &r->qnext;
			}
		}
		while (c->fifo_head && c->running < c->cfg.max_inflight) {
			r = c->fifo_head;
			c->fifo_head = r->qnext;
			if (!c->fifo_head)
				c->fifo_tail = NULL;
			r->state = R_RUNNING;
			r->qnext = start;
			start = r;
			c->running++;
			c->st.attempts++;
		}
		if (now >= c->last_prune_ms + PRUNE_EVERY_MS) {
			prune(c, now);
			c->last_prune_ms = now;
		}
		pthread_mutex_unlock(&c->mu);

		while (start) {
			r = start;
			start = r->qnext;
			r->qnext = NULL;
			if (start_attempt(c, r)) {
				r->err = -ENOMEM;
				finish(c, r, API_ERROR, NULL);
				pthread_mutex_lock(&c->mu);
				c->running--;
				pthread_mutex_unlock(&c->mu);
				progress = true;
			}
		}

		curl_multi_perform(c->multi, &still);
		while ((m = curl_multi_info_read(c->multi, &left))) {
			if (m->msg != CURLMSG_DONE)
				continue;
			completed(c, m->easy_handle, m->data.result);
			progress = true;
		}
		if (progress)
			continue; /* slots freed or retries queued: no sleeping */
		now = now_ms();
		/* curl_multi_poll also wakes for libcurl's own timers. */
		curl_multi_poll(c->multi, NULL, 0,
				wake > now ? (int)(wake - now) : 0, NULL);
	}
	return NULL;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int api_create(struct api_client **out, const struct api_config *cfg,
	       char *errbuf, size_t errlen)
{
	char ebuf[1];
	struct api_client *c;
	size_t len;
	int ret;

	if (!errbuf) {
		errbuf = ebuf;
		errlen = sizeof(ebuf);
	}
	if (!cfg->url || !cfg->done ||
	    (strncasecmp(cfg->url, "http://", 7) &&
	     strncasecmp(cfg->url, "https://", 8))) {
		say(errbuf, errlen, "the API URL must start with http:// or https://");
		return -EINVAL;
	}
	if (sodium_init() < 0) {
		say(errbuf, errlen, "libsodium initialisation failed");
		return -ENOMEM;
	}
	pthread_once(&curl_once, curl_init);
	if (curl_init_rc != CURLE_OK) {
		say(errbuf, errlen, "libcurl initialisation failed");
		return -ENOMEM;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->cfg = *cfg;
	if (!c->cfg.connect_timeout_ms)
		c->cfg.connect_timeout_ms = 2000;
	if (!c->cfg.total_timeout_ms)
		c->cfg.total_timeout_ms = 5000;
	if (!c->cfg.max_attempts)
		c->cfg.max_attempts = 3;
	if (!c->cfg.backoff_initial_ms)
		c->cfg.backoff_initial_ms = 200;
	if (!c->cfg.backoff_max_ms)
		c->cfg.backoff_max_ms = 2000;
	if (c->cfg.backoff_max_ms < c->cfg.backoff_initial_ms)
		c->cfg.backoff_max_ms = c->cfg.backoff_initial_ms;
	if (!c->cfg.min_interval_ms)
		c->cfg.min_interval_ms = 4500; /* see api.h */
	if (!c->cfg.max_body)
		c->cfg.max_body = API_DEFAULT_MAX_BODY;
	if (!c->cfg.max_inflight)
		c->cfg.max_inflight = 64;
	if (!c->cfg.max_queue)
		c->cfg.max_queue = 65536;
	c->cfg.token_file = NULL; /* not kept: the caller owns the string */
	c->cfg.ca_file = NULL;
	c->cfg.url = NULL;
	pthread_mutex_init(&c->mu, NULL);

	ret = -ENOMEM;
	c->base = strdup(cfg->url);
	if (!c->base)
		goto err;
	len = strlen(c->base);
	while (len > 8 && c->base[len - 1] == '/')
		c->base[--len] = 0;
	if (cfg->ca_file) {
		c->ca_file = strdup(cfg->ca_file);
		if (!c->ca_file)
			goto err;
	}
	ret = make_headers(cfg->token_file, &c->hdrs, errbuf, errlen);
	if (ret)
		goto err_said;
	c->hdrs->live = &c->header_sets;
	c->header_sets = 1;
	randombytes_buf(c->hash_key, sizeof(c->hash_key));
	ret = -ENOMEM;
	c->multi = curl_multi_init();
	c->peer = sodium_malloc(sizeof(*c->peer));
	if (!c->multi || !c->peer)
		goto err;
	/* Reuse connections to the control plane across requests. */
	curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS,
			  (long)c->cfg.max_inflight);
	ret = -pthread_create(&c->thread, NULL, run, c);
	if (ret) {
		say(errbuf, errlen, "cannot start the API thread");
		goto err;
	}
	c->started = true;
	*out = c;
	return 0;
err:
	if (ret == -ENOMEM)
		say(errbuf, errlen, "out of memory");
err_said:
	api_destroy(c);
	return ret;
}

void api_destroy(struct api_client *c)
{
	struct api_result res;

	if (!c)
		return;
	if (c->started) {
		pthread_mutex_lock(&c->mu);
		c->stop = true;
		pthread_mutex_unlock(&c->mu);
		curl_multi_wakeup(c->multi);
		pthread_join(c->thread, NULL);
	}
	memset(&res, 0, sizeof(res));
	res.status = API_ERROR;
	res.err = -ECANCELED;
	snprintf(res.reason, sizeof(res.reason), "cancelled: client stopping");
	for (unsigned b = 0; b < HASH_BUCKETS; b++) {
		while (c->table[b]) {
			struct req *r = c->table[b];

			c->table[b] = r->hnext;
			if (r->easy && r->state == R_RUNNING)
				curl_multi_remove_handle(c->multi, r->easy);
			res.attempts = r->attempts;
			for (unsigned i = 0; i < r->n_waiters; i++)
				c->cfg.done(r->key, &res, r->waiters[i],
					    c->cfg.arg);
			free_req(r);
		}
	}
	if (c->multi)
		curl_multi_cleanup(c->multi);
	if (c->peer)
		sodium_free(c->peer);
	hdrs_put(c->hdrs);
	free(c->ca_file);
	free(c->base);
	pthread_mutex_destroy(&c->mu);
	free(c);
}

int api_submit(struct api_client *c, const uint8_t key[static 32], void *ctx)
{
	uint64_t now = now_ms();
	struct req *r;
	int ret = 0;

	pthread_mutex_lock(&c->mu);
	if (c->stop) {
		ret = -ESHUTDOWN;
		goto out;
	}
	c->st.submits++;
	r = find(c, key);
	if (r && r->state != R_DONE) {
		if (r->n_waiters >= API_MAX_WAITERS) {
			ret = -EBUSY;
			goto out;
		}
		r->waiters[r->n_waiters++] = ctx;
		c->st.attached++;
		ret = API_ATTACHED;
		goto out;
	}
	if (r && !c->cfg.no_rate_limit &&
	    now < r->started_ms + c->cfg.min_interval_ms) {
		c->st.rate_limited++;
		ret = -EAGAIN;
		goto out;
	}
	if (c->st.inflight >= c->cfg.max_queue) {
		ret = -ENOBUFS;
		goto out;
	}
	if (!r) {
		r = calloc(1, sizeof(*r));
		if (!r) {
			ret = -ENOMEM;
			goto out;
		}
		memcpy(r->key, key, 32);
		r->c = c;
		r->hnext = c->table[bucket(c, key)];
		c->table[bucket(c, key)] = r;
	}
	/* A fresh logical request (new, or a DONE entry past its window). */
	r->state = R_QUEUED;
	r->started_ms = now;
	r->submit_us = now_us();
	r->attempts = 0;
	r->err = 0;
	r->http_status = 0;
	r->reason[0] = 0;
	r->waiters[0] = ctx;
	r->n_waiters = 1;
	r->qnext = NULL;
	if (c->fifo_tail)
		c->fifo_tail->qnext = r;
	else
		c->fifo_head = r;
	c->fifo_tail = r;
	c->st.requests++;
	c->st.inflight++;
out:
	pthread_mutex_unlock(&c->mu);
	if (ret == 0)
		curl_multi_wakeup(c->multi);
	return ret;
}

void api_stats(struct api_client *c, struct api_stats *out)
{
	pthread_mutex_lock(&c->mu);
	*out = c->st;
	out->header_sets = c->header_sets;
	pthread_mutex_unlock(&c->mu);
}

bool api_result_failing(const struct api_result *res)
{
	if (res->status != API_ERROR)
		return false;
	switch (res->err) {
	case -EPROTO:
		/* No status: TLS failed. 5xx and 429: overloaded or broken.
		 * Any other final status is an answer about the key. */
		return res->http_status == 0 || res->http_status >= 500 ||
		       res->http_status == 429;
	case -ETIMEDOUT:
	case -ECONNREFUSED:
	case -EHOSTUNREACH:
	case -ECANCELED:
	/* Our own token refused (401/403): one bad rotation must not revoke
	 * every peer. */
	case -EACCES:
		return true;
	default:
		/* A malformed answer is neither (api_result_revokes()). */
		return false;
	}
}

bool api_result_revokes(const struct api_result *res)
{
	if (res->status == API_NOT_FOUND)
		return true;
	return res->status == API_ERROR && res->err == -EPROTO &&
	       res->http_status >= 400 && res->http_status < 500 &&
	       res->http_status != 429;
}

/* The probe's body is not kept, only its size bounded. */
static size_t probe_sink(char *p, size_t size, size_t nmemb, void *arg)
{
	(void)p;
	(void)arg;
	return size * nmemb;
}

int api_probe(struct api_client *c, struct api_probe *out)
{
	uint8_t zero[32] = { 0 };
	char url[4096], k[KEY_B64URL_LEN], *ct = NULL;
	struct hdrs *h;
	CURLcode rc;
	CURL *e;

	memset(out, 0, sizeof(*out));
	e = curl_easy_init();
	if (!e)
		return -ENOMEM;
	/* A key nobody holds: the contract answers 404 (or 200) in JSON. */
	key_to_base64url(k, zero);
	snprintf(url, sizeof(url), "%s/peers/%s", c->base, k);
	pthread_mutex_lock(&c->mu);
	h = c->hdrs;
	h->refs++;
	pthread_mutex_unlock(&c->mu);
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, h->list);
	curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "jitwgd");
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)c->cfg.connect_timeout_ms);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)c->cfg.total_timeout_ms);
	curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)c->cfg.max_body);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, probe_sink);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
	if (c->ca_file)
		curl_easy_setopt(e, CURLOPT_CAINFO, c->ca_file);
	rc = curl_easy_perform(e);
	if (rc != CURLE_OK) {
		out->err = rc == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT :
			   rc == CURLE_COULDNT_CONNECT ? -ECONNREFUSED :
			   rc == CURLE_COULDNT_RESOLVE_HOST ? -EHOSTUNREACH : -EPROTO;
		snprintf(out->reason, sizeof(out->reason), "%s", curl_easy_strerror(rc));
	} else {
		curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &out->http_status);
		curl_easy_getinfo(e, CURLINFO_CONTENT_TYPE, &ct);
		out->json = ct && !strncasecmp(ct, "application/json", 16);
		snprintf(out->content_type, sizeof(out->content_type), "%s", ct ? ct : "none");
	}
	curl_easy_cleanup(e);
	pthread_mutex_lock(&c->mu);
	hdrs_put(h);
	pthread_mutex_unlock(&c->mu);
	return 0;
}
