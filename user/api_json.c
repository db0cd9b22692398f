// SPDX-License-Identifier: MIT
/*
 * The control plane's answer: JSON body parser (json-c) and allowed-IP
 * validation. Pure functions with no I/O; fuzzed by tests/fuzz_api_body.c.
 * The body is untrusted input: every field is type-checked and range-checked
 * and unknown fields are ignored (forward compatibility).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>
#include <sodium.h>

#include "api.h"
#include "keys.h"

enum {
	MAX_DEPTH = 8,              /* the contract needs 2 */
	MAX_TTL = 7 * 24 * 3600,    /* a week; larger is a misconfiguration */
	MAX_IP_TEXT = 64,
};

static void say(char *reason, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (!reason || !len)
		return;
	va_start(ap, fmt);
	vsnprintf(reason, len, fmt, ap);
	va_end(ap);
}

int api_parse_allowed_ip(const char *s, struct wgdev_allowed_ip *out)
{
	char addr[MAX_IP_TEXT];
	const char *slash = strchr(s, '/');
	size_t alen = slash ? (size_t)(slash - s) : strlen(s);
	unsigned max, cidr, i;
	uint8_t *b;

	memset(out, 0, sizeof(*out));
	if (alen == 0 || alen >= sizeof(addr))
		return -EINVAL;
	memcpy(addr, s, alen);
	addr[alen] = 0;
	/* inet_pton is strict: dotted quad only, no zones, no spaces. */
	if (strchr(addr, ':')) {
		if (inet_pton(AF_INET6, addr, &out->ip6) != 1)
			return -EINVAL;
		out->family = AF_INET6;
		max = 128;
		b = out->ip6.s6_addr;
	} else {
		if (inet_pton(AF_INET, addr, &out->ip4) != 1)
			return -EINVAL;
		out->family = AF_INET;
		max = 32;
		b = (uint8_t *)&out->ip4;
	}
	cidr = max;
	if (slash) {
		const char *p = slash + 1;

		/* 1 to 3 digits, no sign, no leading zero ("0" itself is fine). */
		if (!*p || strlen(p) > 3 || (p[0] == '0' && p[1]))
			goto bad;
		cidr = 0;
		for (; *p; p++) {
			if (*p < '0' || *p > '9')
				goto bad;
			cidr = cidr * 10 + (unsigned)(*p - '0');
		}
		if (cidr > max)
			goto bad;
	}
	/*
	 * Host bits must be zero. "10.0.0.2/24" is refused, not normalised:
	 * the control plane meant either the host or the network, and guessing
	 * the network would route a whole /24 to this peer.
	 */
	for (i = cidr; i < max; i++)
		if (b[i / 8] & (0x80 >> (i % 8)))
			goto bad;
	out->cidr = (uint8_t)cidr;
	return 0;
bad:
	memset(out, 0, sizeof(*out));
	return -EINVAL;
}

void api_format_allowed_ip(const struct wgdev_allowed_ip *ip, char *buf,
			   size_t len)
{
	char a[INET6_ADDRSTRLEN];

	if (!inet_ntop(ip->family, ip->family == AF_INET ? (const void *)&ip->ip4
							  : (const void *)&ip->ip6,
		       a, sizeof(a)))
		snprintf(a, sizeof(a), "?");
	snprintf(buf, len, "%s/%u", a, ip->cidr);
}

/* A base64 key field; the decoded copy is wiped on failure. */
static int get_key(json_object *v, uint8_t key[32])
{
	if (!json_object_is_type(v, json_type_string))
		return -EBADMSG;
	/* Short, and no "\u0000" hiding a suffix from key_from_base64(). */
	if (json_object_get_string_len(v) > 64 ||
	    (size_t)json_object_get_string_len(v) !=
		    strlen(json_object_get_string(v)))
		return -EINVAL;
	return key_from_base64(key, json_object_get_string(v)) ? -EINVAL : 0;
}

/* An integer field in [0, max]; doubles, strings and booleans are refused. */
static int get_uint(json_object *v, int64_t max, uint32_t *out)
{
	int64_t x;

	if (!json_object_is_type(v, json_type_int))
		return -EBADMSG;
	errno = 0;
	x = json_object_get_int64(v);
	/* json-c saturates out-of-range literals and sets errno. */
	if (errno || x < 0 || x > max)
		return -EINVAL;
	*out = (uint32_t)x;
	return 0;
}

int api_parse_body(const char *body, size_t len, const uint8_t *want,
		   size_t max_body, struct api_peer *out, char *reason,
		   size_t reasonlen)
{
	struct json_tokener *tok = NULL;
	json_object *root = NULL, *v;
	enum json_tokener_error jerr;
	size_t i, n;
	uint32_t u;
	int ret;

	memset(out, 0, sizeof(*out));
	say(reason, reasonlen, "ok");
	if (max_body && len > max_body) {
		say(reason, reasonlen, "body of %zu bytes over the %zu limit",
		    len, max_body);
		return -EMSGSIZE;
	}
	ret = -EBADMSG;
	if (len > INT32_MAX || memchr(body, 0, len)) {
		say(reason, reasonlen, "malformed JSON: NUL byte in body");
		goto out;
	}
	tok = json_tokener_new_ex(MAX_DEPTH);
	if (!tok) {
		ret = -ENOMEM;
		say(reason, reasonlen, "out of memory");
		goto out;
	}
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT |
					    JSON_TOKENER_VALIDATE_UTF8);
	root = json_tokener_parse_ex(tok, body, (int)len);
	jerr = json_tokener_get_error(tok);
	if (!root || jerr != json_tokener_success) {
		say(reason, reasonlen, "malformed JSON: %s",
		    jerr == json_tokener_continue
			    ? "truncated"
			    : json_tokener_error_desc(jerr));
		goto out;
	}
	/* Only whitespace may follow the object. */
	for (i = json_tokener_get_parse_end(tok); i < len; i++) {
		if (body[i] != ' ' && body[i] != '\t' && body[i] != '\n' &&
		    body[i] != '\r') {
			say(reason, reasonlen, "malformed JSON: trailing data");
			goto out;
		}
	}
	if (!json_object_is_type(root, json_type_object)) {
		say(reason, reasonlen, "malformed answer: not a JSON object");
		goto out;
	}

	if (!json_object_object_get_ex(root, "public_key", &v)) {
		say(reason, reasonlen, "malformed answer: no public_key");
		goto out;
	}
	ret = get_key(v, out->public_key);
	if (ret) {
		say(reason, reasonlen, "malformed answer: bad public_key");
		goto out;
	}
	if (want && sodium_memcmp(out->public_key, want, 32) != 0) {
		ret = -EKEYREJECTED;
		say(reason, reasonlen,
		    "public_key in the answer is not the key asked for");
		goto out;
	}

	ret = -EBADMSG;
	if (!json_object_object_get_ex(root, "allowed_ips", &v) ||
	    !json_object_is_type(v, json_type_array)) {
		say(reason, reasonlen,
		    "malformed answer: allowed_ips missing or not an array");
		goto out;
	}
	n = json_object_array_length(v);
	if (n > API_MAX_ALLOWED_IPS) {
		ret = -EINVAL;
		say(reason, reasonlen, "%zu allowed IPs, more than %d", n,
		    API_MAX_ALLOWED_IPS);
		goto out;
	}
	for (i = 0; i < n; i++) {
		json_object *e = json_object_array_get_idx(v, i);

		if (!json_object_is_type(e, json_type_string)) {
			ret = -EBADMSG;
			say(reason, reasonlen,
			    "malformed answer: allowed_ips[%zu] not a string",
			    i);
			goto out;
		}
		if ((size_t)json_object_get_string_len(e) !=
			    strlen(json_object_get_string(e)) ||
		    api_parse_allowed_ip(json_object_get_string(e),
					 &out->allowed_ips[i])) {
			ret = -EINVAL;
			say(reason, reasonlen,
			    "bad allowed IP allowed_ips[%zu] (malformed, or host bits set)",
			    i);
			goto out;
		}
	}
	out->n_allowed_ips = n;

	/* Optional fields: absent or null mean "not given". */
	if (json_object_object_get_ex(root, "preshared_key", &v) && v) {
		ret = get_key(v, out->preshared_key);
		if (ret) {
			say(reason, reasonlen, "malformed answer: bad preshared_key");
			goto out;
		}
		out->flags |= API_PEER_HAS_PSK;
	}
	if (json_object_object_get_ex(root, "persistent_keepalive", &v) && v) {
		ret = get_uint(v, 65535, &u);
		if (ret) {
			say(reason, reasonlen,
			    "malformed answer: persistent_keepalive not an integer in 0..65535");
			goto out;
		}
		out->persistent_keepalive = (uint16_t)u;
		out->flags |= API_PEER_HAS_KEEPALIVE;
	}
	if (json_object_object_get_ex(root, "ttl", &v) && v) {
		ret = get_uint(v, MAX_TTL, &u);
		if (ret) {
			say(reason, reasonlen,
			    "malformed answer: ttl not an integer in 0..%d",
			    MAX_TTL);
			goto out;
		}
		out->ttl = u;
		out->flags |= API_PEER_HAS_TTL;
	}
	ret = 0;
	say(reason, reasonlen, "ok");
out:
	if (ret)
		sodium_memzero(out, sizeof(*out));
	/*
	 * json-c keeps its own copies of the strings, including the preshared
	 * key; json_object_put frees them without wiping. The body buffer is
	 * wiped by the caller ...
	 */
	/* ... so the preshared key's string is wiped in place first. */
	if (root && json_object_object_get_ex(root, "preshared_key", &v) && v &&
	    json_object_is_type(v, json_type_string))
		sodium_memzero((char *)json_object_get_string(v),
			       (size_t)json_object_get_string_len(v));
	if (root)
		json_object_put(root);
	if (tok)
		json_tokener_free(tok);
	return ret;
}
