"""The monitor cgroups a daemonized start leaves behind, and leaving them.

On cgroup v1 hybrid hosts liblxc 5.0's daemonized ``start`` moves its caller
into the new container's ``lxc.monitor.<name>`` cgroup in every hierarchy;
after a failed start, or a monitor that ended first, nothing else removes it.
A SIGKILLed monitor skips its teardown: its container's ``lxc.payload.<name>``
and ``lxc.monitor.<name>`` stay in every hierarchy (``remove_stale_cgroups``).
"""

from __future__ import annotations

import os

from lxactors._helper import host

__all__ = ["leave_monitor_cgroups", "own_cgroups", "remove_monitor_cgroups",
           "remove_stale_cgroups"]


def own_cgroups(source: str = "/proc/self/cgroup") -> dict[frozenset[str], str]:
    out: dict[frozenset[str], str] = {}
    with open(source, encoding="utf-8") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            out[frozenset(ctrls.split(",")) if ctrls else frozenset([""])] = path
    return out


def leave_monitor_cgroups(before: dict[frozenset[str], str]) -> None:
    """Move back to our cgroups and remove the monitor cgroups start left us in."""
    mounts = host.HOST.cgroup_mounts
    after = own_cgroups()
    for ctrls, path in after.items():
        mount = mounts.get(ctrls)
        old = before.get(ctrls)
        if mount is None or old is None or old == path:
            continue
        try:
            with open(os.path.join(mount, old.lstrip("/"), "cgroup.procs"), "w") as f:
                f.write(str(os.getpid()))
        except OSError:
            continue
        if os.path.basename(path).startswith("lxc.monitor."):
            try:
                os.rmdir(os.path.join(mount, path.lstrip("/")))
            except OSError:
                pass


def remove_monitor_cgroups(name: str) -> None:
    """Remove ``lxc.monitor.<name>`` cgroups its monitor could not remove.

    The daemonized start moves its caller (here lxc-start) into the
    monitor's cgroups; a monitor that ended before lxc-start did (init
    exited at once, or the start failed) found them busy and left them.
    Now lxc-start is gone: an empty one is such a leftover; a busy one
    holds a live monitor, which will remove it itself.  (Same-named
    containers of another lxcpath get ``lxc.monitor.<name>-N``: not touched.)
    """
    for d in _container_cgroup_dirs(name, ("lxc.monitor.",)):
        try:
            os.rmdir(d)
        except OSError:
            pass  # busy: a live monitor's


def remove_stale_cgroups(name: str) -> int:
    """Remove the empty ``lxc.payload.<name>`` / ``lxc.monitor.<name>`` cgroups (and
    their empty children) of a stopped container; returns how many payload ones
    there were: none once a monitor ended normally (removing them is its last act)."""
    payloads = 0
    for d in _container_cgroup_dirs(name, ("lxc.payload.", "lxc.monitor.")):
        payloads += os.path.basename(d).startswith("lxc.payload.")
        for sub, _dirs, _files in os.walk(d, topdown=False):
            try:
                os.rmdir(sub)
            except OSError:
                pass  # busy: not a leftover
    return payloads


def _container_cgroup_dirs(name: str, kinds: tuple[str, ...]) -> list[str]:
    """The existing ``<kind><name>`` directories, beside the cgroups of init
    (without systemd's init.scope) or ours, in every hierarchy."""
    mounts = host.HOST.cgroup_mounts
    found: list[str] = []
    for cgroups in (own_cgroups(), own_cgroups("/proc/1/cgroup")):
        for ctrls, path in cgroups.items():
            mount = mounts.get(ctrls)
            if path.endswith("/init.scope"):
                path = path[: -len("/init.scope")]
            if mount is None:
                continue
            for kind in kinds:
                d = os.path.join(mount, path.lstrip("/"), f"{kind}{name}")
                if d not in found and os.path.isdir(d):
                    found.append(d)
    return found
