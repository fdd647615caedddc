#!/usr/bin/env python3
"""Pool hand-over vs cold spawn, interleaved (lxactors only).  As root:

    .venv/bin/python bench/pool_handover.py [CYCLES]

Each cycle: a cold ``spawn("")`` and a ``pool.spawn()`` from a pool of 4
whose refill is awaited before the take (so each take finds one ready);
both timed from the call until the reference returns (console attached,
owner set), both exited.  Works in a temporary lxcpath under /var/tmp.
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import time

import lxactors


def main() -> int:
    cycles = int(sys.argv[1]) if len(sys.argv) > 1 else 40
    path = tempfile.mkdtemp(prefix="lxbench-pool-", dir="/var/tmp")
    cold: list[float] = []
    hand: list[float] = []
    try:
        with lxactors.Pool(4, path=path, userns=False) as pool:
            lxactors.exit(lxactors.spawn(path=path, userns=False), "kill")  # warm-up
            for _ in range(cycles):
                deadline = time.monotonic() + 60
                while pool.ready < 4 and time.monotonic() < deadline:
                    time.sleep(0.005)
                t = time.perf_counter()
                ref = pool.spawn()
                hand.append(time.perf_counter() - t)
                lxactors.exit(ref, "kill")
                t = time.perf_counter()
                ref = lxactors.spawn(path=path, userns=False)
                cold.append(time.perf_counter() - t)
                lxactors.exit(ref, "kill")
    finally:
        shutil.rmtree(path, ignore_errors=True)
    for label, xs in (("cold spawn", cold), ("pool hand-over", hand)):
        xs.sort()
        print(f"{label}: p50 {statistics.median(xs) * 1e3:.3f} ms, "
              f"p90 {xs[int(len(xs) * 0.9)] * 1e3:.3f} ms, {len(xs)} cycles")
    print(f"hand-over / cold p50: {statistics.median(hand) / statistics.median(cold):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
