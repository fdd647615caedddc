"""tcpvm: a new container for every TCP client (erlxc's ``tcpvm`` example).

Listen on a TCP port (default ``127.0.0.1:31337``); each client that
connects gets a temporary container of its own, its socket wired to the
container's console: bytes from the client go to the console, console
output goes to the client.  When the client disconnects the container is
exited and destroyed; when the container stops the client is disconnected.
At most ``max_clients`` (default 32) are served at once: one more is told so
in one line and closed.

One thread per client owns its container (it reads the container's messages
and writes them to the socket); a second thread per client reads the
socket.  :meth:`TcpVm.shutdown` (``lxactors tcpvm`` calls it on
SIGINT/SIGTERM) stops accepting, exits every container and closes every
client::

    from lxactors.tcpvm import serve
    serve(("127.0.0.1", 31337), spawn_options={"config": [("lxc.net.0.link", "br0")]})

Connect with ``lxactors connect 127.0.0.1:31337`` (raw terminal, job
control; any user), or ``nc 127.0.0.1 31337`` / ``socat `tty`,raw,echo=0
tcp:127.0.0.1:31337`` where installed.  The busybox console first asks for
Enter.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import logging
import os
import queue
import selectors
import socket
import threading
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

import lxactors
from lxactors.apps import marker
from lxactors.apps.command import UsageError, first_line, key_value, say, signals

if TYPE_CHECKING:
    from lxactors.apps.command import Subparsers

__all__ = [
    "DEFAULT_LISTEN",
    "DEFAULT_MAX_CLIENTS",
    "Client",
    "TcpVm",
    "format_address",
    "parse_listen",
    "register",
    "serve",
]

log = logging.getLogger("lxactors.tcpvm")

DEFAULT_LISTEN: tuple[str, int] = ("127.0.0.1", 31337)
DEFAULT_MAX_CLIENTS = 32
#: Containers `lxactors tcpvm` boots ahead (--pool).
DEFAULT_POOL = 2
#: Seconds a stopping server waits for its clients' containers to go.
STOP_TIMEOUT = 30.0
#: Where liblxc looks for ``lxc-<name>`` template scripts.
TEMPLATE_DIRS = ("/usr/share/lxc/templates", "/usr/local/share/lxc/templates")

Address = tuple[str, int]


def parse_listen(text: str) -> Address:
    """``ADDR:PORT``, ``[V6ADDR]:PORT``, ``:PORT`` (all interfaces) or ``PORT``."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = DEFAULT_LISTEN[0], text
    elif host == "":
        host = "0.0.0.0"
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        number = int(port)
    except ValueError:
        number = -1
    if not 0 <= number <= 65535 or not host:
        raise ValueError(f"--listen wants ADDR:PORT (port 0-65535), not {text!r}")
    return host, number


def format_address(addr: Any) -> str:
    """``host:port``, or ``[v6host]:port``."""
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Client:
    """One connection and its container."""

    def __init__(self, server: TcpVm, sock: socket.socket, addr: Any) -> None:
        self.server = server
        self.sock = sock
        self.peer = format_address(addr)
        self.ref: lxactors.ContainerRef | None = None
        self.thread = threading.Thread(target=self._run, name=f"tcpvm {self.peer}", daemon=True)
        self._stopping = threading.Event()
        self._lock = threading.Lock()

    @property
    def container(self) -> str | None:
        return self.ref.name if self.ref is not None else None

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        """Exit the container and disconnect (from any thread; idempotent)."""
        self._stopping.set()
        self._exit_container()
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)

    # -- the client's threads

    def _run(self) -> None:
        """This thread owns the container: console output -> socket."""
        reader: threading.Thread | None = None
        try:
            try:
                ref = self.server.spawn()
            except Exception as exc:
                log.warning("client %s: cannot start a container: %s", self.peer, exc)
                self._say(f"lxactors tcpvm: cannot start a container: {first_line(exc)}")
                return
            with self._lock:
                self.ref = ref
            if self._stopping.is_set():
                return
            log.info("client %s: container %s", self.peer, ref.name)
            self._mark(ref)
            reader = threading.Thread(target=self._read, args=(ref,),
                                      name=f"tcpvm {self.peer} reader", daemon=True)
            reader.start()
            self._relay(ref)
        except Exception:
            log.exception("client %s", self.peer)
        finally:
            self._exit_container()
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)
            if reader is not None:
                reader.join(10)
            self.sock.close()
            log.info("client %s: gone%s", self.peer,
                     f"; container {self.ref.name} exited" if self.ref else "")
            self.server._done(self)

    def _relay(self, ref: lxactors.ContainerRef) -> None:
        while True:
            try:
                msg = ref.receive(timeout=1.0)
            except queue.Empty:
                if not ref.alive or self._stopping.is_set():
                    return
                continue
            if isinstance(msg, lxactors.ConsoleOutput):
                try:
                    self.sock.sendall(msg.data)
                except OSError:
                    return  # the client is gone
            elif isinstance(msg, lxactors.ContainerExited):
                return

    def _read(self, ref: lxactors.ContainerRef) -> None:
        """Socket -> console, until the client disconnects; then exit the container."""
        try:
            while True:
                try:
                    data = self.sock.recv(65536)
                except OSError:
                    break
                if not data:
                    break
                try:
                    lxactors.send(ref, data)
                except lxactors.LxcError:
                    break  # the container ended
        finally:
            self._exit_container()

    def _exit_container(self) -> None:
        with self._lock:
            ref = self.ref
        if ref is not None and ref.alive:
            try:
                lxactors.exit(ref, "kill")
            except lxactors.LxcError as exc:
                log.warning("client %s: exit of %s failed: %s", self.peer, ref.name, exc)

    def _mark(self, ref: lxactors.ContainerRef) -> None:
        """Tell ``lxactors ls`` who this container is for (it goes with the container)."""
        try:
            marker.write(os.path.join(ref.path, ref.name), "tcpvm", client=self.peer,
                         server=format_address(self.server.address))
        except OSError:
            pass  # already gone

    def _say(self, line: str) -> None:
        with contextlib.suppress(OSError):
            self.sock.sendall(line.encode("utf-8", "replace") + b"\r\n")

    def __repr__(self) -> str:
        return f"<tcpvm Client {self.peer} container={self.container!r}>"


class TcpVm:
    """The server: ``TcpVm(listen, max_clients, spawn_options)``.

    :meth:`bind` (or ``with``) opens the socket; :meth:`serve_forever`
    accepts until :meth:`shutdown`; :meth:`close` exits every container.
    *spawn_options* go to :func:`lxactors.spawn` for every client (``path``,
    ``config``, ``create``...).  Each client's root shell runs in a user
    namespace unless they say ``userns=False``: see the README's security
    section before turning it off.
    """

    def __init__(self, listen: Address = DEFAULT_LISTEN, max_clients: int = DEFAULT_MAX_CLIENTS,
                 spawn_options: Mapping[str, Any] | None = None, pool: int = 0) -> None:
        if isinstance(max_clients, bool) or not isinstance(max_clients, int) or max_clients < 1:
            raise ValueError(f"max_clients must be a positive int, not {max_clients!r}")
        if isinstance(pool, bool) or not isinstance(pool, int) or pool < 0:
            raise ValueError(f"pool must be a non-negative int, not {pool!r}")
        #: Containers booted ahead (see :meth:`bind`); 0: every client spawns cold.
        self.pool_size = pool
        self._pool: lxactors.Pool | None = None
        options = dict(spawn_options or {})
        for bad in ("name", "owner"):
            if bad in options:
                raise ValueError(f"spawn_options must not set {bad!r}: each client gets its own")
        # Check the options now, not once per client; the user namespace
        # (on unless spawn_options say userns=False) is resolved once too.
        options = lxactors.spawn_options(**options)
        self.userns: lxactors.IdMap | None = options["userns"] or None
        self.listen = listen
        self.max_clients = max_clients
        self.spawn_options = options
        self.refusal = (f"lxactors tcpvm: too many clients (at most {max_clients}); "
                        "try again later\r\n").encode()
        self._sock: socket.socket | None = None
        self._clients: set[Client] = set()
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
            full = len(self._clients) >= self.max_clients
            if not full:
                conn.setblocking(True)
                client = Client(self, conn, addr)
                self._clients.add(client)
                self.served += 1
        if full:
            self.refused += 1
            log.info("client %s: refused (%d clients)", format_address(addr), self.max_clients)
            with contextlib.suppress(OSError):
                conn.setblocking(False)
                conn.send(self.refusal)
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
            self._clients.discard(client)
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
          ready: Callable[[TcpVm], None] | None = None) -> None:
    """Run a :class:`TcpVm` until it is shut down; every container is exited after.

    *ready* is called with the bound server (its ``address``, ``shutdown()``)
    before the first accept.  Call it from the main thread to stop on
    SIGINT/SIGTERM with :func:`main`, or call ``server.shutdown()``.
    """
    with TcpVm(listen, max_clients, spawn_options) as server:
        if ready is not None:
            ready(server)
        server.serve_forever()


# ---------------------------------------------------------------- lxactors tcpvm


def register(subparsers: Subparsers) -> None:
    """Add ``lxactors tcpvm``."""
    p = subparsers.add_parser(
        "tcpvm", help="a shell in a new container for every TCP client",
        description="Listen on TCP; every client gets a temporary container "
        "wired to its console, exited and destroyed when the client leaves.")
    p.add_argument("--listen", default="127.0.0.1:31337", metavar="ADDR:PORT",
                   help="address to listen on (default 127.0.0.1:31337; ':PORT' for all)")
    p.add_argument("--max-clients", type=int, default=32, metavar="N",
                   help="clients served at once; more are refused (default 32)")
    p.add_argument("--config", type=key_value, action="append", default=[],
                   metavar="KEY=VALUE",
                   help="liblxc config item for every container, e.g. lxc.net.0.link=br0")
    p.add_argument("--template", help="create each container with this template "
                   "(default: overlay clones of a cached busybox base)")
    p.add_argument("--path", help="lxcpath (default: liblxc's)")
    p.add_argument("--no-userns", action="store_true",
                   help="give clients the host's root, not a user namespace's (see the "
                   "README's security section first)")
    p.add_argument("--pool", type=int, default=DEFAULT_POOL, metavar="N",
                   help=f"containers booted ahead, handed to clients at once (default "
                   f"{DEFAULT_POOL}; 0: none)")
    p.set_defaults(run=_run, log=(log.name,))


def _run(args: argparse.Namespace) -> int:
    try:
        listen = parse_listen(args.listen)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    if args.max_clients < 1:
        raise UsageError(f"--max-clients must be at least 1, not {args.max_clients}")
    if args.pool < 0:
        raise UsageError(f"--pool must be at least 0, not {args.pool}")
    options: dict[str, Any] = {}
    if args.path:
        options["path"] = os.path.abspath(args.path)
    if args.config:
        options["config"] = _with_veth_defaults(list(args.config))
    if args.template:
        _check_template(args.template)
        options["create"] = {"template": args.template}
    if args.no_userns:
        options["userns"] = False
    try:
        server = TcpVm(listen, args.max_clients, options, pool=args.pool)
    except (TypeError, ValueError) as exc:
        raise UsageError(str(exc)) from exc
    try:
        server.bind()
    except OSError as exc:
        server.close()
        why = "address already in use" if exc.errno == errno.EADDRINUSE else (
            exc.strerror or str(exc)).lower()
        say(f"cannot listen on {format_address(listen)}: {why}")
        return 1
    try:
        # From here on SIGINT/SIGTERM stop the server cleanly (even while the
        # base is being built: serve_forever then returns at once).
        with signals(lambda signum: server.shutdown()):
            if not args.template:
                # Unnamed containers are clones of a cached base: build it now,
                # not when the first client is waiting.
                lxactors.ensure_base(options.get("path"), server.userns, progress=True)
            host, port = server.address
            say(f"tcpvm listening on {format_address(server.address)} "
                f"(at most {args.max_clients} clients); try: lxactors connect {host}:{port}")
            server.serve_forever()
    finally:
        n = server.close()
    say(f"tcpvm stopped; {n} container{'s' if n != 1 else ''} exited")
    return 0


def _with_veth_defaults(config: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """``lxc.net.N.link=BR`` alone means a veth on BR, up (as erlxc's example assumed)."""
    keys = {k for k, _ in config}
    extra = []
    for key, _ in config:
        if key.startswith("lxc.net.") and key.endswith(".link"):
            net = key[: -len(".link")]
            if f"{net}.type" not in keys:
                extra.append((f"{net}.type", "veth"))
            if f"{net}.flags" not in keys:
                extra.append((f"{net}.flags", "up"))
    return extra + config


def _template_exists(template: str) -> bool:
    if "/" in template:
        return os.access(template, os.X_OK)
    return any(os.access(os.path.join(d, f"lxc-{template}"), os.X_OK) for d in TEMPLATE_DIRS)


def _check_template(template: str) -> None:
    if not _template_exists(template):
        known = sorted({n[4:] for d in TEMPLATE_DIRS if os.path.isdir(d)
                        for n in os.listdir(d) if n.startswith("lxc-")})
        hint = f"; known: {', '.join(known)}" if known else ""
        raise UsageError(f"unknown template {template!r}{hint}")
