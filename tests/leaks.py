"""Counting what a test could leave behind: containers, mounts, processes, cgroups, fds."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, fields

from lxactors import liblxc

CGROUP_ROOT = "/sys/fs/cgroup"


@dataclass(frozen=True)
class Snapshot:
    defined: frozenset[str]
    active: frozenset[str]
    mounts: frozenset[str]
    monitors: frozenset[int]
    cgroups: frozenset[str]
    fds: frozenset[int]


def _mounts(path: str) -> frozenset[str]:
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        return frozenset(line.split()[4] for line in f if path in line)


def monitor_pids(path: str) -> frozenset[int]:
    """Pids of ``[lxc monitor] <path> <name>`` processes for this lxcpath."""
    pids = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if cmd.startswith(b"[lxc monitor]") and path.encode() in cmd:
            pids.add(int(entry))
    return frozenset(pids)


def _empty(cgroup: str) -> bool:
    try:
        with open(os.path.join(cgroup, "cgroup.procs")) as f:
            return not f.read().strip()
    except OSError:
        return False


def cgroup_dirs() -> frozenset[str]:
    """liblxc's per-container cgroup directories (lxc.monitor.*, lxc.payload.*)
    that no process is in: what a stopped container left behind.  (A running
    container's are not counted here: the host may run other containers; ours
    are caught by the ``active`` and ``monitors`` counts, which are per lxcpath.)"""
    out = set()
    if not os.path.isdir(CGROUP_ROOT):
        return frozenset()
    for hierarchy in os.listdir(CGROUP_ROOT):
        d = os.path.join(CGROUP_ROOT, hierarchy)
        try:
            names = os.listdir(d)
        except OSError:
            continue
        out.update(
            f"{hierarchy}/{n}" for n in names
            if n.startswith(("lxc.monitor.", "lxc.payload.")) and _empty(os.path.join(d, n))
        )
    return frozenset(out)


def open_fds() -> frozenset[int]:
    return frozenset(int(fd) for fd in os.listdir("/proc/self/fd"))


def snapshot(path: str) -> Snapshot:
    return Snapshot(
        defined=frozenset(liblxc.list_defined_containers(path)),
        active=frozenset(liblxc.list_active_containers(path)),
        mounts=_mounts(path),
        monitors=monitor_pids(path),
        cgroups=cgroup_dirs(),
        fds=open_fds(),
    )


def diff(before: Snapshot, after: Snapshot) -> dict[str, list[object]]:
    out: dict[str, list[object]] = {}
    for f in fields(Snapshot):
        extra = getattr(after, f.name) - getattr(before, f.name)
        if extra:
            out[f.name] = sorted(extra)  # type: ignore[type-var]
    return out


def settle(path: str, before: Snapshot, timeout: float = 5.0) -> Snapshot:
    """Snapshot again until nothing new remains or *timeout* passes.

    Monitors and cgroups go away asynchronously after a container stops.
    """
    deadline = time.monotonic() + timeout
    while True:
        now = snapshot(path)
        if not diff(before, now) or time.monotonic() >= deadline:
            return now
        time.sleep(0.05)


def assert_same(before: Snapshot, after: Snapshot) -> None:
    extra = diff(before, after)
    assert not extra, f"left behind: {extra}"
