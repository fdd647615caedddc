"""tcpvm's server: the listening socket, admission, and the clients' end.

:class:`TcpVm` accepts connections, refuses those past ``max_clients`` or
``max_per_address`` with one line, hands each other one to a
:class:`~lxactors.apps.tcpvm_client.Client`, and on :meth:`TcpVm.close`
exits every client's container.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import selectors
import socket
import threading
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

import lxactors
from lxactors.apps.tcpvm_client import Address, Client, format_address

__all__ = [
    "DEFAULT_LIMITS",
    "DEFAULT_LISTEN",
    "DEFAULT_MAX_CLIENTS",
    "DEFAULT_MAX_PER_ADDRESS",
    "DEFAULT_POOL",
    "STOP_TIMEOUT",
    "TcpVm",
    "serve",
]

log = logging.getLogger("lxactors.tcpvm")

#: The address served by default: loopback only (a client gets a root shell in a container).
DEFAULT_LISTEN: tuple[str, int] = ("127.0.0.1", 31337)
#: Clients served at once by default; one more is told so in one line and closed.
DEFAULT_MAX_CLIENTS = 32
#: Connections one client address may hold at once by default (None: no bound).
DEFAULT_MAX_PER_ADDRESS = 8
#: Containers `lxactors tcpvm` boots ahead (--pool).
DEFAULT_POOL = 2
#: What each client's container may take unless told otherwise (the README's Security section).
DEFAULT_LIMITS = lxactors.Limits(pids=256, memory="256M", cpu=1.0, disk="128M")
#: Seconds a stopping server waits for its clients' containers to go.
STOP_TIMEOUT = 30.0


class TcpVm:
    """The server: ``TcpVm(listen, max_clients, spawn_options, limits=..., ...)``.

    :meth:`bind` (or ``with``) opens the socket; :meth:`serve_forever`
    accepts until :meth:`shutdown`; :meth:`close` exits every container.
    *spawn_options* go to :func:`lxactors.spawn` for every client (``path``,
    ``config``, ``create``...).  Each client's root shell runs in a user
    namespace unless they say ``userns=False``, and within *limits*
    (:data:`DEFAULT_LIMITS`; None: unbounded): see the README's security
    section before turning either off.  *idle_timeout* and *max_session*
    (seconds, None: off) end a session; *max_per_address* (None: off)
    bounds the sessions of one client address.
    """

    def __init__(self, listen: Address = DEFAULT_LISTEN, max_clients: int = DEFAULT_MAX_CLIENTS,
                 spawn_options: Mapping[str, Any] | None = None, *,
                 limits: lxactors.Limits | None = DEFAULT_LIMITS,
                 idle_timeout: float | None = None, max_session: float | None = None,
                 max_per_address: int | None = DEFAULT_MAX_PER_ADDRESS, pool: int = 0) -> None:
        if isinstance(max_clients, bool) or not isinstance(max_clients, int) or max_clients < 1:
            raise ValueError(f"max_clients must be a positive int, not {max_clients!r}")
        if max_per_address is not None and (isinstance(max_per_address, bool) or not isinstance(
                max_per_address, int) or max_per_address < 1):
            raise ValueError(f"max_per_address must be a positive int or None, "
                             f"not {max_per_address!r}")
        for what, value in (("idle_timeout", idle_timeout), ("max_session", max_session)):
            if value is not None and (isinstance(value, bool) or not isinstance(
                    value, (int, float)) or not 0 < value < 2**31):
                raise ValueError(f"{what} must be a positive number of seconds or None, "
                                 f"not {value!r}")
        if isinstance(pool, bool) or not isinstance(pool, int) or pool < 0:
            raise ValueError(f"pool must be a non-negative int, not {pool!r}")
        #: Containers booted ahead (see :meth:`bind`); 0: every client spawns cold.
        self.pool_size = pool
        self._pool: lxactors.Pool | None = None
        if limits is not None and not isinstance(limits, lxactors.Limits):
            raise TypeError(f"limits must be an lxactors.Limits or None, "
                            f"not {type(limits).__name__}")
        options = dict(spawn_options or {})
        for bad in ("name", "owner"):
            if bad in options:
                raise ValueError(f"spawn_options must not set {bad!r}: each client gets its own")
        if "limits" in options:
            raise ValueError("give the limits as TcpVm(limits=...), not in spawn_options")
        if limits is not None:
            if limits.disk is not None and options.get("create") is not None:
                log.warning("containers made by a template get no disk bound (it bounds "
                            "overlay clones of the cached base); the others hold")
                limits = limits.replace(disk=None)
            options["limits"] = limits
        # Check the options now, not once per client; the user namespace
        # (on unless spawn_options say userns=False) is resolved once too.
        options = lxactors.spawn_options(**options)
        self.userns: lxactors.IdMap | None = options["userns"] or None
        self.listen = listen
        self.max_clients = max_clients
        self.limits = limits
        self.idle_timeout = None if idle_timeout is None else float(idle_timeout)
        self.max_session = None if max_session is None else float(max_session)
        self.max_per_address = max_per_address
        self.spawn_options = options
        self.refusal = (f"lxactors tcpvm: too many clients (at most {max_clients}); "
                        "try again later\r\n").encode()
        self._sock: socket.socket | None = None
        self._clients: set[Client] = set()
        self._per_address: dict[str, int] = {}
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_w.setblocking(False)
        self.refused = 0
        self.served = 0

    @property
    def address(self) -> Address:
        """The address actually bound (the port when 0 was asked)."""
        if self._sock is None:
            raise RuntimeError("not bound: call bind() first")
        name = self._sock.getsockname()
        return name[0], name[1]

    @property
    def clients(self) -> list[Client]:
        with self._lock:
            return list(self._clients)

    def bind(self) -> Address:
        """Open the listening socket (OSError if the address is in use), and
        start booting the pool's containers, owned by the calling thread."""
        if self._sock is None:
            host, port = self.listen
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            self._sock = socket.create_server((host, port), family=family, backlog=128)
            self._sock.setblocking(False)
        if self.pool_size and self._pool is None:
            self._pool = lxactors.Pool(self.pool_size, **self.spawn_options)
        return self.address

    def spawn(self) -> lxactors.ContainerRef:
        """A container for a client (the calling thread owns it): from the pool if one is ready."""
        if self._pool is not None and not self._pool.closed:
            return self._pool.spawn()
        return lxactors.spawn(**self.spawn_options)

    def serve_forever(self) -> None:
        """Accept clients until :meth:`shutdown` (then :meth:`close` the rest)."""
        sock = self._sock
        if sock is None:
            self.bind()
            sock = self._sock
            assert sock is not None
        with selectors.DefaultSelector() as sel:
            sel.register(sock, selectors.EVENT_READ)
            sel.register(self._wake_r, selectors.EVENT_READ)
            while not self._stop.is_set():
                for key, _ in sel.select():
                    if key.fileobj is self._wake_r:
                        with contextlib.suppress(OSError):
                            self._wake_r.recv(4096)
                    elif not self._stop.is_set():
                        self._accept(sock)

    def _accept(self, sock: socket.socket) -> None:
        try:
            conn, addr = sock.accept()
        except BlockingIOError:
            return
        except OSError as exc:
            log.warning("accept: %s", exc)
            if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                self._stop.wait(0.1)  # out of resources: let clients finish
            return
        with self._lock:
            refusal: bytes | None = None
            if len(self._clients) >= self.max_clients:
                refusal, why = self.refusal, f"{self.max_clients} clients"
            elif self.max_per_address is not None and \
                    self._per_address.get(addr[0], 0) >= self.max_per_address:
                refusal = (f"lxactors tcpvm: too many sessions from your address (at most "
                           f"{self.max_per_address}); try again later\r\n").encode()
                why = f"{self.max_per_address} sessions from {addr[0]}"
            else:
                conn.setblocking(True)
                client = Client(self, conn, addr)
                self._clients.add(client)
                self._per_address[client.host] = self._per_address.get(client.host, 0) + 1
                self.served += 1
        if refusal is not None:
            self.refused += 1
            log.info("client %s: refused (%s)", format_address(addr), why)
            with contextlib.suppress(OSError):
                conn.setblocking(False)
                conn.send(refusal)
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()
            return
        with contextlib.suppress(OSError):
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        try:
            client.start()
        except RuntimeError as exc:  # cannot start a thread
            log.warning("client %s: %s", client.peer, exc)
            client._say("lxactors tcpvm: server busy")
            conn.close()
            self._done(client)

    def _done(self, client: Client) -> None:
        with self._lock:
            if client in self._clients:
                self._clients.discard(client)
                left = self._per_address.pop(client.host, 1) - 1
                if left > 0:
                    self._per_address[client.host] = left
            self._idle.notify_all()

    def shutdown(self) -> None:
        """Stop :meth:`serve_forever` (safe from a signal handler and any thread)."""
        self._stop.set()
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    def close(self, timeout: float = STOP_TIMEOUT) -> int:
        """Stop listening, exit every container, wait for the clients; how many there were."""
        self.shutdown()
        if self._sock is not None:
            self._sock.close()
        if self._pool is not None:
            self._pool.close()
        clients = self.clients
        for c in clients:
            c.stop()
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._clients and time.monotonic() < deadline:
                self._idle.wait(deadline - time.monotonic())
            left = list(self._clients)
        for c in left:
            log.warning("client %s: still stopping after %g s", c.peer, timeout)
        for s in (self._wake_r, self._wake_w):
            s.close()
        return len(clients)

    def __enter__(self) -> TcpVm:
        self.bind()
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def serve(listen: Address = DEFAULT_LISTEN, max_clients: int = DEFAULT_MAX_CLIENTS,
          spawn_options: Mapping[str, Any] | None = None,
          ready: Callable[[TcpVm], None] | None = None, **bounds: Any) -> None:
    """Run a :class:`TcpVm` until it is shut down; every container is exited after.

    *ready* is called with the bound server (its ``address``, ``shutdown()``)
    before the first accept.  Call it from the main thread to stop on
    SIGINT/SIGTERM with :func:`~lxactors.tcpvm.main`, or call ``server.shutdown()``.
    *bounds* are TcpVm's ``limits``, ``idle_timeout``, ``max_session``,
    ``max_per_address``.
    """
    with TcpVm(listen, max_clients, spawn_options, **bounds) as server:
        if ready is not None:
            ready(server)
        server.serve_forever()
