#!/usr/bin/env python3
"""lxactors.cluster measured on a local 3-node Ray cluster (run by hand, as root).

    .venv/bin/python bench/cluster.py [--rounds 40]

The cluster is the tests' (tests/cluster/harness.py): three Ray nodes in
network namespaces made for it, each with its own lxcpath, torn down at the
end.  The driver runs on node n0.  Measured, in interleaved rounds: spawn p50
(remote on n1 from its agent's pool, and booted there with ``pool=False``;
remote on n0 through its agent; local lxactors in the driver, booted);
console MB/s (n1 -> driver, local); how long after an owner actor's
SIGKILL its temporary container is gone and its transient one stopped;
how long after a worker node's raylet is SIGKILLed its container's owner
gets ``ContainerExited(reason="lost")``; memory per node.  Results go to
stdout as JSON: copy the figures into docs/CLUSTER.md.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CONSOLE_BYTES = 20_000_000
LARGE_CMD = f"head -c {CONSOLE_BYTES} /dev/zero | tr '\\0' x; echo; echo END-$((40+2))\n"


# ---------------------------------------------------------------------- in the driver

def ready() -> int:
    return os.getpid()


def close_pools() -> None:
    from tests.cluster import scenarios

    scenarios.close_pools()


def spawn_rounds(nodes: dict[str, str], rounds: int) -> dict[str, list[float]]:
    import lxactors
    from lxactors import cluster

    local_path = tempfile.mkdtemp(prefix="lxactors-bench-local-", dir="/var/tmp")
    os.chmod(local_path, 0o711)
    out: dict[str, list[float]] = {"remote n1": [], "remote n1 cold": [], "remote n0": [], "local": []}
    try:
        for warm in (True, False):
            for _ in range(3 if warm else rounds):
                for kind in out:
                    t0 = time.perf_counter()
                    if kind == "local":
                        ref: Any = lxactors.spawn(path=local_path)
                        dt = time.perf_counter() - t0
                        lxactors.exit(ref, "kill")
                    else:
                        ref = cluster.spawn(node=nodes[kind.split()[1]], pool="cold" not in kind)
                        dt = time.perf_counter() - t0
                        cluster.exit(ref, "kill")
                    if not warm:
                        out[kind].append(dt * 1000)
    finally:
        import shutil

        for name in lxactors.liblxc.list_defined_containers(local_path):
            with lxactors.liblxc.Container(name, local_path) as c:
                c.destroy()
        shutil.rmtree(local_path, ignore_errors=True)
    return out


def _drain(receive: Any, deadline: float) -> tuple[int, float]:
    import lxactors

    n, tail, first = 0, b"", None
    while b"END-42" not in tail:
        m = receive(max(0.0, deadline - time.monotonic()))
        if isinstance(m, lxactors.ConsoleOutput):
            if first is None:
                first = time.perf_counter()
            n += len(m.data)
            tail = (tail + m.data)[-64:]
    assert first is not None
    return n, time.perf_counter() - first


def console_rounds(nodes: dict[str, str], rounds: int) -> dict[str, list[float]]:
    import lxactors
    from lxactors import cluster

    local_path = tempfile.mkdtemp(prefix="lxactors-bench-local-", dir="/var/tmp")
    os.chmod(local_path, 0o711)
    out: dict[str, list[float]] = {"remote n1": [], "local": []}
    try:
        for _ in range(rounds):
            for kind in out:
                if kind == "local":
                    ref: Any = lxactors.spawn(path=local_path)
                    lxactors.send(ref, LARGE_CMD)
                    n, dt = _drain(lambda t: ref.receive(t), time.monotonic() + 120)  # noqa: B023
                    lxactors.exit(ref, "kill")
                else:
                    ref = cluster.spawn(node=nodes["n1"])
                    cluster.send(ref, LARGE_CMD)
                    n, dt = _drain(lambda t: ref.receive(t), time.monotonic() + 120)  # noqa: B023
                    cluster.exit(ref, "kill")
                out[kind].append(n / dt / 1e6)
    finally:
        import shutil

        shutil.rmtree(local_path, ignore_errors=True)
    return out


def owner_spawn(node: str, type_: str, name: str) -> dict[str, Any]:
    from tests.cluster import scenarios

    key = f"bench-{name or type_}"
    pid = scenarios.make_owner(key)
    opts = {"type": type_} if type_ == "permanent" else {}
    got = scenarios.owner_call(key, "spawn", key, name, node=node, **opts)
    return {"pid": pid, "name": got}


def spawn_temporary(node: str) -> str:
    from tests.cluster import scenarios

    return scenarios.spawn("lost", node=node)["name"]


def next_exit_at() -> tuple[str, float]:
    from tests.cluster import scenarios

    m, at = scenarios.next_exit("lost", 30)
    return m.reason, at


def node_map() -> dict[str, str]:
    from tests.cluster import scenarios

    return scenarios.node_map()


# ---------------------------------------------------------------------- on the host

def rss_mb(pids: dict[int, str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for pid, comm in pids.items():
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                pss = next(int(line.split()[1]) for line in f if line.startswith("Pss:"))
        except (OSError, StopIteration):
            continue
        out[f"{comm}[{pid}]"] = pss / 1024
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--policy-rounds", type=int, default=5)
    args = ap.parse_args()
    from tests.cluster.harness import NetCluster

    net = NetCluster(3)
    results: dict[str, Any] = {}
    try:
        t0 = time.monotonic()
        net.start()
        results["cluster start s"] = round(time.monotonic() - t0, 1)
        n1 = net.nodes[1]
        idle = rss_mb(n1.pids())
        d = net.driver(0, "bench.cluster")
        ids = d.call("node_map")
        spawn = d.call("spawn_rounds", ids, args.rounds, timeout=1800)
        results["spawn p50 ms"] = {k: round(statistics.median(v), 2) for k, v in spawn.items()}
        results["spawn p90 ms"] = {k: round(sorted(v)[int(len(v) * 0.9)], 2) for k, v in spawn.items()}
        with_agent = rss_mb(n1.pids())
        console = d.call("console_rounds", ids, max(3, args.rounds // 8), timeout=1800)
        results["console MB/s (median)"] = {k: round(statistics.median(v), 1) for k, v in console.items()}
        lat: dict[str, list[float]] = {"temporary gone": [], "transient stopped": []}
        for _ in range(args.policy_rounds):
            for type_, key in (("temporary", "temporary gone"), ("transient", "transient stopped")):
                name = "" if type_ == "temporary" else f"lxbp{os.getpid()}-{len(lat[key])}"
                got = d.call("owner_spawn", ids["n1"], type_, name)
                killed = time.monotonic()
                os.kill(got["pid"], signal.SIGKILL)
                path = os.path.join(n1.lxcpath, got["name"])
                while True:
                    if type_ == "temporary" and not os.path.exists(path):
                        break
                    if type_ == "transient" and n1.state(got["name"]) == "STOPPED":
                        break
                    if time.monotonic() - killed > 30:
                        raise RuntimeError(f"policy not applied to {got['name']}")
                    time.sleep(0.005)
                lat[key].append((time.monotonic() - killed) * 1000)
                n1.remove(got["name"])
        results["policy after owner SIGKILL ms (median, max)"] = {
            k: [round(statistics.median(v)), round(max(v))] for k, v in lat.items()}
        results["memory per node, PSS MB"] = {
            "idle node (raylet and its helpers)": round(sum(idle.values())),
            "with agent and one lease": round(sum(with_agent.values())),
            "processes": {k: round(v) for k, v in with_agent.items()},
        }
        # Last: a worker node lost.
        d.call("spawn_temporary", ids["n1"])
        raylet = n1.raylet_pid()
        assert raylet is not None
        killed = time.monotonic()
        os.kill(raylet, signal.SIGKILL)
        reason, at = d.call("next_exit_at")
        results["node loss: owner told, s"] = [reason, round(at - killed, 2)]
    finally:
        net.stop(check=False)
    json.dump(results, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
