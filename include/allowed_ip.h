/* SPDX-License-Identifier: MIT */
/* Allowed-IP prefixes compared: the overlap rule shared by every module. */
#ifndef JITWG_ALLOWED_IP_H
#define JITWG_ALLOWED_IP_H

#include <stdbool.h>
#include <stddef.h>

#include "wgdev.h"

/* True if the two prefixes share an address (same family, common prefix). */
bool allowed_ip_overlaps(const struct wgdev_allowed_ip *a,
			 const struct wgdev_allowed_ip *b);

/* Index into a of the first prefix that overlaps any prefix of b, or -1. */
long allowed_ips_overlap(const struct wgdev_allowed_ip *a, size_t na,
			 const struct wgdev_allowed_ip *b, size_t nb);

#endif
