#!/usr/bin/env python3
"""First contact's timeline from packets (scripts/bench_fc_timeline.sh).

analyze PREFIX: reads what bench_e2e.sh section 1 saved with
BENCH_SAVE_LOGS=PREFIX BENCH_CAPTURE=1 (PREFIX-{ib,cons}.pcap: the veth's
WireGuard packets in each alternating phase; PREFIX-{ib,cons}.log: jitwgd;
PREFIX-cp.log: the control plane; PREFIX-keys.txt; PREFIX-rtt-KIND.txt) and
prints p50/p90 of each segment of a client's first contact, for the floor
(peer preinstalled), jitwgd initiating back and, when that phase ran, the
floor's clients and fresh ones under --consume.

The clients run one at a time on one client device, so a client's packets
are the run of packets from its first initiation to the gateway's first
data packet. Which client a run belongs to comes from the gateway's first
handshake message: its mac1 is keyed with the recipient's public key
(WireGuard paper, section 5.4.4), which PREFIX-keys.txt lists.

jitwgd's stages are laid on the packet time line from the client's
initiation on the veth (captured at the client's end, XDP stamps the event
at the gateway's: a veth hands a packet over at once), t_event, the start
of queue_ms; its log's own time stamps have only millisecond resolution.

sync DIR N: two flushes as LMDB's commit does them (data pages written and
fdatasync'd, then the meta page through an O_DSYNC descriptor), N times
each of three shapes back to back, then N/3 times 100 ms apart, in files
under DIR; prints p50/p90/p99 in ms.

syscalls FILE: jitwgd's fdatasync and meta writes, from `perf trace`.

uapi SOCK N ENDPOINT RECORD GAP_MS KINDS: against wireguard-go's UAPI
socket, N sets of a new peer of each kind in turn, GAP_MS apart: "plain"
(keepalive 0) and "initiate" (with the second section jitwgd's
install-and-initiate adds: the keepalive switched to non-zero, which makes
wireguard-go send an initiation to ENDPOINT before it replies); each peer
removed again, untimed. Prints per-kind p50/p90/p99 of the set's round
trip, and writes "kind t_send t_reply pubkey_b64" lines to RECORD.

uapi-pcap RECORD PCAP: when each initiating set's initiation left (its mac1
names the peer), against the set's start and reply.
"""
import base64
import hashlib
import os
import socket
import struct
import sys
import time


def pct(vals, p):
    """Nearest rank, as bench_e2e.sh's pct()."""
    if not vals:
        return float("nan")
    v = sorted(vals)
    i = int(p / 100.0 * len(v) + 0.999999)
    return v[max(1, min(i, len(v))) - 1]


def read_pcap(path):
    """(time, from_gateway, type, length, payload) of each WireGuard packet."""
    d = open(path, "rb").read()
    magic = struct.unpack_from("<I", d, 0)[0]
    if magic == 0xA1B2C3D4:
        scale = 1e-6
    elif magic == 0xA1B23C4D:
        scale = 1e-9
    else:
        raise SystemExit("%s: not a little-endian pcap" % path)
    off, out = 24, []
    while off + 16 <= len(d):
        sec, frac, incl, _ = struct.unpack_from("<IIII", d, off)
        pkt = d[off + 16: off + 16 + incl]
        off += 16 + incl
        if len(pkt) < 14 + 20 + 8 or pkt[12:14] != b"\x08\x00":
            continue
        ihl = (pkt[14] & 15) * 4
        udp = 14 + ihl
        sport, dport, ulen = struct.unpack_from("!HHH", pkt, udp)
        payload = pkt[udp + 8:]
        if not payload:
            continue
        out.append((sec + frac * scale, sport == 51820, payload[0], ulen - 8, payload))
    return out


def mac1_keys(keys_file):
    """mac1 key -> public key (base64) for every client key."""
    out = {}
    for line in open(keys_file):
        f = line.split()
        pub = base64.b64decode(f[0])
        out[hashlib.blake2s(b"mac1----" + pub).digest()] = f[0]
    return out


def whose(payload, mkeys):
    """The client a gateway's handshake message is for (its mac1)."""
    end = {1: 116, 2: 60}.get(payload[0])
    if end is None or len(payload) < end + 16:
        return None
    for k, pub in mkeys.items():
        if hashlib.blake2s(payload[:end], key=k, digest_size=16).digest() == payload[end:end + 16]:
            return pub
    return None


def episodes(pkts, mkeys):
    """Each client's first contact: the named moments, in seconds.

    All clients share one client port, and the gateway keeps talking to
    earlier ones (its own handshakes with peers that are still installed),
    so a message joins the current client's run only if it is addressed to
    it: by the indexes of its handshake (receiver index = the other side's
    sender index, WireGuard paper section 5.4) or, for the gateway's
    initiation, which answers nothing, by its mac1 key, a client not seen
    before."""
    eps, cur, seen = [], None, set()
    for t, gw, typ, ln, payload in pkts:
        snd = payload[4:8]
        rcv = payload[8:12] if typ == 2 else payload[4:8]
        if not gw and typ == 1:
            if cur is None or "g_data" in cur:
                cur = {"c_init": t, "retries": 0, "c_idx": {snd}, "g_idx": set()}
                eps.append(cur)
            else:
                cur["retries"] += 1
                cur["c_idx"].add(snd)
            continue
        if cur is None:
            continue
        name = None
        if gw and typ == 2 and rcv in cur["c_idx"]:
            name = "g_resp"
        elif gw and typ == 1 and "g_init" not in cur and "g_resp" not in cur:
            key = whose(payload, mkeys)
            if key and key not in seen:
                name = "g_init"
        elif not gw and typ == 2 and rcv in cur["g_idx"]:
            name = "c_resp"
        elif gw and typ == 4 and rcv in cur["c_idx"]:
            name = "g_ka" if ln == 32 else "g_data"
        elif not gw and typ == 4 and rcv in cur["g_idx"]:
            name = "c_ka" if ln == 32 else "c_data"
        if not name or name in cur:
            continue
        cur[name] = t
        if name in ("g_resp", "g_init"):
            cur["key"] = whose(payload, mkeys)
            seen.add(cur["key"])
            cur["g_idx"].add(snd)
        elif name == "c_resp":
            cur["c_idx"].add(snd)
    return eps


def logfmt(line):
    out = {}
    for f in line.split():
        k, _, v = f.partition("=")
        out[k] = v
    return out


def stages_of(log):
    """jitwgd's stage times of each installed peer, by fingerprint."""
    out = {}
    try:
        for line in open(log):
            if "outcome=installed" in line:
                v = logfmt(line)
                out[v["peer"]] = {k: float(v[k]) for k in (
                    "queue_ms", "identify_ms", "auth_ms", "fetch_ms", "install_ms", "total_ms")}
    except OSError:
        pass
    return out


def analyze(prefix):
    mkeys = mac1_keys(prefix + "-keys.txt")
    order = [line.split() for line in open(prefix + "-keys.txt")]
    kinds = {f[0]: f[2] for f in order}
    service = {}
    for line in open(prefix + "-cp.log"):
        v = logfmt(line)
        if v.get("path") == "/peers/" and v.get("status") == "200":
            service[v["key"]] = float(v["service_ms"])
    ms = 1000.0
    seg = {}

    def add(name, val):
        seg.setdefault(name, []).append(val)

    def jitwgd(pre, e, st):
        """jitwgd's stages on the time line from the client's initiation
        (where XDP stamped it: t_event, the start of queue_ms)."""
        svc = service.get(e["key"][:8].replace("+", "-").replace("/", "_"))
        rest = st["total_ms"] - sum(st[k] for k in ("queue_ms", "identify_ms", "auth_ms",
                                                     "fetch_ms", "install_ms"))
        for k in st:
            add(pre + k, st[k])
        add(pre + "rest", rest)
        if svc is not None:
            add(pre + "service", svc)
            add(pre + "fetch_over", st["fetch_ms"] - svc)
            add(pre + "own", st["queue_ms"] + st["identify_ms"] + st["auth_ms"]
                + st["fetch_ms"] - svc + rest)
        add(pre + "to_install", st["total_ms"] - st["install_ms"])
        return st["total_ms"] - st["install_ms"]

    # Each phase's capture: (pcap, jitwgd's log, kind of the gateway's
    # own keys in it, kind of the fresh ones).
    done = {}
    incomplete = 0
    for phase, known, fresh in (("ib", "base", "ib"), ("cons", "kc", "cons")):
        try:
            pkts = read_pcap("%s-%s.pcap" % (prefix, phase))
        except OSError:
            continue
        st_by = stages_of("%s-%s.log" % (prefix, phase))
        for e in episodes(pkts, mkeys):
            kind = kinds.get(e.get("key"))
            kind = known if kind == "base" else kind
            answered = all(k in e for k in ("g_resp", "c_data", "g_data"))
            inited = all(k in e for k in ("g_init", "c_resp", "g_ka", "c_data", "g_data"))
            if kind in (known, "cons") and answered:
                pre = kind + "."
                add(pre + "wire", (e["g_data"] - e["c_init"]) * ms)
                add(pre + "gw_resp", (e["g_resp"] - e["c_init"]) * ms)
                add(pre + "c_data", (e["c_data"] - e["g_resp"]) * ms)
                add(pre + "g_data", (e["g_data"] - e["c_data"]) * ms)
                st = st_by.get(e["key"][:8]) if kind == "cons" else None
                if st:
                    jitwgd(pre + "j.", e, st)
                    # Given back after the set's reply: WireGuard answers
                    # the client's own initiation.
                    add(pre + "answer", (e["g_resp"] - e["c_init"]) * ms - st["total_ms"])
                done.setdefault(kind, {})[e["key"]] = e
            elif kind == "ib" and inited:
                pre = "ib."
                a = (e["g_init"] - e["c_init"]) * ms
                add(pre + "wire", (e["g_data"] - e["c_init"]) * ms)
                add(pre + "gw_init", a)
                add(pre + "c_resp", (e["c_resp"] - e["g_init"]) * ms)
                add(pre + "g_ka", (e["g_ka"] - e["c_resp"]) * ms)
                add(pre + "c_data", (e["c_data"] - e["g_ka"]) * ms)
                add(pre + "g_data", (e["g_data"] - e["c_data"]) * ms)
                add(pre + "after_gw_init", (e["g_data"] - e["g_init"]) * ms)
                st = st_by.get(e["key"][:8])
                if st:
                    start = jitwgd(pre + "j.", e, st)
                    add(pre + "j.wg_before_init", a - start)
                    add(pre + "j.wg_after_init", st["total_ms"] - a)
                done.setdefault(kind, {})[e["key"]] = e
            else:
                incomplete += 1
    rtt = {}
    for k in ("base", "ib", "kc", "cons"):
        try:
            rtt[k] = [float(x) for x in open("%s-rtt-%s.txt" % (prefix, k)) if x.strip() != "lost"]
        except OSError:
            rtt[k] = []

    def pairs(a, b):
        """Client j of kind b less client j of kind a: they ran back to back."""
        ka = [f[0] for f in order if f[2] == ("base" if a == "kc" else a)]
        kb = [f[0] for f in order if f[2] == b]
        da, db = done.get(a, {}), done.get(b, {})
        return [((db[y]["g_data"] - db[y]["c_init"]) - (da[x]["g_data"] - da[x]["c_init"])) * ms
                for x, y in zip(ka, kb) if x in da and y in db]

    def row(label, vals):
        if not vals:
            return
        print("  %-66s %8.3f %8.3f %5d" % (label, pct(vals, 50), pct(vals, 90), len(vals)))

    def jrows(pre):
        row("    jitwgd: queue_ms (XDP -> worker)", g(pre + "queue_ms"))
        row("    jitwgd: identify_ms", g(pre + "identify_ms"))
        row("    jitwgd: auth_ms (the timestamp's durable commit)", g(pre + "auth_ms"))
        row("    jitwgd: fetch_ms", g(pre + "fetch_ms"))
        row("      control plane's service_ms", g(pre + "service"))
        row("      fetch_ms beyond it (HTTP, parse, thread hops)", g(pre + "fetch_over"))
        row("    jitwgd: the rest (managed record, thread hops)", g(pre + "rest"))
        row("    jitwgd's own work (all of the above but service_ms)", g(pre + "own"))
        row("    = XDP -> the UAPI set's start", g(pre + "to_install"))

    g = seg.get
    print("first contact's timeline (ms, on the veth); complete runs: %s; %d incomplete or unknown"
          % (", ".join("%s %d" % (k, len(v)) for k, v in done.items()), incomplete))
    print("  %-66s %8s %8s %5s" % ("", "p50", "p90", "n"))

    def section(kind, title):
        """A client kind's title and its end-to-end rows; False if it has no run."""
        if not g(kind + ".wire"):
            return False
        print(title)
        row("client's ping, round trip (ping)", rtt[kind])
        row("wire: client's initiation -> gateway's data reply", g(kind + ".wire"))
        return True

    for kind, title in (("base", "floor (peer preinstalled)"),
                        ("kc", "the floor's clients under jitwgd --consume (given back)")):
        if not section(kind, title):
            continue
        row("  client's initiation -> gateway's response", g(kind + ".gw_resp"))
        row("  gateway's response -> client's first data", g(kind + ".c_data"))
        row("  client's first data -> gateway's reply", g(kind + ".g_data"))
    if section("ib", "jitwgd, initiating back"):
        row("  client's initiation -> gateway's initiation", g("ib.gw_init"))
        jrows("ib.j.")
        row("    wireguard-go: the set's start -> its initiation on the wire", g("ib.j.wg_before_init"))
        row("    (wireguard-go: the initiation -> the set's reply, off the path)", g("ib.j.wg_after_init"))
        row("    (install_ms, both)", g("ib.j.install_ms"))
        row("  gateway's initiation -> client's response", g("ib.c_resp"))
        row("  client's response -> gateway's keepalive", g("ib.g_ka"))
        row("  gateway's keepalive -> client's first data", g("ib.c_data"))
        row("  client's first data -> gateway's reply", g("ib.g_data"))
        row("  gateway's initiation -> gateway's data reply", g("ib.after_gw_init"))
    if section("cons", "jitwgd --consume, fresh clients (answered: their initiation given back)"):
        row("  client's initiation -> gateway's response", g("cons.gw_resp"))
        jrows("cons.j.")
        row("    install_ms (the UAPI set, on the path here)", g("cons.j.install_ms"))
        row("    the set's reply -> wireguard-go's response (give-back, answer)", g("cons.answer"))
        row("  gateway's response -> client's first data", g("cons.c_data"))
        row("  client's first data -> gateway's reply", g("cons.g_data"))
    print("the gaps")
    row("initiating back minus the floor, client by client (wire)", pairs("base", "ib"))
    row("--consume fresh minus the floor's clients under it, client by client", pairs("kc", "cons"))
    if g("ib.after_gw_init") and g("base.c_data"):
        print("  p50s: the extra handshake leg (gateway's initiation -> its data reply, less the"
              " floor's response -> reply) %.3f"
              % (pct(g("ib.after_gw_init"), 50) - pct(g("base.c_data"), 50) - pct(g("base.g_data"), 50)))
        print("  p50s: wireguard-go's set start -> its initiation, less the floor's response time %.3f"
              % (pct(g("ib.j.wg_before_init") or [0], 50) - pct(g("base.gw_resp"), 50)))


def bare_sync(dirname, n):
    """In turn: one data page rewritten inside the file; one page that
    grows the file (a commit that cannot reuse a freed page: fdatasync has
    the new size to write too); three pages far apart inside the file (a
    small B-tree update: leaf, branch, free list). Each time, fdatasync
    and then the meta page through an O_DSYNC descriptor, as LMDB's
    commit."""
    page = os.urandom(4096)
    size = 1024  # pages: 4 MiB
    kinds = ("one page", "growing", "3 pages")
    times = {k: [] for k in kinds}
    fds = {}
    for k in kinds:
        path = os.path.join(dirname, "fc-sync-%s.bin" % k.replace(" ", "-"))
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        for i in range(0, size, 64):
            os.pwrite(fd, page * 64, 4096 * i)
        os.fsync(fd)
        fds[k] = (path, fd, os.open(path, os.O_RDWR | os.O_DSYNC))
    try:
        for i in range(len(kinds) * n):
            k = kinds[i % len(kinds)]
            r = i // len(kinds)
            path, fd, fdd = fds[k]
            if k == "growing":
                offs = [size + r]
            elif k == "3 pages":
                offs = [2 + (r * 7) % 300, 340 + (r * 13) % 300, 700 + (r * 11) % 300]
            else:
                offs = [2 + r % 1000]
            t = time.perf_counter()
            for o in offs:
                os.pwrite(fd, page, 4096 * o)
            os.fdatasync(fd)
            os.pwrite(fdd, page[:128], 4096 * (r % 2))
            times[k].append((time.perf_counter() - t) * 1000.0)
        # As jitwgd meets them: one client's commit now and then, the
        # machine idle in between (the 100 ms between bench-e2e's clients).
        k = "one page, 100 ms apart"
        kinds += (k,)
        times[k] = []
        path, fd, fdd = fds["one page"]
        for r in range(max(n // 3, 10)):
            time.sleep(0.1)
            t = time.perf_counter()
            os.pwrite(fd, page, 4096 * (2 + r % 1000))
            os.fdatasync(fd)
            os.pwrite(fdd, page[:128], 4096 * (r % 2))
            times[k].append((time.perf_counter() - t) * 1000.0)
    finally:
        for path, fd, fdd in fds.values():
            os.close(fd)
            os.close(fdd)
            os.unlink(path)
    for k in kinds:
        v = times[k]
        print("  two flushes (data + fdatasync, meta through O_DSYNC), %-22s "
              "%3d times: p50 %.3f p90 %.3f p99 %.3f ms"
              % (k, len(v), pct(v, 50), pct(v, 90), pct(v, 99)))


def syscalls(path):
    """jitwgd's own flushes, from `perf trace` output: the data file is the
    one fdatasync'd; its meta descriptor (O_DSYNC) the one written only in
    120-byte meta records; managed.mdb, committed unsynced, is neither."""
    import re
    rx = re.compile(r"\(\s*([0-9.]+) ms\): \S+ (\w+)\(fd: (\d+)(?:.*?count: (\d+))?")
    calls = []
    for line in open(path):
        m = rx.search(line)
        if m:
            calls.append((m.group(2), m.group(3), float(m.group(1)), int(m.group(4) or 0)))
    synced = {fd for c, fd, _, _ in calls if c == "fdatasync"}
    pages = {fd for c, fd, _, cnt in calls if c in ("pwrite64", "writev") and cnt != 120}
    meta = {fd for c, fd, _, cnt in calls if c == "pwrite64" and cnt == 120} - pages
    rows = [("fdatasync of the data file", [t for c, fd, t, _ in calls
                                            if c == "fdatasync" and fd in synced]),
            ("meta page through O_DSYNC", [t for c, fd, t, _ in calls
                                           if c == "pwrite64" and fd in meta]),
            ("page writes to the data file (writev, pwrite)",
             [t for c, fd, t, _ in calls if c in ("pwrite64", "writev") and fd in synced])]
    for label, v in rows:
        print("  jitwgd's %-48s p50 %.3f p90 %.3f ms (n %d)"
              % (label, pct(v, 50), pct(v, 90), len(v)))


def uapi_call(s, req):
    s.sendall(req.encode())
    buf = b""
    while not buf.endswith(b"\n\n"):
        r = s.recv(4096)
        if not r:
            raise SystemExit("uapi: connection closed")
        buf += r
    if b"errno=0\n" not in buf:
        raise SystemExit("uapi: %r" % buf)


def bare_uapi(sock, n, endpoint, out, gap_ms, kinds):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sock)
    times = {k: [] for k in kinds}
    rec = open(out, "w")
    for i in range(len(kinds) * n):
        kind = kinds[i % len(kinds)]
        pub = os.urandom(32)
        hx = pub.hex()
        req = ("set=1\npublic_key=%s\nendpoint=%s\nreplace_allowed_ips=true\n"
               "allowed_ip=10.99.%d.%d/32\npersistent_keepalive_interval=0\n"
               % (hx, endpoint, (i // 250) % 250, i % 250 + 1))
        if kind == "initiate":
            req += "public_key=%s\nupdate_only=true\npersistent_keepalive_interval=25\n" % hx
        req += "\n"
        t0 = time.time()
        p0 = time.perf_counter()
        uapi_call(s, req)
        p1 = time.perf_counter()
        times[kind].append((p1 - p0) * 1000.0)
        rec.write("%s %.6f %.6f %s\n" % (kind, t0, t0 + (p1 - p0), base64.b64encode(pub).decode()))
        # Untimed: the peer goes, so the device stays small and no
        # handshake retry of an earlier peer lands in a later set.
        uapi_call(s, "set=1\npublic_key=%s\nremove=true\n\n" % hx)
        time.sleep(gap_ms / 1000.0)
    rec.close()
    for k in kinds:
        v = times[k]
        print("  UAPI set of a new peer, %-8s %3d times, %3d ms apart: p50 %.3f p90 %.3f p99 %.3f ms"
              % (k, len(v), gap_ms, pct(v, 50), pct(v, 90), pct(v, 99)))


def uapi_pcap(rec, pcap):
    """The bare set's initiation on the wire, from the set's start."""
    sends = []
    mk = {}
    for line in open(rec):
        kind, t0, t1, pub = line.split()
        if kind == "initiate":
            k = hashlib.blake2s(b"mac1----" + base64.b64decode(pub)).digest()
            mk[k] = pub
            sends.append((pub, float(t0), float(t1)))
    seen = {}
    for t, gw, typ, ln, payload in read_pcap(pcap):
        if typ == 1:
            pub = whose(payload, mk)
            if pub and pub not in seen:
                seen[pub] = t
    before, after = [], []
    for pub, t0, t1 in sends:
        if pub in seen:
            before.append((seen[pub] - t0) * 1000.0)
            after.append((t1 - seen[pub]) * 1000.0)
    print("  of the initiating set (%d of %d initiations captured): start -> initiation on the "
          "wire p50 %.3f p90 %.3f; initiation -> reply p50 %.3f p90 %.3f ms"
          % (len(before), len(sends), pct(before, 50), pct(before, 90), pct(after, 50),
             pct(after, 90)))


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "analyze":
        analyze(sys.argv[2])
    elif len(sys.argv) >= 4 and sys.argv[1] == "sync":
        bare_sync(sys.argv[2], int(sys.argv[3]))
    elif len(sys.argv) >= 8 and sys.argv[1] == "uapi":
        bare_uapi(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5], int(sys.argv[6]),
                  sys.argv[7].split(","))
    elif len(sys.argv) >= 3 and sys.argv[1] == "syscalls":
        syscalls(sys.argv[2])
    elif len(sys.argv) >= 4 and sys.argv[1] == "uapi-pcap":
        uapi_pcap(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
