/* SPDX-License-Identifier: MIT */
/*
 * Minimal assertions for C test programs. Each check prints one
 * "PASS: name" or "FAIL: name: why" line that tests/run.sh counts; a test
 * program exits non-zero when any check failed.
 */
#ifndef JITWG_TESTS_CHECK_H
#define JITWG_TESTS_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_failures;

/*
 * tests/run.sh PROGRAM:NAME sets JITWG_CHECK: only the checks whose name
 * contains it are reported (the others still run: a later check may
 * depend on what an earlier one did).
 */
static inline int check_wanted(const char *name)
{
	const char *f = getenv("JITWG_CHECK");

	return !f || !*f || strstr(name, f);
}

#define CHECK(name, cond, ...)                                          \
	do {                                                            \
		int check_ok_ = !!(cond);                               \
		if (!check_wanted(name)) {                              \
			/* not reported */                              \
		} else if (check_ok_) {                                 \
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

#define SKIP(name, why) \
	(check_wanted(name) ? printf("SKIP: %s: %s\n", name, why) : 0)

#define CHECK_EXIT() return check_failures ? 1 : 0

#endif
