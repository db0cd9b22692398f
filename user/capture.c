// SPDX-License-Identifier: MIT
/*
 * Loader of the XDP capture program: skeleton load and attach, or the maps
 * of an object that bpftool loaded and pinned; settings; ring buffer;
 * counters.
 */
#include <errno.h>
#include <limits.h>
#include <net/if.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/random.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <linux/magic.h>
#include <xdp/libxdp.h>

#include "capture.h"
#include "jitwg.skel.h"

enum { ERR_LEN = CAPTURE_ERR_LEN, LOG_KEEP = 4096, PORT_WORDS = 65536 / 64 };

struct capture {
	struct jitwg_bpf *skel; /* NULL when using pinned maps */
	struct ring_buffer *rb;
	capture_event_fn fn;
	void *ctx;
	int ifindex;
	__u32 attach_flags; /* netlink attachment: 0 when not attached by us */
	int link_fd;        /* bpf_link attachment, or -1 */
	struct xdp_program *xprog; /* CAPTURE_MULTI: ours in the dispatcher */
	enum xdp_attach_mode xmode;
	bool native;
	int fd_events, fd_counters, fd_settings, fd_ports;
	int fd_src, fd_global;
	int fd_lease; /* -1: a pinned object from before the lease */
	int fd_local; /* local_addrs; -1 as fd_lease */
	int fd_verified; /* verified sources; -1 as fd_lease */
	int fd_vbits, fd_vseed; /* verified_bits, verified_seed; -1 as fd_lease */
	int fd_recent, fd_dup; /* recent, dup_bucket; -1 as fd_lease */
	int fd_cookie; /* cookie_sources; -1 as fd_lease */
	int fd_cookie_active; /* cookie_active; -1 as fd_lease */
	int fd_prefix;         /* prefix_reserve; -1 as fd_lease */
	__u64 vseed;
	pthread_mutex_t vlock; /* one writer of verified_bits at a time */
	unsigned int leased; /* lease words we set (1 << key): cleared on close */
	int prog_fd;
	int ncpus;
	bool busy; /* the last poll consumed events */
	char err[ERR_LEN];
};


/*
 * libbpf's messages, kept so that a verifier rejection can be reported
 * with the end of its log. Only used while loading, single-threaded.
 */
static char liblog[LOG_KEEP];
static size_t liblog_len;

static int libbpf_print(enum libbpf_print_level level, const char *fmt,
			va_list ap)
{
	char buf[1024], *line = buf;
	va_list again;
	int n;

	if (level == LIBBPF_DEBUG)
		return 0;
	va_copy(again, ap);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	/*
	 * The verifier log arrives in one message, often far longer than a
	 * line: format it whole, or its end, which says why, would be lost.
	 */
	if (n >= (int)sizeof(buf)) {
		line = malloc((size_t)n + 1);
		if (line)
			n = vsnprintf(line, (size_t)n + 1, fmt, again);
		else
			line = buf, n = sizeof(buf) - 1;
	}
	va_end(again);
	if (n <= 0)
		goto out;
	if ((size_t)n >= LOG_KEEP) {
		/* Only its end fits. */
		memmove(line, line + n - (LOG_KEEP - 1), LOG_KEEP - 1);
		n = LOG_KEEP - 1;
	}
	if (liblog_len + n >= LOG_KEEP) {
		/* Keep the tail: that is where the verifier says why. */
		size_t drop = liblog_len + n - LOG_KEEP + 1;

		if (drop > liblog_len)
			drop = liblog_len;
		memmove(liblog, liblog + drop, liblog_len - drop);
		liblog_len -= drop;
	}
	memcpy(liblog + liblog_len, line, n);
	liblog_len += n;
	liblog[liblog_len] = '\0';
out:
	if (line != buf)
		free(line);
	return 0;
}

/* The last `lines` lines of the verifier log, joined with " | ". */
static void log_tail(char *out, size_t len, int lines)
{
	const char *end = strstr(liblog, "-- END PROG LOAD LOG --");
	const char *p;
	size_t o = 0;
	int seen = 0;

	if (!end)
		end = liblog + liblog_len;
	for (p = end; p > liblog; p--) {
		if (p[-1] == '\n' && p != end && ++seen > lines)
			break;
	}
	for (; p < end && o + 4 < len; p++) {
		if (*p == '\n') {
			if (p + 1 < end) {
				memcpy(out + o, " | ", 3);
				o += 3;
			}
		} else {
			out[o++] = *p;
		}
	}
	out[o] = '\0';
}

static int fail(struct capture *c, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->err, sizeof(c->err), fmt, ap);
	va_end(ap);
	return err;
}

const char *capture_error(const struct capture *c)
{
	return c->err;
}


const char *capture_mode_str(enum capture_mode mode)
{
	switch (mode) {
	case CAPTURE_AUTO:
		return "auto";
	case CAPTURE_NATIVE:
		return "native";
	case CAPTURE_GENERIC:
		return "generic";
	case CAPTURE_PINNED:
		return "pinned";
	case CAPTURE_LOAD_ONLY:
		return "load-only";
	case CAPTURE_MULTI:
		return "multi";
	}
	return "?";
}

int capture_mode_parse(const char *s, enum capture_mode *mode)
{
	if (!strcmp(s, "auto"))
		*mode = CAPTURE_AUTO;
	else if (!strcmp(s, "native"))
		*mode = CAPTURE_NATIVE;
	else if (!strcmp(s, "generic"))
		*mode = CAPTURE_GENERIC;
	else if (!strcmp(s, "pinned"))
		*mode = CAPTURE_PINNED;
	else if (!strcmp(s, "multi"))
		*mode = CAPTURE_MULTI;
	else
		return -EINVAL;
	return 0;
}

static const char *const counter_names[JITWG_CTR_MAX] = {
	[JITWG_CTR_PACKETS] = "packets",
	[JITWG_CTR_WG_UDP] = "wg_udp",
	[JITWG_CTR_MATCHED] = "initiations",
	[JITWG_CTR_EVENTS] = "events",
	[JITWG_CTR_LIMITED_SRC] = "limited_src",
	[JITWG_CTR_LIMITED_GLOBAL] = "limited_global",
	[JITWG_CTR_RINGBUF_FULL] = "ringbuf_full",
	[JITWG_CTR_MALFORMED] = "malformed",
	[JITWG_CTR_CONSUMED] = "consumed",
	[JITWG_CTR_VERIFIED] = "verified",
	[JITWG_CTR_LIMITED_VERIFIED] = "limited_verified",
	[JITWG_CTR_SRC_NEW] = "src_new",
	[JITWG_CTR_DUPLICATE] = "duplicate",
	[JITWG_CTR_COOKIE_RETRY] = "cookie_retry",
	[JITWG_CTR_LIMITED_COOKIE] = "limited_cookie",
	[JITWG_CTR_PREFIX_RESERVE] = "prefix_reserve",
};

const char *capture_counter_name(enum jitwg_counter ctr)
{
	return ctr < JITWG_CTR_MAX ? counter_names[ctr] : "?";
}

static int on_sample(void *ctx, void *data, size_t size)
{
	struct capture *c = ctx;

	if (size < sizeof(struct jitwg_event))
		return 0;
	return c->fn ? c->fn(c->ctx, data) : 0;
}

static const char *perm_hint =
	"run as root, or with CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON";

/* Open one pinned map, naming the remedy when it is not there. */
static int pinned_map(struct capture *c, const char *dir, const char *name,
		      int *fd)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	*fd = bpf_obj_get(path);
	if (*fd >= 0)
		return 0;
	if (errno == EPERM || errno == EACCES)
		return fail(c, -errno, "cannot open pinned map %s: %s", path,
			    perm_hint);
	if (!strcmp(name, "events"))
		return fail(c, -ENOENT,
			    "ring buffer map missing: %s not found; load the "
			    "object with 'bpftool prog loadall build/jitwg.bpf.o "
			    "DIR pinmaps %s' first",
			    path, dir);
	return fail(c, -ENOENT,
		    "map %s missing under %s: was it pinned from jitwg.bpf.o?",
		    name, dir);
}

static int open_pinned(struct capture *c, const char *dir)
{
	struct statfs st;
	int err;

	if (!dir)
		return fail(c, -EINVAL, "pinned mode needs a pin directory");
	if (statfs(dir, &st))
		return fail(c, -errno,
			    "pin directory %s: %s (is bpffs mounted? 'mount -t "
			    "bpf bpf /sys/fs/bpf')",
			    dir, strerror(errno));
	if (st.f_type != BPF_FS_MAGIC)
		return fail(c, -ENOTSUP,
			    "%s is not on a BPF filesystem: mount it with "
			    "'mount -t bpf bpf /sys/fs/bpf' and pin there",
			    dir);
	if ((err = pinned_map(c, dir, "events", &c->fd_events)) ||
	    (err = pinned_map(c, dir, "counters", &c->fd_counters)) ||
	    (err = pinned_map(c, dir, "settings", &c->fd_settings)) ||
	    (err = pinned_map(c, dir, "ports", &c->fd_ports)) ||
	    (err = pinned_map(c, dir, "src_buckets", &c->fd_src)) ||
	    (err = pinned_map(c, dir, "global_bucket", &c->fd_global)))
		return err;
	/* Optional: only a consumer needs them (capture_set_lease says so). */
	if (pinned_map(c, dir, "lease", &c->fd_lease) ||
	    pinned_map(c, dir, "local_addrs", &c->fd_local))
		c->err[0] = '\0';
	/* Optional too: capture_mark_verified() names the remedy. */
	if (pinned_map(c, dir, "verified", &c->fd_verified) ||
	    pinned_map(c, dir, "verified_bits", &c->fd_vbits) ||
	    pinned_map(c, dir, "verified_seed", &c->fd_vseed))
		c->err[0] = '\0';
	if (pinned_map(c, dir, "recent", &c->fd_recent) ||
	    pinned_map(c, dir, "dup_bucket", &c->fd_dup))
		c->err[0] = '\0';
	if (pinned_map(c, dir, "cookie_sources", &c->fd_cookie))
		c->err[0] = '\0';
	/* Not in objects before it, whose program has no such gate. */
	if (pinned_map(c, dir, "cookie_active", &c->fd_cookie_active))
		c->err[0] = '\0';
	if (pinned_map(c, dir, "prefix_reserve", &c->fd_prefix))
		c->err[0] = '\0';
	return 0;
}

static void take_fds(struct capture *c, int prog_fd);

static int load(struct capture *c)
{
	char tail[400];
	int err;

	libbpf_set_print(libbpf_print);
	liblog_len = 0;
	liblog[0] = '\0';
	c->skel = jitwg_bpf__open();
	if (!c->skel)
		return fail(c, -errno, "cannot open the BPF object: %s",
			    strerror(errno));
	/*
	 * Test hook: load as on an architecture without efficient unaligned
	 * access. The verifier then refuses the program's word copies from the
	 * packet, which is the one way to see a real rejection on a kernel
	 * that accepts it (tests/test_xdp.sh).
	 */
	if (getenv("JITWG_TEST_STRICT_ALIGNMENT"))
		bpf_program__set_flags(c->skel->progs.jitwg_xdp,
				       bpf_program__flags(c->skel->progs.jitwg_xdp) |
				       BPF_F_STRICT_ALIGNMENT);
	err = jitwg_bpf__load(c->skel);
	/*
	 * EPERM is bpf() refusing the caller; EACCES is also what the verifier
	 * returns for most rejections, so it means "permission" only when the
	 * verifier left no log.
	 */
	log_tail(tail, sizeof(tail), 4);
	if (err == -EPERM || (err == -EACCES && !tail[0]))
		return fail(c, err, "permission denied loading BPF: %s",
			    perm_hint);
	if (err) {
		return fail(c, err, "the kernel rejected the XDP program (%s): %s",
			    strerrorname_np(-err) ? strerrorname_np(-err) : strerror(-err),
			    tail[0] ? tail : "no verifier log");
	}
	take_fds(c, bpf_program__fd(c->skel->progs.jitwg_xdp));
	return 0;
}

static void take_fds(struct capture *c, int prog_fd)
{
	c->prog_fd = prog_fd;
	c->fd_events = bpf_map__fd(c->skel->maps.events);
	c->fd_counters = bpf_map__fd(c->skel->maps.counters);
	c->fd_settings = bpf_map__fd(c->skel->maps.settings);
	c->fd_ports = bpf_map__fd(c->skel->maps.ports);
	c->fd_src = bpf_map__fd(c->skel->maps.src_buckets);
	c->fd_global = bpf_map__fd(c->skel->maps.global_bucket);
	c->fd_lease = bpf_map__fd(c->skel->maps.lease);
	c->fd_local = bpf_map__fd(c->skel->maps.local_addrs);
	c->fd_verified = bpf_map__fd(c->skel->maps.verified);
	c->fd_vbits = bpf_map__fd(c->skel->maps.verified_bits);
	c->fd_vseed = bpf_map__fd(c->skel->maps.verified_seed);
	c->fd_recent = bpf_map__fd(c->skel->maps.recent);
	c->fd_dup = bpf_map__fd(c->skel->maps.dup_bucket);
	c->fd_cookie = bpf_map__fd(c->skel->maps.cookie_sources);
	c->fd_cookie_active = bpf_map__fd(c->skel->maps.cookie_active);
	c->fd_prefix = bpf_map__fd(c->skel->maps.prefix_reserve);
}

/*
 * libxdp's own messages: the last warning says why the dispatcher could not
 * load (it then falls back to a plain attachment, which we refuse).
 */
static char xdp_warn[256];

static int libxdp_print(enum libxdp_print_level level, const char *fmt,
			va_list ap)
{
	size_t n;

	char line[sizeof(xdp_warn)];

	if (level == LIBXDP_DEBUG)
		return 0;
	/* Keep the first failure: later lines only say what it did next. */
	vsnprintf(line, sizeof(line), fmt, ap);
	if (xdp_warn[0] || !strstr(line, "failed"))
		return 0;
	memcpy(xdp_warn, line, sizeof(line));
	n = strlen(xdp_warn);
	while (n && (xdp_warn[n - 1] == '\n' || xdp_warn[n - 1] == ' '))
		xdp_warn[--n] = '\0';
	return 0;
}

/*
 * CAPTURE_MULTI: libxdp loads the object itself, as an extension of its
 * dispatcher (BPF_PROG_TYPE_EXT), when it attaches it: so the maps exist
 * only after the attachment, and the ports are set a moment later (until
 * then the program matches nothing and every packet passes).
 */
static int load_multi(struct capture *c, const char *ifname)
{
	static const enum xdp_attach_mode modes[] = { XDP_MODE_NATIVE,
						      XDP_MODE_SKB };
	DECLARE_LIBXDP_OPTS(xdp_program_opts, xo, .prog_name = "jitwg_xdp");
	struct xdp_multiprog *mp;
	bool legacy;
	size_t i;
	int err = -EINVAL;

	libbpf_set_print(libbpf_print);
	libxdp_set_print(libxdp_print);
	xdp_warn[0] = '\0';
	c->skel = jitwg_bpf__open();
	if (!c->skel)
		return fail(c, -errno, "cannot open the BPF object: %s",
			    strerror(errno));
	xo.obj = c->skel->obj;
	c->xprog = xdp_program__create(&xo);
	err = (int)libxdp_get_error(c->xprog);
	if (err) {
		c->xprog = NULL;
		return fail(c, err, "libxdp cannot use the program: %s",
			    strerror(-err));
	}
	xdp_program__set_run_prio(c->xprog, CAPTURE_MULTI_PRIO);
	for (i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		err = xdp_program__attach(c->xprog, c->ifindex, modes[i], 0);
		if (err != -EOPNOTSUPP)
			break;
	}
	if (err) {
		/* Never attached: nothing for capture_close() to detach. */
		xdp_program__close(c->xprog);
		c->xprog = NULL;
	}
	if (err == -EPERM)
		return fail(c, err, "permission denied attaching through libxdp "
			    "to %s: run as root (libxdp looks the dispatcher up "
			    "by id: CAP_SYS_ADMIN, and pins it in /sys/fs/bpf)",
			    ifname);
	if (err)
		return fail(c, err,
			    "cannot attach to %s through libxdp's dispatcher: %s%s%s "
			    "(a program attached directly, not through libxdp, "
			    "cannot share the device: load it with xdp-loader)",
			    ifname, strerror(-err), xdp_warn[0] ? "; libxdp: " : "",
			    xdp_warn);
	c->xmode = modes[i];
	c->native = c->xmode == XDP_MODE_NATIVE;

	/*
	 * libxdp silently falls back to a plain attachment when the
	 * dispatcher cannot load; then nothing else can join: refuse.
	 */
	mp = xdp_multiprog__get_from_ifindex(c->ifindex);
	legacy = libxdp_get_error(mp) || xdp_multiprog__is_legacy(mp);
	if (!libxdp_get_error(mp))
		xdp_multiprog__close(mp);
	if (legacy) {
		xdp_program__detach(c->xprog, c->ifindex, c->xmode, 0);
		xdp_program__close(c->xprog);
		c->xprog = NULL;
		return fail(c, -EOPNOTSUPP,
			    "libxdp's dispatcher cannot load on this kernel (%s): "
			    "XDP programs cannot share %s here; attach jitwg "
			    "alone with --xdp-mode native or generic, or move the "
			    "other program to tc ingress",
			    xdp_warn[0] ? xdp_warn : "no reason given", ifname);
	}
	take_fds(c, xdp_program__fd(c->xprog));
	return 0;
}

/*
 * Attach in one mode. A bpf_link (kernel 5.9+) belongs to this process: it
 * goes when the last fd to it closes, so a crash or kill -9 leaves no
 * program behind, a second attach fails with EBUSY while the first owner
 * lives, and no one needs CAP_SYS_ADMIN to find and replace a stale program
 * by id. Kernels without XDP links (EINVAL) get the netlink attachment.
 */
static int attach_mode(struct capture *c, __u32 mode_flag)
{
	LIBBPF_OPTS(bpf_link_create_opts, lo, .flags = mode_flag);
	int fd;

	fd = bpf_link_create(c->prog_fd, c->ifindex, BPF_XDP, &lo);
	if (fd >= 0) {
		c->link_fd = fd;
		return 0;
	}
	if (fd != -EINVAL)
		return fd;
	fd = bpf_xdp_attach(c->ifindex, c->prog_fd,
			    XDP_FLAGS_UPDATE_IF_NOEXIST | mode_flag, NULL);
	if (!fd)
		c->attach_flags = mode_flag;
	return fd;
}

static int attach(struct capture *c, const char *ifname, enum capture_mode mode)
{
	int err;

	if (mode == CAPTURE_AUTO || mode == CAPTURE_NATIVE) {
		err = attach_mode(c, XDP_FLAGS_DRV_MODE);
		if (!err) {
			c->native = true;
			return 0;
		}
		if (mode == CAPTURE_NATIVE || err == -EBUSY || err == -EEXIST ||
		    err == -EPERM)
			goto fail;
	}
	err = attach_mode(c, XDP_FLAGS_SKB_MODE);
	if (!err)
		return 0;
fail:
	if (err == -EBUSY || err == -EEXIST)
		return fail(c, err,
			    "%s already has an XDP program ('bpftool net show "
			    "dev %s'): another jitwgd or jitwg-xdp still "
			    "running there (one per device), or someone else's "
			    "(detach it, share the device with --xdp-mode "
			    "multi, or run against pinned maps with --pin-dir)",
			    ifname, ifname);
	if (err == -EPERM)
		return fail(c, err, "permission denied attaching XDP to %s: %s",
			    ifname, perm_hint);
	if (err == -EOPNOTSUPP)
		return fail(c, err,
			    "%s has no native XDP support; use --xdp-mode "
			    "generic (or auto)",
			    ifname);
	return fail(c, err, "cannot attach XDP to %s in %s mode: %s", ifname,
		    capture_mode_str(mode), strerror(-err));
}

/*
 * The seed of the verified bitmap's hash: a fresh random one for a program
 * we loaded; for a pinned one, the seed already there (its bitmap was set
 * with it), or a fresh one if none was set yet.
 */
static int verified_seed(struct capture *c)
{
	__u32 zero = 0;

	if (c->fd_vseed < 0 || c->fd_vbits < 0)
		return 0;
	if (bpf_map_lookup_elem(c->fd_vseed, &zero, &c->vseed))
		return fail(c, -errno, "cannot read verified_seed: %s", strerror(errno));
	if (c->vseed)
		return 0;
	while (!c->vseed)
		if (getrandom(&c->vseed, sizeof(c->vseed), 0) != sizeof(c->vseed))
			return fail(c, -EIO, "getrandom: %s", strerror(errno));
	if (bpf_map_update_elem(c->fd_vseed, &zero, &c->vseed, BPF_ANY))
		return fail(c, -errno, "cannot write verified_seed: %s", strerror(errno));
	return 0;
}

int capture_open(struct capture **out, const struct capture_opts *opts,
		 capture_event_fn fn, void *ctx, char *errbuf, size_t errlen)
{
	static const uint16_t default_port = WG_DEFAULT_PORT;
	static const struct jitwg_config defaults = JITWG_CONFIG_DEFAULTS;
	struct capture *c;
	int err;

	*out = NULL;
	if (errbuf && errlen)
		errbuf[0] = 0;
	c = calloc(1, sizeof(*c));
	if (!c) {
		if (errbuf && errlen)
			snprintf(errbuf, errlen, "out of memory");
		return -ENOMEM;
	}
	c->fn = fn;
	c->ctx = ctx;
	c->prog_fd = c->fd_events = c->fd_counters = c->fd_settings = -1;
	c->fd_ports = c->fd_src = c->fd_global = c->fd_lease = c->fd_local = -1;
	c->link_fd = -1;
	c->fd_verified = c->fd_vbits = c->fd_vseed = c->fd_recent = -1;
	c->fd_dup = c->fd_cookie = c->fd_cookie_active = c->fd_prefix = -1;
	pthread_mutex_init(&c->vlock, NULL);
	c->ncpus = libbpf_num_possible_cpus();
	if (c->ncpus <= 0) {
		err = fail(c, -EIO, "cannot count possible CPUs");
		goto err;
	}

	if (opts->mode != CAPTURE_PINNED && opts->mode != CAPTURE_LOAD_ONLY) {
		c->ifindex = if_nametoindex(opts->ifname ? opts->ifname : "");
		if (!c->ifindex) {
			err = fail(c, -ENODEV,
				   "no such device '%s' (see 'ip link'; run "
				   "inside its network namespace)",
				   opts->ifname ? opts->ifname : "");
			goto err;
		}
	}

	if (opts->mode == CAPTURE_PINNED)
		err = open_pinned(c, opts->pin_dir);
	else if (opts->mode == CAPTURE_MULTI)
		err = load_multi(c, opts->ifname);
	else
		err = load(c);
	if (!err)
		err = verified_seed(c);
	if (err)
		goto err;

	/* Settings before attaching, so that no packet sees an empty port map. */
	if (!(opts->mode == CAPTURE_PINNED && opts->keep_settings)) {
		err = capture_set_limits(c, opts->limits ? opts->limits : &defaults);
		if (!err)
			err = opts->n_ports ?
				capture_set_ports(c, opts->ports, opts->n_ports) :
				capture_set_ports(c, &default_port, 1);
		if (err)
			goto err;
	}

	c->rb = ring_buffer__new(c->fd_events, on_sample, c, NULL);
	if (!c->rb) {
		err = fail(c, -errno, "cannot open the ring buffer: %s",
			   strerror(errno));
		goto err;
	}

	if (opts->mode != CAPTURE_PINNED && opts->mode != CAPTURE_LOAD_ONLY &&
	    opts->mode != CAPTURE_MULTI) {
		err = attach(c, opts->ifname, opts->mode);
		if (err)
			goto err;
	}
	*out = c;
	return 0;
err:
	if (errbuf && errlen)
		snprintf(errbuf, errlen, "%s", c->err);
	capture_close(c);
	return err;
}

static int set_lease_word(struct capture *c, __u32 key, uint64_t until_ns);

void capture_close(struct capture *c)
{
	int *fds[] = { &c->fd_events, &c->fd_counters, &c->fd_settings,
		       &c->fd_ports, &c->fd_src, &c->fd_global, &c->fd_lease,
		       &c->fd_local, &c->fd_verified, &c->fd_vbits,
		       &c->fd_vseed, &c->fd_recent, &c->fd_dup, &c->fd_cookie,
		       &c->fd_cookie_active, &c->fd_prefix };
	size_t i;

	if (!c)
		return;
	/* A program that stays attached (pinned) passes again at once. */
	for (i = 0; i < JITWG_LEASE_WORDS; i++)
		if (c->leased & (1u << i))
			set_lease_word(c, (__u32)i, 0);
	if (c->link_fd >= 0)
		close(c->link_fd);
	if (c->xprog) {
		xdp_program__detach(c->xprog, c->ifindex, c->xmode, 0);
		xdp_program__close(c->xprog);
	}
	if (c->attach_flags) {
		/* Detach only our program, should someone have replaced it. */
		LIBBPF_OPTS(bpf_xdp_attach_opts, o, .old_prog_fd = c->prog_fd);

		bpf_xdp_detach(c->ifindex, c->attach_flags | XDP_FLAGS_REPLACE,
			       &o);
	}
	ring_buffer__free(c->rb);
	pthread_mutex_destroy(&c->vlock);
	if (c->skel) {
		jitwg_bpf__destroy(c->skel);
	} else {
		for (i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
			if (*fds[i] >= 0)
				close(*fds[i]);
	}
	free(c);
}

int capture_fd(const struct capture *c)
{
	return ring_buffer__epoll_fd(c->rb);
}

/*
 * The kernel wakes a ring-buffer consumer only when that consumer had caught
 * up (bpf_ringbuf_submit's adaptive notification), and a wakeup costs the
 * XDP program some 400 ns per event. So while events keep coming, consume
 * in batches CAPTURE_COALESCE_US apart instead of sleeping in epoll: the
 * producer then finds data pending and skips the wakeup. An idle consumer
 * sleeps in epoll and the first event wakes it at once.
 */

int capture_poll(struct capture *c, int timeout_ms)
{
	int n;

	if (c->busy && timeout_ms) {
		usleep(CAPTURE_COALESCE_US);
		n = ring_buffer__consume(c->rb);
		if (n > 0)
			return n;
	}
	n = timeout_ms ? ring_buffer__poll(c->rb, timeout_ms) :
			 ring_buffer__consume(c->rb);
	c->busy = n > 0;
	if (n == -EINTR)
		return 0;
	if (n < 0)
		return fail(c, n, "ring buffer poll: %s", strerror(-n));
	return n;
}

bool capture_busy(const struct capture *c)
{
	return c->busy;
}

int capture_prog_fd(const struct capture *c)
{
	return c->prog_fd;
}

bool capture_is_native(const struct capture *c)
{
	return c->native;
}

int capture_set_ports(struct capture *c, const uint16_t *ports, size_t n)
{
	__u64 bits[PORT_WORDS] = { 0 };
	__u32 i;

	if (n > JITWG_MAX_PORTS)
		return fail(c, -E2BIG, "at most %d WireGuard ports", JITWG_MAX_PORTS);
	for (i = 0; i < n; i++) {
		if (!ports[i])
			return fail(c, -EINVAL, "port 0 is not a WireGuard port");
		bits[ports[i] / 64] |= 1ULL << (ports[i] % 64);
	}
	/*
	 * Each word is written whole: a packet sees its old or new value.
	 * One batch call rather than 1,024 updates (start-up time); kernels
	 * without batch support for arrays (< 5.6) take the loop.
	 */
	{
		__u32 keys[PORT_WORDS], count = PORT_WORDS;

		for (i = 0; i < PORT_WORDS; i++)
			keys[i] = i;
		if (!bpf_map_update_batch(c->fd_ports, keys, bits, &count, NULL))
			return 0;
	}
	for (i = 0; i < PORT_WORDS; i++)
		if (bpf_map_update_elem(c->fd_ports, &i, &bits[i], BPF_ANY))
			return fail(c, -errno, "cannot set ports: %s",
				    strerror(errno));
	return 0;
}

int capture_set_limits(struct capture *c, const struct jitwg_config *cfg)
{
	__u32 key = 0;

	if ((cfg->src_rate && !cfg->src_burst) ||
	    (cfg->global_rate && !cfg->global_burst))
		return fail(c, -EINVAL, "a rate limit needs a burst of at least 1");
	if (cfg->verified_rate && !cfg->verified_burst)
		return fail(c, -EINVAL, "a rate limit needs a burst of at least 1");
	if (cfg->src_rate > 1000000000 || cfg->global_rate > 1000000000 ||
	    cfg->verified_rate > 1000000000)
		return fail(c, -EINVAL, "rates are at most 1e9 per second");
	if (bpf_map_update_elem(c->fd_settings, &key, cfg, BPF_ANY))
		return fail(c, -errno, "cannot set limits: %s", strerror(errno));
	return 0;
}

/*
 * One word of the lease map (JITWG_LEASE_FULL or JITWG_LEASE_AUTO), until
 * until_ns; which words we hold is kept so that close gives them back.
 */
static int set_lease_word(struct capture *c, __u32 key, uint64_t until_ns)
{
	__u64 v = until_ns;

	if (c->fd_lease < 0 || c->fd_local < 0)
		return fail(c, -ENOENT,
			    "the pinned program has no lease map: load and pin "
			    "it again from this build's jitwg.bpf.o");
	if (bpf_map_update_elem(c->fd_lease, &key, &v, BPF_ANY)) {
		/* An array map refuses a key past its size. */
		if (errno == E2BIG)
			return fail(c, -EOPNOTSUPP,
				    "the pinned program's lease map has no %s word: load "
				    "and pin it again from this build's jitwg.bpf.o",
				    key == JITWG_LEASE_AUTO ? "automatic" : "lease");
		return fail(c, -errno, "cannot set lease word %u: %s", key, strerror(errno));
	}
	if (until_ns)
		c->leased |= 1u << key;
	else
		c->leased &= ~(1u << key);
	return 0;
}

int capture_set_lease(struct capture *c, uint64_t until_ns)
{
	return set_lease_word(c, JITWG_LEASE_FULL, until_ns);
}

int capture_set_lease_auto(struct capture *c, uint64_t until_ns)
{
	return set_lease_word(c, JITWG_LEASE_AUTO, until_ns);
}

/*
 * Delete every key of a map keyed by struct jitwg_src_key that keep[] (n
 * addresses) does not hold; 0 or -errno. Each key's successor is found
 * before the key is deleted: starting over from the first key after every
 * delete would rescan the emptied buckets each time (quadratic in a full
 * map).
 */
static int prune_addrs(int fd, const uint8_t (*keep)[16], size_t n)
{
	struct jitwg_src_key key, next;
	bool more = !bpf_map_get_next_key(fd, NULL, &key);
	size_t i;

	while (more) {
		more = !bpf_map_get_next_key(fd, &key, &next);
		for (i = 0; i < n && memcmp(keep[i], key.addr, 16); i++)
			;
		if (i == n && bpf_map_delete_elem(fd, &key) && errno != ENOENT)
			return -errno;
		key = next;
	}
	return 0;
}

int capture_set_local_addrs(struct capture *c, const uint8_t (*addrs)[16],
			    size_t n)
{
	struct jitwg_src_key key;
	__u8 one = 1;
	size_t i;
	int err;

	if (c->fd_local < 0)
		return fail(c, -ENOENT, "the pinned program has no local_addrs map: "
			    "load and pin it again from this build's jitwg.bpf.o");
	if (n > JITWG_LOCAL_ADDRS_MAX)
		return fail(c, -E2BIG, "%zu local addresses, at most %d", n,
			    JITWG_LOCAL_ADDRS_MAX);
	/* Add first, then drop what went: a present address never leaves. */
	for (i = 0; i < n; i++) {
		memcpy(key.addr, addrs[i], 16);
		if (bpf_map_update_elem(c->fd_local, &key, &one, BPF_ANY))
			return fail(c, -errno, "cannot set local addresses: %s",
				    strerror(errno));
	}
	err = prune_addrs(c->fd_local, addrs, n);
	if (err)
		return fail(c, err, "cannot drop a local address: %s", strerror(-err));
	return 0;
}

static int no_verified_map(struct capture *c)
{
	return fail(c, -ENOENT, "the pinned program has no verified map: "
		    "load and pin it again from this build's jitwg.bpf.o");
}

static __u32 verified_bit(const struct capture *c, const struct jitwg_src_key *k)
{
	__u64 w[2];

	memcpy(w, k->addr, sizeof(w));
	return JITWG_VERIFIED_HASH(w[0], w[1], c->vseed);
}

/*
 * Delete the verified sources whose time ran out by now_ns, then write the
 * bitmap anew from those left (a bit may serve several sources, so one
 * leaving cannot just clear its own). The caller holds vlock.
 */
static int prune_verified(struct capture *c, uint64_t now_ns)
{
	__u64 *bits = calloc(JITWG_VERIFIED_WORDS, sizeof(*bits));
	struct jitwg_src_key key, next;
	struct jitwg_verified v;
	bool more = !bpf_map_get_next_key(c->fd_verified, NULL, &key);
	__u32 i, h, count = JITWG_VERIFIED_WORDS;
	int err = 0;

	if (!bits)
		return -ENOMEM;
	while (more) {
		more = !bpf_map_get_next_key(c->fd_verified, &key, &next);
		if (!bpf_map_lookup_elem(c->fd_verified, &key, &v)) {
			if (v.until_ns <= now_ns) {
				if (bpf_map_delete_elem(c->fd_verified, &key) &&
				    errno != ENOENT) {
					err = -errno;
					goto out;
				}
			} else {
				h = verified_bit(c, &key);
				bits[h >> 6] |= 1ull << (h & 63);
			}
		}
		key = next;
	}
	{
		__u32 keys[JITWG_VERIFIED_WORDS];

		for (i = 0; i < JITWG_VERIFIED_WORDS; i++)
			keys[i] = i;
		/* Each word is written whole: a packet sees old or new bits. */
		if (bpf_map_update_batch(c->fd_vbits, keys, bits, &count, NULL))
			err = -errno;
	}
out:
	free(bits);
	return err;
}

static uint64_t mono_ns(void)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec * 1000000000ull + now.tv_nsec;
}

/* Insert or renew key; the caller holds vlock. */
static int mark_locked(struct capture *c, const struct jitwg_src_key *key,
		       uint64_t until_ns)
{
	struct jitwg_verified v = { .until_ns = until_ns };
	__u64 word;
	__u32 h, idx;
	int err;

	if (!until_ns) {
		if (bpf_map_delete_elem(c->fd_verified, key)) {
			if (errno == ENOENT)
				return 0;
			return fail(c, -errno, "cannot unmark a verified source: %s",
				    strerror(errno));
		}
		err = prune_verified(c, 0);
		if (err)
			return fail(c, err, "cannot rebuild verified_bits: %s",
				    strerror(-err));
		return 0;
	}
	/*
	 * Renewing keeps the bucket: a source that keeps completing
	 * handshakes must not get a fresh burst each time. The program may
	 * move the bucket between the read and the write; the write then
	 * hands back at most those few tokens.
	 */
	if (!bpf_map_lookup_elem(c->fd_verified, key, &v))
		v.until_ns = until_ns;
	if (bpf_map_update_elem(c->fd_verified, key, &v, BPF_ANY)) {
		if (errno != E2BIG)
			return fail(c, -errno, "cannot mark a verified source: %s",
				    strerror(errno));
		/* Full: make room from the sources whose time ran out. */
		err = prune_verified(c, mono_ns());
		if (err)
			return fail(c, err, "cannot prune verified sources: %s",
				    strerror(-err));
		if (bpf_map_update_elem(c->fd_verified, key, &v, BPF_ANY))
			return fail(c, -errno, "cannot mark a verified source (%d "
				    "verified now): %s", JITWG_VERIFIED_MAP_ENTRIES,
				    strerror(errno));
	}
	/* Its bit after the entry: a packet that sees the bit finds it. */
	h = verified_bit(c, key);
	idx = h >> 6;
	if (bpf_map_lookup_elem(c->fd_vbits, &idx, &word))
		return fail(c, -errno, "cannot read verified_bits: %s", strerror(errno));
	word |= 1ull << (h & 63);
	if (bpf_map_update_elem(c->fd_vbits, &idx, &word, BPF_ANY))
		return fail(c, -errno, "cannot write verified_bits: %s", strerror(errno));
	return 0;
}

int capture_mark_verified(struct capture *c, const uint8_t saddr[static 16],
			  uint64_t until_ns)
{
	static const uint8_t v4mapped[12] = { [10] = 0xff, [11] = 0xff };
	struct jitwg_src_key key;
	int err;

	if (c->fd_verified < 0 || c->fd_vbits < 0)
		return no_verified_map(c);
	/* The program's key: an IPv4 address, or an IPv6 /64. */
	memcpy(key.addr, saddr, 16);
	if (memcmp(saddr, v4mapped, sizeof(v4mapped)))
		memset(key.addr + 8, 0, 8);
	pthread_mutex_lock(&c->vlock);
	err = mark_locked(c, &key, until_ns);
	pthread_mutex_unlock(&c->vlock);
	return err;
}

int capture_forget_verified(struct capture *c)
{
	int err;

	if (c->fd_verified < 0 || c->fd_vbits < 0)
		return no_verified_map(c);
	pthread_mutex_lock(&c->vlock);
	err = prune_verified(c, UINT64_MAX);
	pthread_mutex_unlock(&c->vlock);
	if (err)
		return fail(c, err, "cannot forget verified sources: %s",
			    strerror(-err));
	return 0;
}

/*
 * Every source bucket full again. They are the slots of an array now; a
 * program pinned from an older build keeps them in an LRU hash, emptied.
 */
static int reset_src_buckets(int fd)
{
	static const __u64 full[JITWG_SRC_MAP_ENTRIES];
	static __u32 keys[JITWG_SRC_MAP_ENTRIES];
	struct bpf_map_info info = {};
	__u32 i, n = JITWG_SRC_MAP_ENTRIES, len = sizeof(info);

	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		return -errno;
	if (info.type != BPF_MAP_TYPE_ARRAY)
		return prune_addrs(fd, NULL, 0);
	if (info.max_entries != n || info.value_size != sizeof(full[0]))
		return -EINVAL;
	for (i = 0; i < n; i++)
		keys[i] = i;
	return bpf_map_update_batch(fd, keys, full, &n, NULL) ? -errno : 0;
}

int capture_reset_limits(struct capture *c)
{
	struct jitwg_bucket full = {};
	__u32 zero = 0;
	int err = reset_src_buckets(c->fd_src);

	if (err)
		return fail(c, err, "cannot reset source buckets: %s", strerror(-err));
	if (bpf_map_update_elem(c->fd_global, &zero, &full, BPF_ANY))
		return fail(c, -errno, "cannot reset the global bucket: %s",
			    strerror(errno));
	/* And the recent initiations, so that copies count as new again. */
	if (c->fd_dup >= 0 &&
	    bpf_map_update_elem(c->fd_dup, &zero, &full, BPF_ANY))
		return fail(c, -errno, "cannot reset the bucket of copies: %s",
			    strerror(errno));
	if (c->fd_prefix >= 0) {
		static const __u64 full[JITWG_PREFIX_SLOTS];
		__u32 keys[JITWG_PREFIX_SLOTS], i, n = JITWG_PREFIX_SLOTS;

		for (i = 0; i < n; i++)
			keys[i] = i;
		if (bpf_map_update_batch(c->fd_prefix, keys, full, &n, NULL))
			return fail(c, -errno, "cannot reset the prefix reserve: %s",
				    strerror(errno));
	}
	if (c->fd_recent >= 0) {
		static const struct jitwg_recent none[JITWG_RECENT_SLOTS];
		__u32 keys[JITWG_RECENT_SLOTS], i, n = JITWG_RECENT_SLOTS;

		for (i = 0; i < n; i++)
			keys[i] = i;
		if (bpf_map_update_batch(c->fd_recent, keys, none, &n, NULL))
			return fail(c, -errno, "cannot reset recent initiations: %s",
				    strerror(errno));
	}
	return 0;
}

int capture_read_counters(struct capture *c, uint64_t out[static JITWG_CTR_MAX])
{
	__u64 *vals;
	__u32 k;
	int i, err = 0;

	vals = calloc(c->ncpus, sizeof(*vals));
	if (!vals)
		return fail(c, -ENOMEM, "out of memory");
	for (k = 0; k < JITWG_CTR_MAX; k++) {
		out[k] = 0;
		if (bpf_map_lookup_elem(c->fd_counters, &k, vals)) {
			/* A pinned object from before counter k: it is 0. */
			if (errno == ENOENT)
				continue;
			err = fail(c, -errno, "cannot read counters: %s",
				   strerror(errno));
			break;
		}
		for (i = 0; i < c->ncpus; i++)
			out[k] += vals[i];
	}
	free(vals);
	return err;
}

int capture_read_settings(struct capture *c, struct jitwg_config *cfg,
			  uint16_t *ports, size_t max, size_t *n)
{
	__u32 key = 0, i;
	__u64 word;
	int b;

	if (bpf_map_lookup_elem(c->fd_settings, &key, cfg))
		return fail(c, -errno, "cannot read the limits: %s",
			    strerror(errno));
	*n = 0;
	for (i = 0; i < PORT_WORDS; i++) {
		if (bpf_map_lookup_elem(c->fd_ports, &i, &word))
			return fail(c, -errno, "cannot read the ports: %s",
				    strerror(errno));
		for (b = 0; word && b < 64; b++) {
			if (!(word & (1ULL << b)))
				continue;
			if (*n < max)
				ports[*n] = (uint16_t)(i * 64 + b);
			++*n;
		}
	}
	return 0;
}

/*
 * The program looks for cookie retries until the latest cookie's end
 * (cookie_active in jitwg.h): the word only grows, so an earlier cookie's
 * end never cuts a later one's short. Written after the sources, so the
 * program never looks before the entry is there.
 */
static int cookie_active_until(struct capture *c, uint64_t until_ns)
{
	__u64 cur = 0;
	__u32 zero = 0;

	if (c->fd_cookie_active < 0)
		return 0; /* an older pinned program looks for them always */
	if (bpf_map_lookup_elem(c->fd_cookie_active, &zero, &cur))
		return fail(c, -errno, "cannot read cookie_active: %s", strerror(errno));
	if (until_ns <= cur)
		return 0;
	if (bpf_map_update_elem(c->fd_cookie_active, &zero, &until_ns, BPF_ANY))
		return fail(c, -errno, "cannot write cookie_active: %s", strerror(errno));
	return 0;
}

int capture_cookie_sent(struct capture *c, const struct jitwg_cookie_key *keys, size_t n,
			uint64_t until_ns)
{
	struct jitwg_cookie_src v;
	size_t i;

	if (c->fd_cookie < 0)
		return fail(c, -ENOENT, "the pinned program has no cookie_sources map: "
			    "load this version's jitwg.bpf.o");
	for (i = 0; i < n; i++) {
		/*
		 * Renewing keeps the bucket: a source that draws reply after
		 * reply (junk mac2 from an address that got a cookie) must
		 * not get a fresh burst with each.
		 */
		memset(&v, 0, sizeof(v));
		bpf_map_lookup_elem(c->fd_cookie, keys + i, &v);
		v.until_ns = until_ns;
		if (bpf_map_update_elem(c->fd_cookie, keys + i, &v, BPF_ANY))
			return fail(c, -errno, "cannot record a cookie source: %s",
				    strerror(errno));
	}
	return n ? cookie_active_until(c, until_ns) : 0;
}
