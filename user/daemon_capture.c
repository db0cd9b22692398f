// SPDX-License-Identifier: MIT
/*
 * The XDP capture as jitwgd starts it: opened on a thread of its own while
 * the rest starts (loading and attaching is the slowest step), replacing a
 * stale jitwg program a crash left behind; and, with --consume, the host's
 * addresses the program may take initiations for.
 */
#include <errno.h>
#include <ifaddrs.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <net/if.h>

#include "daemon.h"

/*
 * An XDP program attached through netlink outlives its process: after a
 * kill -9 or a crash the next start finds jitwg's own program still on the
 * device. Replace it when, and only when, it is jitwg's (by program name);
 * anything else on the device is someone else's and is left alone.
 */
static int detach_stale_program(const char *ifname)
{
	LIBBPF_OPTS(bpf_xdp_query_opts, q);
	struct bpf_prog_info info;
	__u32 len = sizeof(info);
	unsigned int ifindex = if_nametoindex(ifname);
	__u32 flags;
	int fd, ret;

	if (!ifindex || bpf_xdp_query(ifindex, 0, &q) || !q.prog_id)
		return -ENOENT;
	fd = bpf_prog_get_fd_by_id(q.prog_id);
	if (fd < 0)
		return -errno;
	memset(&info, 0, sizeof(info));
	ret = bpf_obj_get_info_by_fd(fd, &info, &len);
	close(fd);
	if (ret)
		return ret;
	if (strcmp(info.name, "jitwg_xdp"))
		return -EEXIST;
	flags = q.attach_mode == XDP_ATTACHED_DRV ? XDP_FLAGS_DRV_MODE :
		q.attach_mode == XDP_ATTACHED_SKB ? XDP_FLAGS_SKB_MODE :
		q.attach_mode == XDP_ATTACHED_HW ? XDP_FLAGS_HW_MODE : 0;
	ret = bpf_xdp_detach(ifindex, flags, NULL);
	if (!ret)
		dlog(LOG_WARN, "start",
		     "stage=capture action=replaced_stale_program xdp_dev=%s prog_id=%u",
		     ifname, q.prog_id);
	return ret;
}

void *daemon_capture_thread(void *arg)
{
	struct capture_job *j = arg;

	j->ret = capture_open(&j->cap, &j->co, daemon_on_event, j->d, j->err, sizeof(j->err));
	if ((j->ret == -EBUSY || j->ret == -EEXIST) && !j->o->pin_dir &&
	    j->o->xdp_mode != CAPTURE_PINNED && !detach_stale_program(j->o->xdp_dev))
		j->ret = capture_open(&j->cap, &j->co, daemon_on_event, j->d, j->err,
				      sizeof(j->err));
	if (j->ret)
		j->cap = NULL;
	j->t_done = now_mono_ns();
	return NULL;
}

/*
 * --consume takes only initiations sent to this host: give the XDP program
 * the namespace's addresses (refreshed every second: one added meanwhile
 * only means its initiations pass to WireGuard directly, as without).
 */
int daemon_set_local_addrs(struct capture *cap, char *err, size_t errlen)
{
	uint8_t (*a)[16] = calloc(JITWG_LOCAL_ADDRS_MAX, 16);
	struct ifaddrs *ifa, *i;
	size_t n = 0;
	int ret;

	if (!a || getifaddrs(&ifa)) {
		ret = a ? -errno : -ENOMEM;
		snprintf(err, errlen, "local addresses: %s", strerror(-ret));
		free(a);
		return ret;
	}
	for (i = ifa; i && n < JITWG_LOCAL_ADDRS_MAX; i = i->ifa_next) {
		if (!i->ifa_addr)
			continue;
		if (i->ifa_addr->sa_family == AF_INET) {
			a[n][10] = a[n][11] = 0xff;
			memcpy(a[n] + 12, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, 4);
			n++;
		} else if (i->ifa_addr->sa_family == AF_INET6) {
			memcpy(a[n], &((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr, 16);
			n++;
		}
	}
	freeifaddrs(ifa);
	ret = capture_set_local_addrs(cap, a, n);
	if (ret)
		snprintf(err, errlen, "%s", capture_error(cap));
	free(a);
	return ret;
}

