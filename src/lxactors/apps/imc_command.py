"""imc's running command: its messages, its output pump, its container's end.

An :class:`Imc` starts the container a :class:`~lxactors.apps.imc_plan._Plan`
describes, attaches the command with pipes for its stdin, stdout and stderr,
delivers the output to the owner within a flow-control window, and once the
command ends and its output is complete sends :class:`Exited` and removes
the container and its directory (see :class:`Exited` for the order).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import selectors
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, NamedTuple, cast

import lxactors
from lxactors import LxcError, LxcTimeoutError, Mailbox, Owner
from lxactors.apps import marker
from lxactors.apps.imc_plan import HOME, _Plan

if TYPE_CHECKING:
    from lxactors import liblxc

__all__ = [
    "DEFAULT_WINDOW",
    "Exited",
    "Imc",
    "ImcMessage",
    "ImcTimeoutError",
    "Result",
    "Stderr",
    "Stdout",
]

log = logging.getLogger("lxactors")

#: Output bytes in flight to an owner that has not processed them (the console's default).
DEFAULT_WINDOW = lxactors.FlowWindow.DEFAULT_SIZE


# ---------------------------------------------------------------- messages


@dataclass(frozen=True)
class Stdout:
    """Bytes the command wrote to its standard output, in order."""

    container: str
    data: bytes


@dataclass(frozen=True)
class Stderr:
    """Bytes the command wrote to its standard error, in order."""

    container: str
    data: bytes


@dataclass(frozen=True)
class Exited:
    """The command ended and its output is complete (the last message).

    If the command left a process running that holds its output (or timed
    out, or was killed), its container is gone by then.  Otherwise the
    container ends as this goes out, off the caller's path (~10 ms:
    nothing of the command can still write to the caller, and a process
    it left detached is killed with it): :meth:`Imc.wait` and
    :attr:`Imc.done` say when it is gone; the process's end, even a
    SIGKILL, still destroys it (it is temporary; an interpreter exit waits
    for it).

    ``status`` is the exit code, or ``-N`` when a signal N killed it (a
    timeout or :meth:`Imc.kill` gives ``-9``).
    """

    container: str
    status: int
    timed_out: bool = False

    @property
    def signal(self) -> int | None:
        return -self.status if self.status < 0 else None

    def __str__(self) -> str:
        if self.status >= 0:
            how = f"status {self.status}"
        else:
            try:
                how = f"signal {signal.Signals(-self.status).name}"
            except ValueError:
                how = f"signal {-self.status}"
        extra = ", timed out" if self.timed_out else ""
        return f"imc {self.container!r} exited ({how}{extra})"


#: What an imc command's owner receives: :class:`Stdout`, :class:`Stderr`, then one :class:`Exited`.
ImcMessage = Stdout | Stderr | Exited


class Result(NamedTuple):
    """What :func:`run` returns: ``status, stdout, stderr = run(...)``."""

    status: int
    stdout: bytes
    stderr: bytes


class ImcTimeoutError(LxcTimeoutError):
    """:func:`run`'s command did not finish in time; it was killed.

    ``stdout`` and ``stderr`` hold what it wrote until then.
    """

    stdout: bytes = b""
    stderr: bytes = b""


def _mounted_under(path: str) -> bool:
    prefix = path.rstrip("/") + "/"
    with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
        for line in f:
            mnt = line.split()[4].replace("\\040", " ")
            if mnt == path or mnt.startswith(prefix):
                return True
    return False


def _remove_dir(path: str) -> None:
    """Remove a container directory liblxc left, never across a mount."""
    if not os.path.lexists(path):
        return
    if _mounted_under(path):
        log.warning("imc: not removing %s: something is mounted under it", path)
        return
    shutil.rmtree(path, ignore_errors=True)


# ---------------------------------------------------------------- the running command


class Imc:
    """A command running in its immutable container (see :func:`spawn`)."""

    def __init__(self, plan: _Plan, owner: Owner, private: bool, window: int,
                 on_done: Callable[[], None] | None = None) -> None:
        self.name = plan.name
        self.path = plan.lxcpath
        self.uid = plan.uid
        self.gid = plan.gid
        #: The command's uid and gid as the host sees them.
        self.host_uid = plan.uid if plan.userns is None else plan.userns.host_uid(plan.uid)
        self.host_gid = plan.gid if plan.userns is None else plan.userns.host_gid(plan.gid)
        self.command = plan.command
        self.owner = owner
        self._private = private
        self._window = lxactors.FlowWindow(window)
        self._done = threading.Event()
        self._killed = threading.Event()
        self._lock = threading.Lock()
        self._ref: lxactors.ContainerRef | None = None
        self._exited: Exited | None = None
        self._thread: threading.Thread | None = None
        self._on_done = on_done  # a pool's: the command's container is gone

    # -- public

    @property
    def container_dir(self) -> str:
        return os.path.join(self.path, self.name)

    @property
    def done(self) -> bool:
        """Has the command ended and its container gone?"""
        return self._done.is_set()

    @property
    def exited(self) -> Exited | None:
        return self._exited

    @property
    def ref(self) -> lxactors.ContainerRef | None:
        """The container (while it runs), for :func:`lxactors.container` and the like."""
        return self._ref

    def receive(self, timeout: float | None = None) -> ImcMessage:
        """The next message (``queue.Empty`` after *timeout*); only with the default owner."""
        if not self._private:
            raise LxcError(self.name, "receive", "messages go to the owner given to spawn()")
        return cast(ImcMessage, cast(Mailbox, self.owner).get(timeout))

    def __iter__(self) -> Iterator[ImcMessage]:
        """Messages until (and with) :class:`Exited`."""
        while True:
            m = self.receive()
            yield m
            if isinstance(m, Exited):
                return

    def wait(self, timeout: float | None = None) -> int:
        """Block until the command ended and its container is gone; its status.

        With the default owner, read the messages too (or output past the
        flow-control window blocks the command).
        """
        if not self._done.wait(timeout):
            raise LxcTimeoutError(self.name, "wait", f"still running after {timeout:g} s")
        assert self._exited is not None
        return self._exited.status

    def kill(self) -> None:
        """Kill the command now (it exits with -9) and remove its container.

        Once :class:`Exited` is out the command is over: its container is
        gone or going (see :meth:`wait`), and this does nothing."""
        if self._exited is not None:
            return
        self._killed.set()
        self._window.wake()
        self._exit_container()

    def __enter__(self) -> Imc:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        if not self._done.is_set():
            self.kill()
        self._done.wait(60)

    def __repr__(self) -> str:
        state = str(self._exited) if self._exited else "running"
        return f"<Imc {self.name!r} {self.command!r} {state}>"

    # -- internals

    def _remove(self) -> None:
        """The container is gone: its directory (if liblxc left it) and its marker go."""
        _remove_dir(self.container_dir)
        marker.remove(self.path, self.name)

    def _exit_container(self) -> None:
        ref = self._ref
        if ref is not None and ref.alive:
            try:
                lxactors.exit(ref, "kill")
            except LxcError as exc:
                log.warning("imc %s: exit failed: %s", self.name, exc)

    def _deliver(self, message: Stdout | Stderr) -> bool:
        """Hand output to the owner within the window; False if it is gone."""
        killed = self._killed.is_set
        if not self._window.wait_room(lambda: killed() or not self.owner.alive()) \
                and not killed():
            return False
        # (Once killed, what is left in the pipes is delivered regardless:
        # at most a pipe buffer each.)
        return self._window.deliver(self.owner, cast(Any, message), len(message.data))

    def _pump(self, outs: dict[int, type[Stdout] | type[Stderr]], stdin: int,
              data: bytes) -> None:
        sel = selectors.DefaultSelector()
        try:
            for fd in outs:
                sel.register(fd, selectors.EVENT_READ)
            view = memoryview(data)
            if stdin >= 0:
                if view:
                    os.set_blocking(stdin, False)
                    sel.register(stdin, selectors.EVENT_WRITE)
                else:
                    os.close(stdin)
                    stdin = -1
            while outs or stdin >= 0:
                for key, _ in sel.select():
                    fd = int(key.fd)
                    if fd == stdin:
                        try:
                            view = view[os.write(fd, view[:65536]):]
                        except BlockingIOError:
                            continue
                        except OSError:
                            view = view[:0]
                        if not view:
                            sel.unregister(fd)
                            os.close(fd)
                            stdin = -1
                        continue
                    chunk = os.read(fd, 65536)
                    if not chunk:
                        sel.unregister(fd)
                        os.close(fd)
                        del outs[fd]
                    elif not self._deliver(outs[fd](self.name, chunk)):
                        log.info("imc %s: owner gone; killing the command", self.name)
                        self.kill()
        finally:
            sel.close()
            for fd in [*outs, stdin]:
                if fd >= 0:
                    with contextlib.suppress(OSError):
                        os.close(fd)

    def _start(self, plan: _Plan, input: bytes | None, timeout: float | None,
               cwd: str | None, boot_timeout: float,
               booted: lxactors.ContainerRef | None = None) -> None:
        from lxactors import liblxc

        if booted is None:
            self._ref = _boot(plan, lxactors.Mailbox(), boot_timeout, self.host_uid)
        else:  # from a pool: booted for this plan's uid, gid and shape
            self._ref = booted
            _mark(plan, self.host_uid, plan.command, again=True)
        pipes: list[int] = []
        try:
            out_r, out_w = os.pipe2(os.O_CLOEXEC)
            pipes += [out_r, out_w]
            err_r, err_w = os.pipe2(os.O_CLOEXEC)
            pipes += [err_r, err_w]
            in_r = in_w = -1
            if input is not None:
                in_r, in_w = os.pipe2(os.O_CLOEXEC)
                pipes += [in_r, in_w]
            attached = lxactors.container(self._ref).attach(
                plan.argv, stdin=None if in_r < 0 else in_r, stdout=out_w, stderr=err_w,
                uid=plan.uid, gid=plan.gid, groups=[], clear_env=True,
                cwd=cwd or HOME, flags=liblxc.ATTACH_NO_NEW_PRIVS)
        except BaseException:
            for fd in pipes:
                os.close(fd)
            self._exit_container()
            self._remove()
            raise
        for fd in (out_w, err_w, in_r):
            if fd >= 0:
                os.close(fd)
        self._thread = threading.Thread(
            target=self._run, args=(attached, {out_r: Stdout, err_r: Stderr}, in_w,
                                    bytes(input or b""), timeout),
            name=f"imc-{plan.name}", daemon=True)
        self._thread.start()

    def _run(self, attached: liblxc.Attached,
             outs: dict[int, type[Stdout] | type[Stderr]], stdin: int, data: bytes,
             timeout: float | None) -> None:
        status = -signal.SIGKILL
        timed_out = False
        early = False  # Exited before the container's end
        pump = threading.Thread(target=self._pump, args=(outs, stdin, data),
                                name=f"imc-{self.name}-io", daemon=True)
        pump.start()
        try:
            try:
                status = attached.wait(timeout)
            except LxcTimeoutError:
                timed_out = True
                self._killed.set()
                self._exit_container()
                status = attached.wait(60)
            # The output is complete once the pipes' last writers are gone: at
            # once when the command left nothing running that holds them.
            pump.join(OUTPUT_GRACE)
            if pump.is_alive():
                # Anything the command left running dies with its container,
                # and with it the last writer of the pipes.
                self._exit_container()
                pump.join()
            else:
                early = _TEARDOWNS.acquire(blocking=False)
        except LxcError as exc:  # e.g. the helper's worker was killed: status unknown
            log.warning("imc %s: %s", self.name, str(exc).splitlines()[0])
            self._exit_container()
            pump.join(10)
        except BaseException:
            log.exception("imc %s", self.name)
            self._exit_container()
            pump.join(10)
        finally:
            attached.close()
            self._exited = Exited(self.name, status, timed_out)
            if early:
                # Status and output go first; the container's end (init
                # killed, the rootfs destroyed in its user namespace: ~10 ms)
                # follows off the caller's path.  It is temporary: a process
                # killed meanwhile leaves it to the helper, and an interpreter
                # exit waits for it (_drain_teardowns).
                _teardown_started(self)
                self.owner.deliver(cast(Any, self._exited))
            try:
                self._exit_container()
                self._remove()
            finally:
                self._ref = None
                if not early:
                    self.owner.deliver(cast(Any, self._exited))
                self._done.set()
                if early:
                    _TEARDOWN.discard(self)
                    _TEARDOWNS.release()
                if self._on_done is not None:
                    self._on_done()


#: Seconds the output may take to end after the command's exit before its
#: container is ended first (a process it left running holds the pipes).
OUTPUT_GRACE = 0.05
#: Containers ended after their Exited was sent, at most this many at once
#: (past that, one ends before its Exited, as with output still open).
MAX_TEARDOWNS = 16
_TEARDOWNS = threading.BoundedSemaphore(MAX_TEARDOWNS)
_TEARDOWN: set[Imc] = set()


def _drain_teardowns(timeout: float = 60.0) -> None:
    """Interpreter exit: let the containers being ended go (their directories too)."""
    deadline = time.monotonic() + timeout
    for imc in list(_TEARDOWN):
        imc._done.wait(max(0.0, deadline - time.monotonic()))


_drain_lock = threading.Lock()
_drain_registered = False


def _teardown_started(imc: Imc) -> None:
    global _drain_registered
    with _drain_lock:
        _TEARDOWN.add(imc)
        if not _drain_registered:
            # Registered late, after lxactors' own exit handlers (the helper's
            # close, the log directory's removal, registered as the first
            # container was made): atexit runs it before them.
            atexit.register(_drain_teardowns)
            _drain_registered = True


def _mark(plan: _Plan, host_uid: int, command: list[str], again: bool = False) -> None:
    """The marker ``lxactors ls`` reads (no marker is no failure); *again*: a
    pooled container's, which named no command, now names its command."""
    with contextlib.suppress(OSError):
        if again:
            marker.remove(plan.lxcpath, plan.name)
            if os.geteuid() == 0:  # root's is in the container's directory
                os.unlink(os.path.join(plan.lxcpath, plan.name, marker.FILE))
        marker.write(plan.lxcpath, plan.name, "imc", uid=host_uid, command=command)


def _boot(plan: _Plan, owner: Owner, boot_timeout: float, host_uid: int,
          command: list[str] | None = None) -> lxactors.ContainerRef:
    """Make and start *plan*'s container, owned by *owner* (its root built
    from chroot specs; its marker names *command*, by default the plan's)."""
    container_dir = os.path.join(plan.lxcpath, plan.name)
    # Unprivileged, the lxcpath is root's: the privileged helper makes the rootfs.
    privileged = os.geteuid() == 0
    if privileged:
        os.makedirs(plan.lxcpath, exist_ok=True)
        os.mkdir(container_dir, 0o755)
    try:
        if privileged:
            os.mkdir(os.path.join(container_dir, "rootfs"), 0o755)
        _mark(plan, host_uid, plan.command if command is None else command)
        return lxactors.spawn(
            plan.name, path=plan.lxcpath, type="temporary", owner=owner,
            config=plan.config, create={"template": None}, chroot=plan.chroot,
            start={"argv": plan.init}, console=False, timeout=boot_timeout,
            userns=plan.userns or False, limits=plan.limits)
    except BaseException:
        _remove_dir(container_dir)
        marker.remove(plan.lxcpath, plan.name)
        raise
