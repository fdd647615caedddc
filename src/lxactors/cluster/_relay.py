"""A container's messages from its node's agent to its owner's process: one TCP connection each.

Through Ray, each streamed item cost about half a millisecond of CPU on each
end (serialization, the reply's copies, gRPC, a dozen thread wake-ups), and
its backpressure is one reply per item: on two CPUs that left a console
stream across nodes at 0.6-0.8x a local one.  Here the agent writes the
messages, in order, to a connection the owner's process opened to it; TCP's
own flow control is the backpressure (the agent's write waits, the
container's window fills, its pty is not read, its writer blocks).  The
spawn's Ray call stays open beside it: its failure says the node or its
agent is lost even where no connection reset would come (a machine
switched off, a node frozen).

The owner's process connects to the address its spawn's item named and
sends the token that came with it: a connection without a waiting token is
closed unread, so only the owner reads the console.  With Ray's TLS
(``RAY_USE_TLS``) the connection is mutual TLS with Ray's own certificates,
as Ray's gRPC is.  What comes back is frames (a kind byte, a 4-byte length,
the payload): console bytes as they are, the other messages as JSON of
their fields.  Nothing is unpickled from the network.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import secrets
import socket
import ssl
import struct
import threading
import time
from collections.abc import Iterator
from typing import Any

from lxactors import ConsoleOutput, ContainerExited, ContainerRestarted, GaveUp, Message

__all__ = ["Listener", "Reader", "Writer", "PROTOCOL", "TOKEN_BYTES", "connect"]

log = logging.getLogger("lxactors")

#: The spawn item's shape and these frames: an agent and an owner of different
#: lxactors versions (a detached agent outlives upgrades of its drivers) must agree.
PROTOCOL = "lxactors-relay-1"
TOKEN_BYTES = 16
#: The owner's process has this long, after its spawn's item, to connect; a
#: connection this long to send its token.
CONNECT_TIMEOUT = 30.0
GREET_TIMEOUT = 5.0
#: Connections being greeted at once; more are closed at once (a port scan
#: must not take the agent's threads).
GREETERS = 64
#: Socket buffers, each end: what TCP may hold beyond the container's window (the
#: kernel doubles the figure).
BUFFER = 512 * 1024
#: The largest frame: longer console output (a window larger than this, filled while
#: the owner was behind) goes in several.
MAX_FRAME = 1 << 20
#: The owner's end probes a silent connection (a node gone without a reset is also
#: told by the spawn's Ray call failing; this is the second line).
KEEPALIVE = (10, 2, 5)  # idle s, interval s, probes

_HEADER = struct.Struct("!cI")
_HELLO, _CONSOLE, _MESSAGE, _END = b"H", b"C", b"M", b"E"
_KINDS: dict[str, type[Any]] = {c.__name__: c for c in (ContainerExited, ContainerRestarted, GaveUp)}


def encode(message: Message) -> bytes:
    """A non-console message as JSON: its class's name and fields."""
    return json.dumps({"kind": type(message).__name__, **dataclasses.asdict(message)}).encode()


def decode(payload: bytes) -> Message:
    """The message :func:`encode` wrote (``ValueError`` for anything else)."""
    try:
        fields = json.loads(payload)
        name = fields.pop("kind", None) if isinstance(fields, dict) else None
        kind = _KINDS.get(name) if isinstance(name, str) else None
        if kind is None:
            raise ValueError("no lxactors message kind")
        if "exited" in fields:
            fields["exited"] = ContainerExited(**fields["exited"])
        message: Message = kind(**fields)
    except (ValueError, TypeError, RecursionError) as exc:
        raise ValueError(f"not an lxactors message: {payload[:100]!r}") from exc
    return message


def _tls(server: bool) -> ssl.SSLContext | None:
    """Ray's TLS settings, if it uses TLS: mutual, with Ray's certificates."""
    if os.environ.get("RAY_USE_TLS", "0").lower() not in ("1", "true"):
        return None
    purpose = ssl.Purpose.CLIENT_AUTH if server else ssl.Purpose.SERVER_AUTH
    ctx = ssl.create_default_context(purpose, cafile=os.environ.get("RAY_TLS_CA_CERT") or None)
    ctx.load_cert_chain(os.environ["RAY_TLS_SERVER_CERT"], os.environ["RAY_TLS_SERVER_KEY"])
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.check_hostname = False  # as Ray's gRPC: nodes are reached by address, not by name
    return ctx


class Listener:
    """The agent's socket: each connection brings the token of the stream it is for."""

    def __init__(self, host: str) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._sock = socket.create_server((host, 0), family=family)
        self.address: tuple[str, int] = self._sock.getsockname()[:2]
        self._tls = _tls(server=True)
        self._greeters = threading.BoundedSemaphore(GREETERS)
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
        """*token*'s stream ended: a :meth:`connection` waiting for it returns None now."""
        with self._lock:
            slot = self._waiting.pop(token, None)
        if slot is not None:
            slot[0].set()
            for conn in slot[1]:
                conn.close()

    def connection(self, token: bytes, timeout: float = CONNECT_TIMEOUT) -> socket.socket | None:
        """The connection that brought *token* (None if none came within *timeout*, or
        the token was discarded)."""
        with self._lock:
            slot = self._waiting.get(token)
        if slot is None:
            return None
        slot[0].wait(timeout)
        with self._lock:
            if self._waiting.get(token) is not slot:
                return None
            del self._waiting[token]
        return slot[1][0] if slot[1] else None

    def close(self) -> None:
        self._sock.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError as exc:
                if self._sock.fileno() < 0:
                    return  # closed
                log.warning("the agent's message socket: %s", exc)
                time.sleep(0.1)  # out of fds, say: not a reason to stop for good
                continue
            if not self._greeters.acquire(blocking=False):
                conn.close()
                continue
            threading.Thread(target=self._greet, args=(conn,), daemon=True).start()

    def _greet(self, conn: socket.socket) -> None:
        try:
            try:
                deadline = time.monotonic() + GREET_TIMEOUT
                conn.settimeout(GREET_TIMEOUT)
                if self._tls is not None:
                    conn = self._tls.wrap_socket(conn, server_side=True)
                token = b""
                while len(token) < TOKEN_BYTES:
                    conn.settimeout(max(0.01, deadline - time.monotonic()))
                    chunk = conn.recv(TOKEN_BYTES - len(token))
                    if not chunk:
                        raise ConnectionError("closed")
                    token += chunk
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
        finally:
            self._greeters.release()


class Writer:
    """The agent's end of one stream (its thread writes; others only :meth:`interrupt`)."""

    def __init__(self, conn: socket.socket) -> None:
        self._conn = conn
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, BUFFER)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
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

    def interrupt(self) -> None:
        """From another thread: a write waiting for the reader returns (``OSError``)."""
        _shut(self._conn)

    def close(self) -> None:
        self.interrupt()
        self._conn.close()

    def _frame(self, kind: bytes, payload: bytes | memoryview) -> None:
        header = _HEADER.pack(kind, len(payload))
        if len(payload) <= 4096:  # a keystroke's echo: one segment, not two
            self._conn.sendall(header + bytes(payload))
        else:
            self._conn.sendall(header)
            self._conn.sendall(payload)


def connect(address: tuple[str, int], token: bytes, timeout: float = CONNECT_TIMEOUT) -> Reader:
    """The owner's end of one stream, its token sent (the agent's answer is read with the
    messages: a spawn does not wait for it)."""
    host, port = address[0], address[1]
    family, kind, proto, _, where = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    conn = socket.socket(family, kind, proto)
    try:
        # Before connecting, or the window is not scaled to it (tcp(7)).
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, BUFFER)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        idle, interval, count = KEEPALIVE
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, idle)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, interval)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, count)
        conn.settimeout(timeout)
        conn.connect(where)
        tls = _tls(server=False)
        if tls is not None:
            conn = tls.wrap_socket(conn)
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
        (or the agent refused its token), ``ValueError`` for a frame that is not ours."""
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
                raise ValueError(f"unexpected frame {kind!r} in the stream of {name}")

    def frame(self) -> tuple[bytes, bytes]:
        try:
            header = self._file.read(_HEADER.size)
            if len(header) < _HEADER.size:
                raise ConnectionError("the stream ended before the container did")
            kind, size = _HEADER.unpack(header)
            if size > MAX_FRAME:
                raise ValueError(f"a frame of {size} bytes")
            payload = self._file.read(size) if size else b""
        except ConnectionError:
            raise
        except OSError as exc:
            raise ConnectionError(f"the stream broke: {exc}") from exc
        if len(payload) < size:
            raise ConnectionError("the stream ended before the container did")
        return kind, payload

    def interrupt(self) -> None:
        """From another thread: a read waiting for the agent returns (``ConnectionError``)."""
        _shut(self._conn)

    def close(self) -> None:
        """By the reading thread, once it is done."""
        self._file.close()
        self._conn.close()


def _shut(conn: socket.socket) -> None:
    """Both directions shut (the fd stays its owner's to close): a thread waiting on it returns."""
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
