"""The cached base container that unnamed containers are cloned from.

A busybox template run costs ~500 ms; an overlay snapshot of a stopped base
costs a few ms.  The base is built once per lxcpath (under a file lock, so
several processes agree) and never started.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading

from lxactors import liblxc
from lxactors._chroot import FileSpec, apply_chroot, rootfs_dir

__all__ = ["BASE_NAME", "ensure_base", "ephemeral_clone", "shell_on_tty1"]

log = logging.getLogger("lxactors")

BASE_NAME = "lxactors-base"

#: busybox's inittab with a root shell on tty1 (the console lxactors reads)
#: in place of getty.  tty1's pty is handed to us directly, so flow control
#: blocks only the writer; /dev/console is relayed by the monitor, which
#: would stall whole (and stop answering commands) if we stopped reading.
INITTAB = b"""::sysinit:/etc/init.d/rcS
tty1::respawn:-/bin/sh
console::askfirst:/bin/sh
"""


def shell_on_tty1(container: liblxc.Container) -> None:
    """Make a busybox container run a shell on tty1 (see INITTAB)."""
    rootfs = rootfs_dir(container.get_config_item("lxc.rootfs.path"))
    apply_chroot(container.name, rootfs, [FileSpec(("etc", "inittab"), INITTAB, 0o644)])
_ready: set[str] = set()
_lock = threading.Lock()


def _lxcpath(path: str | None) -> str:
    return path or liblxc.get_global_config_item("lxc.lxcpath") or "/var/lib/lxc"


def ensure_base(path: str | None, template: str = "busybox",
                progress: bool = False) -> str:
    """Build the base container in *path* if it is not there; return the lxcpath."""
    lxcpath = _lxcpath(path)
    with _lock:
        if lxcpath in _ready:
            return lxcpath
        os.makedirs(lxcpath, exist_ok=True)
        with open(os.path.join(lxcpath, f".{BASE_NAME}.lock"), "w") as lockf:
            fcntl.flock(lockf, fcntl.LOCK_EX)
            with liblxc.Container(BASE_NAME, lxcpath) as base:
                if not base.is_defined():
                    msg = f"building the base container {BASE_NAME} in {lxcpath} (once)"
                    log.info(msg)
                    if progress:
                        print(f"lxactors: {msg}...", flush=True)
                    base.create(template)
                shell_on_tty1(base)
                # One tty is all lxactors reads; the template's five would cost
                # each container four more ptys (the host has a few thousand).
                if base.get_config_item("lxc.tty.max") != "1":
                    base.set_config_item("lxc.tty.max", "1")
                    base.save_config()
        _ready.add(lxcpath)
        return lxcpath


def ephemeral_clone(name: str, path: str | None) -> liblxc.Container:
    """An overlay snapshot of the base, named *name*."""
    lxcpath = ensure_base(path)
    with liblxc.Container(BASE_NAME, lxcpath) as base:
        return base.clone(name, flags=liblxc.CLONE_SNAPSHOT, bdevtype="overlay")
