"""What the helper learns about the host once, in ``main``, before any fork.

Workers are forked per request and read these facts instead of finding them
again (a search of PATH and a read of mountinfo per start would cost more
than the start).  :func:`learn` sets :data:`HOST`; nothing else writes it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from lxactors._ffi import ffi, lib

__all__ = ["HOST", "Host", "learn"]


@dataclass(frozen=True)
class Host:
    #: liblxc's own small start command (None: not installed, or another version).
    lxc_start: str | None = None
    #: Each cgroup hierarchy (its controller set; ``""`` for cgroup2) -> its mount point.
    cgroup_mounts: dict[frozenset[str], str] = field(default_factory=dict)


HOST = Host()


def learn() -> Host:
    """Find lxc-start and the cgroup mounts; called by main before serving."""
    global HOST
    HOST = Host(lxc_start=_find_lxc_start(), cgroup_mounts=_read_cgroup_mounts())
    return HOST


def _find_lxc_start() -> str | None:
    """liblxc's lxc-start, if it is the same liblxc version as ours."""
    ours = ffi.string(lib.lxc_get_version()).decode()
    for d in ("/usr/bin", "/bin", "/usr/local/bin"):
        path = os.path.join(d, "lxc-start")
        if not os.access(path, os.X_OK):
            continue
        r, w = os.pipe()
        try:
            pid = os.posix_spawn(path, [path, "--version"], {}, file_actions=[
                (os.POSIX_SPAWN_DUP2, w, 1), (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0)])
        except OSError:
            os.close(r)
            os.close(w)
            continue
        os.close(w)
        with os.fdopen(r, "rb") as out:
            version = out.read(256).decode("utf-8", "replace").strip()
        os.waitpid(pid, 0)
        return path if version == ours else None
    return None


def _read_cgroup_mounts() -> dict[frozenset[str], str]:
    """Map each cgroup hierarchy (its controller set) to its mount point."""
    mounts: dict[frozenset[str], str] = {}
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields, rfields = left.split(), right.split()
            if not rfields:
                continue
            if rfields[0] == "cgroup2":
                mounts.setdefault(frozenset([""]), fields[4])
            elif rfields[0] == "cgroup":
                opts = set(rfields[2].split(",")) if len(rfields) > 2 else set()
                known = {o for o in opts if o not in {"rw", "ro", "relatime", "noatime", "nosuid",
                                                      "nodev", "noexec", "clone_children", "xattr"}}
                mounts.setdefault(frozenset(known), fields[4])
    return mounts
