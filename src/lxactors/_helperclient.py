"""The user-side end of the helper process (see ``lxactors._helper``).

One helper per process, started on first use and started again if it dies
or the process forks.  Calls from many threads run concurrently: each request
has its own reply pipe and its own worker in the helper.  Requests are the
typed ones of ``lxactors._helper.wire``, which both ends speak.
"""

from __future__ import annotations

import errno
import functools
import os
import select
import site
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeAlias

from lxactors._errlog import log_dir
from lxactors._errors import AccessRefused, HelperError, LxcError, LxcTimeoutError
from lxactors._helper import protocol, wire
from lxactors._singleton import PerProcess

__all__ = ["Helper", "Reply", "helper", "helper_command", "set_helper_wrapper"]

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
        self._frames = wire.FrameReader()

    def frame(self, timeout: float | None) -> Any:
        """Return the next frame's value, raising what the worker reported."""
        deadline = None if timeout is None or timeout < 0 else time.monotonic() + timeout
        while True:
            try:
                frame = self._frames.pop()
            except wire.WireError as exc:
                raise HelperError(self.container, self.operation, f"bad reply: {exc}") from None
            if frame is not None:
                return self._decode(frame)
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
            chunk = self._read()
            if not chunk:
                raise HelperError(
                    self.container, self.operation, "the helper worker ended without answering"
                )
            self._frames.feed(chunk)

    def _read(self) -> bytes:
        return os.read(self.fd, 1 << 16)

    def _decode(self, frame: tuple[Any, ...]) -> Any:
        if frame[0] == "ok":
            return frame[1]
        _, kind, message, log = frame
        cls = {"helper": HelperError, "refused": AccessRefused}.get(kind, LxcError)
        raise cls(self.container, self.operation, message, log)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Reply:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: Makes a reply channel other than a pipe: (our end, the fd sent to the helper).
Channel: TypeAlias = Callable[[], "tuple[int | socket.socket, int]"]


class Helper:
    """A running helper process and the socket to it."""

    #: What the errors call it.
    what = "helper"

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
                self._send_registry(self._sock, protocol.Register(path=path, name=name, type=type_))
            return self._sock

    @staticmethod
    def _send_registry(sock: socket.socket, req: protocol.Register) -> None:
        payload = protocol.encode_request(req)
        r, w = os.pipe2(os.O_CLOEXEC)
        try:
            socket.send_fds(sock, [payload], [w])
        finally:
            os.close(w)
        with Reply(r, req.name, req.op) as reply:
            reply.frame(10)

    def register(self, path: str, name: str, type_: str) -> None:
        """Tell the helper the container's type, for the case this process dies."""
        req = protocol.Register(path=path, name=name, type=type_)
        with self._lock:
            if self._registry.get((path, name)) == type_:
                return  # told already (a new helper is told the registry again)
            self._registry[(path, name)] = type_
        self.tell(req)

    def unregister(self, path: str, name: str) -> None:
        with self._lock:
            if self._registry.pop((path, name), None) is None:
                return
        if self._sock is not None and self._pid == os.getpid():
            self.tell(protocol.Unregister(path=path, name=name))

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
                [*self.wrapper, *helper_command(), str(child.fileno()),
                 *([log_dir(), str(os.getpid())] if self.process_wide else [])],
                pass_fds=(child.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err_w,
                close_fds=True,
                # Out of the user's process group: a signal to the whole group
                # (Ray's SIGTERM-then-SIGKILL of a dead worker's group, a shell's
                # `kill -9 -PGID`) must not take the helper along with its owner,
                # or nobody is left to apply the policies.
                start_new_session=True,
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
        req: protocol.Request,
        fds: Sequence[int] = (),
        container: str | None = None,
    ) -> Reply:
        """Send one request; return its reply channel."""
        r = self.send(req, fds, container)
        assert isinstance(r, int)
        return Reply(r, container, req.op)

    def send(self, req: protocol.Request, fds: Sequence[int] = (), container: str | None = None,
             channel: Channel | None = None) -> int | socket.socket:
        """Send *req* and *fds* after the far end of a fresh reply channel (a pipe,
        or what *channel* makes: ``(ours, theirs' fd)``); a helper gone meanwhile is
        restarted once.  Returns our end of the channel."""
        payload = protocol.encode_request(req)
        for attempt in (1, 2):
            sock = self._ensure()
            mine, theirs = channel() if channel is not None else os.pipe2(os.O_CLOEXEC)
            try:
                socket.send_fds(sock, [payload], [theirs, *fds])
            except OSError as exc:
                mine.close() if isinstance(mine, socket.socket) else os.close(mine)
                if exc.errno == errno.EMSGSIZE:  # the request, not the helper, is at fault
                    raise HelperError(container, req.op, f"request too large ({len(payload)} "
                                      f"bytes > the socket's {MAX_MESSAGE} byte limit)") from exc
                if attempt == 2:
                    raise HelperError(container, req.op,
                                      f"cannot reach the {self.what}: {exc}") from exc
                with self._lock:
                    self._close_locked()
                continue
            finally:
                os.close(theirs)
            return mine
        raise AssertionError("unreachable")

    def tell(self, req: protocol.Register | protocol.Unregister) -> None:
        """Send a registry change without waiting for the answer.

        The helper reads its socket in order and drains it before it sees
        end of file, so a change sent is one the helper applies, even if
        this process dies right after: no round trip needed.
        """
        self.request(req, container=req.name).close()

    def call(
        self,
        req: protocol.Request,
        fds: Sequence[int] = (),
        container: str | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
    ) -> Any:
        """One request, one answer."""
        with self.request(req, fds, container) as reply:
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


#: The package's parent directory: what ``import lxactors`` must find in the helper.
_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@functools.cache
def helper_command() -> tuple[str, ...]:
    """The command that runs the helper, decided once per process.

    ``python -I -m lxactors._helper``: isolated (no PYTHONPATH, no cwd, no
    user site), so nothing but this installation is imported.  Where that
    would not import this very package (a checkout reached through
    PYTHONPATH or the cwd, or another lxactors installed), the same module is
    run with the package's parent directory first on ``sys.path``.
    """
    if _isolated_python_finds_us():
        return (sys.executable, "-I", "-m", "lxactors._helper")
    code = (f"import sys; sys.path.insert(0, {_PARENT!r}); import runpy; "
            "runpy.run_module('lxactors._helper', run_name='__main__', alter_sys=True)")
    return (sys.executable, "-I", "-c", code)


def _isolated_python_finds_us() -> bool:
    """Whether ``python -I`` imports lxactors from this directory: at once for a
    package in site-packages, else asked of such a Python once (an editable
    install, a checkout)."""
    here = os.path.realpath(_PARENT)
    if here in {os.path.realpath(d) for d in site.getsitepackages()}:
        return True
    probe = ("import importlib.util, sys; s = importlib.util.find_spec('lxactors'); "
             "sys.stdout.write(s.origin if s and s.origin else '')")
    try:
        out = subprocess.run([sys.executable, "-I", "-c", probe], capture_output=True,
                             stdin=subprocess.DEVNULL, timeout=60, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    origin = out.decode("utf-8", "surrogateescape")
    return bool(origin) and os.path.realpath(os.path.dirname(os.path.dirname(origin))) == here


#: The wrapper of this process's helper (set_helper_wrapper); kept across forks.
_wrapper: tuple[str, ...] = ()


class GateHelper(Helper):
    """This process's helper in unprivileged mode: the gate (root, through sudo,
    see :mod:`lxactors._launcher`), which authorizes every request."""

    what = "gate"

    def __init__(self) -> None:
        super().__init__((), process_wide=False)
        #: One inline call at a time (``_gatecall.ask_inline``): its answer comes on the socket.
        self.inline_lock = threading.Lock()
        #: The socket inline calls no longer use (a late answer may still come on it).
        self.inline_off: socket.socket | None = None

    def register(self, path: str, name: str, type_: str) -> None:
        """As :meth:`Helper.register`, but awaited: the gate may refuse it (not the
        caller's container), and a refusal must reach the caller."""
        with self._lock:
            self._registry[(path, name)] = type_
        try:
            self.call(protocol.Register(path=path, name=name, type=type_), container=name, timeout=30)
        except BaseException:
            with self._lock:
                self._registry.pop((path, name), None)
            raise

    def _spawn(self) -> None:
        from lxactors._launcher import start_gate

        if self._pid == os.getpid():
            self._close_locked()
        self._proc, self._sock = start_gate()
        self._pid = os.getpid()


def _make_helper() -> Helper:
    if os.geteuid() != 0:  # unprivileged mode: the gate
        return GateHelper()
    return Helper(_wrapper, process_wide=True)


_process_helper: PerProcess[Helper] = PerProcess(_make_helper)


def helper() -> Helper:
    """This process's helper (a forked child gets its own)."""
    return _process_helper.get()


def set_helper_wrapper(wrapper: Sequence[str]) -> None:
    """Run the helper under a wrapper command (the seed's ``exec``, e.g. valgrind).

    Applies to the next helper started; the current one is closed.
    """
    global _wrapper
    _wrapper = tuple(wrapper)
    old = _process_helper.replace(_make_helper())
    if old is not None:
        old.close()
