/* SPDX-License-Identifier: MIT */
/* jitwg-loadgen's modes outside user/loadgen.c. */
#ifndef JITWG_LOADGEN_H
#define JITWG_LOADGEN_H

#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>

struct loadgen_clients_opts {
	const char *seed;
	const char *schedule; /* "index start_s end_s" lines */
	const char *events;   /* NULL: none */
	const char *samples;  /* NULL: none */
	uint8_t responder[32];
	struct sockaddr_storage dst, bind;
	socklen_t dst_len, bind_len; /* bind_len 0: any address */
	/* n_src > 0: client i binds src_base + i % n_src (IPv4), port any */
	struct in_addr src_base;
	unsigned long n_src;
	unsigned long retry_ms, rekey_ms, keepalive_ms, sample_ms,
	    active_window_ms;
};

/* Runs the schedule to its end; 0 or -errno. */
int loadgen_clients(const struct loadgen_clients_opts *o);

#endif
