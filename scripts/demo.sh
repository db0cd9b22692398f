#!/usr/bin/env bash
# make demo: a WireGuard gateway with no peers learns its first client just
# in time. Two namespaces joined by a veth; wireguard-go on both sides; the
# reference control plane knows the client's key; jitwgd watches the
# gateway's veth with XDP in native mode. Everything it starts is removed on
# exit, also on Ctrl-C.
SCRIPT=demo
. "$(dirname "$0")/e2e_script.sh"
trap 'echo; echo "interrupted: cleaning up"; exit 130' INT TERM

IDLE=${DEMO_IDLE:-5}
bold() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

[ -x "$JITWGD" ] || { echo "demo: $JITWGD missing: run make" >&2; exit 1; }

# ms_field LINE NAME: the value of NAME= in a logfmt line.
field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<"$1"; }

cat <<EOF

jitwg demo: just-in-time WireGuard peers

   ns $(ns c) (client)                     ns $(ns g) (gateway)
   wireguard-go jw${JITWG_RUNID}c1  10.77.0.2          wireguard-go jw${JITWG_RUNID}g  10.77.0.1/16, no peers
   veth vc 192.168.77.2  <--------->  veth vg 192.168.77.1   XDP (native) -> jitwgd
                                      control plane http://127.0.0.1 (knows the client)
EOF

tmp_dir
e2e_topo
e2e_client A 10.77.0.2
e2e_cp
cp_add "$A_PUB" 10.77.0.2/32
echo
echo "client key ${A_PUB:0:8}... registered at the control plane with allowed IP 10.77.0.2/32"

bold "wg show on the gateway, before"
ip netns exec "$G" wg show "$WGG"

bold "starting jitwgd (idle timeout ${IDLE}s for the demo; the default is 300s)"
e2e_jitwgd --idle-timeout "$IDLE" --evict-interval 1
grep msg=ready "$JW_LOG" | sed 's/^/  /'

bold "the client pings the gateway's tunnel address"
cping A 3 5 || fail "ping did not cross the tunnel"
wait_for 5 grep -q msg=handshake "$JW_LOG" || fail "no handshake logged"

prov=$(grep -m1 'msg=provision.*outcome=installed' "$JW_LOG")
hs=$(grep -m1 'msg=handshake' "$JW_LOG")
bold "timeline of the first contact (ms since XDP saw the initiation)"
python3 - "$(field "$prov" queue_ms)" "$(field "$prov" identify_ms)" \
	"$(field "$prov" auth_ms)" "$(field "$prov" fetch_ms)" \
	"$(field "$prov" total_ms)" "$(field "$hs" since_initiation_ms)" \
	"$(field "$prov" source)" "$(field "$prov" initiated)" <<'EOF'
import sys
q, i, a, f, tot, hs = map(float, sys.argv[1:7])
src, init = sys.argv[7], sys.argv[8]
rows = [
    ("initiation seen (XDP)", 0.0, ""),
    ("queued to a worker", q, ""),
    ("identified (1 DH)", q + i, ""),
    ("authenticated (2nd DH, fresh)", q + i + a, ""),
    ("fetched (%s)" % src, q + i + a + f, ""),
    ("installed%s" % (", gateway initiates" if init == "true" else ""), tot, ""),
    ("handshake done", hs, ""),
]
prev = 0.0
for name, t, _ in rows:
    print("  %-36s %8.2f ms   (+%.2f)" % (name, t, t - prev))
    prev = t
EOF
echo
echo "jitwgd's log lines:"
grep -E 'msg=(provision|handshake)' "$JW_LOG" | sed 's/^/  /'

bold "wg show on the gateway, after"
ip netns exec "$G" wg show "$WGG"

bold "the client goes quiet; eviction after ${IDLE}s without a handshake"
wait_for $((IDLE + 15)) grep -q 'msg=evict.*outcome=evicted' "$JW_LOG" || fail "no eviction"
ev=$(grep -m1 'msg=evict' "$JW_LOG")
echo "  evicted $(field "$ev" idle_s) s after its last handshake:"
echo "  $ev"
ip netns exec "$G" wg show "$WGG"

bold "the client comes back: pings until the tunnel answers"
cat <<EOF
  Its session keys are younger than 180 s, so it first sends data the gateway
  can no longer decrypt; WireGuard starts a new handshake after ~15 s of
  silence (KEEPALIVE 10 s + REKEY 5 s), and jitwgd reinstalls the peer from
  its cache. With the default idle timeout (300 s > 180 s) that wait never
  happens: the client's keys have expired and its first packet is an
  initiation.
EOF
t0=$(date +%s)
ok=
for _ in $(seq 1 40); do
	if cping A 1 1 >/dev/null 2>&1; then ok=1; break; fi
done
[ -n "$ok" ] || fail "the client did not come back"
echo "  ping answered again after $(($(date +%s) - t0)) s"
grep -E 'msg=(provision|handshake)' "$JW_LOG" | tail -2 | sed 's/^/  /'
ip netns exec "$G" wg show "$WGG"

bold "stopping jitwgd (SIGTERM: detaches XDP, closes the cache)"
e2e_jitwgd_stop
tail -2 "$JW_LOG" | sed 's/^/  /'
ip -n "$G" link show vg | grep -q xdp && echo "  XDP still attached!" || echo "  XDP detached from vg"
echo
echo "demo done; cleaning up namespaces and processes"
