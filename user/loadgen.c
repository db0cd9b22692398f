// SPDX-License-Identifier: MIT
/*
 * jitwg-loadgen: synthetic WireGuard clients for tests and benchmarks.
 *
 *   jitwg-loadgen keys --seed S --count N [--net 10.128.0.0]
 *       print "public_key_base64 allowed_ip/32" for clients 0..N-1, the
 *       lines a control plane needs to know them
 *   jitwg-loadgen send --to ADDR:PORT --responder PUB_B64 [--seed S]
 *       [--count N] [--first I] [--duration-ms MS] [--private-key-file F]
 *       [--forge VICTIM_PUB_B64] [--repeat K --interval-ms MS]
 *       [--save FILE] [--bind ADDR:PORT] [--sources N --src-base A.B.C.D]
 *       build N distinct initiations first (client i's static key derives
 *       from the seed), then send them spread over duration-ms; --repeat
 *       sends K rounds of fresh initiations (as WireGuard's retries do);
 *       --sources spreads them over N source addresses from src-base (the
 *       XDP program rate-limits per source address)
 *   jitwg-loadgen resend --to ADDR:PORT --file FILE
 *       send the bytes of a saved initiation again (a replay)
 *   jitwg-loadgen clients --to ADDR:PORT --responder PUB_B64 --schedule FILE
 *       [--seed S] [--bind ADDR] [--retry-ms 5000] [--rekey-ms 120000]
 *       [--keepalive-ms 10000] [--active-window-ms 300000]
 *       [--sample-ms 1000] [--events FILE] [--samples FILE]
 *       [--sources N --src-base A.B.C.D]
 *       clients that complete handshakes and send data, one session per
 *       schedule line "index start_s end_s" (user/loadgen_clients.c)
 *
 * Client i's private key = BLAKE2b-256("jitwg-loadgen" ‖ seed ‖ i): the
 * control plane's list and the sender agree without sharing files.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "hostport.h"
#include "keys.h"
#include "loadgen.h"
#include "noise.h"
#include "synth.h"

static void usage(void)
{
	fprintf(stderr,
		"usage: jitwg-loadgen keys --seed S --count N [--net A.B.C.D]\n"
		"       jitwg-loadgen send --to ADDR:PORT --responder PUB_B64 [--seed S] [--count N]\n"
		"                     [--first I] [--duration-ms MS] [--private-key-file F]\n"
		"                     [--forge VICTIM_PUB_B64] [--repeat K] [--interval-ms MS]\n"
		"                     [--save FILE] [--bind ADDR:PORT] [--sources N --src-base A.B.C.D]\n"
		"       jitwg-loadgen resend --to ADDR:PORT --file FILE [--bind ADDR:PORT]\n"
		"       jitwg-loadgen clients --to ADDR:PORT --responder PUB_B64 --schedule FILE\n"
		"                     [--seed S] [--bind ADDR:PORT] [--retry-ms MS] [--rekey-ms MS]\n"
		"                     [--keepalive-ms MS] [--active-window-ms MS] [--sample-ms MS]\n"
		"                     [--events FILE] [--samples FILE] [--sources N --src-base A.B.C.D]\n");
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "seed", required_argument, NULL, 's' },
		{ "count", required_argument, NULL, 'n' },
		{ "first", required_argument, NULL, 'f' },
		{ "net", required_argument, NULL, 'N' },
		{ "to", required_argument, NULL, 't' },
		{ "bind", required_argument, NULL, 'b' },
		{ "responder", required_argument, NULL, 'r' },
		{ "duration-ms", required_argument, NULL, 'd' },
		{ "private-key-file", required_argument, NULL, 'k' },
		{ "forge", required_argument, NULL, 'F' },
		{ "repeat", required_argument, NULL, 'R' },
		{ "interval-ms", required_argument, NULL, 'i' },
		{ "save", required_argument, NULL, 'S' },
		{ "file", required_argument, NULL, 'l' },
		{ "sources", required_argument, NULL, 'm' },
		{ "src-base", required_argument, NULL, 'B' },
		{ "schedule", required_argument, NULL, 1000 },
		{ "retry-ms", required_argument, NULL, 1001 },
		{ "rekey-ms", required_argument, NULL, 1002 },
		{ "keepalive-ms", required_argument, NULL, 1003 },
		{ "active-window-ms", required_argument, NULL, 1004 },
		{ "sample-ms", required_argument, NULL, 1005 },
		{ "events", required_argument, NULL, 1006 },
		{ "samples", required_argument, NULL, 1007 },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *seed = "jitwg", *to = NULL, *bind_to = NULL, *resp_b64 = NULL;
	const char *keyfile = NULL, *forge = NULL, *save = NULL, *file = NULL;
	const char *net = "10.128.0.0", *src_base = NULL;
	unsigned long n_src = 1;
	int *fds = NULL;
	unsigned long count = 1, first = 0, duration_ms = 0, repeat = 1, interval_ms = 5000;
	struct sockaddr_storage dst, src;
	socklen_t dlen = 0, slen = 0;
	uint8_t responder[32], victim[32], file_priv[32], (*msgs)[NOISE_INITIATION_LEN] = NULL;
	struct loadgen_clients_opts co = {
		.retry_ms = 5000, .rekey_ms = 120000, .keepalive_ms = 10000,
		.sample_ms = 1000, .active_window_ms = 300000,
	};
	const char *cmd;
	unsigned long i, r, sent = 0, errs = 0;
	int c, fd = -1, ret = 1;
	double t0, t1;

	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage();
		return argc < 2 ? 2 : 0;
	}
	cmd = argv[1];
	optind = 2;
	while ((c = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
		switch (c) {
		case 's': seed = optarg; break;
		case 'n': count = strtoul(optarg, NULL, 10); break;
		case 'f': first = strtoul(optarg, NULL, 10); break;
		case 'N': net = optarg; break;
		case 't': to = optarg; break;
		case 'b': bind_to = optarg; break;
		case 'r': resp_b64 = optarg; break;
		case 'd': duration_ms = strtoul(optarg, NULL, 10); break;
		case 'k': keyfile = optarg; break;
		case 'F': forge = optarg; break;
		case 'R': repeat = strtoul(optarg, NULL, 10); break;
		case 'i': interval_ms = strtoul(optarg, NULL, 10); break;
		case 'S': save = optarg; break;
		case 'l': file = optarg; break;
		case 'm': n_src = strtoul(optarg, NULL, 10); break;
		case 'B': src_base = optarg; break;
		case 1000: co.schedule = optarg; break;
		case 1001: co.retry_ms = strtoul(optarg, NULL, 10); break;
		case 1002: co.rekey_ms = strtoul(optarg, NULL, 10); break;
		case 1003: co.keepalive_ms = strtoul(optarg, NULL, 10); break;
		case 1004: co.active_window_ms = strtoul(optarg, NULL, 10); break;
		case 1005: co.sample_ms = strtoul(optarg, NULL, 10); break;
		case 1006: co.events = optarg; break;
		case 1007: co.samples = optarg; break;
		case 'h': usage(); return 0;
		default: usage(); return 2;
		}
	}
	if (sodium_init() < 0)
		return 1;

	if (!strcmp(cmd, "keys")) {
		struct in_addr base;

		if (inet_pton(AF_INET, net, &base) != 1) {
			fprintf(stderr, "loadgen: bad --net %s\n", net);
			return 2;
		}
		for (i = first; i < first + count; i++) {
			uint8_t priv[32], pub[32];
			char b64[KEY_B64_LEN], ip[INET_ADDRSTRLEN];
			struct in_addr a = { htonl(ntohl(base.s_addr) + (uint32_t)i + 1) };

			synth_key(priv, pub, seed, (uint32_t)i);
			sodium_memzero(priv, sizeof(priv));
			key_to_base64(b64, pub);
			inet_ntop(AF_INET, &a, ip, sizeof(ip));
			printf("%s %s/32\n", b64, ip);
		}
		return 0;
	}
	if (!strcmp(cmd, "clients")) {
		co.seed = seed;
		if (src_base) {
			co.n_src = n_src ? n_src : 1;
			if (inet_pton(AF_INET, src_base, &co.src_base) != 1) {
				fprintf(stderr, "loadgen: bad --src-base %s\n",
					src_base);
				return 2;
			}
		}
		if (!to || hostport_parse(to, &co.dst, &co.dst_len) ||
		    !co.schedule || !resp_b64 ||
		    key_from_base64(co.responder, resp_b64) ||
		    (bind_to && hostport_parse(bind_to, &co.bind, &co.bind_len)) ||
		    !co.sample_ms) {
			fprintf(stderr, "loadgen: clients needs --to ADDR:PORT, "
				"--responder PUB_B64 and --schedule FILE\n");
			return 2;
		}
		return loadgen_clients(&co) ? 1 : 0;
	}
	if (strcmp(cmd, "send") && strcmp(cmd, "resend")) {
		usage();
		return 2;
	}
	if (!to || hostport_parse(to, &dst, &dlen)) {
		fprintf(stderr, "loadgen: --to ADDR:PORT is required\n");
		return 2;
	}
	fd = socket(dst.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		perror("loadgen: socket");
		return 1;
	}
	if (bind_to) {
		if (hostport_parse(bind_to, &src, &slen) || bind(fd, (struct sockaddr *)&src, slen)) {
			fprintf(stderr, "loadgen: cannot bind %s\n", bind_to);
			goto out;
		}
	}
	if (!strcmp(cmd, "resend")) {
		uint8_t m[NOISE_INITIATION_LEN];
		int f = file ? open(file, O_RDONLY | O_CLOEXEC) : -1;

		if (f < 0 || read(f, m, sizeof(m)) != sizeof(m)) {
			fprintf(stderr, "loadgen: cannot read a 148-byte initiation from %s\n",
				file ? file : "(no --file)");
			if (f >= 0)
				close(f);
			goto out;
		}
		close(f);
		for (r = 0; r < repeat; r++) {
			if (r)
				usleep(interval_ms * 1000);
			if (sendto(fd, m, sizeof(m), 0, (struct sockaddr *)&dst, dlen) < 0)
				errs++;
			else
				sent++;
		}
		printf("sent=%lu errors=%lu\n", sent, errs);
		ret = errs ? 1 : 0;
		goto out;
	}

	if (n_src < 1)
		n_src = 1;
	fds = calloc(n_src, sizeof(*fds));
	if (!fds)
		goto out;
	fds[0] = fd;
	for (i = 1; i < n_src; i++)
		fds[i] = -1;
	if (src_base) {
		struct in_addr base;

		if (dst.ss_family != AF_INET || inet_pton(AF_INET, src_base, &base) != 1) {
			fprintf(stderr, "loadgen: --src-base needs an IPv4 address and target\n");
			goto out;
		}
		for (i = 0; i < n_src; i++) {
			struct sockaddr_in sin = { .sin_family = AF_INET };

			sin.sin_addr.s_addr = htonl(ntohl(base.s_addr) + (uint32_t)i);
			if (i)
				fds[i] = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
			if (fds[i] < 0 || bind(fds[i], (struct sockaddr *)&sin, sizeof(sin))) {
				fprintf(stderr, "loadgen: cannot bind source %lu: %s\n", i,
					strerror(errno));
				goto out;
			}
		}
	} else {
		n_src = 1;
	}
	if (!resp_b64 || key_from_base64(responder, resp_b64)) {
		fprintf(stderr, "loadgen: --responder PUB_B64 (the gateway's public key) is required\n");
		goto out;
	}
	if (forge && key_from_base64(victim, forge)) {
		fprintf(stderr, "loadgen: bad --forge key\n");
		goto out;
	}
	if (keyfile) {
		if (key_read_file(file_priv, keyfile)) {
			fprintf(stderr, "loadgen: cannot read key %s\n", keyfile);
			goto out;
		}
		count = 1;
	}
	msgs = calloc(count ? count : 1, sizeof(*msgs));
	if (!msgs)
		goto out;
	for (r = 0; r < repeat; r++) {
		if (r)
			usleep(interval_ms * 1000);
		/* Build everything first so that the send phase is only I/O. */
		for (i = 0; i < count; i++) {
			struct noise_initiator *in;
			uint8_t priv[32], ts[NOISE_TIMESTAMP_LEN];

			if (keyfile)
				memcpy(priv, file_priv, sizeof(priv));
			else
				synth_key(priv, NULL, seed, (uint32_t)(first + i));
			if (noise_initiator_new(&in, priv, responder)) {
				sodium_memzero(priv, sizeof(priv));
				goto out;
			}
			sodium_memzero(priv, sizeof(priv));
			if (forge)
				noise_initiator_forge_identity(in, victim);
			noise_timestamp_now(ts);
			if (noise_build_initiation(in, randombytes_random(), ts, 0, msgs[i])) {
				noise_initiator_free(in);
				goto out;
			}
			noise_initiator_free(in);
		}
		if (save && r == 0) {
			int f = open(save, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

			if (f < 0 || write(f, msgs[0], NOISE_INITIATION_LEN) != NOISE_INITIATION_LEN) {
				fprintf(stderr, "loadgen: cannot write %s\n", save);
				if (f >= 0)
					close(f);
				goto out;
			}
			close(f);
		}
		t0 = now_s();
		for (i = 0; i < count; i++) {
			if (duration_ms) {
				/* Pace: message i leaves at i/count of the duration. */
				double due = t0 + (double)duration_ms / 1000.0 * i / count;
				double now = now_s();

				if (due > now + 0.0002)
					usleep((useconds_t)((due - now) * 1e6));
			}
			if (sendto(fds[i % n_src], msgs[i], NOISE_INITIATION_LEN, 0,
				   (struct sockaddr *)&dst, dlen) < 0)
				errs++;
			else
				sent++;
		}
		t1 = now_s();
		fprintf(stderr, "loadgen: round %lu: sent %lu initiations in %.3f s\n",
			r + 1, count, t1 - t0);
	}
	printf("sent=%lu errors=%lu\n", sent, errs);
	ret = errs ? 1 : 0;
out:
	sodium_memzero(file_priv, sizeof(file_priv));
	if (msgs) {
		sodium_memzero(msgs, count * sizeof(*msgs));
		free(msgs);
	}
	if (fds) {
		for (i = 1; i < n_src; i++)
			if (fds[i] >= 0)
				close(fds[i]);
		free(fds);
	}
	if (fd >= 0)
		close(fd);
	return ret;
}
