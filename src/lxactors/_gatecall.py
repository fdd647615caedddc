"""A call to the gate: how one request travels and how its answer is read.

Each request goes with the far end of a reply channel of its own (a pipe; a
socket when fds come back: console ptys, pidfds), except the hot quick
calls (``calls.INLINE``), asked alone on the gate's socket and answered
there, one at a time per process.  Answers are frames (``wire``): a value,
or an exception of the real type, re-raised here.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from lxactors._errors import (
    AccessRefused,
    ContainerClosedError,
    HelperError,
    LxcError,
    LxcTimeoutError,
)
from lxactors._helper import protocol, wire
from lxactors._helper.calls import INLINE_MAX, Call
from lxactors._helperclient import GateHelper, Helper, Reply

__all__ = ["QUICK_TIMEOUT", "ProxyReply", "ask_inline", "plain", "send"]

#: Seconds a quick member may take (it neither forks nor waits).
QUICK_TIMEOUT = 60.0
_RAISE = {"refused": AccessRefused, "closed": ContainerClosedError, "timeout": LxcTimeoutError,
          "helper": HelperError, "lxc": LxcError}
_PLAIN = (str, bytes, int, float, bool, type(None))


class ProxyReply(Reply):
    """A call's reply socket: frames, and the fds sent with them."""

    def __init__(self, sock: socket.socket | int, container: str | None, operation: str) -> None:
        super().__init__(sock if isinstance(sock, int) else sock.fileno(), container, operation)
        self._sock = None if isinstance(sock, int) else sock
        self.fds: list[int] = []

    def _read(self) -> bytes:
        if self._sock is None:  # a pipe: no fds come this way
            return os.read(self.fd, 1 << 16)
        data, fds = wire.recv_fds(self._sock, 1 << 16)
        self.fds.extend(fds)
        return data

    def _decode(self, frame: tuple[Any, ...]) -> Any:
        value = super()._decode(frame)
        if isinstance(value, tuple) and value and value[0] == "return" and len(value) == 2:
            return value[1]
        if isinstance(value, tuple) and len(value) == 6 and value[0] == "raise":
            _, kind, container, operation, message, log = value
            if kind == "key":
                raise KeyError(message)
            if kind == "type":
                raise TypeError(message)
            if kind == "value":
                raise ValueError(message)
            raise _RAISE.get(kind, HelperError)(container, operation, message, log)
        raise HelperError(self.container, self.operation, f"bad reply {value!r:.100}")

    def __enter__(self) -> ProxyReply:
        return self

    def take_fds(self) -> list[int]:
        fds, self.fds = self.fds, []
        return fds

    def close(self) -> None:
        for fd in self.take_fds():
            os.close(fd)
        if self.fd >= 0:
            if self._sock is None:
                os.close(self.fd)
            else:
                self._sock.close()
            self.fd = -1


def plain(value: object, member: str) -> object:
    """An argument as plain data (what the wire carries)."""
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, Mapping):
        return {plain(k, member): plain(x, member) for k, x in value.items()}
    if isinstance(value, (list, tuple)) or (isinstance(value, Iterable) and not isinstance(value, range)):
        return [plain(x, member) for x in value]
    if isinstance(value, range):
        return list(value)
    raise TypeError(f"{member}: a {type(value).__name__} argument cannot cross to the helper")


#: Members whose answer carries fds: their reply channel is a socket, not a pipe.
_FDS_BACK = frozenset({"console_getfd", "init_pidfd"})


def send(gate: Helper, req: protocol.Request, fds: Sequence[int] = (),
         container: str | None = None) -> ProxyReply:
    """One request to the gate, with a pipe to answer on (a socket if fds come back)."""
    member = getattr(req, "member", req.op)
    mine = gate.send(req, fds, container, _socket_channel if member in _FDS_BACK else None)
    return ProxyReply(mine, container, member)


def _socket_channel() -> tuple[socket.socket, int]:
    """A reply channel fds can come back on: (our socket, the fd for the gate)."""
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    fd = os.dup(theirs.fileno())
    theirs.close()
    return mine, fd


def ask_inline(gate: GateHelper, req: Call, container: str | None,
               timeout: float | None) -> tuple[bool, Any]:
    """One :data:`~lxactors._helper.calls.INLINE` call answered on the gate's socket:
    ``(True, its value)``, or ``(False, None)``: ask it with a reply channel.

    One at a time per gate, so the answer on the socket is this call's; it is
    waited for polling a moment first (``wire.readable``), as the gate waits
    for the next such call.  A call
    not answered in time, or interrupted, leaves its answer to come on the
    socket: inline calls then stop on that socket (the gate may have one
    stuck), and the pipe path serves.
    """
    if gate._pid and gate._pid != os.getpid():
        return False, None  # a forked child: its lock may be held forever (the parent's threads)
    with gate.inline_lock:
        sock = gate._ensure()
        if gate.inline_off is sock:
            return False, None
        done = False
        try:
            try:
                sock.send(protocol.encode_request(req))
            except OSError:
                return False, None  # the pipe path reports (and reconnects) as it does
            if not wire.readable(sock.fileno(), None if timeout is None else int(timeout * 1000) + 1):
                raise LxcTimeoutError(container, req.member, f"no answer within {timeout:g} s")
            data = sock.recv(INLINE_MAX + 64)
            done = True
        finally:
            if not done:
                gate.inline_off = sock
    if not data:
        raise HelperError(container, req.member, "the gate ended without answering")
    decoder = ProxyReply(-1, container, req.member)
    decoder._frames.feed(data)
    try:
        frame = decoder._frames.pop()
    except wire.WireError as exc:
        raise HelperError(container, req.member, f"bad reply: {exc}") from None
    if frame is None:
        raise HelperError(container, req.member, "a partial reply on the gate's socket")
    if frame == ("ok", ("again",)):
        return False, None
    return True, decoder._decode(frame)
