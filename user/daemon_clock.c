// SPDX-License-Identifier: MIT
/*
 * The daemon's clocks: CLOCK_MONOTONIC nanoseconds for durations and
 * ordering (install times, polls, log timings), wall-clock seconds for
 * what is compared with the device's handshake times and stored in the
 * cache (install times, TTLs).
 */
#include <time.h>

#include "daemon.h"

uint64_t now_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

uint64_t now_wall_s(void)
{
	return (uint64_t)time(NULL);
}
