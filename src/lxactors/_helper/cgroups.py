"""The monitor cgroups a daemonized start leaves behind, and leaving them.

On cgroup v1 hybrid hosts liblxc 5.0's daemonized ``start`` moves its caller
into the new container's ``lxc.monitor.<name>`` cgroup in every hierarchy;
after a failed start, or a monitor that ended first, nothing else removes it.
"""

from __future__ import annotations

import os

from lxactors._helper import host

__all__ = ["leave_monitor_cgroups", "own_cgroups", "remove_monitor_cgroups"]


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
    mounts = host.HOST.cgroup_mounts
    tried = set()
    # liblxc makes them beside the cgroups of init (without systemd's
    # init.scope), or ours where init's are not visible: try both.
    for cgroups in (own_cgroups(), own_cgroups("/proc/1/cgroup")):
        for ctrls, path in cgroups.items():
            mount = mounts.get(ctrls)
            if path.endswith("/init.scope"):
                path = path[: -len("/init.scope")]
            if mount is None:
                continue
            d = os.path.join(mount, path.lstrip("/"), f"lxc.monitor.{name}")
            if d in tried:
                continue
            tried.add(d)
            try:
                os.rmdir(d)
            except OSError:
                pass  # not there, or busy: a live monitor's
