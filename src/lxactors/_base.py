"""The cached base container that unnamed containers are cloned from.

A busybox template run costs ~500 ms; an overlay snapshot of a stopped base
costs a few ms.  The base is built once per lxcpath (under a file lock, so
several processes agree) and never started.  A user-namespaced container
has its own base per id mapping, built by the template inside the
namespace: its files are owned by the mapped ids, so an overlay snapshot
starts in the namespace with nothing to chown.
"""

from __future__ import annotations

import fcntl
import logging
import os
import stat
import tempfile
import threading
from collections.abc import Sequence

from lxactors import _validate as v
from lxactors import liblxc
from lxactors._chroot import ChrootSpec, FileOwner, FileSpec, apply_chroot, lower_dir, rootfs_dir
from lxactors._errors import LxcError
from lxactors._helperclient import Helper
from lxactors._userns import IdMap, idmap_of

__all__ = ["BASE_NAME", "base_name", "container_idmap", "ensure_base", "ephemeral_clone",
           "ephemeral_start", "make_in_rootfs", "root_owner", "shell_on_tty1"]

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


def base_name(idmap: IdMap | None = None) -> str:
    """The base's name: ``lxactors-base``, or ``lxactors-base-userns-<ids>``."""
    _check_idmap(idmap)
    return BASE_NAME if idmap is None else f"{BASE_NAME}-userns-{idmap.tag}"


def _check_idmap(idmap: object) -> None:
    if idmap is not None and not isinstance(idmap, IdMap):
        raise TypeError(f"idmap must be an lxactors.IdMap or None, not {type(idmap).__name__}")


def container_idmap(container: liblxc.Container) -> IdMap | None:
    """The mapping of the container's root, from its config (None: the host's root)."""
    return idmap_of(container.get_config_item("lxc.idmap").splitlines())


def root_owner(container: liblxc.Container) -> FileOwner:
    """The host (uid, gid) of the container's root, if it maps ids (else None)."""
    idmap = container_idmap(container)
    return None if idmap is None else (idmap.uid, idmap.gid)


def make_in_rootfs(container: liblxc.Container, specs: Sequence[ChrootSpec]) -> None:
    """Make chroot *specs* in the container's rootfs: here as root, else by the
    privileged helper (whose rootfs it is; copy sources are read here)."""
    from lxactors._proxy import ProxyContainer

    if isinstance(container, ProxyContainer):
        container.apply_chroot(specs)
        return
    rootfs = container.get_config_item("lxc.rootfs.path")
    apply_chroot(container.name, rootfs_dir(rootfs), specs, root_owner(container),
                 lower_dir(rootfs))


def shell_on_tty1(container: liblxc.Container) -> None:
    """Make a busybox container run a shell on tty1 (see INITTAB)."""
    make_in_rootfs(container, [FileSpec(("etc", "inittab"), INITTAB, 0o644)])


_ready: set[tuple[str, str]] = set()
_lock = threading.Lock()


def _lxcpath(path: str | None) -> str:
    return path or liblxc.default_lxcpath()


def _lock_path(lxcpath: str, name: str) -> str:
    """Where processes agree on who builds a base: in the lxcpath, or (an unprivileged
    user's lxcpath belongs to root) in a private directory of the user's."""
    if os.geteuid() == 0:
        os.makedirs(lxcpath, exist_ok=True)
        return os.path.join(lxcpath, f".{name}.lock")
    mine = os.path.join(tempfile.gettempdir(), f"lxactors-{os.getuid()}")
    try:
        os.mkdir(mine, 0o700)
    except FileExistsError:
        pass
    st = os.lstat(mine)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise LxcError(name, "build base", f"{mine} must be a private directory of yours")
    tag = lxcpath.strip("/").replace("/", "_")
    return os.path.join(mine, f"{tag}.{name}.lock")


def ensure_base(path: str | None, idmap: IdMap | None = None, template: str = "busybox",
                progress: bool = False) -> str:
    """Build the base container for *idmap* in *path* if it is not there; return the lxcpath.

    Unnamed containers are overlay clones of it: a server calls this before
    its first client, who would otherwise wait for the template (~0.5 s).
    """
    _check_idmap(idmap)
    if path is not None:
        v.check_path(path, "lxcpath")
    v.check_text(template, "template", allow_newline=False)
    if not isinstance(progress, bool):
        raise TypeError(f"progress must be a bool, not {type(progress).__name__}")
    lxcpath = _lxcpath(path)
    name = base_name(idmap)
    with _lock:
        if (lxcpath, name) in _ready:
            return lxcpath
        with open(_lock_path(lxcpath, name), "w") as lockf:
            fcntl.flock(lockf, fcntl.LOCK_EX)
            with liblxc.Container(name, lxcpath) as base:
                if not base.is_defined():
                    msg = f"building the base container {name} in {lxcpath} (once)"
                    log.info(msg)
                    if progress:
                        print(f"lxactors: {msg}...", flush=True)
                    # liblxc runs the template inside the namespace: the
                    # rootfs comes out owned by the mapped ids.
                    for key, value in idmap.config if idmap else ():
                        base.set_config_item(key, value)
                    base.create(template)
                shell_on_tty1(base)
                # One tty is all lxactors reads; the template's five would cost
                # each container four more ptys (the host has a few thousand).
                if base.get_config_item("lxc.tty.max") != "1":
                    base.set_config_item("lxc.tty.max", "1")
                    base.save_config()
        _ready.add((lxcpath, name))
        return lxcpath


def ephemeral_clone(name: str, path: str | None, idmap: IdMap | None = None,
                    helper: Helper | None = None) -> liblxc.Container:
    """An overlay snapshot of the base for *idmap*, named *name* (its handle
    runs forking calls in *helper*, None: the process's own)."""
    lxcpath = ensure_base(path, idmap)
    with liblxc.Container(base_name(idmap), lxcpath) as base:
        clone = base.clone(name, flags=liblxc.CLONE_SNAPSHOT, bdevtype="overlay")
    clone.set_helper(helper)
    return clone


def ephemeral_start(container: liblxc.Container, idmap: IdMap | None,
                    items: list[tuple[str, str | None]], useinit: bool,
                    argv: list[str] | None, timeout: float) -> int | None:
    """Clone the base for *idmap* to *container* (a handle on a new name)
    and start it, in one helper request (see ``Container.start_clone_of``);
    init's pid."""
    ensure_base(container.get_config_path(), idmap)
    return container.start_clone_of(base_name(idmap), items, useinit, argv, timeout=timeout)
