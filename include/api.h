/* SPDX-License-Identifier: MIT */
/*
 * Control-plane client (user/api.c, body parser in user/api_json.c).
 *
 * Contract (README): GET {url}/peers/{key}, {key} = public key in unpadded
 * base64url; "Authorization: Bearer <token>" when a token file is given.
 *   200  JSON {"public_key": "<base64>",
 *              "allowed_ips": ["10.0.0.2/32", "fd00::2/128"],
 *              "preshared_key": "<base64>",      (optional)
 *              "persistent_keepalive": 25,       (optional, 0..65535)
 *              "ttl": 300}                       (optional, seconds)
 *   404  unknown key
 *   else error (5xx, 429 and transport errors are retried with exponential
 *        backoff and jitter; other statuses are final)
 *
 * Asynchronous: api_submit() never blocks on the network. A private thread
 * drives libcurl's multi interface and calls the completion callback. At most
 * one request is in flight per key (a second submit for that key attaches to
 * it) and at most one request starts per key per min_interval_ms (a submit
 * inside the interval returns -EAGAIN at once: use the cache).
 *
 * The token is read from the file at api_create() and again at each
 * api_reload_token(); it is never logged. The copies in the request headers
 * are wiped and freed when the last request using them is (a reload's old
 * token as soon as its requests are done), the current one at
 * api_destroy(). No function here logs.
 */
#ifndef JITWG_API_H
#define JITWG_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wgdev.h"

enum {
	API_MAX_ALLOWED_IPS = 128,       /* more in one answer: refused */
	API_DEFAULT_MAX_BODY = 64 * 1024, /* bytes; larger bodies: refused */
	API_MAX_WAITERS = 16,             /* submits attached to one request */
	API_REASON_LEN = 128,
};

enum api_peer_flags {
	API_PEER_HAS_PSK = 1 << 0,       /* preshared_key present */
	API_PEER_HAS_KEEPALIVE = 1 << 1, /* persistent_keepalive present */
	API_PEER_HAS_TTL = 1 << 2,       /* ttl present */
};

/*
 * One peer as the control plane described it. Allowed IPs are validated and
 * canonical: no host bits set beyond the prefix (such answers are refused,
 * not normalised: "10.0.0.2/24" is ambiguous and would claim a /24).
 * An address without "/len" means a host route (/32 or /128), as wg(8).
 * The preshared key is a secret: wipe copies with sodium_memzero().
 */
struct api_peer {
	uint8_t public_key[32];
	uint8_t preshared_key[32];      /* valid if API_PEER_HAS_PSK */
	uint32_t flags;                 /* api_peer_flags */
	uint16_t persistent_keepalive;  /* seconds, if API_PEER_HAS_KEEPALIVE */
	uint32_t ttl;                   /* seconds, if API_PEER_HAS_TTL */
	size_t n_allowed_ips;
	struct wgdev_allowed_ip allowed_ips[API_MAX_ALLOWED_IPS];
};

/* Bytes of an api_peer up to its last used allowed IP: copies that live in
 * queues allocate only this much, not room for API_MAX_ALLOWED_IPS. */
static inline size_t api_peer_len(size_t n_allowed_ips)
{
	return offsetof(struct api_peer, allowed_ips) +
	       n_allowed_ips * sizeof(struct wgdev_allowed_ip);
}

enum api_status {
	API_FOUND,     /* 200 with a valid body: res->peer is set */
	API_NOT_FOUND, /* 404: the control plane does not know this key */
	API_ERROR,     /* anything else, res->err and res->reason say why */
};

/*
 * Outcome of one request, passed to the callback. Values of err for
 * API_ERROR:
 *   -ETIMEDOUT     connect or total timeout (after the last attempt)
 *   -ECONNREFUSED  could not connect (after the last attempt)
 *   -EHOSTUNREACH  name resolution or routing failure
 *   -EPROTO        unexpected HTTP status (see http_status) or TLS failure
 *   -EACCES        401 or 403 (token missing or wrong)
 *   -EMSGSIZE      body over max_body (transfer aborted when it passed it)
 *   -EBADMSG       malformed JSON or missing/mistyped field
 *   -EKEYREJECTED  public_key in the body is not the key asked for
 *   -EINVAL        malformed allowed IP, keepalive or ttl out of range
 *   -ECANCELED     api_destroy() ran before completion
 */
struct api_result {
	enum api_status status;
	int err;                      /* 0 unless API_ERROR */
	long http_status;             /* last HTTP status seen, 0 if none */
	unsigned attempts;            /* HTTP attempts made (retries + 1) */
	uint64_t elapsed_us;          /* from first submit to completion */
	const struct api_peer *peer;  /* API_FOUND only; valid during the callback */
	char reason[API_REASON_LEN];  /* one line for logs; never a key or token */
};

/*
 * Completion callback. Called once per accepted api_submit() (0 or
 * API_ATTACHED), with that submit's ctx, from the client's own thread and
 * with no client lock held: it may call api_submit() and api_stats(), but
 * must not call api_destroy(), and should return quickly (every other
 * completion waits for it). key is the key that was submitted.
 */
typedef void (*api_done_fn)(const uint8_t key[32], const struct api_result *res,
			    void *ctx, void *arg);

/* Zero or unset fields take the defaults in brackets. */
struct api_config {
	const char *url;            /* base URL, "/peers/<key>" is appended (required) */
	const char *token_file;     /* bearer token file; NULL: no Authorization */
	const char *ca_file;        /* CA bundle for TLS; NULL: system store */
	unsigned connect_timeout_ms; /* per attempt [2000] */
	unsigned total_timeout_ms;  /* per attempt, whole transfer [5000] */
	unsigned max_attempts;      /* attempts per request, >= 1 [3] */
	unsigned backoff_initial_ms; /* first retry delay [200]; doubles each retry */
	unsigned backoff_max_ms;    /* cap on the retry delay [2000] */
	unsigned min_interval_ms;   /* per key, start to start [4500]: a client
				     * retries every REKEY_TIMEOUT = 5 s (+ up to
				     * 333 ms jitter); just under it, each retry
				     * may ask once (a down control plane is
				     * noticed coming back) and never twice */
	bool no_rate_limit;         /* true: min_interval_ms ignored (tests) */
	size_t max_body;            /* bytes [API_DEFAULT_MAX_BODY] */
	unsigned max_inflight;      /* concurrent transfers; more wait in FIFO [64] */
	unsigned max_queue;         /* requests queued or running [65536]; a new
				     * key beyond it: -ENOBUFS (a flood of fresh
				     * keypairs must not grow memory unbounded) */
	api_done_fn done;           /* required */
	void *arg;                  /* passed to done */
};

/* Counters since api_create(); a snapshot taken under the client lock. */
struct api_stats {
	uint64_t submits;       /* api_submit() calls */
	uint64_t attached;      /* submits joined to an in-flight request */
	uint64_t rate_limited;  /* submits refused with -EAGAIN */
	uint64_t requests;      /* logical requests started (one per key fetch) */
	uint64_t attempts;      /* HTTP attempts (requests + retries) */
	uint64_t found, not_found, errors; /* completed requests by outcome */
	uint64_t connects;      /* connections the attempts opened
				 * (CURLINFO_NUM_CONNECTS); 1 for many
				 * requests while the server keeps it alive */
	uint64_t inflight;      /* requests queued or running now */
	unsigned header_sets;   /* request header sets (bearer token copies)
				 * alive: 1, more only while requests started
				 * before a token reload run */
};

struct api_client;

/* Return of api_submit() when the submit joined an in-flight request. */
#define API_ATTACHED 1

/*
 * Create the client and start its thread. Reads the token file (-errno from
 * open/read, -EINVAL if empty), checks the URL scheme (http or https). Call
 * from the main thread before other threads use libcurl (curl_global_init).
 * errbuf (may be NULL) receives a one-line message on failure.
 */
int api_create(struct api_client **out, const struct api_config *cfg,
	       char *errbuf, size_t errlen);

/*
 * Stop the thread, abort transfers, and call the callback with API_ERROR
 * -ECANCELED for every pending submit (from the caller's thread), then free.
 */
void api_destroy(struct api_client *c);

/*
 * Ask for key. Thread-safe, never blocks on I/O. Returns
 *   0             a new request was queued; done(ctx) will be called once
 *   API_ATTACHED  a request for key is already in flight; done(ctx) will be
 *                 called once when it completes
 *   -EAGAIN       rate limited: a request for key started less than
 *                 min_interval_ms ago and has completed; no callback
 *   -EBUSY        API_MAX_WAITERS submits already attached; no callback
 *   -ENOBUFS      max_queue requests already queued or running; no callback
 *   -ENOMEM       no callback
 *   -ESHUTDOWN    api_destroy() has begun; no callback
 */
int api_submit(struct api_client *c, const uint8_t key[static 32], void *ctx);

void api_stats(struct api_client *c, struct api_stats *out);

/*
 * Whether a result says the control plane is failing rather than answering
 * about the key: unreachable, TLS failure, 5xx, 429, the gateway's own token
 * refused (401/403). Only then may a stale cached answer stand in (up to the
 * maximum stale age).
 */
bool api_result_failing(const struct api_result *res);

/* What a start-up probe found (api_probe()). */
struct api_probe {
	int err;                 /* 0: an HTTP answer came; else -errno (transport) */
	long http_status;
	bool json;               /* its Content-Type was application/json */
	char content_type[64];
	char reason[API_REASON_LEN]; /* the transport's failure, for logs */
};

/*
 * One synchronous request, as the daemon makes them (same headers, TLS,
 * timeouts), for a key nobody holds (all zero): is the control plane there,
 * does it take the token, does the base URL answer as the contract says (a
 * 404 or 200 in JSON)? Blocks up to the timeouts: call it off the packet
 * path (jitwgd: its own thread at start-up). Returns 0, or -ENOMEM.
 */
int api_probe(struct api_client *c, struct api_probe *out);
/*
 * Whether a result is a final answer that the key is not (or no longer)
 * allowed: 404, 410 and the other 4xx but 429 (and 401/403, which are
 * failures above). A malformed answer is neither: nothing is installed from
 * it, and an installed peer is kept up to the maximum stale age.
 */
bool api_result_revokes(const struct api_result *res);

/*
 * Re-read the token file (token rotation) and use it for requests started
 * from now on; running ones finish with the old one. Thread-safe. On error
 * (-errno as api_create, one line in errbuf) the old token stays in use.
 */
int api_reload_token(struct api_client *c, const char *token_file,
		     char *errbuf, size_t errlen);

/*
 * Parse and validate a 200 body (not NUL-terminated; len bytes). want may be
 * NULL (no public_key check). Returns 0 or the -errno of struct api_result
 * (-EBADMSG, -EKEYREJECTED, -EINVAL, -EMSGSIZE for len > max_body when
 * max_body != 0); reason (may be NULL) gets a one-line message. out is wiped
 * on failure. Pure function, for the client and the fuzzer.
 */
int api_parse_body(const char *body, size_t len, const uint8_t *want,
		   size_t max_body, struct api_peer *out, char *reason,
		   size_t reasonlen);

/*
 * Parse one allowed IP, "a.b.c.d[/n]" or "v6addr[/n]". Strict: no spaces, no
 * leading '+', no leading zeros in the prefix length, host bits must be zero.
 * Returns 0 or -EINVAL.
 */
int api_parse_allowed_ip(const char *s, struct wgdev_allowed_ip *out);

/* Format as "addr/len" into buf (at least INET6_ADDRSTRLEN + 4 bytes). */
void api_format_allowed_ip(const struct wgdev_allowed_ip *ip, char *buf,
			   size_t len);

#endif
