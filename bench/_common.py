"""Shared by the benchmark's orchestrator and workers: statistics, the console
probe, and counting what is on the host (cgroups, monitors, mounts, memory).

Standard library only: the orchestrator imports it without lxactors.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Sequence

CGROUP_ROOT = "/sys/fs/cgroup"
#: The console probe: wait for the shell's prompt, then type PROBE and wait
#: for PROBE_ANSWER (the echo of the typed line shows ``x-$((1+1))``, never
#: ``x-2``).  busybox ash ends each prompt with a cursor-position query
#: (ESC [6n) and, if a line is entered before the terminal answered, waits
#: 20 ms for the answer.  The probe answers like a terminal, before typing.
PROBE = b"echo x-$((1+1))\n"
PROBE_ANSWER = b"x-2"
CURSOR_QUERY = b"\x1b[6n"
CURSOR_REPLY = b"\x1b[1;1R"
#: Name prefix of every container the benchmark names itself.
PREFIX = "lxb"


# ---------------------------------------------------------------- statistics


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), linear between closest ranks."""
    if not values:
        return math.nan
    s = sorted(values)
    k = (len(s) - 1) * q / 100
    lo, hi = math.floor(k), math.ceil(k)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def summary(values: Sequence[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50": percentile(values, 50),
        "p90": percentile(values, 90),
        "min": min(values) if values else math.nan,
        "max": max(values) if values else math.nan,
        "mean": sum(values) / len(values) if values else math.nan,
    }


class Probe:
    """The console probe as a state machine: feed it output, write what it returns."""

    def __init__(self) -> None:
        self.typed = False
        self.tail = b""

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """Take console output; return (bytes to write now, answered?)."""
        self.tail = (self.tail + data)[-64:]
        if not self.typed:
            if CURSOR_QUERY in self.tail:  # the prompt is up
                self.typed = True
                self.tail = b""
                return CURSOR_REPLY + PROBE, False
            return b"", False
        return b"", PROBE_ANSWER in self.tail


# ---------------------------------------------------------------- host state


def cgroup_dirs(names: Iterable[str] = (), prefix: str | None = None) -> list[str]:
    """liblxc's lxc.monitor.NAME / lxc.payload.NAME dirs, under every hierarchy,
    for the given names (exactly, or with a ``-N`` suffix liblxc adds on a
    clash) or starting with *prefix*."""
    wanted = set(names)
    out = []
    try:
        hierarchies = os.listdir(CGROUP_ROOT)
    except OSError:
        return out
    for h in hierarchies:
        d = os.path.join(CGROUP_ROOT, h)
        try:
            entries = os.listdir(d)
        except OSError:
            continue
        for e in entries:
            kind, _, name = e.partition(".")[2].partition(".")
            if e.split(".", 1)[0] != "lxc" or kind not in ("monitor", "payload"):
                continue
            base = re.sub(r"-\d+$", "", name)
            if name in wanted or base in wanted or (prefix and name.startswith(prefix)):
                out.append(os.path.join(d, e))
    return sorted(out)


def remove_cgroup_dirs(dirs: Iterable[str]) -> int:
    """rmdir each (children first); return how many could not be removed."""
    left = 0
    for top in dirs:
        for root, _subdirs, _files in os.walk(top, topdown=False):
            try:
                os.rmdir(root)
            except OSError:
                left += 1
    return left


def monitor_pids(lxcpath: str) -> list[int]:
    """Pids of ``[lxc monitor] LXCPATH NAME`` processes."""
    want = f"[lxc monitor] {lxcpath} ".encode()
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if f.read().startswith(want):
                    pids.append(int(entry))
        except OSError:
            continue
    return pids


def payload_pids(name: str) -> list[int]:
    """Every process in the container's payload cgroup (pids hierarchy)."""
    pids: list[int] = []
    top = os.path.join(CGROUP_ROOT, "pids", f"lxc.payload.{name}")
    for root, _d, files in os.walk(top):
        if "cgroup.procs" in files:
            try:
                with open(os.path.join(root, "cgroup.procs")) as f:
                    pids.extend(int(x) for x in f.read().split())
            except OSError:
                pass
    return pids


def host_mounts(lxcpath: str) -> int:
    """Mounts in the host's mount namespace under the lxcpath."""
    try:
        with open("/proc/1/mountinfo", encoding="utf-8", errors="replace") as f:
            return sum(1 for line in f if lxcpath in line)
    except OSError:
        return 0


def meminfo_kb(key: str = "MemAvailable") -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def rollup_kb(pid: int) -> dict[str, int]:
    """/proc/PID/smaps_rollup as {field: kB} (Rss, Pss, Private_Dirty...)."""
    out = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                parts = line.split()
                if len(parts) == 3 and parts[0].endswith(":") and parts[1].isdigit():
                    out[parts[0][:-1]] = int(parts[1])
    except OSError:
        pass
    return out


def pss_kb(pid: int) -> int:
    return rollup_kb(pid).get("Pss", 0)


def status(pid: int | str = "self") -> dict[str, int]:
    """VmRSS, VmHWM (kB) and Threads of a process."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM", "Threads"):
                    out[key] = int(value.split()[0])
    except OSError:
        pass
    return out


def fd_count(pid: int | str = "self") -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def cgroup_memory_kb(name: str) -> int:
    """The payload cgroup's charged memory (v1 memory.usage_in_bytes), in kB."""
    try:
        with open(os.path.join(CGROUP_ROOT, "memory", f"lxc.payload.{name}",
                               "memory.usage_in_bytes")) as f:
            return int(f.read()) // 1024
    except OSError:
        return 0


def container_memory(lxcpath: str, names: Iterable[str]) -> dict[str, int]:
    """PSS of the monitors of *lxcpath* and of every process in the containers,
    and the containers' cgroup-charged memory, all in kB."""
    monitors = [rollup_kb(p) for p in monitor_pids(lxcpath)]
    payload = [rollup_kb(pid) for n in names for pid in payload_pids(n)]
    return {
        "monitors": len(monitors),
        "monitor_pss_kb": sum(r.get("Pss", 0) for r in monitors),
        "monitor_rss_kb": sum(r.get("Rss", 0) for r in monitors),
        "monitor_private_dirty_kb": sum(r.get("Private_Dirty", 0) for r in monitors),
        "payload_processes": len(payload),
        "payload_pss_kb": sum(r.get("Pss", 0) for r in payload),
        "payload_cgroup_kb": sum(cgroup_memory_kb(n) for n in names),
    }


PTY_SYSCTL = "/proc/sys/kernel/pty/"


def pty_sysctl(name: str) -> int:
    with open(PTY_SYSCTL + name) as f:
        return int(f.read())


def pty_headroom() -> int:
    """Ptys a container can still get.  Containers allocate theirs in their
    own devpts instances, which share kernel.pty.max minus kernel.pty.reserve
    (the reserve is for the host's devpts)."""
    return pty_sysctl("max") - pty_sysctl("reserve") - pty_sysctl("nr")
