"""Console I/O: one selector thread for every console, with flow control.

Each :class:`Console` reads its container's console pty and delivers
:class:`ConsoleOutput` to the owner through a :class:`FlowWindow`: at most
``window`` bytes are in flight (delivered, not yet processed by the owner);
past that the pty is not read, so the writer in the container blocks:
nothing is dropped and memory stays bounded.  Writes (:meth:`Console.send`)
are buffered, and block the sender once a window of bytes is waiting.

The same thread watches each container's init through a pidfd, so the
container actor learns at once when init exits.
"""

from __future__ import annotations

import errno
import logging
import os
import selectors
import threading
import time
from collections.abc import Callable
from typing import Any

from lxactors._errors import LxcError, LxcTimeoutError
from lxactors._messages import ConsoleOutput
from lxactors._owner import Owner
from lxactors._singleton import PerProcess
from lxactors._window import DEFAULT_WINDOW, FlowWindow

__all__ = ["Console", "hub", "DEFAULT_WINDOW"]

log = logging.getLogger("lxactors")

_READ_MAX = 64 * 1024
#: A message takes at most 1/_IN_FLIGHT of the window (but _READ_MIN bytes).
_IN_FLIGHT = 4
_READ_MIN = 4096


class Console:
    """One container's console: the pty controller fd and its keep-alive fd."""

    def __init__(self, container: str, ptx: int, keepalive: int, owner: Owner,
                 window: int = DEFAULT_WINDOW, on_eof: Callable[[], None] | None = None) -> None:
        self.container = container
        self.ptx = ptx
        self.keepalive = keepalive
        self.owner = owner
        self.on_eof = on_eof
        os.set_blocking(ptx, False)
        self._lock = threading.Condition()
        self._window = FlowWindow(window, on_open=lambda: hub().wake())
        self._wbuf = bytearray()
        self._closed = False
        self._eof = False
        self.bytes_read = 0

    # called from any thread ----------------------------------------------------

    @property
    def window(self) -> int:
        """The flow-control window, in bytes (a pool's hand-over changes it)."""
        return self._window.size

    @window.setter
    def window(self, size: int) -> None:
        # The window itself, not only the read size: a pooled container handed over with a
        # larger window kept its boot's 64 KiB one, and a cluster agent's outbox, waiting for a
        # 256 KiB batch, got 64 KiB per 8 ms linger (6 MB/s instead of 40).
        self._window.size = size
        hub().wake()

    @property
    def inflight(self) -> int:
        """Bytes delivered to the owner and not yet processed."""
        return self._window.inflight

    def set_owner(self, owner: Owner) -> None:
        self.owner = owner
        hub().wake()

    def send(self, data: bytes, timeout: float | None = 30.0) -> None:
        """Queue *data* for the console; block while a window of bytes waits."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"console data must be bytes, not {type(data).__name__}")
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while len(self._wbuf) >= self.window and not self._closed:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise LxcTimeoutError(self.container, "send", "console input is not drained")
                self._lock.wait(remaining)
            if self._closed:
                raise LxcError(self.container, "send", "the console is closed")
            self._wbuf += data
        hub().wake()

    def close(self) -> None:
        """Stop I/O and close both fds (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._lock.notify_all()
        hub().remove(self)

    @property
    def closed(self) -> bool:
        return self._closed

    # called from the hub thread --------------------------------------------------

    def _events(self) -> int:
        if self._closed:
            return 0
        ev = 0
        if not self._eof and self._window.room:
            ev |= selectors.EVENT_READ
        if self._wbuf:
            ev |= selectors.EVENT_WRITE
        return ev

    def _on_read(self) -> None:
        room = min(_READ_MAX, self._window.room, max(_READ_MIN, self.window // _IN_FLIGHT))
        if room <= 0:
            return
        # A pty read returns at most a line discipline's buffer (4 KiB):
        # what is already waiting is read on into one message, so a fast
        # writer costs one delivery (and one acknowledgement) per a few
        # reads; a message takes at most a part of the window, so that
        # reading goes on while the owner processes the last one.
        chunks: list[bytes] = []
        got = 0
        eof = False
        while got < room:
            try:
                data = os.read(self.ptx, room - got)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno != errno.EIO:
                    log.warning("console %s: read failed: %s", self.container, exc)
                data = b""
            if not data:
                eof = True
                break
            chunks.append(data)
            got += len(data)
        if got:
            data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            self.bytes_read += got
            self._window.deliver(self.owner, ConsoleOutput(self.container, data), got)
        if eof:
            self._eof = True
            if self.on_eof is not None:
                self.on_eof()

    def _on_write(self) -> None:
        with self._lock:
            try:
                n = os.write(self.ptx, self._wbuf[:_READ_MAX])
            except BlockingIOError:
                return
            except OSError as exc:
                log.warning("console %s: write failed: %s", self.container, exc)
                n = len(self._wbuf)
            del self._wbuf[:n]
            self._lock.notify_all()

    def _close_fds(self) -> None:
        for fd in (self.ptx, self.keepalive):
            try:
                os.close(fd)
            except OSError:
                pass
        self.ptx = self.keepalive = -1


class _Watch:
    """A pidfd whose process end is reported once."""

    def __init__(self, pidfd: int, callback: Callable[[], None]) -> None:
        self.pidfd = pidfd
        self.callback = callback


class _Hub:
    """The selector thread."""

    def __init__(self) -> None:
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._sel.register(self._wake_r, selectors.EVENT_READ, None)
        self._lock = threading.Lock()
        self._consoles: set[Console] = set()
        self._pending_remove: list[Console | _Watch] = []
        self._pending_watch: list[_Watch] = []
        self._registered: dict[int, tuple[int, Any]] = {}
        self._thread = threading.Thread(target=self._run, name="lxactors-console", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except BlockingIOError:
            pass

    def add(self, console: Console) -> None:
        with self._lock:
            self._consoles.add(console)
        self.wake()

    def remove(self, console: Console) -> None:
        with self._lock:
            self._pending_remove.append(console)
        self.wake()

    def watch(self, pidfd: int, callback: Callable[[], None]) -> Callable[[], None]:
        """Call *callback* (in the hub thread) once *pidfd* is readable.

        Returns a function that cancels the watch; the pidfd is closed
        either way.
        """
        w = _Watch(pidfd, callback)
        with self._lock:
            self._pending_watch.append(w)
        self.wake()

        def cancel() -> None:
            with self._lock:
                self._pending_remove.append(w)
            self.wake()

        return cancel

    def _sync(self) -> None:
        with self._lock:
            removals, self._pending_remove = self._pending_remove, []
            watches, self._pending_watch = self._pending_watch, []
            consoles = list(self._consoles)
            for item in removals:
                if isinstance(item, Console):
                    self._consoles.discard(item)
        for w in watches:
            self._set(w.pidfd, selectors.EVENT_READ, w)
        for item in removals:
            fd = item.ptx if isinstance(item, Console) else item.pidfd
            if fd >= 0:
                self._set(fd, 0, None)
            if isinstance(item, Console):
                item._close_fds()
            elif item.pidfd >= 0:
                os.close(item.pidfd)
                item.pidfd = -1
        for c in consoles:
            if c.ptx >= 0 and c not in removals:
                self._set(c.ptx, c._events(), c)

    def _set(self, fd: int, events: int, data: Any) -> None:
        current = self._registered.get(fd)
        if current is not None and current[0] == events and current[1] is data:
            return
        if current is not None:
            self._sel.unregister(fd)
            del self._registered[fd]
        if events:
            self._sel.register(fd, events, data)
            self._registered[fd] = (events, data)

    def _run(self) -> None:
        # Every console's interest is looked at again after a wake-up (a
        # console added, closed, written to, or its window freed from another
        # thread); after its own reads and writes only that console's: a
        # stream's many events cost no pass over all the process's consoles.
        sync = True
        while True:
            try:
                if sync:
                    self._sync()
                sync = False
                touched: list[Console] = []
                for key, events in self._sel.select():
                    item = key.data
                    if item is None:
                        sync = True
                        try:
                            while os.read(self._wake_r, 4096):
                                pass
                        except BlockingIOError:
                            pass
                    elif isinstance(item, _Watch):
                        self._set(item.pidfd, 0, None)
                        try:
                            item.callback()
                        finally:
                            os.close(item.pidfd)
                            item.pidfd = -1
                    else:
                        touched.append(item)
                        if events & selectors.EVENT_WRITE:
                            item._on_write()
                        if events & selectors.EVENT_READ:
                            item._on_read()
                if not sync:
                    for c in touched:
                        if c.ptx >= 0:
                            self._set(c.ptx, c._events(), c)
            except Exception:  # never let the one I/O thread die
                sync = True
                log.exception("lxactors console thread")


_hub = PerProcess(_Hub)


def hub() -> _Hub:
    """The process's console thread (started on first use, again after fork)."""
    return _hub.get()
