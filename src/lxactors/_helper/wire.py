"""The helper's wire format, used by both ends: frames, replies, fds, pickles.

A request is one SOCK_SEQPACKET message, ``encode_request(req)``: a pickled
``(op, {field: value})``; the reply pipe and the op's fds ride along by
SCM_RIGHTS.  A reply is a stream of frames on that pipe, each a 4-byte
big-endian length and a pickle of ``("ok", value)`` or ``("err", kind,
message, log)``; ``attach`` and a foreground ``start`` send two (a pid, then
an exit or wait status).

Both ends decode with :func:`loads`, whose unpickler refuses every global:
only builtin containers, str, bytes, numbers, bool and None cross, so
neither end can make the other import or call anything (the helper must be
safe against a hostile client, issue 16).  The requests themselves, one
typed dataclass per op, are :mod:`lxactors._helper.protocol`.  The standard
library and the extension only: the helper imports this without pykka.
"""

from __future__ import annotations

import array
import io
import os
import pickle
import select
import socket
import struct
from typing import Any

from lxactors._ffi import lib

__all__ = [
    "MAX_FDS", "MAX_FRAME", "MAX_REQUEST", "FrameReader", "WireError", "dumps", "encode_frame",
    "error", "loads", "ok", "recv_fds", "write_frame",
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


#: How long a side that expects an answer (or the next quick request) soon
#: polls without sleeping: a sleeping process on an idle CPU of a VM is woken
#: by an interrupt to the host, which costs more than a quick call's work.
#: 0 where it would only delay the other side: a process on one CPU.
SPIN_NS = 150_000 if len(os.sched_getaffinity(0)) > 1 else 0


def readable(fd: int, timeout_ms: int | None, spin_ns: int = SPIN_NS) -> bool:
    """Whether *fd* becomes readable within *timeout_ms* (None: no limit),
    polled without sleeping for its first *spin_ns* (in C: the GIL is free)."""
    if spin_ns > 0 and lib.lxa_spin_readable(fd, spin_ns):
        return True
    p = select.poll()
    p.register(fd, select.POLLIN)
    return bool(p.poll(timeout_ms))


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
