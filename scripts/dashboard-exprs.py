#!/usr/bin/env python3
"""Print every PromQL expression of a Grafana dashboard, one per line, with
the dashboard's variables substituted, so that a test can evaluate them
against a Prometheus server.

    scripts/dashboard-exprs.py [--var NAME=VALUE]... [--titles] DASHBOARD.json

A variable takes, in order: --var; its "All" value (allValue, or ".*") when
it includes All; its current value. Grafana's own $__rate_interval,
$__interval and $__range become 1m, 15s and 1h unless given with --var.
Forms: $name, ${name}, ${name:format}, [[name]]. Exits 1 if an expression
still holds a variable afterwards, or the dashboard has no expression.
"""
import argparse
import json
import re
import sys

BUILTIN = {"__rate_interval": "1m", "__interval": "15s", "__range": "1h",
           "__range_s": "3600", "__interval_ms": "15000"}
VAR = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\[\[(\w+)\]\]|\$(\w+)")


def variables(dash, given):
    out = dict(BUILTIN)
    for v in dash.get("templating", {}).get("list", []):
        name = v.get("name")
        if not name or v.get("type") == "datasource":
            continue
        cur = v.get("current", {}).get("value")
        if isinstance(cur, list):
            cur = cur[0] if len(cur) == 1 else "|".join(cur)
        if v.get("includeAll") and (cur in (None, "$__all", "All")):
            out[name] = v.get("allValue") or ".*"
        elif cur is not None:
            out[name] = str(cur)
    out.update(given)
    return out


def panels(items):
    for p in items:
        yield p
        yield from panels(p.get("panels", []))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dashboard")
    ap.add_argument("--var", action="append", default=[],
                    help="NAME=VALUE for a dashboard variable")
    ap.add_argument("--titles", action="store_true",
                    help="prefix each line with the panel title and a tab")
    a = ap.parse_args()
    given = {}
    for kv in a.var:
        name, sep, value = kv.partition("=")
        if not sep:
            ap.error("--var wants NAME=VALUE")
        given[name] = value
    with open(a.dashboard) as f:
        dash = json.load(f)
    vals = variables(dash, given)

    def sub(m):
        name = m.group(1) or m.group(2) or m.group(3)
        return vals.get(name, m.group(0))

    n, bad = 0, 0
    for p in panels(dash.get("panels", [])):
        for t in p.get("targets", []):
            expr = t.get("expr")
            if not expr or t.get("hide"):
                continue
            e = VAR.sub(sub, expr)
            # No variable may remain; label values like "{{x}}" are legends.
            if VAR.search(e):
                print(f"{a.dashboard}: unsubstituted variable in panel "
                      f"'{p.get('title')}': {e}", file=sys.stderr)
                bad += 1
                continue
            e = " ".join(e.split())
            print(f"{p.get('title')}\t{e}" if a.titles else e)
            n += 1
    if bad or not n:
        if not n:
            print(f"{a.dashboard}: no expression found", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
