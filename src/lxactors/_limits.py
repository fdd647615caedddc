"""Resource limits of a container (``spawn(limits=Limits(...))``), as liblxc config.

A container reached over a network (a tcpvm client, an imc command) must
not be able to take the host down: :class:`Limits` bounds its processes,
memory, CPU and writable layer.  The cgroup limits become ``lxc.cgroup.*``
(cgroup v1) or ``lxc.cgroup2.*`` (v2) config items, per controller as the
host mounts it (a hybrid host has v1 controllers and an empty v2 tree);
liblxc writes them into the payload cgroup before init runs, so even a
fork bomb started as init's first act meets them.  The host's layout is
read once (:func:`host_layout`).  The writable layer's bound is a tmpfs
the helper mounts under the overlay clone (see ``_helper.layer``).
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["CgroupLayout", "Limits", "detect_layout", "host_layout", "limit_config",
           "parse_events", "parse_limits", "parse_size"]

#: The CFS period lxactors uses for a CPU quota (liblxc's and the kernel's default).
CPU_PERIOD_US = 100_000
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_SIZE = re.compile(r"(\d+)\s*([kmgt]?)(?:i?b)?", re.IGNORECASE)
MIN_MEMORY = 4 << 20
MIN_DISK = 1 << 20


def parse_size(value: object, what: str) -> int:
    """Bytes from an int or ``"256M"``-style text (K, M, G, T: powers of 1024)."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise TypeError(f"{what} must be a number of bytes or a size such as '256M', "
                        f"not {type(value).__name__}")
    if isinstance(value, int):
        n = value
    else:
        m = _SIZE.fullmatch(value.strip())
        if not m:
            raise ValueError(f"{what} must be a size such as '256M', '1G' or '65536', "
                             f"not {value!r}")
        n = int(m.group(1)) * _UNITS[m.group(2).lower()]
    if not 0 < n < 1 << 62:
        raise ValueError(f"{what} must be a positive size below 4 EiB, not {value!r}")
    return n


def _format_size(n: int) -> str:
    for unit in ("T", "G", "M", "K"):
        if n % _UNITS[unit.lower()] == 0:
            return f"{n // _UNITS[unit.lower()]}{unit}"
    return str(n)


@dataclass(frozen=True, init=False)
class Limits:
    """What one container may take: ``Limits(pids=256, memory="256M", cpu=1.0, disk="128M")``.

    ``pids``: processes and threads at once.  ``memory``: bytes of RAM,
    page cache and tmpfs included, swap not allowed on top (the kernel
    OOM-kills inside the container at the bound).  ``cpu``: CPUs' worth of
    time (0.5: half of one; a CFS quota, so busy containers get no more
    even on an idle host).  ``disk``: bytes of the writable layer of an
    unnamed container (an overlay clone): its upper directory is a tmpfs of
    that size, so writes past it fail with ENOSPC and the host's disk is
    never touched; its pages count towards ``memory`` too.  Sizes are ints
    or text such as ``"256M"``.  ``None`` leaves that one unbounded.
    """

    pids: int | None
    memory: int | None
    cpu: float | None
    disk: int | None

    def __init__(self, pids: int | None = None, memory: int | str | None = None,
                 cpu: float | None = None, disk: int | str | None = None) -> None:
        if pids is not None:
            if isinstance(pids, bool) or not isinstance(pids, int):
                raise TypeError(f"limits pids must be an int or None, not {type(pids).__name__}")
            if not 1 <= pids <= 1 << 22:
                raise ValueError(f"limits pids must be between 1 and {1 << 22}: {pids}")
        mem = None if memory is None else parse_size(memory, "limits memory")
        if mem is not None and mem < MIN_MEMORY:
            raise ValueError(f"limits memory must be at least {_format_size(MIN_MEMORY)} "
                             f"(a container's init needs some): {memory!r}")
        if cpu is not None:
            if isinstance(cpu, bool) or not isinstance(cpu, (int, float)):
                raise TypeError(f"limits cpu must be a number of CPUs or None, "
                                f"not {type(cpu).__name__}")
            if not 0.01 <= cpu <= 4096:  # the kernel's smallest quota is 1 ms per period
                raise ValueError(f"limits cpu must be between 0.01 and 4096 CPUs: {cpu}")
            cpu = float(cpu)
        size = None if disk is None else parse_size(disk, "limits disk")
        if size is not None and size < MIN_DISK:
            raise ValueError(f"limits disk must be at least {_format_size(MIN_DISK)}: {disk!r}")
        object.__setattr__(self, "pids", pids)
        object.__setattr__(self, "memory", mem)
        object.__setattr__(self, "cpu", cpu)
        object.__setattr__(self, "disk", size)

    def replace(self, **changes: Any) -> Limits:
        """A copy with some fields changed (``None``: that one unbounded)."""
        unknown = set(changes) - {"pids", "memory", "cpu", "disk"}
        if unknown:
            raise TypeError(f"Limits has no field(s) {sorted(unknown)}")
        fields: dict[str, Any] = {"pids": self.pids, "memory": self.memory, "cpu": self.cpu,
                                  "disk": self.disk}
        fields.update(changes)
        return Limits(**fields)

    def __str__(self) -> str:
        def size(n: int | None) -> str:
            return "none" if n is None else _format_size(n)

        pids = "none" if self.pids is None else str(self.pids)
        cpu = "none" if self.cpu is None else f"{self.cpu:g}"
        return f"pids {pids}, memory {size(self.memory)}, cpu {cpu}, disk {size(self.disk)}"


def parse_limits(value: object) -> Limits | None:
    """The ``limits`` spawn option: a :class:`Limits`, a mapping of its fields, or None."""
    if value is None or isinstance(value, Limits):
        return value
    if isinstance(value, Mapping):
        unknown = set(value) - {"pids", "memory", "cpu", "disk"}
        if unknown:
            raise ValueError(f"unknown limits field(s) {sorted(map(str, unknown))}; "
                             "known: cpu, disk, memory, pids")
        return Limits(**value)
    raise TypeError(f"limits must be an lxactors.Limits, a mapping or None, "
                    f"not {type(value).__name__}")


# ---------------------------------------------------------------- the host's cgroups


@dataclass(frozen=True)
class CgroupLayout:
    """Where each controller lives: a cgroup v1 hierarchy, or the v2 tree."""

    #: Controllers mounted as cgroup v1 hierarchies.
    v1: frozenset[str] = frozenset()
    #: Controllers the cgroup v2 tree offers (``cgroup.controllers`` of its root).
    v2: frozenset[str] = frozenset()
    #: Does the memory controller account swap (memsw on v1, memory.swap.max on v2)?
    swap: bool = False

    def prefix(self, controller: str) -> str | None:
        """``lxc.cgroup`` or ``lxc.cgroup2`` for *controller*; None if the host has neither."""
        if controller in self.v1:
            return "lxc.cgroup"
        if controller in self.v2:
            return "lxc.cgroup2"
        return None


#: Mount options of a v1 hierarchy that are not controllers.
_NOT_CONTROLLERS = {"rw", "ro", "relatime", "noatime", "nosuid", "nodev", "noexec",
                    "clone_children", "xattr", "noprefix"}


def detect_layout(mountinfo: str, read: Callable[[str], str | None],
                  own_cgroup: str = "") -> CgroupLayout:
    """The layout from ``/proc/self/mountinfo``'s text.

    *read* returns a file's text (None if missing): it is asked for the v2
    root's ``cgroup.controllers`` and for the swap-accounting files.
    *own_cgroup* is ``/proc/self/cgroup``'s text (v2's ``memory.swap.max``
    exists only below the root, so it is looked for where we are).
    """
    v1: dict[str, str] = {}
    v2_mount: str | None = None
    for line in mountinfo.splitlines():
        left, _, right = line.partition(" - ")
        fields, rfields = left.split(), right.split()
        if len(fields) < 5 or len(rfields) < 1:
            continue
        mount = fields[4].replace("\\040", " ")
        if rfields[0] == "cgroup2" and v2_mount is None:
            v2_mount = mount
        elif rfields[0] == "cgroup" and len(rfields) > 2:
            for opt in rfields[2].split(","):
                if opt not in _NOT_CONTROLLERS and "=" not in opt:
                    v1.setdefault(opt, mount)
    v2: frozenset[str] = frozenset()
    if v2_mount is not None:
        v2 = frozenset((read(os.path.join(v2_mount, "cgroup.controllers")) or "").split())
    swap = False
    if "memory" in v1:
        swap = read(os.path.join(v1["memory"], "memory.memsw.limit_in_bytes")) is not None
    elif "memory" in v2 and v2_mount is not None:
        path = next((ln[3:] for ln in own_cgroup.splitlines() if ln.startswith("0::")), "/")
        candidates = []
        while path not in ("", "/"):
            candidates.append(path)
            path = os.path.dirname(path)
        candidates += ["/init.scope", "/system.slice"]
        swap = any(read(os.path.join(v2_mount, c.lstrip("/"), "memory.swap.max")) is not None
                   for c in candidates)
    return CgroupLayout(frozenset(v1), v2, swap)


def _read_file(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return None


@functools.cache
def host_layout() -> CgroupLayout:
    """This host's layout, read once per process."""
    return detect_layout(_read_file("/proc/self/mountinfo") or "", _read_file,
                         _read_file("/proc/self/cgroup") or "")


def limit_config(limits: Limits, layout: CgroupLayout) -> list[tuple[str, str]]:
    """The ``lxc.cgroup*`` config items for *limits* (disk is not a cgroup's).

    Raises ValueError naming the limit when the host has no controller for it.
    """
    items: list[tuple[str, str]] = []

    def need(controller: str, what: str) -> str:
        prefix = layout.prefix(controller)
        if prefix is None:
            raise ValueError(f"limits {what}: this host has no {controller} cgroup controller "
                             f"(set {what}=None to run without that bound)")
        return prefix

    if limits.pids is not None:
        items.append((f"{need('pids', 'pids')}.pids.max", str(limits.pids)))
    if limits.memory is not None:
        p = need("memory", "memory")
        if p == "lxc.cgroup":
            # liblxc writes memsw after limit_in_bytes (memsw must be >= it).
            items.append((f"{p}.memory.limit_in_bytes", str(limits.memory)))
            if layout.swap:
                items.append((f"{p}.memory.memsw.limit_in_bytes", str(limits.memory)))
        else:
            items.append((f"{p}.memory.max", str(limits.memory)))
            if layout.swap:
                items.append((f"{p}.memory.swap.max", "0"))
    if limits.cpu is not None:
        p = need("cpu", "cpu")
        quota = max(1000, round(limits.cpu * CPU_PERIOD_US))
        if p == "lxc.cgroup":
            items.append((f"{p}.cpu.cfs_period_us", str(CPU_PERIOD_US)))
            items.append((f"{p}.cpu.cfs_quota_us", str(quota)))
        else:
            items.append((f"{p}.cpu.max", f"{quota} {CPU_PERIOD_US}"))
    return items


def _counter(text: str, key: str) -> int:
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == key and parts[1].isdigit():
            return int(parts[1])
    return 0


def parse_events(read: Callable[[str], str | None], layout: CgroupLayout) -> dict[str, int]:
    """How often a running container met its limits, from its cgroup files.

    *read* gets a cgroup item (``"pids.events"``...) of the container, or None.
    ``pids``: forks refused at pids.max; ``oom_kills``: processes the
    kernel killed at the memory bound; ``cpu_throttled``: periods the CPU
    quota held it back.
    """
    out = {"pids": 0, "oom_kills": 0, "cpu_throttled": 0}
    if layout.prefix("pids"):
        out["pids"] = _counter(read("pids.events") or "", "max")
    memory = layout.prefix("memory")
    if memory == "lxc.cgroup":
        out["oom_kills"] = _counter(read("memory.oom_control") or "", "oom_kill")
    elif memory:
        out["oom_kills"] = _counter(read("memory.events") or "", "oom_kill")
    if layout.prefix("cpu"):
        out["cpu_throttled"] = _counter(read("cpu.stat") or "", "nr_throttled")
    return out
