// SPDX-License-Identifier: MIT
/*
 * The cache directory, made before the cache opens it: created with its
 * parents (mode 0700), and kept private, since the cache holds preshared
 * keys.
 */
#include <errno.h>
#include <stdio.h>
#include <sys/stat.h>

#include "daemon.h"

static int mkdir_p(const char *path)
{
	char buf[4096], *s;

	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
		return -ENAMETOOLONG;
	for (s = buf + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(buf, 0700) && errno != EEXIST)
			return -errno;
		*s = '/';
	}
	if (mkdir(buf, 0700) && errno != EEXIST)
		return -errno;
	return 0;
}

/*
 * The cache holds preshared keys: its directory is ours alone. A directory
 * made before with wider permissions is tightened (and said so); one that
 * is not a directory, or that we cannot tighten, is refused.
 */
static int private_dir(const char *path, char *q, size_t qlen)
{
	struct stat st;

	if (stat(path, &st))
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return -ENOTDIR;
	if (!(st.st_mode & 077))
		return 0;
	if (chmod(path, st.st_mode & 0700))
		return -errno;
	dlog(LOG_WARN, "start", "stage=cache dir=%s outcome=tightened mode_was=%03o mode=%03o",
	     log_quote(q, qlen, path), st.st_mode & 0777, st.st_mode & 0700);
	return 0;
}

int daemon_cache_dir(const char *path, char *q, size_t qlen)
{
	int ret = mkdir_p(path);

	return ret ? ret : private_dir(path, q, qlen);
}
