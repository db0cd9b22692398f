/* SPDX-License-Identifier: MIT */
/*
 * Re-delivery of captured handshake initiations to the local WireGuard
 * (user/redeliver.c), for jitwgd --consume: the XDP program dropped the
 * initiation, and the daemon hands it back once WireGuard can use it.
 *
 * The datagram is rebuilt byte for byte with its original source and
 * destination and sent through a raw socket with IP_TRANSPARENT (which
 * permits a source address that is not ours). Its destination is local, so
 * it arrives through the loopback device, where no XDP program of ours runs,
 * and WireGuard sees the client's address and port as it would have: its
 * reply and the peer's endpoint are the client's.
 *
 * XDP runs before netfilter, and rules usually accept all of loopback: a
 * re-delivered initiation skips the uplink's INPUT rules and reverse-path
 * check. It carries the mark REDELIVER_MARK so that rules can still match
 * it (`iif lo meta mark 0x6a77 ...`); sources no client can have
 * (loopback, multicast, unspecified, this host's own: the XDP program never
 * takes those) are refused.
 *
 * Needs CAP_NET_RAW and CAP_NET_ADMIN. Thread-safe: the sockets are only
 * written. Functions return 0 or -errno.
 */
#ifndef JITWG_REDELIVER_H
#define JITWG_REDELIVER_H

#include <stddef.h>

#include "jitwg.h"

enum { REDELIVER_MARK = 0x6a77 }; /* "jw": SO_MARK of re-delivered packets */

struct redeliver;

/* err receives a one-line reason on failure. */
int redeliver_open(struct redeliver **out, char *err, size_t errlen);
void redeliver_close(struct redeliver *r);
/* Send ev->msg from ev->saddr:sport to ev->daddr:dport; -EADDRNOTAVAIL
 * for a source no client can have, -EBADMSG when ev->udp_check is not the
 * datagram's checksum (the kernel would have dropped it). */
int redeliver_event(struct redeliver *r, const struct jitwg_event *ev);

#endif
