// SPDX-License-Identifier: MIT
/*
 * jitwgctl: operator tools around jitwg. One function per subcommand, listed
 * in the table at the bottom; each parses its own options.
 *
 *   jitwgctl decode --private-key-file FILE [MESSAGE_FILE]
 *   jitwgctl initiate --private-key-file FILE --peer KEY [--send HOST:PORT] ...
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "frame_text.h"
#include "hostport.h"
#include "jitwgctl_daemon.h"
#include "jitwg.h"
#include "keys.h"
#include "noise.h"
#include "noise_input.h"
#include "version.h"

/* Exit statuses: the message was judged, or the tool could not judge it. */
enum {
	EXIT_OK = 0,
	EXIT_REJECTED = 1,
	EXIT_USAGE = 2,
	EXIT_TOOL = 3,
};

#define INPUT_CAP (64 * 1024)
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static const char *prog = "jitwgctl";

static int read_all(int fd, uint8_t *buf, size_t cap, size_t *len)
{
	ssize_t n;

	*len = 0;
	for (;;) {
		if (*len == cap)
			return -EFBIG;
		n = read(fd, buf + *len, cap - *len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return 0;
		*len += (size_t)n;
	}
}

static void print_timestamp(const char *label,
			    const uint8_t ts[NOISE_TIMESTAMP_LEN])
{
	char hex[2 * NOISE_TIMESTAMP_LEN + 1], when[64];
	double unix_s = noise_timestamp_unix(ts);
	time_t secs = (time_t)unix_s;
	struct tm tm;

	sodium_bin2hex(hex, sizeof(hex), ts, NOISE_TIMESTAMP_LEN);
	if (unix_s >= 0 && unix_s < 253402300800.0 && gmtime_r(&secs, &tm))
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	else
		snprintf(when, sizeof(when), "out of range");
	printf("%s: %s (%s.%09" PRIu32 "Z)\n", label, hex, when,
	       (uint32_t)ts[8] << 24 | (uint32_t)ts[9] << 16 |
		       (uint32_t)ts[10] << 8 | ts[11]);
}

static const char *reason_text(enum noise_status st)
{
	switch (st) {
	case NOISE_ERR_SHAPE:
		return "not a handshake initiation (length, type or reserved bytes)";
	case NOISE_ERR_MAC1:
		return "mac1 does not verify: sent to another interface's key, or corrupted";
	case NOISE_ERR_STATIC:
		return "encrypted static key does not open";
	case NOISE_ERR_TIMESTAMP:
		return "timestamp does not open: the sender does not hold the claimed key's private key";
	case NOISE_ERR_REPLAY:
		return "timestamp not newer than the last accepted one";
	case NOISE_ERR_LOW_ORDER:
		return "Diffie-Hellman with a low-order point (all-zero result)";
	default:
		return "internal error";
	}
}

static void decode_usage(FILE *f)
{
	fprintf(f,
		"usage: %s decode --private-key-file FILE [--last-timestamp HEX] [MESSAGE_FILE]\n"
		"  Decodes one WireGuard handshake initiation (148 raw bytes, 296 hex digits,\n"
		"  or the first one in a captured frame: tcpdump -x/-xx/-X/-XX output or a\n"
		"  frame's hex; from MESSAGE_FILE or standard input) with the responder's private\n"
		"  key (base64, as `wg genkey` writes it). Prints the initiator's public key\n"
		"  and timestamp; or the reason for rejection, exiting 1.\n"
		"  --last-timestamp: TAI64N (24 hex digits) last accepted for that key;\n"
		"  one not newer is rejected as a replay.\n",
		prog);
}

/* The private key from a wg(8) key file, or a message saying why not. */
static int read_private_key(uint8_t priv[static NOISE_KEY_LEN], const char *path)
{
	int err = key_read_file(priv, path);

	if (err)
		fprintf(stderr, "%s: cannot read a base64 private key from %s: %s\n",
			prog, path, strerror(-err));
	return err;
}

static int cmd_decode(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "private-key-file", required_argument, NULL, 'k' },
		{ "last-timestamp", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	uint8_t last[NOISE_TIMESTAMP_LEN], ts[NOISE_TIMESTAMP_LEN];
	uint8_t priv[NOISE_KEY_LEN], pub[NOISE_KEY_LEN];
	uint8_t msg[NOISE_INITIATION_LEN];
	const char *key_file = NULL, *msg_file = NULL, *last_hex = NULL;
	struct noise_responder *r = NULL;
	struct noise_state st;
	enum noise_status status;
	char b64[KEY_B64_LEN];
	uint8_t *buf = NULL;
	size_t len, n;
	int c, fd, err, ret = EXIT_USAGE;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'k':
			key_file = optarg;
			break;
		case 't':
			last_hex = optarg;
			break;
		case 'h':
			decode_usage(stdout);
			return EXIT_OK;
		default:
			decode_usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (!key_file || argc - optind > 1) {
		decode_usage(stderr);
		return EXIT_USAGE;
	}
	if (optind < argc)
		msg_file = argv[optind];
	if (last_hex &&
	    (sodium_hex2bin(last, sizeof(last), last_hex, strlen(last_hex),
			    NULL, &n, NULL) ||
	     n != sizeof(last))) {
		fprintf(stderr, "%s: --last-timestamp wants 24 hex digits\n", prog);
		return EXIT_USAGE;
	}

	err = read_private_key(priv, key_file);
	if (err)
		goto out;

	buf = malloc(INPUT_CAP);
	if (!buf) {
		ret = EXIT_TOOL;
		goto out;
	}
	fd = msg_file ? open(msg_file, O_RDONLY | O_CLOEXEC) : STDIN_FILENO;
	if (fd < 0) {
		fprintf(stderr, "%s: cannot open %s: %m\n", prog, msg_file);
		goto out;
	}
	err = read_all(fd, buf, INPUT_CAP, &len);
	if (msg_file)
		close(fd);
	if (err) {
		fprintf(stderr, "%s: cannot read the message: %s\n", prog,
			strerror(-err));
		goto out;
	}
	if (noise_parse_initiation(msg, buf, len)) {
		unsigned int packet;
		long offset;

		err = frame_text_initiation(buf, len, msg, &packet, &offset);
		if (err) {
			fprintf(stderr,
				"%s: no handshake initiation in the input (%zu bytes): "
				"give 148 raw bytes, 296 hex digits, or a captured "
				"frame (tcpdump -x, -xx, -X or -XX output, or its "
				"hex) with a 148-byte UDP payload of type 1\n",
				prog, len);
			goto out;
		}
		printf("captured: packet %u, UDP payload at byte %ld\n", packet,
		       offset);
	}

	ret = EXIT_TOOL;
	err = noise_responder_new(&r, priv);
	if (err) {
		fprintf(stderr, "%s: cannot set up the responder: %s\n", prog,
			strerror(-err));
		goto out;
	}
	noise_responder_public_key(r, pub);
	key_to_base64(b64, pub);
	printf("responder: %s\n", b64);
	printf("sender_index: %" PRIu32 "\n",
	       (uint32_t)msg[4] | (uint32_t)msg[5] << 8 |
		       (uint32_t)msg[6] << 16 | (uint32_t)msg[7] << 24);

	/*
	 * Stage by stage, to name the key even when authentication fails: as
	 * "claimed", since anyone can put any public key in a message.
	 */
	status = noise_check_shape(msg, sizeof(msg));
	if (!status)
		status = noise_check_mac1(r, msg);
	if (!status) {
		status = noise_identify(r, msg, &st, pub);
		if (!status) {
			key_to_base64(b64, pub);
			status = noise_authenticate(r, msg, &st,
						    last_hex ? last : NULL, ts);
			/* A replay was still made by the key's holder. */
			if (status == NOISE_OK || status == NOISE_ERR_REPLAY)
				printf("initiator: %s\n", b64);
			else
				printf("claimed_initiator: %s (not authenticated)\n",
				       b64);
		}
	}
	if (status == NOISE_OK || status == NOISE_ERR_REPLAY)
		print_timestamp("timestamp", ts);
	printf("status: %s\n", noise_status_str(status));
	if (status == NOISE_OK) {
		ret = EXIT_OK;
	} else if (status == NOISE_ERR_INTERNAL) {
		fprintf(stderr, "%s: internal error\n", prog);
	} else {
		fprintf(stderr, "%s: rejected: %s\n", prog, reason_text(status));
		ret = EXIT_REJECTED;
	}
out:
	noise_responder_free(r);
	sodium_memzero(priv, sizeof(priv));
	free(buf);
	return ret;
}

static void initiate_usage(FILE *f)
{
	fprintf(f,
		"usage: %s initiate --private-key-file FILE --peer KEY [--sender-index N]\n"
		"                [--claim KEY] [--defect mac1|static|timestamp|low-order]\n"
		"                [--send HOST:PORT [--timeout-ms N]]\n"
		"  Builds a handshake initiation from the key in FILE to the responder whose\n"
		"  public key is KEY (base64). Without --send, prints it as hex. With --send,\n"
		"  sends it over UDP and waits for the handshake response (type 2, 92 bytes)\n"
		"  addressed to our sender index, or for the peer's own authenticated\n"
		"  initiation (a jitwg gateway initiating back): exit 0 if either comes,\n"
		"  1 if not.\n"
		"  --claim, --defect: deliberately wrong messages, for tests.\n",
		prog);
}

/*
 * An initiation the gateway sent us: the peer's own handshake, proven by
 * decoding it as its responder (our key) and finding the peer's key inside,
 * authenticated. A jitwg gateway that installs us on our initiation starts
 * the handshake itself (initiating back) instead of answering ours.
 */
static bool from_gateway(const struct noise_responder *self,
			 const uint8_t peer[static NOISE_KEY_LEN],
			 const uint8_t *msg, size_t len)
{
	uint8_t pub[NOISE_KEY_LEN], ts[NOISE_TIMESTAMP_LEN];

	if (noise_decode(self, msg, len, NULL, pub, ts) != NOISE_OK)
		return false;
	return !sodium_memcmp(pub, peer, NOISE_KEY_LEN);
}

/*
 * Send msg to the endpoint and wait for the response to sender_index, or
 * for the peer's own initiation (see from_gateway).
 */
static int exchange(const struct sockaddr_storage *ss, socklen_t sslen,
		    const uint8_t msg[NOISE_INITIATION_LEN],
		    uint32_t sender_index, int timeout_ms,
		    const struct noise_responder *self,
		    const uint8_t peer[static NOISE_KEY_LEN])
{
	struct timespec start, now;
	uint8_t reply[256];
	struct pollfd pfd;
	uint32_t receiver;
	ssize_t n;
	int fd, left, ret = EXIT_TOOL;

	fd = socket(ss->ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		fprintf(stderr, "%s: socket: %m\n", prog);
		return EXIT_TOOL;
	}
	if (connect(fd, (const struct sockaddr *)ss, sslen) ||
	    send(fd, msg, NOISE_INITIATION_LEN, 0) != NOISE_INITIATION_LEN) {
		fprintf(stderr, "%s: send: %m\n", prog);
		goto out;
	}
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		left = timeout_ms -
		       (int)((now.tv_sec - start.tv_sec) * 1000 +
			     (now.tv_nsec - start.tv_nsec) / 1000000);
		if (left <= 0) {
			printf("response: none within %d ms\n", timeout_ms);
			ret = EXIT_REJECTED;
			goto out;
		}
		pfd = (struct pollfd){ .fd = fd, .events = POLLIN };
		if (poll(&pfd, 1, left) <= 0)
			continue;
		n = recv(fd, reply, sizeof(reply), 0);
		if (n < 0) {
			/* A connected socket reports ICMP port unreachable. */
			printf("response: none (%m)\n");
			ret = EXIT_REJECTED;
			goto out;
		}
		if (n < 12)
			continue;
		receiver = (uint32_t)reply[8] | (uint32_t)reply[9] << 8 |
			   (uint32_t)reply[10] << 16 |
			   (uint32_t)reply[11] << 24;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (reply[0] == WG_MSG_INITIATION)
			printf("response: type 1, %zd bytes (an initiation), after %ld ms\n",
			       n, (long)((now.tv_sec - start.tv_sec) * 1000 +
					 (now.tv_nsec - start.tv_nsec) / 1000000));
		else
			printf("response: type %u, %zd bytes, receiver index %" PRIu32
			       ", after %ld ms\n",
			       reply[0], n, receiver,
			       (long)((now.tv_sec - start.tv_sec) * 1000 +
				      (now.tv_nsec - start.tv_nsec) / 1000000));
		if (reply[0] == WG_MSG_RESPONSE && n == WG_RESPONSE_LEN &&
		    receiver == sender_index) {
			ret = EXIT_OK;
			goto out;
		}
		/* An initiation has no receiver index: bytes 8–11 are e. */
		if (reply[0] == WG_MSG_INITIATION && self &&
		    from_gateway(self, peer, reply, (size_t)n)) {
			printf("response: the gateway initiated the handshake "
			       "itself (its initiation, authenticated with its key)\n");
			ret = EXIT_OK;
			goto out;
		}
		if (reply[0] == WG_MSG_COOKIE)
			fprintf(stderr, "%s: cookie reply: the responder is under load\n",
				prog);
	}
out:
	close(fd);
	return ret;
}

static int cmd_initiate(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "private-key-file", required_argument, NULL, 'k' },
		{ "peer", required_argument, NULL, 'p' },
		{ "sender-index", required_argument, NULL, 'i' },
		{ "claim", required_argument, NULL, 'c' },
		{ "defect", required_argument, NULL, 'd' },
		{ "send", required_argument, NULL, 's' },
		{ "timeout-ms", required_argument, NULL, 'T' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	static const struct {
		const char *name;
		unsigned int flag;
	} defect_names[] = {
		{ "mac1", NOISE_DEFECT_MAC1 },
		{ "static", NOISE_DEFECT_STATIC },
		{ "timestamp", NOISE_DEFECT_TIMESTAMP },
		{ "low-order", NOISE_DEFECT_LOW_ORDER_EPHEMERAL },
	};
	uint8_t priv[NOISE_KEY_LEN], peer[NOISE_KEY_LEN], claim[NOISE_KEY_LEN];
	uint8_t msg[NOISE_INITIATION_LEN], ts[NOISE_TIMESTAMP_LEN];
	char hex[2 * NOISE_INITIATION_LEN + 1];
	const char *key_file = NULL, *send_to = NULL;
	struct noise_initiator *in = NULL;
	struct noise_responder *self = NULL;
	struct sockaddr_storage ss;
	socklen_t sslen = 0;
	int have_peer = 0, have_claim = 0, timeout_ms = 2000;
	unsigned int defects = 0;
	uint32_t sender_index;
	unsigned long v;
	char *end;
	size_t i;
	int c, err, ret = EXIT_USAGE;

	if (sodium_init() < 0)
		return EXIT_TOOL;
	sender_index = randombytes_random();
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'k':
			key_file = optarg;
			break;
		case 'p':
			if (key_from_base64(peer, optarg))
				goto bad;
			have_peer = 1;
			break;
		case 'c':
			if (key_from_base64(claim, optarg))
				goto bad;
			have_claim = 1;
			break;
		case 'i':
			errno = 0;
			v = strtoul(optarg, &end, 0);
			if (errno || *end || v > UINT32_MAX)
				goto bad;
			sender_index = (uint32_t)v;
			break;
		case 'd':
			for (i = 0; i < ARRAY_SIZE(defect_names); i++)
				if (!strcmp(optarg, defect_names[i].name))
					break;
			if (i == ARRAY_SIZE(defect_names))
				goto bad;
			defects |= defect_names[i].flag;
			break;
		case 's':
			if (hostport_parse(optarg, &ss, &sslen))
				goto bad;
			send_to = optarg;
			break;
		case 'T':
			errno = 0;
			v = strtoul(optarg, &end, 10);
			if (errno || *end || !v || v > 600000)
				goto bad;
			timeout_ms = (int)v;
			break;
		case 'h':
			initiate_usage(stdout);
			return EXIT_OK;
		default:
			initiate_usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (!key_file || !have_peer || optind != argc) {
		initiate_usage(stderr);
		return EXIT_USAGE;
	}
	err = read_private_key(priv, key_file);
	if (err)
		goto out;
	ret = EXIT_TOOL;
	err = noise_initiator_new(&in, priv, peer);
	if (err) {
		fprintf(stderr, "%s: cannot set up the initiator: %s\n", prog,
			strerror(-err));
		goto out;
	}
	if (have_claim)
		noise_initiator_forge_identity(in, claim);
	noise_timestamp_now(ts);
	if (noise_build_initiation(in, sender_index, ts, defects, msg)) {
		fprintf(stderr, "%s: cannot build the initiation\n", prog);
		goto out;
	}
	if (!send_to) {
		sodium_bin2hex(hex, sizeof(hex), msg, sizeof(msg));
		printf("%s\n", hex);
		ret = EXIT_OK;
		goto out;
	}
	printf("sender_index: %" PRIu32 "\n", sender_index);
	fflush(stdout);
	err = noise_responder_new(&self, priv);
	if (err) {
		fprintf(stderr, "%s: cannot set up the responder: %s\n", prog,
			strerror(-err));
		goto out;
	}
	ret = exchange(&ss, sslen, msg, sender_index, timeout_ms, self, peer);
out:
	noise_responder_free(self);
	noise_initiator_free(in);
	sodium_memzero(priv, sizeof(priv));
	return ret;
bad:
	fprintf(stderr, "%s: bad option value '%s' (see %s initiate --help)\n",
		prog, optarg, prog);
	return EXIT_USAGE;
}

static const struct {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
} commands[] = {
	{ "decode", cmd_decode, "decode a captured handshake initiation" },
	{ "initiate", cmd_initiate, "build (and send) a handshake initiation" },
};

static void usage(FILE *f)
{
	size_t i;

	fprintf(f, "usage: %s COMMAND [OPTIONS]   (%s COMMAND --help; %s --version)\n",
		prog, prog, prog);
	for (i = 0; i < ARRAY_SIZE(commands); i++)
		fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
	jitwgctl_daemon_usage(f);
}

int main(int argc, char **argv)
{
	size_t i;
	int ret;

	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") ||
	    !strcmp(argv[1], "help")) {
		usage(stdout);
		return EXIT_OK;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
		printf("%s %s\n", prog, JITWG_VERSION);
		return EXIT_OK;
	}
	for (i = 0; i < ARRAY_SIZE(commands); i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].run(argc - 1, argv + 1);
	/* Verbs for a running jitwgd: user/jitwgctl_daemon.c. */
	ret = jitwgctl_daemon_main(argc - 1, argv + 1);
	if (ret >= 0)
		return ret;
	fprintf(stderr, "%s: unknown command '%s'\n", prog, argv[1]);
	usage(stderr);
	return EXIT_USAGE;
}
