#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Reference control plane for jitwg (tests and demo). Standard library only.

Serves the jitwgd contract on loopback:

  GET /peers/<key>      <key> = public key, unpadded base64url
      200  {"public_key": "<base64>", "allowed_ips": [...],
            "preshared_key": "<base64>", "persistent_keepalive": N, "ttl": N}
      404  unknown key          401  token missing or wrong (--token-file)

Peers come from --peers PATH, and changes are seen at once (tests may add or
remove peers while the server runs; add files by rename):
  - a directory: every *.json file in it is one peer record (an object with
    at least "public_key" and "allowed_ips"); a file named after the key
    (<base64url key>.json, '=' padding optional) is found without a scan;
  - a file: one JSON object mapping base64 public key -> record (the record's
    "public_key" defaults to the map key).
Records are served as stored (extra fields included), so a test can also
serve a record that is wrong on purpose.

Fault switches (command line, or at runtime with POST /_mode):
  --delay S          sleep S seconds before answering
  --status CODE      answer every /peers request with CODE (e.g. 500)
  --malformed KIND   json      truncated JSON
                     wrong-key public_key of another key
                     bad-ip    an allowed IP that does not parse
                     host-bits an allowed IP with host bits set (10.0.0.2/24)
                     huge      a 64 MiB body without Content-Length
                               (connection-delimited; bytes actually written
                               are counted in /_stats "huge_bytes_sent")
                     huge-cl   the same with a Content-Length header
                     hang      accept the request and never answer (the
                               handler ends when the client disconnects)
                     none      normal answers (default)

Admin endpoints (no token, loopback only):
  GET  /_stats   {"requests": N, "peers_requests": N, "by_key": {key: N},
                  "by_status": {code: N}, "huge_bytes_sent": N,
                  "max_concurrent": N (most /peers requests at once),
                  "mode": {...}}
  POST /_mode    JSON body with any of "delay", "status", "malformed"
                 ("status": 0 or null restores normal status handling)
  POST /_reset   zero the counters

Each request is logged to stderr (or --log FILE) as one logfmt line, with
its service time (service_ms: from its request line read to its answer
written); the token is never logged.

Listens on 127.0.0.1 (or --listen ADDR on loopback only), --port N; with
--port 0 the kernel picks one and --port-file FILE receives it (written
atomically once the socket listens). --tls-cert/--tls-key serve HTTPS (the
TLS handshake runs in the accepting thread: fine for tests, not for load).
"""
import argparse
import base64
import hmac
import http.server
import ipaddress
import json
import os
import signal
import socket
import sys
import threading
import time

HUGE = 64 << 20
STATE_LOCK = threading.Lock()
STOP = threading.Event()


class State:
    def __init__(self, args):
        self.peers = args.peers
        self.token = None
        if args.token_file:
            with open(args.token_file, encoding="ascii") as f:
                self.token = f.readline().strip()
            if not self.token:
                sys.exit("control-plane: empty token file")
        self.mode = {"delay": args.delay, "status": args.status,
                     "malformed": args.malformed}
        self.log = open(args.log, "a", buffering=1) if args.log else sys.stderr
        self.active = 0
        self.reset()

    def reset(self):
        self.requests = 0
        self.peers_requests = 0
        self.by_key = {}
        self.by_status = {}
        self.huge_bytes_sent = 0
        self.max_active = 0

    def lookup(self, raw):
        """The record for a raw 32-byte key, or None.

        A directory is looked up by file name first (<base64url key>.json,
        padded or not: one open, whatever the number of peers), then through
        an index of every record, rebuilt when the directory changes (files
        are added by rename, which changes its mtime). A map file is re-read
        when it changes."""
        path = self.peers
        if not path:
            return None
        if os.path.isdir(path):
            url = base64.urlsafe_b64encode(raw).decode()
            for name in (url, url.rstrip("=")):
                try:
                    with open(os.path.join(path, name + ".json")) as f:
                        return json.load(f)
                except FileNotFoundError:
                    continue
                except (OSError, ValueError):
                    return None  # being written, or broken on purpose
        return self.index().get(raw)

    def index(self):
        path = self.peers
        try:
            stamp = os.stat(path).st_mtime_ns
        except OSError:
            return {}
        with STATE_LOCK:
            if getattr(self, "_stamp", None) == stamp:
                return self._index
        out = {}
        if os.path.isdir(path):
            for name in sorted(os.listdir(path)):
                if not name.endswith(".json"):
                    continue
                try:
                    with open(os.path.join(path, name)) as f:
                        rec = json.load(f)
                    out[base64.b64decode(rec["public_key"])] = rec
                except (OSError, ValueError, KeyError, TypeError):
                    continue  # a file being written, or broken on purpose
        else:
            try:
                with open(path) as f:
                    data = json.load(f)
                for k, rec in data.items():
                    rec = dict(rec)
                    rec.setdefault("public_key", k)
                    out[base64.b64decode(k)] = rec
            except (OSError, ValueError, AttributeError):
                return {}
        with STATE_LOCK:
            self._stamp, self._index = stamp, out
        return out


def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a real API would
    server_version = "jitwg-control-plane"
    disable_nagle_algorithm = True  # headers and body are two writes

    def log_message(self, fmt, *args):  # replaced by logfmt lines below
        pass

    def parse_request(self):
        # Service time starts once the request line is in: on a kept-alive
        # connection the wait for the next request is the client's, not ours.
        self.t_start = time.perf_counter()
        return super().parse_request()

    def note(self, status, key="-", extra=""):
        st = self.server.state
        with STATE_LOCK:
            st.by_status[str(status)] = st.by_status.get(str(status), 0) + 1
        st.log.write('ts=%.3f method=%s path=%s status=%s key=%s service_ms=%.3f%s\n' %
                     (time.time(), self.command,
                      "/peers/" if self.path.startswith("/peers/")
                      else self.path.split("?")[0][:32],
                      status, key[:8],
                      (time.perf_counter() - self.t_start) * 1000, extra))

    def reply(self, status, body=b"", ctype="application/json", key="-"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.note(status, key)

    def reply_json(self, status, obj, key="-"):
        self.reply(status, json.dumps(obj).encode() + b"\n", key=key)

    def do_GET(self):
        st = self.server.state
        with STATE_LOCK:
            st.requests += 1
        path = self.path.split("?")[0]
        if path == "/_stats":
            with STATE_LOCK:
                snap = {"requests": st.requests,
                        "peers_requests": st.peers_requests,
                        "by_key": dict(st.by_key),
                        "by_status": dict(st.by_status),
                        "huge_bytes_sent": st.huge_bytes_sent,
                        "max_concurrent": st.max_active,
                        "mode": dict(st.mode)}
            return self.reply_json(200, snap)
        if not path.startswith("/peers/"):
            return self.reply_json(404, {"error": "no such endpoint"})
        key = path[len("/peers/"):]
        with STATE_LOCK:
            st.peers_requests += 1
            st.by_key[key] = st.by_key.get(key, 0) + 1
            st.active += 1
            st.max_active = max(st.max_active, st.active)
            mode = dict(st.mode)
        try:
            return self.peers(st, key, mode)
        finally:
            with STATE_LOCK:
                st.active -= 1

    def peers(self, st, key, mode):
        if st.token is not None:
            got = self.headers.get("Authorization", "")
            if not hmac.compare_digest(got.encode(),
                                       ("Bearer " + st.token).encode()):
                return self.reply_json(401, {"error": "unauthorized"}, key)
        if mode["delay"]:
            if STOP.wait(float(mode["delay"])):
                return
        if mode["malformed"] == "hang":
            # Never answer, but end when the client gives up, so hung
            # requests do not pile up across tests.
            self.note("hang", key)
            self.close_connection = True
            self.connection.settimeout(0.2)
            while not STOP.is_set():
                try:
                    if not self.connection.recv(4096):
                        break
                except socket.timeout:
                    continue
                except OSError:
                    break
            return
        if mode["status"]:
            return self.reply_json(int(mode["status"]),
                                   {"error": "injected"}, key)
        try:
            raw = b64url_decode(key)
            if len(raw) != 32 or "=" in key or "+" in key or "/" in key:
                raise ValueError
        except ValueError:
            return self.reply_json(400, {"error": "bad key"}, key)
        rec = st.lookup(raw)
        if rec is None:
            return self.reply_json(404, {"error": "unknown key"}, key)
        rec = dict(rec)
        m = mode["malformed"]
        if m == "json":
            body = json.dumps(rec).encode()
            return self.reply(200, body[:len(body) // 2], key=key)
        if m == "wrong-key":
            rec["public_key"] = base64.b64encode(os.urandom(32)).decode()
        elif m == "bad-ip":
            rec["allowed_ips"] = ["10.0.0.300/32"]
        elif m == "host-bits":
            rec["allowed_ips"] = ["10.0.0.2/24"]
        elif m in ("huge", "huge-cl"):
            return self.huge(m == "huge-cl", key)
        return self.reply_json(200, rec, key)

    def huge(self, with_length, key):
        st = self.server.state
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if with_length:
            self.send_header("Content-Length", str(HUGE))
        else:
            self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        chunk = b'{"pad": "' + b"x" * (65536 - 9)
        sent = 0
        try:
            while sent < HUGE:
                self.wfile.write(chunk)
                sent += len(chunk)
                chunk = b"x" * 65536
        except OSError:
            pass  # the client aborted, as it should
        with STATE_LOCK:
            st.huge_bytes_sent += sent
        self.note(200, key, " huge_bytes_sent=%d" % sent)

    def do_POST(self):
        st = self.server.state
        path = self.path.split("?")[0]
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        if path == "/_reset":
            with STATE_LOCK:
                st.reset()
            return self.reply_json(200, {"ok": True})
        if path == "/_mode":
            try:
                req = json.loads(body or b"{}")
                with STATE_LOCK:
                    for k in ("delay", "status", "malformed"):
                        if k in req:
                            st.mode[k] = req[k] if req[k] is not None else \
                                {"delay": 0, "status": 0,
                                 "malformed": "none"}[k]
                    mode = dict(st.mode)
            except (ValueError, AttributeError):
                return self.reply_json(400, {"error": "bad mode"})
            return self.reply_json(200, mode)
        return self.reply_json(404, {"error": "no such endpoint"})


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024


def main():
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--peers", help="directory of *.json records, or one JSON map file")
    p.add_argument("--token-file", help="require 'Authorization: Bearer <first line>'")
    p.add_argument("--listen", default="127.0.0.1", help="loopback address [127.0.0.1]")
    p.add_argument("--port", type=int, default=0, help="TCP port, 0 = any [0]")
    p.add_argument("--port-file", help="write the chosen port here")
    p.add_argument("--log", help="request log file [stderr]")
    p.add_argument("--tls-cert", help="serve HTTPS with this certificate (PEM)")
    p.add_argument("--tls-key", help="private key of --tls-cert (PEM)")
    p.add_argument("--delay", type=float, default=0.0, help="seconds before each answer")
    p.add_argument("--status", type=int, default=0, help="answer /peers with this status")
    p.add_argument("--malformed", default="none",
                   choices=["none", "json", "wrong-key", "bad-ip", "host-bits",
                            "huge", "huge-cl", "hang"])
    args = p.parse_args()
    # Many keep-alive connections = many threads: switch the GIL sooner so
    # a thread with a request ready does not wait 5 ms behind another.
    sys.setswitchinterval(0.0005)

    if not ipaddress.ip_address(args.listen).is_loopback:
        sys.exit("control-plane: --listen must be a loopback address")
    Server.address_family = (
        socket.AF_INET6 if ":" in args.listen else socket.AF_INET)
    srv = Server((args.listen, args.port), Handler)
    if args.tls_cert:
        import ssl
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    srv.state = State(args)
    port = srv.server_address[1]
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.rename(tmp, args.port_file)

    def stop(*_):
        STOP.set()
        threading.Thread(target=srv.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    srv.state.log.write("msg=listening addr=%s port=%d\n" % (args.listen, port))
    srv.serve_forever(poll_interval=0.1)
    srv.server_close()


if __name__ == "__main__":
    main()
