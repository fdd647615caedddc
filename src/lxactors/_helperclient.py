"""The user-side end of the helper process (see ``_helper``).

One helper per process, started on first use and started again if it dies
or the process forks.  Calls from many threads run concurrently: each request
has its own reply pipe and its own worker in the helper.
"""

from __future__ import annotations

import array
import errno
import os
import pickle
import select
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

from lxactors._errlog import log_dir
from lxactors._errors import HelperError, LxcError, LxcTimeoutError

__all__ = ["Helper", "Reply", "helper", "set_helper_wrapper"]

HELPER_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_helper.py")
#: Default timeout for a helper round trip, in seconds.
DEFAULT_TIMEOUT = 120.0
#: Largest request the helper socket (SOCK_SEQPACKET, default wmem) carries.
MAX_MESSAGE = 200_000


class Reply:
    """The read end of one request's reply pipe: frames until EOF."""

    def __init__(self, fd: int, container: str | None, operation: str) -> None:
        self.fd = fd
        self.container = container
        self.operation = operation
        self._buf = bytearray()

    def frame(self, timeout: float | None) -> Any:
        """Return the next frame's value, raising what the worker reported."""
        deadline = None if timeout is None or timeout < 0 else time.monotonic() + timeout
        while True:
            if len(self._buf) >= 4:
                (size,) = struct.unpack("!I", self._buf[:4])
                if len(self._buf) >= 4 + size:
                    data = bytes(self._buf[4 : 4 + size])
                    del self._buf[: 4 + size]
                    return self._decode(pickle.loads(data))
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise LxcTimeoutError(
                    self.container, self.operation, f"no answer within {timeout:g} s"
                )
            # poll, not select: a process holding hundreds of containers has
            # fds past select's limit of 1024.
            poller = select.poll()
            poller.register(self.fd, select.POLLIN)
            if not poller.poll(None if remaining is None else max(0, int(remaining * 1000) + 1)):
                continue
            chunk = os.read(self.fd, 1 << 16)
            if not chunk:
                raise HelperError(
                    self.container, self.operation, "the helper worker ended without answering"
                )
            self._buf += chunk

    def _decode(self, frame: tuple[Any, ...]) -> Any:
        if frame[0] == "ok":
            return frame[1]
        _, kind, message, log = frame
        cls = HelperError if kind == "helper" else LxcError
        raise cls(self.container, self.operation, message, log)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Reply:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Helper:
    """A running helper process and the socket to it."""

    def __init__(self, wrapper: Sequence[str] = (), *, process_wide: bool = False) -> None:
        self.wrapper = list(wrapper)
        #: The process's own helper also removes the process's log directory
        #: if the process is killed (a per-container one ends with its container).
        self.process_wide = process_wide
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._pid = 0
        self._relay: threading.Thread | None = None
        #: What the helper must do with each container if this process dies;
        #: replayed to a new helper if the old one died.
        self._registry: dict[tuple[str, str], str] = {}

    @property
    def pid(self) -> int | None:
        """The helper's pid, if it runs."""
        return self._proc.pid if self._proc is not None else None

    def _ensure(self) -> socket.socket:
        with self._lock:
            if self._pid and self._pid != os.getpid():
                # A forked child: the parent's helper and containers are not ours.
                self._registry.clear()
                self._sock = None
                self._proc = None
            if (
                self._sock is not None
                and self._pid == os.getpid()
                and self._proc is not None
                and self._proc.poll() is None
            ):
                return self._sock
            self._spawn()
            assert self._sock is not None
            for (path, name), type_ in list(self._registry.items()):
                self._send_registry(self._sock, "register", path, name, type_)
            return self._sock

    @staticmethod
    def _send_registry(sock: socket.socket, op: str, path: str, name: str,
                       type_: str | None) -> None:
        payload = pickle.dumps((op, {"path": path, "name": name, "type": type_}))
        r, w = os.pipe2(os.O_CLOEXEC)
        try:
            sock.sendmsg([payload], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [w]))])
        finally:
            os.close(w)
        with Reply(r, name, op) as reply:
            reply.frame(10)

    def register(self, path: str, name: str, type_: str) -> None:
        """Tell the helper the container's type, for the case this process dies."""
        with self._lock:
            self._registry[(path, name)] = type_
        self.call("register", {"path": path, "name": name, "type": type_}, container=name,
                  timeout=10)

    def unregister(self, path: str, name: str) -> None:
        with self._lock:
            if self._registry.pop((path, name), None) is None:
                return
        if self._sock is not None and self._pid == os.getpid():
            self.call("unregister", {"path": path, "name": name}, container=name, timeout=10)

    def _spawn(self) -> None:
        if self._pid == os.getpid():
            self._close_locked()
        if self._relay is not None and self._pid == os.getpid():
            # The last helper's relay ends once it and its children are gone:
            # wait a moment, so a replaced helper does not add an fd.
            self._relay.join(2.0)
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        try:
            self._proc = subprocess.Popen(
                [*self.wrapper, sys.executable, "-I", HELPER_SCRIPT, str(child.fileno()),
                 *([log_dir(), str(os.getpid())] if self.process_wide else [])],
                pass_fds=(child.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err_w,
                close_fds=True,
            )
        except OSError as exc:
            parent.close()
            os.close(err_r)
            raise HelperError(None, "start helper", f"cannot run the helper: {exc}") from exc
        finally:
            child.close()
            os.close(err_w)
        # On the lowest free fd (the child's ends took lower ones than the
        # last helper's): a replaced helper leaves the process's fds as they were.
        low = os.dup(err_r)
        if low < err_r:
            os.close(err_r)
            err_r = low
        else:
            os.close(low)
        self._relay = _relay_stderr(err_r)
        self._sock = parent
        self._pid = os.getpid()

    def _close_locked(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._proc is not None and self._pid == os.getpid():
            try:
                self._proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    def close(self) -> None:
        """Close the socket: the helper applies its policies and exits."""
        with self._lock:
            self._close_locked()

    def request(
        self,
        op: str,
        args: dict[str, Any],
        fds: Sequence[int] = (),
        container: str | None = None,
    ) -> Reply:
        """Send one request; return its reply channel."""
        payload = pickle.dumps((op, args), protocol=pickle.HIGHEST_PROTOCOL)
        for attempt in (1, 2):
            sock = self._ensure()
            r, w = os.pipe2(os.O_CLOEXEC)
            try:
                sock.sendmsg(
                    [payload],
                    [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [w, *fds]))],
                )
            except OSError as exc:
                os.close(r)
                if exc.errno == errno.EMSGSIZE:  # the request, not the helper, is at fault
                    raise HelperError(container, op, f"request too large ({len(payload)} bytes "
                                      f"> the socket's {MAX_MESSAGE} byte limit)") from exc
                if attempt == 2:
                    raise HelperError(container, op, f"cannot reach the helper: {exc}") from exc
                with self._lock:
                    self._close_locked()
                continue
            finally:
                os.close(w)
            return Reply(r, container, op)
        raise AssertionError("unreachable")

    def call(
        self,
        op: str,
        args: dict[str, Any],
        fds: Sequence[int] = (),
        container: str | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
    ) -> Any:
        """One request, one answer."""
        with self.request(op, args, fds, container) as reply:
            return reply.frame(timeout)


def _relay_stderr(fd: int) -> threading.Thread:
    """Copy the helper's stderr to ours until every writer has closed it.

    The helper is given a pipe, never our own stderr: everything it forks
    (workers, a foreground monitor, what liblxc forks) would inherit that,
    and ours may be the user's terminal (a process holding it can inject
    input) or a file the user's process shares (pytest's capture file).
    """
    def relay() -> None:
        try:
            while chunk := os.read(fd, 1 << 16):
                view = memoryview(chunk)
                while view:
                    try:
                        view = view[os.write(2, view):]
                    except OSError:
                        break
        except OSError:
            pass
        finally:
            os.close(fd)

    thread = threading.Thread(target=relay, name="lxactors-helper-stderr", daemon=True)
    thread.start()
    return thread


_helper: Helper | None = None
_helper_lock = threading.Lock()


def helper() -> Helper:
    """This process's helper."""
    global _helper
    with _helper_lock:
        if _helper is None:
            _helper = Helper(process_wide=True)
        return _helper


def set_helper_wrapper(wrapper: Sequence[str]) -> None:
    """Run the helper under a wrapper command (the seed's ``exec``, e.g. valgrind).

    Applies to the next helper started; the current one is closed.
    """
    global _helper
    with _helper_lock:
        if _helper is not None:
            _helper.close()
        _helper = Helper(wrapper, process_wide=True)
