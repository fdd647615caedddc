"""The ``chroot`` spawn option: directories and files made inside a rootfs.

Every path is taken relative to the rootfs (a leading ``/`` is allowed and
means the rootfs' root).  ``..`` is refused, and the walk opens each
directory with ``O_NOFOLLOW`` relative to its parent's fd, so no symlink —
planted beforehand or swapped in during the walk — leads outside.  Files are
written to a temporary name and renamed into place: a failure leaves nothing
half-made.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from lxactors._errors import LxcError

__all__ = ["DirSpec", "FileSpec", "CopySpec", "ChrootSpec", "FileOwner", "parse_chroot",
           "apply_chroot", "lower_dir", "overlay_layers", "rootfs_dir",
           "unlink_symlinks_to_store"]

_O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
#: Largest file content accepted in a spec (they are meant for small files).
MAX_CONTENT = 64 * 1024 * 1024


@dataclass(frozen=True)
class DirSpec:
    path: tuple[str, ...]
    mode: int | None = None


@dataclass(frozen=True)
class FileSpec:
    path: tuple[str, ...]
    content: bytes
    mode: int | None = None


@dataclass(frozen=True)
class CopySpec:
    source: str
    path: tuple[str, ...]
    mode: int | None = None


ChrootSpec = DirSpec | FileSpec | CopySpec


def _components(path: object, what: str) -> tuple[str, ...]:
    if isinstance(path, os.PathLike):
        path = os.fspath(path)
    if not isinstance(path, str):
        raise TypeError(f"chroot {what} path must be str, not {type(path).__name__}")
    if "\0" in path:
        raise ValueError(f"chroot {what} path contains NUL: {path!r}")
    parts = tuple(p for p in path.split("/") if p not in ("", "."))
    if ".." in parts:
        raise ValueError(f"chroot {what} path must not contain '..': {path!r}")
    if not parts:
        raise ValueError(f"chroot {what} path names the rootfs itself: {path!r}")
    return parts


def _mode(mode: object, what: str) -> int | None:
    if mode is None:
        return None
    if isinstance(mode, bool) or not isinstance(mode, int):
        raise TypeError(f"chroot {what} mode must be an int such as 0o755, not {type(mode).__name__}")
    if not 0 <= mode <= 0o7777:
        raise ValueError(f"chroot {what} mode out of range: {oct(mode)}")
    return mode


def _content(data: object) -> bytes:
    if isinstance(data, str):
        data = data.encode()
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"chroot file content must be bytes or str, not {type(data).__name__}")
    if len(data) > MAX_CONTENT:
        raise ValueError(f"chroot file content is over {MAX_CONTENT} bytes")
    return bytes(data)


def parse_chroot(spec: object) -> tuple[ChrootSpec, ...]:
    """Validate the seed's ``{chroot, [{dir, [...]}, {copy, [...]}, {file, [...]}]}``.

    Accepts a mapping ``{"dir": [...], "copy": [...], "file": [...]}`` or a
    sequence of ``(kind, [specs])`` pairs.  DirSpec: ``path`` or ``(path,
    mode)``; FileSpec: ``(path, content[, mode])``; CopySpec: ``(source,
    path[, mode])``.
    """
    if spec is None:
        return ()
    items: Iterable[object]
    if isinstance(spec, dict):
        items = list(spec.items())
    elif isinstance(spec, Sequence) and not isinstance(spec, (str, bytes)):
        items = spec
    else:
        raise TypeError("chroot must be a mapping or a list of (kind, specs) pairs")
    out: list[ChrootSpec] = []
    for item in items:
        if not (isinstance(item, tuple) and len(item) == 2):
            raise TypeError(f"chroot entry must be (kind, specs): {item!r}")
        kind, entries = item
        if isinstance(entries, (str, bytes)) or not isinstance(entries, Sequence):
            raise TypeError(f"chroot {kind!r} specs must be a list")
        for e in entries:
            out.append(_parse_one(kind, e))
    return tuple(out)


def _parse_one(kind: object, e: object) -> ChrootSpec:
    if kind == "dir":
        if isinstance(e, (str, os.PathLike)):
            return DirSpec(_components(e, "dir"))
        if isinstance(e, tuple) and len(e) == 2:
            return DirSpec(_components(e[0], "dir"), _mode(e[1], "dir"))
        raise TypeError(f"chroot dir spec must be path or (path, mode): {e!r}")
    if kind == "file":
        if isinstance(e, tuple) and len(e) in (2, 3):
            mode = _mode(e[2], "file") if len(e) == 3 else None
            return FileSpec(_components(e[0], "file"), _content(e[1]), mode)
        raise TypeError(f"chroot file spec must be (path, content[, mode]): {e!r}")
    if kind == "copy":
        if isinstance(e, tuple) and len(e) in (2, 3):
            src = os.fspath(e[0]) if isinstance(e[0], os.PathLike) else e[0]
            if not isinstance(src, str) or "\0" in src or not src:
                raise ValueError(f"chroot copy source must be a host path: {e[0]!r}")
            mode = _mode(e[2], "copy") if len(e) == 3 else None
            return CopySpec(src, _components(e[1], "copy"), mode)
        raise TypeError(f"chroot copy spec must be (source, path[, mode]): {e!r}")
    raise ValueError(f"unknown chroot kind {kind!r}: use 'dir', 'copy' or 'file'")


def overlay_layers(rootfs_path: str) -> tuple[str, str] | None:
    """An overlay rootfs's (top lower layer, upper layer), from ``lxc.rootfs.path``.

    liblxc reads it back as LOWER:UPPER, without the ``overlay:`` prefix.
    """
    path = rootfs_path.split(":", 1)[1] if rootfs_path.startswith(
        ("overlay:", "overlayfs:")) else rootfs_path
    if path.startswith("/") and ":" in path:
        return path.split(":", 1)[0], path.rsplit(":", 1)[1]
    return None


def unlink_symlinks_to_store(rootfs_path: str, home: str) -> None:
    """liblxc's destroy empties a dir rootfs (or overlay upper) by following a
    symlink put in its place or above it (under the container's directory
    *home*), then fails on the link: unlink such links first."""
    if not rootfs_path.startswith(("dir:", "overlay:", "overlayfs:", "/")):
        return
    store = p = rootfs_path.rsplit(":", 1)[-1]  # dir:PATH, [overlay:]LOWER:UPPER: what destroy removes
    while p.startswith(home + "/"):
        if os.path.islink(p):
            os.unlink(p)
        p = os.path.dirname(p)
    if os.path.islink(store) and os.path.isdir(store):
        os.unlink(store)


def rootfs_dir(rootfs_path: str) -> str:
    """The host directory chroot specs write into, from ``lxc.rootfs.path``."""
    if rootfs_path.startswith("dir:"):
        return rootfs_path[4:]
    layers = overlay_layers(rootfs_path)
    if layers is not None:
        return layers[1]  # new files go to the upper layer
    if rootfs_path.startswith("/"):
        return rootfs_path
    raise ValueError(f"chroot specs need a dir or overlay rootfs, not {rootfs_path!r}")


def lower_dir(rootfs_path: str) -> str | None:
    """An overlay rootfs's lower layer, from ``lxc.rootfs.path`` (None: no overlay)."""
    layers = overlay_layers(rootfs_path)
    return None if layers is None else layers[0]


#: (uid, gid) on the host of what chroot specs make (None: the caller's):
#: root of a user-namespaced container, or files it sees owned by nobody.
FileOwner = tuple[int, int] | None


@dataclass(frozen=True)
class _Layers:
    """Where specs are made (an fd on the rootfs or upper layer), as whom,
    and the overlay's lower layer whose directories an upper one must copy."""

    rootfd: int
    owner: FileOwner = None
    lower: str | None = None

    def like_lower(self, parts: tuple[str, ...]) -> os.stat_result | None:
        """The lower layer's directory at *parts*, if it is one all the way down."""
        if self.lower is None:
            return None
        here = self.lower
        st = None
        for part in parts:
            here = os.path.join(here, part)
            try:
                st = os.lstat(here)
            except OSError:
                return None
            if not stat.S_ISDIR(st.st_mode):
                return None
        return st


def _mkdir(layers: _Layers, parts: tuple[str, ...], parent: int, mode: int | None) -> None:
    """Make directory *parts* (its last part, in *parent*) unless it is there.

    Made with *mode* (None: 0o755), owned by the layers' owner; but in an
    overlay's upper layer a directory that the lower one has hides that
    one's mode and owner, so it gets the same (/tmp stays 1777).
    """
    part = parts[-1]
    lower = layers.like_lower(parts)
    try:
        os.mkdir(part, 0o700, dir_fd=parent)
    except FileExistsError:
        return
    fd = os.open(part, _O_DIR, dir_fd=parent)
    try:
        if lower is not None:
            os.fchown(fd, lower.st_uid, lower.st_gid)
            os.fchmod(fd, stat.S_IMODE(lower.st_mode) if mode is None else mode)
            return
        if layers.owner is not None:
            os.fchown(fd, *layers.owner)
        os.fchmod(fd, 0o755 if mode is None else mode)
    finally:
        os.close(fd)


@contextmanager
def _walk(layers: _Layers, parts: tuple[str, ...], create: bool) -> Iterator[int]:
    """Yield an fd for the directory *parts* under the rootfs, never leaving it."""
    fd = os.dup(layers.rootfd)
    try:
        for i, part in enumerate(parts):
            if create:
                _mkdir(layers, parts[: i + 1], fd, None)
            nfd = os.open(part, _O_DIR, dir_fd=fd)
            os.close(fd)
            fd = nfd
        yield fd
    finally:
        os.close(fd)


def _write(layers: _Layers, parts: tuple[str, ...], data: bytes, mode: int | None) -> None:
    with _walk(layers, parts[:-1], create=True) as parent:
        tmp = f".{parts[-1]}.lxactors-{secrets.token_hex(4)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600, dir_fd=parent)
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                if layers.owner is not None:
                    os.fchown(fd, *layers.owner)
                os.fchmod(fd, 0o644 if mode is None else mode)
            finally:
                os.close(fd)
            os.replace(tmp, parts[-1], src_dir_fd=parent, dst_dir_fd=parent)
        except BaseException:
            try:
                os.unlink(tmp, dir_fd=parent)
            except OSError:
                pass
            raise


def apply_chroot(container: str, rootfs: str, specs: Sequence[ChrootSpec],
                 owner: FileOwner = None, lower: str | None = None) -> None:
    """Make *specs* inside the directory *rootfs*; raise LxcError naming the spec.

    What is made is owned by *owner*, but for directories that the overlay
    layer *lower* (if given: *rootfs* is then its upper layer) already has.
    """
    try:
        rootfd = os.open(rootfs, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise LxcError(container, "chroot", f"cannot open rootfs {rootfs}: {exc}") from exc
    layers = _Layers(rootfd, owner, lower)
    try:
        for spec in specs:
            where = "/" + "/".join(spec.path)
            try:
                if isinstance(spec, DirSpec):
                    with _walk(layers, spec.path[:-1], create=True) as parent:
                        _mkdir(layers, spec.path, parent, spec.mode)
                        fd = os.open(spec.path[-1], _O_DIR, dir_fd=parent)
                        try:
                            if spec.mode is not None:  # else one that was there keeps its own
                                os.fchmod(fd, spec.mode)
                        finally:
                            os.close(fd)
                elif isinstance(spec, FileSpec):
                    _write(layers, spec.path, spec.content, spec.mode)
                else:
                    # O_NONBLOCK: opening a FIFO (or a tty) must not hang; the
                    # regular-file check below refuses it.
                    src = os.open(spec.source, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
                    try:
                        st = os.fstat(src)
                        if not stat.S_ISREG(st.st_mode):
                            raise ValueError(f"copy source {spec.source} is not a regular file")
                        with open(src, "rb", closefd=False) as f:
                            data = f.read(MAX_CONTENT + 1)
                    finally:
                        os.close(src)
                    if len(data) > MAX_CONTENT:
                        raise ValueError(f"copy source {spec.source} is over {MAX_CONTENT} bytes")
                    mode = spec.mode if spec.mode is not None else st.st_mode & 0o7777
                    _write(layers, spec.path, data, mode)
            except OSError as exc:
                in_the_way = exc.errno in (errno.ELOOP, errno.ENOTDIR)
                reason = "a symlink or non-directory is in the way" if in_the_way else exc.strerror
                raise LxcError(container, "chroot", f"{type(spec).__name__} {where}: {reason}") from exc
            except ValueError as exc:
                raise LxcError(container, "chroot", f"{type(spec).__name__} {where}: {exc}") from exc
    finally:
        os.close(rootfd)
