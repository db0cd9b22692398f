#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Schedule and analysis for the churn simulation (scripts/bench_churn.sh).

  churn.py schedule --registered R --day S --peak N --session S --seed X
      "index start_s end_s" lines for `jitwg-loadgen clients`: one compressed
      day of Poisson arrivals whose rate follows (1 - cos)/2 from a trough at
      midnight (--trough of the peak rate) to a peak at noon, sized so that
      about N clients are present at the peak; session lengths exponential
      with mean --session; each session a client drawn uniformly from the R
      registered ones that has no session open at the time.

  churn.py analyze --loadgen-samples F --device-samples F --t0 EPOCH
      --events F --registered R --warmup S --out-dat F --out-md F
      joins the load generator's samples (t present active handshaked) with
      the gateway's device peer counts ("epoch count"), writes a data file
      for gnuplot (t registered device active present) and a Markdown table.
"""
import argparse
import bisect
import math
import random
import sys


def schedule(a):
    rng = random.Random(a.seed)
    # Present clients at the peak ~ peak arrival rate * mean session (Little).
    lam_peak = a.peak / a.session
    busy = {}
    t = 0.0
    out = []
    while True:
        # Thinning: candidates at the peak rate, kept with rate(t)/peak.
        t += rng.expovariate(lam_peak)
        if t >= a.day:
            break
        shape = (1 - math.cos(2 * math.pi * t / a.day)) / 2
        if rng.random() > a.trough + (1 - a.trough) * shape:
            continue
        length = max(1.0, rng.expovariate(1 / a.session))
        end = min(t + length, a.day)
        for _ in range(100):
            i = rng.randrange(a.registered)
            if busy.get(i, -1) < t:
                break
        else:
            continue
        busy[i] = end
        out.append("%d %.3f %.3f" % (i, t, end))
    sys.stdout.write("\n".join(out) + "\n")


def pct(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    i = max(1, int(math.ceil(p / 100 * len(xs))))
    return xs[i - 1]


def analyze(a):
    lg = []
    for line in open(a.loadgen_samples):
        f = line.split()
        if len(f) == 4:
            lg.append((float(f[0]), int(f[1]), int(f[2]), int(f[3])))
    dev = []
    for line in open(a.device_samples):
        f = line.split()
        if len(f) == 2:
            dev.append((float(f[0]) - a.t0, int(f[1])))
    dev_t = [d[0] for d in dev]
    rows = []
    for t, present, active, _ in lg:
        # The device sample nearest in time (both about once a second).
        k = bisect.bisect_left(dev_t, t)
        best = None
        for j in (k - 1, k):
            if 0 <= j < len(dev) and (best is None or
                                      abs(dev[j][0] - t) < abs(dev[best][0] - t)):
                best = j
        if best is None or abs(dev[best][0] - t) > 1.0:
            continue
        rows.append((t, a.registered, dev[best][1], active, present))
    with open(a.out_dat, "w") as f:
        f.write("# t_s registered device active present\n")
        for r in rows:
            f.write("%.1f %d %d %d %d\n" % r)
    # A client's first session is new to jitwgd (fetched from the control
    # plane); a later one may come back from its cache.
    fc, fc_new, fc_ret, seen = [], [], [], set()
    for line in open(a.events):
        f = line.split()
        if len(f) == 4 and f[2] == "first_contact":
            fc.append(float(f[3]))
            (fc_ret if f[1] in seen else fc_new).append(float(f[3]))
            seen.add(f[1])
    if a.out_fc:
        with open(a.out_fc, "w") as f:
            f.write("".join("%.3f\n" % x for x in fc))
    warm = [r for r in rows if r[0] >= a.warmup and r[3] > 0]
    ratios = [r[2] / r[3] for r in warm]
    worst = max(warm, key=lambda r: r[2] / r[3]) if warm else None
    over = sum(1 for x in ratios if x > a.bound)
    with open(a.out_md, "w") as f:
        f.write("| registered | samples after warm-up | device / active max | "
                "mean | samples over %.2f | peak device | peak active | "
                "first contacts | p50 ms | p90 ms | p99 ms | "
                "new clients: n, p50, p99 ms | returning: n, p50, p99 ms |\n" % a.bound)
        f.write("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
        f.write("| %d | %d | %s | %s | %d | %d | %d | %d | %.1f | %.1f | %.1f | %s | %s |\n" % (
            a.registered, len(warm),
            "%.3f (t=%.0f s: %d / %d)" % (worst[2] / worst[3], worst[0],
                                          worst[2], worst[3]) if worst else "-",
            "%.3f" % (sum(ratios) / len(ratios)) if ratios else "-",
            over, max((r[2] for r in rows), default=0),
            max((r[3] for r in rows), default=0), len(fc),
            pct(fc, 50), pct(fc, 90), pct(fc, 99),
            "%d, %.1f, %.1f" % (len(fc_new), pct(fc_new, 50), pct(fc_new, 99)),
            "%d, %.1f, %.1f" % (len(fc_ret), pct(fc_ret, 50), pct(fc_ret, 99))))
    # One line for scripts: the worst ratio and whether it holds.
    print("registered=%d samples=%d max_ratio=%s over_bound=%d "
          "first_contact_p50=%.1f p99=%.1f n=%d" % (
              a.registered, len(warm),
              "%.3f" % (worst[2] / worst[3]) if worst else "nan", over,
              pct(fc, 50), pct(fc, 99), len(fc)))


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("schedule")
    s.add_argument("--registered", type=int, required=True)
    s.add_argument("--day", type=float, required=True)
    s.add_argument("--peak", type=float, required=True)
    s.add_argument("--session", type=float, required=True)
    s.add_argument("--trough", type=float, default=0.1)
    s.add_argument("--seed", default="churn")
    z = sub.add_parser("analyze")
    z.add_argument("--loadgen-samples", required=True)
    z.add_argument("--device-samples", required=True)
    z.add_argument("--events", required=True)
    z.add_argument("--t0", type=float, required=True)
    z.add_argument("--registered", type=int, required=True)
    z.add_argument("--warmup", type=float, required=True)
    z.add_argument("--bound", type=float, default=1.1)
    z.add_argument("--out-dat", required=True)
    z.add_argument("--out-md", required=True)
    z.add_argument("--out-fc")
    a = p.parse_args()
    if a.cmd == "schedule":
        schedule(a)
    else:
        analyze(a)


if __name__ == "__main__":
    main()
