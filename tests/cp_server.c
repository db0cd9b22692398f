// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "cp_server.h"

int cp_server_start(pid_t *pid, int *port, const char *dir, const char *name,
		    const char *const args[])
{
	char portfile[256], script[512], log[256];
	const char *root = getenv("JITWG_ROOT");
	const char *argv[32];
	struct timespec ms50 = { 0, 50000000 };
	FILE *f;
	int n = 0;

	snprintf(script, sizeof(script), "%s/scripts/control-plane.py",
		 root ? root : ".");
	snprintf(portfile, sizeof(portfile), "%s/%s.port", dir, name);
	snprintf(log, sizeof(log), "%s/%s.log", dir, name);
	if (access(script, R_OK))
		return -ENOENT;
	argv[n++] = "python3";
	argv[n++] = script;
	argv[n++] = "--port";
	argv[n++] = "0";
	argv[n++] = "--port-file";
	argv[n++] = portfile;
	argv[n++] = "--log";
	argv[n++] = log;
	for (int i = 0; args && args[i] && n < 31; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	*port = 0;
	*pid = fork();
	if (*pid < 0)
		return -errno;
	if (*pid == 0) {
		execvp("python3", (char *const *)argv);
		_exit(127);
	}
	for (int i = 0; i < 200 && !*port; i++) {
		f = fopen(portfile, "r");
		if (f) {
			if (fscanf(f, "%d", port) != 1)
				*port = 0;
			fclose(f);
		}
		if (!*port)
			nanosleep(&ms50, NULL);
	}
	return *port ? 0 : -ETIMEDOUT;
}
