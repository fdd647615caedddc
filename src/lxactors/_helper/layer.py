"""An overlay clone's writable layer on a size-bounded tmpfs (``Limits.disk``), and its release.

liblxc's overlay clone keeps the upper and work directories in
``<lxcpath>/<name>/overlay/{delta,work}``; overlayfs wants both on one
filesystem, so the tmpfs goes on ``overlay`` itself, mounted in the host's
mount namespace before the first start (the container's namespace is a
copy).  Writes past the bound fail with ENOSPC and never reach the host's
disk; tmpfs pages are charged to the memory cgroup of the process that
writes them, the container's, so they count towards its memory bound too.
liblxc's destroy removes a rootfs without crossing mount points: every
destroy (the op, and the owner-death policies) releases the layer first.
"""

from __future__ import annotations

import ctypes
import os
import stat
from typing import Any

from lxactors._ffi import ffi
from lxactors._helper.handle import Handle, OpError, config_item
from lxactors._helper.protocol import BoundLayer

__all__ = ["op_bound_layer", "release_layer"]

_MS_NOSUID, _MS_NODEV = 2, 4
_MNT_DETACH = 2
_libc: Any = None


def _c() -> Any:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_char_p]
        _libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
    return _libc


def _layer(path: str, name: str) -> str:
    return os.path.join(path, name, "overlay")


def op_bound_layer(req: BoundLayer, fds: list[int], reply: int) -> object:
    h = Handle(req)
    layer = _layer(req.path, req.name)
    rootfs = config_item(h.c, b"lxc.rootfs.path").decode("utf-8", "surrogateescape")
    if not rootfs.endswith(":" + os.path.join(layer, "delta")):
        raise OpError(f"a disk limit needs an overlay clone whose writable layer is "
                      f"{layer}/delta (the rootfs is {rootfs!r})")
    if h.c.is_running(h.c):
        raise OpError("a disk limit is set before the container starts")
    if os.path.ismount(layer):
        raise OpError(f"{layer} is already a mount point")
    made = []
    for sub in ("", "delta", "work"):
        d = os.path.join(layer, sub)
        try:
            st = os.lstat(d)
        except FileNotFoundError:
            raise OpError(f"{d} is missing") from None
        if not stat.S_ISDIR(st.st_mode):
            raise OpError(f"{d} is not a directory")
        made.append((d, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid))
    if os.listdir(os.path.join(layer, "delta")):
        raise OpError(f"{layer}/delta is not empty: a disk limit is set on a fresh clone")
    _, mode, uid, gid = made[0]
    data = f"size={req.size},mode={mode:o},uid={uid},gid={gid}".encode()
    if _c().mount(b"tmpfs", layer.encode(), b"tmpfs", _MS_NOSUID | _MS_NODEV, data) != 0:
        err = ctypes.get_errno()
        raise OpError(f"cannot mount a tmpfs on {layer}: {os.strerror(err)}")
    try:
        for d, mode, uid, gid in made[1:]:
            os.mkdir(d, mode)
            os.chmod(d, mode)
            os.chown(d, uid, gid)
    except OSError as exc:
        _c().umount2(layer.encode(), _MNT_DETACH)
        raise OpError(f"cannot prepare the writable layer on {layer}: {exc}") from None
    return None


def release_layer(c: Any) -> None:
    """Unmount a stopped container's bounded layer (before liblxc's destroy)."""
    path = ffi.string(c.config_path).decode("utf-8", "surrogateescape")
    layer = _layer(path, ffi.string(c.name).decode("utf-8", "surrogateescape"))
    if os.path.ismount(layer) and not c.is_running(c):
        _c().umount2(layer.encode(), _MNT_DETACH)
