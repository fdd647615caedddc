#!/usr/bin/env python3
"""Where a remote spawn and a remote console stream spend CPU, calls and wake-ups (run by hand, as root).

    .venv/bin/python bench/cluster_profile.py [--spawns 30] [--console-rounds 3] [--console-only]

The cluster is the tests' (tests/cluster/harness.py), the driver on n0,
remote containers on n1.  For each phase (N local spawns, N remote spawns
from the agent's pool, N booted there, console MB local and remote; the
agent's empty calls) the CPU seconds and context switches (voluntary +
involuntary, all threads: each voluntary one is a wake-up waited for) of every process in
the test namespaces are read from /proc before and after, and divided by
the phase's spawns (or MB); for console phases also the whole machine's
idle share (``/proc/stat``).  Figures robust to the machine's load: CPU and
wake-ups, not wall clock.  Results go to stdout as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.cluster import LARGE_CMD, _drain

TICK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------- in the driver

def ready() -> int:
    return os.getpid()


def close_pools() -> None:
    from tests.cluster import scenarios

    scenarios.close_pools()


def node_map() -> dict[str, str]:
    from tests.cluster import scenarios

    return scenarios.node_map()


_local_path = ""


def _path() -> str:
    global _local_path
    import tempfile

    if not _local_path:
        _local_path = tempfile.mkdtemp(prefix="lxactors-prof-local-", dir="/var/tmp")
        os.chmod(_local_path, 0o711)
    return _local_path


def cleanup() -> None:
    import shutil

    import lxactors

    if _local_path:
        for name in lxactors.liblxc.list_defined_containers(_local_path):
            with lxactors.liblxc.Container(name, _local_path) as c:
                c.destroy()
        shutil.rmtree(_local_path, ignore_errors=True)


def warm(node: str) -> None:
    import lxactors
    from lxactors import cluster

    for _ in range(3):
        lxactors.exit(lxactors.spawn(path=_path()), "kill")
        cluster.exit(cluster.spawn(node=node), "kill")


def spawns(kind: str, node: str, n: int) -> dict[str, Any]:
    """*n* spawns (each then exited); wall ms of the spawn call, and of its parts for remote."""
    import lxactors
    from lxactors import cluster

    walls: list[float] = []
    for _ in range(n):
        t0 = time.perf_counter()
        if kind == "local":
            ref: Any = lxactors.spawn(path=_path())
            walls.append((time.perf_counter() - t0) * 1000)
            lxactors.exit(ref, "kill")
        else:  # "remote": from the agent's pool; "remote booted": pool=False
            ref = cluster.spawn(node=node, pool=kind == "remote")
            walls.append((time.perf_counter() - t0) * 1000)
            cluster.exit(ref, "kill")
    return {"p50 ms": round(statistics.median(walls), 2)}


def calls(kind: str, node: str, n: int) -> dict[str, Any]:
    """*n* agent calls: empty (``alive``), or with the owner's lease handle as argument."""
    import ray

    from lxactors.cluster._agent import agent
    from lxactors.cluster._lease import lease

    handle = agent(node)
    _, lease_handle = lease(node)
    walls: list[float] = []
    for _ in range(n):
        t0 = time.perf_counter()
        if kind == "empty":
            ray.get(handle.alive.remote("x"))
        elif kind == "lease arg":
            ray.get(handle.alive.remote(lease_handle))
        walls.append((time.perf_counter() - t0) * 1000)
    return {"p50 ms": round(statistics.median(walls), 3)}


def console(kind: str, node: str) -> float:
    """MB/s of one 20 MB console stream (local or from *node*)."""
    import lxactors
    from lxactors import cluster

    if kind == "local":
        ref: Any = lxactors.spawn(path=_path())
        lxactors.send(ref, LARGE_CMD)
        n, dt = _drain(lambda t: ref.receive(t), time.monotonic() + 120)
        lxactors.exit(ref, "kill")
    else:
        ref = cluster.spawn(node=node)
        cluster.send(ref, LARGE_CMD)
        n, dt = _drain(lambda t: ref.receive(t), time.monotonic() + 120)
        cluster.exit(ref, "kill")
    return n / dt / 1e6


# ---------------------------------------------------------------------- on the host

def _snapshot(pids: dict[int, str]) -> dict[int, tuple[str, float, int, int]]:
    """pid -> (label, CPU s, voluntary, involuntary switches over all threads)."""
    out = {}
    for pid, comm in pids.items():
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            cpu = (int(fields[11]) + int(fields[12])) / TICK
            vol = inv = 0
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/status") as f:
                    for line in f:
                        if line.startswith("voluntary_ctxt_switches"):
                            vol += int(line.split()[1])
                        elif line.startswith("nonvoluntary_ctxt_switches"):
                            inv += int(line.split()[1])
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        out[pid] = (_label(comm, cmd), cpu, vol, inv)
    return out


def _label(comm: str, cmd: str) -> str:
    if "tests.cluster.driver" in cmd:
        return "driver"
    if "lxactors._helper" in cmd or "lxactors-helper" in comm or "_helper" in cmd:
        return "helper"
    return comm


def _diff(net: Any, before: dict[int, dict[int, tuple[str, float, int, int]]],
          per: float) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for node in net.nodes:
        after = _snapshot(node.pids())
        for pid, (label, cpu, vol, inv) in after.items():
            b = before[node.index].get(pid, (label, 0.0, 0, 0))
            dcpu, dvol, dinv = cpu - b[1], vol - b[2], inv - b[3]
            if dcpu <= 0 and dvol <= 0:
                continue
            key = f"n{node.index} {label}"
            acc = out.setdefault(key, {"cpu ms": 0.0, "wakeups": 0.0, "preempted": 0.0})
            acc["cpu ms"] += dcpu * 1000 / per
            acc["wakeups"] += dvol / per
            acc["preempted"] += dinv / per
    return {k: {kk: round(vv, 2) for kk, vv in v.items()}
            for k, v in sorted(out.items(), key=lambda kv: -kv[1]["cpu ms"])}


def _machine() -> tuple[float, float]:
    """(all CPU time, idle + iowait time) of the whole machine, in s, from /proc/stat."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    return sum(ticks) / TICK, (ticks[3] + ticks[4]) / TICK


def _before(net: Any) -> dict[int, dict[int, tuple[str, float, int, int]]]:
    return {node.index: _snapshot(node.pids()) for node in net.nodes}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--spawns", type=int, default=30)
    ap.add_argument("--console-rounds", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=2, help="interleaved local/remote rounds")
    ap.add_argument("--calls-only", action="store_true", help="only the agent calls")
    ap.add_argument("--console-only", action="store_true", help="only the console phases")
    args = ap.parse_args()
    from tests.cluster.harness import NetCluster

    net = NetCluster(3)
    results: dict[str, Any] = {"load": os.getloadavg()}
    try:
        net.start()
        d = net.driver(0, "bench.cluster_profile")
        ids = d.call("node_map")
        d.call("warm", ids["n1"], timeout=600)
        for kind in () if args.console_only else ("empty", "lease arg"):
            b = _before(net)
            got = d.call("calls", kind, ids["n1"], 200, timeout=600)
            results[f"call {kind}"] = {"wall": got, "per spawn": _diff(net, b, 200)}
        for r in range(0 if args.calls_only else args.rounds):
            for kind in () if args.console_only else ("local", "remote", "remote booted"):
                b = _before(net)
                got = d.call("spawns", kind, ids["n1"], args.spawns, timeout=1800)
                results[f"spawn+exit {kind} #{r}"] = {"wall": got, "per spawn": _diff(net, b, args.spawns)}
            for kind in ("local", "remote"):
                b, (all0, idle0) = _before(net), _machine()
                rates = [d.call("console", kind, ids["n1"], timeout=600) for _ in range(args.console_rounds)]
                all1, idle1 = _machine()
                mb = args.console_rounds * 20.0
                # Idle CPU while bytes stream (the spawns and exits included) says whether the
                # stream is bound by CPU or by the latency of its chain of processes.
                results[f"console {kind} #{r}"] = {
                    "MB/s": [round(x, 1) for x in rates],
                    "machine idle %": round(100 * (idle1 - idle0) / (all1 - all0), 1),
                    "per MB": _diff(net, b, mb)}
        results["load after"] = os.getloadavg()
        d.call("cleanup")
    finally:
        net.stop(check=False)
    json.dump(results, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
