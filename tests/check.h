/* SPDX-License-Identifier: MIT */
/*
 * Minimal assertions for C test programs. Each check prints one
 * "PASS: name" or "FAIL: name: why" line that tests/run.sh counts; a test
 * program exits non-zero when any check failed.
 */
#ifndef JITWG_TESTS_CHECK_H
#define JITWG_TESTS_CHECK_H

#include <stdio.h>
#include <string.h>

static int check_failures;

#define CHECK(name, cond, ...)                                          \
	do {                                                            \
		if (cond) {                                             \
			printf("PASS: %s\n", name);                     \
		} else {                                                \
			printf("FAIL: %s: ", name);                     \
			printf(__VA_ARGS__);                            \
			printf(" (%s:%d)\n", __FILE__, __LINE__);       \
			check_failures++;                               \
		}                                                       \
		fflush(stdout);                                         \
	} while (0)

/* A sub-condition inside one named check: report and count, print nothing on success. */
#define EXPECT(cond, ...)                                               \
	((cond) ? 1 : (printf("  expected %s: ", #cond), printf(__VA_ARGS__), \
		       printf(" (%s:%d)\n", __FILE__, __LINE__), 0))

#define SKIP(name, why) printf("SKIP: %s: %s\n", name, why)

#define CHECK_EXIT() return check_failures ? 1 : 0

#endif
