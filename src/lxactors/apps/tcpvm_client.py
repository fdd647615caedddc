"""tcpvm's client: one connection, its container, and the session's bounds.

A :class:`Client` has two threads: one owns the container (spawns it, relays
its console to the socket, ends the session at its idle or time bound),
the other relays the socket to the console.  Either ending exits the
container; the server (:class:`lxactors.apps.tcpvm_server.TcpVm`) is told
when both are done.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import socket
import threading
import time
from typing import TYPE_CHECKING, Any

import lxactors
from lxactors.apps import marker
from lxactors.apps.command import first_line

if TYPE_CHECKING:
    from lxactors.apps.tcpvm_server import TcpVm

__all__ = ["Address", "Client", "format_address"]

log = logging.getLogger("lxactors.tcpvm")

Address = tuple[str, int]


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
        self.host: str = addr[0]
        self.ref: lxactors.ContainerRef | None = None
        self.started = self.active = time.monotonic()
        #: Why the session ended (the first reason wins), and the limits met by then.
        self.why: str | None = None
        self.events: dict[str, int] | None = None
        self.thread = threading.Thread(target=self._run, name=f"tcpvm {self.peer}", daemon=True)
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._exit_lock = threading.Lock()

    @property
    def container(self) -> str | None:
        return self.ref.name if self.ref is not None else None

    def start(self) -> None:
        self.thread.start()

    def stop(self, why: str = "server stopping") -> None:
        """Exit the container and disconnect (from any thread; idempotent)."""
        self._end(why)
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
                self._end(f"cannot start a container: {first_line(exc)}")
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
        except Exception as exc:
            self._end(f"error: {first_line(exc)}")
            log.exception("client %s", self.peer)
        finally:
            self._exit_container()
            if self.ref is not None:
                marker.remove(self.ref.path, self.ref.name)
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)
            if reader is not None:
                reader.join(10)
            self.sock.close()
            log.info("client %s: %s", self.peer, self.summary())
            self.server._done(self)

    def summary(self) -> str:
        """The log line's text: container, duration, why it ended, the limits it met."""
        took = time.monotonic() - self.started
        text = (f"container {self.ref.name}" if self.ref else "no container") + \
            f", {took:.1f} s, ended: {self.why or 'unknown'}"
        met = [f"{n} {what}" for what, n in (
            ("forks refused at pids.max", (self.events or {}).get("pids", 0)),
            ("killed at the memory bound (OOM)", (self.events or {}).get("oom_kills", 0)),
            ("CPU periods throttled", (self.events or {}).get("cpu_throttled", 0))) if n]
        return text + (f"; limits met: {', '.join(met)}" if met else "")

    def _end(self, why: str) -> None:
        with self._lock:
            if self.why is None:
                self.why = why

    def _bound_hit(self, now: float) -> str | None:
        """The session bound this session has reached, if any."""
        s = self.server
        if s.idle_timeout is not None and now - self.active >= s.idle_timeout:
            return f"idle for {s.idle_timeout:g} s"
        if s.max_session is not None and now - self.started >= s.max_session:
            return f"session time limit ({s.max_session:g} s)"
        return None

    def _next_check(self, now: float) -> float:
        s = self.server
        wait = 1.0
        if s.idle_timeout is not None:
            wait = min(wait, self.active + s.idle_timeout - now)
        if s.max_session is not None:
            wait = min(wait, self.started + s.max_session - now)
        return max(wait, 0.01)

    def _relay(self, ref: lxactors.ContainerRef) -> None:
        while True:
            now = time.monotonic()
            hit = self._bound_hit(now)
            if hit is not None:
                self._end(hit)
                self._exit_container()
                self._say(f"\r\nlxactors tcpvm: {hit}; disconnecting")
                return
            try:
                msg = ref.receive(timeout=self._next_check(now))
            except queue.Empty:
                if not ref.alive or self._stopping.is_set():
                    self._end("container gone")
                    return
                continue
            if isinstance(msg, lxactors.ConsoleOutput):
                self.active = time.monotonic()
                try:
                    self.sock.sendall(msg.data)
                except OSError:
                    self._end("client gone")
                    return
            elif isinstance(msg, lxactors.ContainerExited):
                self._end(f"container exited ({msg.reason})")
                return

    def _read(self, ref: lxactors.ContainerRef) -> None:
        """Socket -> console, until the client disconnects; then exit the container."""
        try:
            while True:
                try:
                    data = self.sock.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    self._end("client left")
                    break
                self.active = time.monotonic()
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
            with self._exit_lock:
                if self.events is None:  # read while the container's cgroup is there
                    self.events = lxactors.limit_events(ref)
            try:
                lxactors.exit(ref, "kill")
            except lxactors.LxcError as exc:
                log.warning("client %s: exit of %s failed: %s", self.peer, ref.name, exc)

    def _mark(self, ref: lxactors.ContainerRef) -> None:
        """Tell ``lxactors ls`` who this container is for (it goes with the container)."""
        try:
            marker.write(ref.path, ref.name, "tcpvm", client=self.peer,
                         server=format_address(self.server.address))
        except OSError:
            pass  # already gone

    def _say(self, line: str) -> None:
        with contextlib.suppress(OSError):
            self.sock.sendall(line.encode("utf-8", "replace") + b"\r\n")

    def __repr__(self) -> str:
        return f"<tcpvm Client {self.peer} container={self.container!r}>"

