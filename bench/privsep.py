#!/usr/bin/env python3
"""Unprivileged mode's cost: a non-forking call's round trip through the gate (issue 16).

    .venv/bin/python bench/privsep.py [--n 5000] [--rounds 5]

Run as root from the repository: it makes a test user and a root-owned
install (``tests/privsep.py``, the unprivileged suite's set-up), measures
``get_config_item`` on a proxy handle as that user (each call: a request
to the gate, authorized, answered), the same call on root's in-process
handle, and removes the user and the install again.  Prints p50 and p90.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests import privsep

MEASURE = """
import json, sys, time
from lxactors import liblxc
n = int(sys.argv[1])
out = []
with liblxc.Container("bench-round-trip") as c:
    kind = type(c).__name__
    for _ in range(200):
        c.get_config_item("lxc.uts.name")
    for _ in range(n):
        t = time.perf_counter()
        c.get_config_item("lxc.uts.name")
        out.append(time.perf_counter() - t)
out.sort()
print(json.dumps({"kind": kind, "p50": out[len(out) // 2] * 1e6,
                  "p90": out[len(out) * 9 // 10] * 1e6}))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench/privsep.py: run as root (it makes a test user)", file=sys.stderr)
        return 1
    inst = privsep.setup(f"b{os.getpid()}")
    rows: dict[str, list[dict[str, float]]] = {"user": [], "root": []}
    try:
        for _ in range(args.rounds):  # interleaved, so that load hits both alike
            out = privsep.as_user(inst, [inst.python, "-c", MEASURE, str(args.n)], cwd="/tmp")
            if out.returncode != 0:
                print(out.stderr, file=sys.stderr)
                return 1
            rows["user"].append(json.loads(out.stdout))
            root = subprocess.run([inst.python, "-c", MEASURE, str(args.n)], capture_output=True,
                                  text=True, check=True, cwd="/tmp")
            rows["root"].append(json.loads(root.stdout))
    finally:
        left = privsep.teardown(inst)
        if left:
            print(f"left behind: {left}", file=sys.stderr)
    for who, rs in rows.items():
        kind = rs[0]["kind"]
        p50 = statistics.median(r["p50"] for r in rs)
        p90 = statistics.median(r["p90"] for r in rs)
        print(f"{who:5} ({kind}): get_config_item p50 {p50:7.1f} us  p90 {p90:7.1f} us "
              f"(median of {len(rs)} rounds of {args.n})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
