"""A container's messages from its node's agent to its owner's process: one TCP connection each.

Through Ray, each streamed item cost about half a millisecond of CPU on each
end (serialization, the reply's copies, gRPC, a dozen thread wake-ups), and
its backpressure is one reply per item: on two CPUs that left a console
stream across nodes at 0.6-0.8x a local one.  Here the agent writes the
messages, in order, to a connection the owner's process opened to it; TCP's
own flow control is the backpressure (the agent's write waits, the
container's window fills, its pty is not read, its writer blocks).  The
spawn's Ray call stays open beside it: its failure says the node or its
agent is lost even where no connection reset would (a machine switched off).

The owner's process connects to the address its spawn's first item named
and sends the token that came with it: a connection without a waiting
token is closed unread, so only the owner reads the console.  What comes
back is frames (a kind byte, a 4-byte length, the payload): console bytes
as they are, the other messages as JSON of their fields.  Nothing is
unpickled from the network.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import socket
import struct
import threading
from collections.abc import Iterator
from typing import Any

from lxactors import ConsoleOutput, ContainerExited, ContainerRestarted, GaveUp, Message

__all__ = ["Listener", "Reader", "Writer", "TOKEN_BYTES", "connect"]

TOKEN_BYTES = 16
#: The owner's process has this long, after its spawn's first item, to connect.
CONNECT_TIMEOUT = 30.0
#: Socket buffers, each end: what TCP may hold beyond the container's window (the
#: kernel doubles the figure).  Large enough for a batch in flight.
BUFFER = 512 * 1024
#: The largest frame: longer console output (a window larger than this, filled while
#: the owner was behind) goes in several.
MAX_FRAME = 1 << 20

_HEADER = struct.Struct("!cI")
_HELLO, _CONSOLE, _MESSAGE, _END = b"H", b"C", b"M", b"E"
_KINDS: dict[str, type[Any]] = {c.__name__: c for c in (ContainerExited, ContainerRestarted, GaveUp)}


def encode(message: Message) -> bytes:
    """A non-console message as JSON: its class's name and fields."""
    return json.dumps({"kind": type(message).__name__, **dataclasses.asdict(message)}).encode()


def decode(payload: bytes) -> Message:
    """The message :func:`encode` wrote (``ValueError`` for anything else)."""
    fields = json.loads(payload)
    kind = _KINDS.get(fields.pop("kind", None)) if isinstance(fields, dict) else None
    if kind is None:
        raise ValueError(f"not an lxactors message: {payload[:100]!r}")
    try:
        if "exited" in fields:
            fields["exited"] = ContainerExited(**fields["exited"])
        message: Message = kind(**fields)
    except TypeError as exc:
        raise ValueError(f"not an lxactors message: {payload[:100]!r}") from exc
    return message


class Listener:
    """The agent's socket: each connection brings the token of the stream it is for."""

    def __init__(self, host: str) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._sock = socket.create_server((host, 0), family=family)
        self.address: tuple[str, int] = self._sock.getsockname()[:2]
        self._lock = threading.Lock()
        self._waiting: dict[bytes, tuple[threading.Event, list[socket.socket]]] = {}
        threading.Thread(target=self._accept, name="lxactors-relay", daemon=True).start()

    def expect(self) -> bytes:
        """A new token: the next :meth:`connection` for it waits for its connection."""
        token = secrets.token_bytes(TOKEN_BYTES)
        with self._lock:
            self._waiting[token] = (threading.Event(), [])
        return token

    def discard(self, token: bytes) -> None:
        """No :meth:`connection` will be asked for *token* (its stream ended first)."""
        with self._lock:
            self._waiting.pop(token, None)

    def connection(self, token: bytes, timeout: float = CONNECT_TIMEOUT) -> Writer | None:
        """The connection that brought *token* (None if none came within *timeout*)."""
        with self._lock:
            event, got = self._waiting[token]
        event.wait(timeout)
        with self._lock:
            self._waiting.pop(token, None)
        if not got:
            return None
        return Writer(got[0])

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._greet, args=(conn,), daemon=True).start()

    def _greet(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(5.0)
            token = _recv_exact(conn, TOKEN_BYTES)
            conn.settimeout(None)
        except OSError:
            conn.close()
            return
        with self._lock:
            slot = self._waiting.get(token)
            if slot is not None and not slot[1]:
                slot[1].append(conn)
                slot[0].set()
                return
        conn.close()  # no stream waits for it: nothing is sent


class Writer:
    """The agent's end of one stream."""

    def __init__(self, conn: socket.socket) -> None:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, BUFFER)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._conn = conn
        self._frame(_HELLO, b"")

    def send(self, batch: list[Message]) -> None:
        """Write *batch*, in order; waits while the reader is behind (``OSError`` once it is gone)."""
        for m in batch:
            if isinstance(m, ConsoleOutput):
                data = memoryview(m.data)
                for at in range(0, len(data), MAX_FRAME):
                    self._frame(_CONSOLE, data[at:at + MAX_FRAME])
            else:
                self._frame(_MESSAGE, encode(m))

    def end(self) -> None:
        """The stream ended as it should: the reader is told so, not left to think it lost."""
        self._frame(_END, b"")

    def close(self) -> None:
        """Also from another thread: a write waiting for the reader returns (``OSError``)."""
        try:
            self._conn.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._conn.close()

    def _frame(self, kind: bytes, payload: bytes | memoryview) -> None:
        self._conn.sendall(_HEADER.pack(kind, len(payload)))
        if payload:
            self._conn.sendall(payload)


def connect(address: tuple[str, int], token: bytes, timeout: float = CONNECT_TIMEOUT) -> Reader:
    """The owner's end of one stream, its token sent (the agent's answer is read with the
    messages: a spawn does not wait for it)."""
    conn = socket.create_connection(address, timeout=timeout)
    try:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, BUFFER)
        conn.sendall(token)
        conn.settimeout(None)
    except BaseException:
        conn.close()
        raise
    return Reader(conn)


class Reader:
    """The owner's end of one stream: the container's messages, in order."""

    def __init__(self, conn: socket.socket) -> None:
        self._conn = conn
        self._file = conn.makefile("rb", buffering=BUFFER)

    def messages(self, name: str) -> Iterator[Message]:
        """Until the agent's end; ``ConnectionError`` if the stream broke before it
        (or the agent refused its token)."""
        if self.frame()[0] != _HELLO:
            raise ConnectionError(f"the agent did not open the stream of {name}")
        while True:
            kind, payload = self.frame()
            if kind == _CONSOLE:
                yield ConsoleOutput(name, payload)
            elif kind == _MESSAGE:
                yield decode(payload)
            elif kind == _END:
                return
            else:
                raise ConnectionError(f"unexpected frame {kind!r} in the stream of {name}")

    def frame(self) -> tuple[bytes, bytes]:
        try:
            header = self._file.read(_HEADER.size)
        except OSError as exc:
            raise ConnectionError(f"the stream broke: {exc}") from exc
        if len(header) < _HEADER.size:
            raise ConnectionError("the stream ended before the container did")
        kind, size = _HEADER.unpack(header)
        if size > MAX_FRAME:
            raise ConnectionError(f"a frame of {size} bytes")
        try:
            payload = self._file.read(size) if size else b""
        except OSError as exc:
            raise ConnectionError(f"the stream broke: {exc}") from exc
        if len(payload) < size:
            raise ConnectionError("the stream ended before the container did")
        return kind, payload

    def interrupt(self) -> None:
        """From another thread: a read waiting for the agent returns (``ConnectionError``)."""
        try:
            self._conn.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def close(self) -> None:
        """By the reading thread, once it is done."""
        self._file.close()
        self._conn.close()


def _recv_exact(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data
