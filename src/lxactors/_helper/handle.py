"""One request's liblxc handle, and the reads every op shares.

Each worker opens its own handle from the request: the container's name and
lxcpath, the client handle's log file (where liblxc writes its reasons), and
for ops that must see unsaved changes a snapshot of the client's config.
"""

from __future__ import annotations

import os
from typing import Any

from lxactors import _errlog
from lxactors._chroot import unlink_symlinks_to_store
from lxactors._ffi import ffi, lib
from lxactors._helper.wire import HandleRequest

__all__ = ["Handle", "OpError", "c_argv", "c_str", "config_item", "log_size", "op_error",
           "unlink_symlinked_rootfs"]


class OpError(Exception):
    """An operation failed; ``kind`` picks the client-side exception class."""

    def __init__(self, message: str, kind: str = "lxc", log: list[str] | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.log = log or []


def c_str(text: str | None) -> Any:
    return ffi.NULL if text is None else text.encode("utf-8", "surrogateescape")


def c_argv(args: list[bytes] | None) -> tuple[Any, list[Any]]:
    """A NULL-terminated char*[] and the buffers that must outlive it."""
    if args is None:
        return ffi.NULL, []
    keep = [ffi.new("char[]", a) for a in args]
    arr = ffi.new("char *[]", keep + [ffi.NULL])
    return arr, keep


def config_item(c: Any, key: bytes) -> bytes:
    """A config item's whole value (b"" if unset; no fixed-size buffer)."""
    n = c.get_config_item(c, key, ffi.NULL, 0)
    if n <= 0:
        return b""
    buf = ffi.new("char[]", n + 1)
    c.get_config_item(c, key, buf, n + 1)
    return ffi.string(buf)  # type: ignore[no-any-return]


class Handle:
    """A liblxc handle for one request, loaded from the client's config snapshot."""

    def __init__(self, req: HandleRequest) -> None:
        self.name: str = req.name
        self.c = lib.lxc_container_new(c_str(self.name), c_str(req.path))
        if self.c == ffi.NULL:
            raise OpError("cannot allocate a liblxc handle")
        self.log_path: str | None = req.log
        if req.config:
            self.c.clear_config(self.c)
            if not self.c.load_config(self.c, c_str(req.config)):
                self.close()
                raise OpError(f"cannot load the configuration snapshot {req.config}")
        elif self.log_path:
            # The on-disk config has no lxc.log.file (it is stripped when
            # written): without this, liblxc's reasons for a failure are lost.
            self.c.set_config_item(self.c, b"lxc.log.file", c_str(self.log_path))
        self.log_offset = log_size(self.log_path)

    def fail(self, message: str) -> OpError:
        """An OpError carrying the log lines written since this request began."""
        return op_error(message, self.log_path, self.log_offset)

    def close(self) -> None:
        """Release the handle (workers exit instead; the helper itself must)."""
        if self.c != ffi.NULL:
            lib.lxc_container_put(self.c)
            self.c = ffi.NULL

    def strip_log_line(self, config_file: str) -> None:
        _errlog.strip_from_config(config_file, self.log_path)

    def config_file(self) -> str | None:
        p = self.c.config_file_name(self.c)
        if p == ffi.NULL:
            return None
        try:
            return ffi.string(p).decode("utf-8", "surrogateescape")  # type: ignore[no-any-return]
        finally:
            lib.free(p)


def log_size(log_path: str | None) -> int:
    try:
        return os.stat(log_path).st_size if log_path else 0
    except OSError:
        return 0


def op_error(message: str, log_path: str | None, offset: int) -> OpError:
    """An OpError carrying the log lines written since *offset*."""
    lines: list[str] = []
    if log_path:
        try:
            with open(log_path, "rb") as f:
                # The last 64 KiB since the request began: the cause
                # comes last (at DEBUG or TRACE there is much before it).
                size = os.fstat(f.fileno()).st_size
                f.seek(max(offset, size - 65536))
                lines = f.read().decode("utf-8", "replace").splitlines()
        except OSError:
            pass
    return OpError(message, log=_errlog.report_lines(lines))


def unlink_symlinked_rootfs(c: Any) -> None:
    """:func:`lxactors._chroot.unlink_symlinks_to_store` for the handle *c*."""
    rootfs = config_item(c, b"lxc.rootfs.path").decode("utf-8", "surrogateescape")
    home = os.path.join(ffi.string(c.config_path), ffi.string(c.name)).decode("utf-8", "surrogateescape")
    unlink_symlinks_to_store(rootfs, home)
