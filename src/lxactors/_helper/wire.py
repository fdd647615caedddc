"""The helper's wire format, used by both ends: frames, replies, typed requests.

A request is one SOCK_SEQPACKET message, ``encode_request(req)``: a pickled
``(op, {field: value})``; the reply pipe and the op's fds ride along by
SCM_RIGHTS.  A reply is a stream of frames on that pipe, each a 4-byte
big-endian length and a pickle of ``("ok", value)`` or ``("err", kind,
message, log)``; ``attach`` and a foreground ``start`` send two (a pid, then
an exit or wait status).

Both ends decode with :func:`loads`, whose unpickler refuses every global:
only builtin containers, str, bytes, numbers, bool and None cross, so
neither end can make the other import or call anything (the helper must be
safe against a hostile client, issue 16).  Each op is one frozen dataclass
declared here: the client builds it (an unknown, missing or mistyped field
is a TypeError at the sending end), the helper rebuilds it from the wire
(the same checks, answered with an error reply).  Standard library only:
the helper imports this without pykka.
"""

from __future__ import annotations

import array
import io
import os
import pickle
import socket
import struct
import types
import typing
from dataclasses import dataclass, fields
from typing import Any, ClassVar, TypeVar

from lxactors._policy import check_type

__all__ = [
    "MAX_FDS", "MAX_FRAME", "MAX_REQUEST", "FrameReader", "Request", "HandleRequest", "WireError",
    "decode_request", "encode_frame", "encode_request", "error", "loads", "ok", "recv_fds",
    "write_frame",
    "AddDeviceNode", "Attach", "AttachInterface", "BoundLayer", "Checkpoint", "Clone", "CloneStart",
    "Console",
    "Create",
    "Destroy", "DestroyWithSnapshots", "DetachInterface", "Migrate", "Mount", "Register",
    "RemoveDeviceNode", "RemoveStaleCgroups", "Rename", "Restore", "Snapshot", "SnapshotDestroy",
    "SnapshotDestroyAll", "SnapshotRestore", "Start", "Umount", "Unregister",
]

#: Most fds one request carries (the reply pipe first).
MAX_FDS = 8
#: Largest request the helper reads (the client's socket limits it further).
MAX_REQUEST = 1 << 20
#: Largest reply frame (an attach's captured output is the big one).
MAX_FRAME = 1 << 30
_HEADER = struct.Struct("!I")


class WireError(ValueError):
    """A frame or request that does not follow the format."""


# --------------------------------------------------------------------------- pickles


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        raise WireError(f"refused global {module}.{name} on the helper wire")


def recv_fds(sock: socket.socket, size: int, max_fds: int = MAX_FDS) -> tuple[bytes, list[int]]:
    """One message and the fds that came with it, received close-on-exec.

    Not ``socket.recv_fds``: Python 3.11's drops its *flags*, so the fds
    would be inheritable and every attached command would get the reply pipe
    (and could forge frames to the user's process).
    """
    msg, ancdata, _flags, _addr = sock.recvmsg(size, socket.CMSG_SPACE(max_fds * 4),
                                               socket.MSG_CMSG_CLOEXEC)
    fds = array.array("i")
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - (len(data) % fds.itemsize)])
    return msg, list(fds)


def dumps(value: object) -> bytes:
    return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


def loads(data: bytes) -> Any:
    """Unpickle plain data only; anything else (or garbage) is a WireError."""
    try:
        return _Unpickler(io.BytesIO(data)).load()
    except WireError:
        raise
    except Exception as exc:
        raise WireError(f"malformed pickle: {type(exc).__name__}: {exc}") from exc


# --------------------------------------------------------------------------- frames


def ok(value: object) -> tuple[str, object]:
    return ("ok", value)


def error(kind: str, message: str, log: list[str]) -> tuple[str, str, str, list[str]]:
    """``kind`` picks the client's exception: "helper" (HelperError) or "lxc" (LxcError)."""
    return ("err", kind, message, log)


def _check_reply(value: object) -> tuple[Any, ...]:
    if isinstance(value, tuple) and len(value) == 2 and value[0] == "ok":
        return value
    if (isinstance(value, tuple) and len(value) == 4 and value[0] == "err"
            and isinstance(value[1], str) and isinstance(value[2], str)
            and isinstance(value[3], list) and all(isinstance(ln, str) for ln in value[3])):
        return value
    raise WireError(f"not a reply frame: {value!r:.200}")


def encode_frame(value: object) -> bytes:
    data = dumps(_check_reply(value))
    if len(data) > MAX_FRAME:
        raise WireError(f"reply frame too large ({len(data)} bytes > {MAX_FRAME})")
    return _HEADER.pack(len(data)) + data


def write_frame(fd: int, value: object) -> None:
    view = memoryview(encode_frame(value))
    while view:
        n = os.write(fd, view)
        view = view[n:]


class FrameReader:
    """Reassembles frames from the bytes read off a reply pipe."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> None:
        self._buf += data

    def pop(self) -> tuple[Any, ...] | None:
        """The next whole frame (a checked reply tuple), or None until one is in."""
        if len(self._buf) < _HEADER.size:
            return None
        (size,) = _HEADER.unpack_from(self._buf)
        if size > MAX_FRAME:
            raise WireError(f"frame length {size} exceeds {MAX_FRAME}")
        end = _HEADER.size + size
        if len(self._buf) < end:
            return None
        data = bytes(self._buf[_HEADER.size:end])
        del self._buf[:end]
        return _check_reply(loads(data))


# --------------------------------------------------------------------------- requests


def _matches(value: object, hint: Any) -> bool:
    """Whether plain *value* fits the field annotation *hint* (the few kinds used here)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float))
    if hint is bool:  # a C bool: 0 and 1 do too
        return isinstance(value, int)
    if origin is list:
        (item,) = typing.get_args(hint)
        return isinstance(value, list) and all(_matches(v, item) for v in value)
    if origin is dict:
        k, v = typing.get_args(hint)
        return isinstance(value, dict) and all(_matches(a, k) and _matches(b, v)
                                               for a, b in value.items())
    return isinstance(value, hint)


@dataclass(frozen=True, kw_only=True)
class Request:
    """One op for the helper; subclasses are declared with :func:`_op`."""

    op: ClassVar[str] = ""

    def __post_init__(self) -> None:
        for name, hint in _hints(type(self)).items():
            value = getattr(self, name)
            if not _matches(value, hint):
                raise TypeError(f"helper request {self.op}: {name} must be {hint}, "
                                f"not {type(value).__name__}")


_REQUESTS: dict[str, type[Request]] = {}
_HINTS: dict[type[Request], dict[str, Any]] = {}
R = TypeVar("R", bound=type[Request])


def _hints(cls: type[Request]) -> dict[str, Any]:
    hints = _HINTS.get(cls)
    if hints is None:
        every = typing.get_type_hints(cls)
        hints = _HINTS[cls] = {f.name: every[f.name] for f in fields(cls)}
    return hints


def _op(name: str) -> typing.Callable[[R], R]:
    """Register a request class under its op name (what the wire carries)."""

    def register(cls: R) -> R:
        cls.op = name
        _REQUESTS[name] = cls
        return cls

    return register


def encode_request(req: Request) -> bytes:
    return dumps((req.op, {name: getattr(req, name) for name in _hints(type(req))}))


def decode_request(data: bytes) -> Request:
    """Rebuild a request; a WireError says what is wrong with it."""
    value = loads(data)
    if not (isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], dict)):
        raise WireError("a request is (op, {field: value})")
    op, args = value
    cls = _REQUESTS.get(op) if isinstance(op, str) else None
    if cls is None:
        raise WireError(f"unknown helper operation {op!r:.100}")
    unknown = [k for k in args if k not in _hints(cls)]
    if unknown:
        raise WireError(f"{op}: unknown field(s) {', '.join(map(repr, unknown))[:200]}")
    try:
        return cls(**args)
    except TypeError as exc:
        raise WireError(f"{op}: {exc}") from exc


@_op("register")
@dataclass(frozen=True, kw_only=True)
class Register(Request):
    """What to do with the container if the user's process dies (its type)."""

    path: str
    name: str
    type: str

    def __post_init__(self) -> None:
        super().__post_init__()
        try:
            check_type(self.type)
        except ValueError as exc:
            raise TypeError(f"helper request register: {exc}") from None


@_op("unregister")
@dataclass(frozen=True, kw_only=True)
class Unregister(Request):
    path: str
    name: str


@dataclass(frozen=True, kw_only=True)
class HandleRequest(Request):
    """An op on one container: the worker opens its own handle on it.

    ``log`` is the client handle's liblxc log file (None: the user set one);
    ``config`` a snapshot of its in-memory configuration, for ops that must
    see unsaved changes.
    """

    name: str
    path: str
    log: str | None
    config: str | None = None


@_op("start")
@dataclass(frozen=True, kw_only=True)
class Start(HandleRequest):
    argv: list[bytes] | None
    useinit: bool
    daemonize: bool
    close_all_fds: bool


@_op("create")
@dataclass(frozen=True, kw_only=True)
class Create(HandleRequest):
    template: str | None
    bdevtype: str | None
    specs: dict[str, str | int] | None
    flags: int
    argv: list[bytes]


@_op("clone")
@dataclass(frozen=True, kw_only=True)
class Clone(HandleRequest):
    newname: str
    lxcpath: str | None
    flags: int
    bdevtype: str | None
    bdevdata: str | None
    newsize: int
    hookargs: list[bytes] | None


@_op("clone_start")
@dataclass(frozen=True, kw_only=True)
class CloneStart(HandleRequest):
    """A spawn in one request: clone the stopped container *base* (same
    lxcpath) to *name* as an overlay snapshot, set *items* on the clone's
    config (``[key, value]``; a value of None clears the key), start it.

    One round trip and one config parse where clone then start take two of
    each.  A clone that does not start is destroyed: the reply is a running
    container's init pid (None: init already ended) or an error, and no
    container is left either way.  No snapshot: the config is the base's.
    """

    base: str
    items: list[list[str | None]]
    argv: list[bytes] | None
    useinit: bool
    close_all_fds: bool

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.config is not None:
            raise TypeError("helper request clone_start: config must be None (the base's is used)")
        for item in self.items:
            if len(item) != 2 or not isinstance(item[0], str):
                raise TypeError("helper request clone_start: items are [key, value or None]")
        # Each string crosses to C as one NUL-terminated field.
        texts = [self.name, self.path, self.log or "", self.base,
                 *(t for item in self.items for t in item if t is not None)]
        if any("\0" in t for t in texts) or any(b"\0" in a for a in self.argv or ()):
            raise TypeError("helper request clone_start: a field holds a NUL byte")
        if any("\n" in t for item in self.items for t in item if t is not None):
            raise TypeError("helper request clone_start: a config item holds a newline")


@_op("remove_stale_cgroups")
@dataclass(frozen=True, kw_only=True)
class RemoveStaleCgroups(HandleRequest):
    """The empty cgroups a killed monitor left; answered with how many were its payload's."""


@_op("rename")
@dataclass(frozen=True, kw_only=True)
class Rename(HandleRequest):
    newname: str


@_op("destroy")
@dataclass(frozen=True, kw_only=True)
class Destroy(HandleRequest):
    pass


@_op("destroy_with_snapshots")
@dataclass(frozen=True, kw_only=True)
class DestroyWithSnapshots(HandleRequest):
    pass


@_op("snapshot")
@dataclass(frozen=True, kw_only=True)
class Snapshot(HandleRequest):
    commentfile: str | None


@_op("snapshot_restore")
@dataclass(frozen=True, kw_only=True)
class SnapshotRestore(HandleRequest):
    snapname: str
    newname: str


@_op("snapshot_destroy")
@dataclass(frozen=True, kw_only=True)
class SnapshotDestroy(HandleRequest):
    snapname: str


@_op("snapshot_destroy_all")
@dataclass(frozen=True, kw_only=True)
class SnapshotDestroyAll(HandleRequest):
    pass


@_op("add_device_node")
@dataclass(frozen=True, kw_only=True)
class AddDeviceNode(HandleRequest):
    src_path: str
    dest_path: str | None


@_op("remove_device_node")
@dataclass(frozen=True, kw_only=True)
class RemoveDeviceNode(HandleRequest):
    src_path: str
    dest_path: str | None


@_op("attach_interface")
@dataclass(frozen=True, kw_only=True)
class AttachInterface(HandleRequest):
    dev: str
    dst_dev: str | None


@_op("detach_interface")
@dataclass(frozen=True, kw_only=True)
class DetachInterface(HandleRequest):
    dev: str
    dst_dev: str | None


@_op("mount")
@dataclass(frozen=True, kw_only=True)
class Mount(HandleRequest):
    source: str | None
    target: str
    fstype: str | None
    flags: int
    data: str | None


@_op("umount")
@dataclass(frozen=True, kw_only=True)
class Umount(HandleRequest):
    target: str
    flags: int


@_op("bound_layer")
@dataclass(frozen=True, kw_only=True)
class BoundLayer(HandleRequest):
    """Put an overlay clone's writable layer on a tmpfs of *size* bytes (``Limits.disk``)."""

    size: int


@_op("checkpoint")
@dataclass(frozen=True, kw_only=True)
class Checkpoint(HandleRequest):
    directory: str
    stop: bool
    verbose: bool


@_op("restore")
@dataclass(frozen=True, kw_only=True)
class Restore(HandleRequest):
    directory: str
    verbose: bool


@_op("migrate")
@dataclass(frozen=True, kw_only=True)
class Migrate(HandleRequest):
    """liblxc's ``struct migrate_opts``: the optional fields are its own."""

    cmd: int
    directory: str
    predump_dir: str | None = None
    pageserver_address: str | None = None
    pageserver_port: str | None = None
    action_script: str | None = None
    verbose: bool = False
    stop: bool = False
    preserves_inodes: bool = False
    disable_skip_in_flight: bool = False
    ghost_limit: int = 0
    features_to_check: int = 0


@_op("console")
@dataclass(frozen=True, kw_only=True)
class Console(HandleRequest):
    """liblxc's interactive console on the three fds sent along."""

    ttynum: int
    escape: int


@_op("attach")
@dataclass(frozen=True, kw_only=True)
class Attach(HandleRequest):
    """Run *argv* in the container: with ``capture`` through pipes (fed
    ``input``, killed after ``timeout`` seconds), else on the fds sent along."""

    argv: list[bytes]
    env: dict[str, str]
    clear_env: bool
    uid: int | None
    gid: int | None
    groups: list[int] | None
    cwd: str | None
    namespaces: int
    flags: int
    capture: bool
    input: bytes = b""
    timeout: float | None = None
