"""``liblxc.Container`` in unprivileged mode: a proxy on a handle the gate holds.

The same members, signatures and errors as the real handle: each member is
one :class:`~lxactors._helper.calls.Call` that the gate authorizes and runs
on its own ``liblxc.Container`` (so validation, liblxc's error lines and
exception types are the real ones, sent back).  Fds cross by SCM_RIGHTS on
each call's reply socket: console ptys and pidfds come back, attach's stdio,
files to load or save and chroot copy sources (opened here, with this
user's rights) go.
"""

from __future__ import annotations

import functools
import os
import weakref
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from lxactors import _validate as v
from lxactors._chroot import ChrootSpec, CopySpec, DirSpec, FileSpec
from lxactors._container import Attached, AttachResult, ConsoleFd, Container, Snapshot
from lxactors._errors import ContainerClosedError, LxcError
from lxactors._gatecall import QUICK_TIMEOUT, ask_inline, plain, send
from lxactors._helper import protocol, wire
from lxactors._helper.calls import (
    INLINE,
    QUICK,
    Call,
    Chroot,
    CloseHandle,
    ListContainers,
    Open,
)
from lxactors._helperclient import DEFAULT_TIMEOUT, GateHelper, Helper, helper

__all__ = ["ProxyContainer", "list_containers"]


def _close_remote(gate: Helper, pid: int, hid: int) -> None:
    if os.getpid() != pid or gate._sock is None:
        return
    try:
        send(gate, CloseHandle(handle=hid)).close()  # answered or not: the gate drops it
    except Exception:
        pass


class ProxyContainer(Container):
    """A handle in unprivileged mode (see the module's docstring)."""

    def __init__(self, name: str, path: str | os.PathLike[str] | None = None,
                 *, helper: Helper | None = None, log: bool = True) -> None:
        v.check_name(name)
        raw = None if path is None else v.check_path(path, "lxcpath").decode(
            "utf-8", "surrogateescape")
        self._name = name
        self._gate = _gate(helper)
        self._c = None
        hid, _path = self._ask(Open(name=name, path=raw))
        self._open(hid)

    def _open(self, hid: int) -> None:
        self._hid: int | None = hid
        self._finalizer = weakref.finalize(self, _close_remote, self._gate, os.getpid(), hid)

    @classmethod
    def _adopt(cls, gate: Helper, hid: int, name: str) -> ProxyContainer:
        self = object.__new__(cls)
        self._name, self._gate, self._c = name, gate, None
        self._open(hid)
        return self

    # ------------------------------------------------------------ plumbing

    def _ask(self, req: protocol.Request, fds: Sequence[int] = (),
             timeout: float | None = QUICK_TIMEOUT) -> Any:
        with send(self._gate, req, fds, self._name) as reply:
            return reply.frame(timeout)

    def _remote(self, member: str, args: tuple[Any, ...], kwargs: dict[str, Any],
                fds: Sequence[int] = (), fd_args: dict[str, int] | None = None,
                timeout: float | None = QUICK_TIMEOUT) -> tuple[Any, list[int]]:
        if self._hid is None:
            raise ContainerClosedError(self._name, member, "the handle is closed")
        req = Call(handle=self._hid, member=member, args=[plain(a, member) for a in args],
                   kwargs={k: plain(x, member) for k, x in kwargs.items()}, fd_args=fd_args or {})
        if member in INLINE and not fds and isinstance(self._gate, GateHelper):
            answered, value = ask_inline(self._gate, req, self._name, timeout)
            if answered:
                return value, []
        with send(self._gate, req, fds, self._name) as reply:
            return reply.frame(timeout), reply.take_fds()

    def _handle(self) -> Any:
        raise ContainerClosedError(self._name, "use", "a proxy has no local liblxc handle")

    def set_helper(self, helper: Helper | None) -> None:
        """Unprivileged mode has one helper, the gate (an ``exec`` wrapper is root's)."""

    # ------------------------------------------------------------ lifetime

    @property
    def closed(self) -> bool:
        return self._hid is None

    def close(self) -> None:
        hid, self._hid = self._hid, None
        if hid is not None:
            self._finalizer.detach()
            _close_remote(self._gate, os.getpid(), hid)

    def __repr__(self) -> str:
        state = "closed" if self._hid is None else f"handle {self._hid} in the gate"
        return f"<lxactors.liblxc.Container {self._name!r} {state}>"

    @property
    def error_string(self) -> str | None:
        return self._remote("error_string", (), {})[0]  # type: ignore[no-any-return]

    @property
    def error_num(self) -> int:
        return int(self._remote("error_num", (), {})[0])

    @property
    def daemonize(self) -> bool:
        return bool(self._remote("daemonize", (), {})[0])

    # ------------------------------------------------------------ members with fds or objects

    def init_pidfd(self) -> int:
        _, fds = self._remote("init_pidfd", (), {})
        return fds[0]

    def console_getfd(self, ttynum: int = -1) -> ConsoleFd:
        (_, n), fds = self._remote("console_getfd", (ttynum,), {})
        return ConsoleFd(n, fds[0], fds[1])

    def console(self, ttynum: int = -1, stdinfd: int = 0, stdoutfd: int = 1,
                stderrfd: int = 2, escape: int = 1) -> None:
        fds = [v.check_int(fd, "fd", low=0, high=2**31 - 1) for fd in (stdinfd, stdoutfd, stderrfd)]
        self._remote("console", (ttynum, 0, 0, 0, escape), {}, fds,
                     {"stdinfd": 0, "stdoutfd": 1, "stderrfd": 2}, timeout=None)

    def attach(self, argv: Iterable[str], *, stdin: int | None = None,
               stdout: int | None = None, stderr: int | None = None,
               env: Mapping[str, str] | None = None, clear_env: bool = False,
               uid: int | None = None, gid: int | None = None,
               groups: Iterable[int] | None = None, cwd: str | None = None,
               namespaces: int = -1, flags: int = 0) -> Attached:
        if self._hid is None:
            raise ContainerClosedError(self._name, "attach", "the handle is closed")
        fds: list[int] = []
        fd_args: dict[str, int] = {}
        for pname, fd in (("stdin", stdin), ("stdout", stdout), ("stderr", stderr)):
            if fd is not None:
                fd_args[pname] = len(fds)
                fds.append(v.check_int(fd, "fd", low=0, high=2**31 - 1))
        kwargs = {"env": env, "clear_env": clear_env, "uid": uid, "gid": gid, "groups": groups,
                  "cwd": cwd, "namespaces": namespaces, "flags": flags}
        req = Call(handle=self._hid, member="attach", args=[plain(argv, "attach")],
                   kwargs={k: plain(x, "attach") for k, x in kwargs.items()}, fd_args=fd_args)
        reply = send(self._gate, req, fds, self._name)
        try:
            pid = reply.frame(DEFAULT_TIMEOUT)
        except BaseException:
            reply.close()
            raise
        return Attached(reply, int(pid))

    def attach_run_wait(self, argv: Iterable[str], *, input: bytes | None = None,
                        env: Mapping[str, str] | None = None, clear_env: bool = False,
                        uid: int | None = None, gid: int | None = None,
                        groups: Iterable[int] | None = None, cwd: str | None = None,
                        namespaces: int = -1, flags: int = 0,
                        timeout: float = DEFAULT_TIMEOUT) -> AttachResult:
        t = v.check_timeout(timeout)
        kwargs = {"input": input, "env": env, "clear_env": clear_env, "uid": uid, "gid": gid,
                  "groups": groups, "cwd": cwd, "namespaces": namespaces, "flags": flags,
                  "timeout": timeout}
        r, _ = self._remote("attach_run_wait", (argv,), kwargs,
                            timeout=t + 60 if t >= 0 else None)
        return AttachResult(**r)

    def clone(self, newname: str, lxcpath: str | os.PathLike[str] | None = None,
              flags: int = 0, bdevtype: str | None = None, bdevdata: str | None = None,
              newsize: int = 0, hookargs: Iterable[str] | None = None,
              *, timeout: float = 600) -> Container:
        t = v.check_timeout(timeout)
        (_, hid, name, _path), _ = self._remote(
            "clone", (newname, lxcpath, flags, bdevtype, bdevdata, newsize, hookargs),
            {"timeout": timeout}, timeout=t + 60 if t >= 0 else None)
        return ProxyContainer._adopt(self._gate, hid, name)

    def snapshot_list(self) -> list[Snapshot]:
        items, _ = self._remote("snapshot_list", (), {}, timeout=DEFAULT_TIMEOUT)
        return [Snapshot(*s) for s in items]

    def rename(self, newname: str) -> None:
        self._remote("rename", (newname,), {}, timeout=DEFAULT_TIMEOUT)
        self._name = newname

    def load_config(self, path: str | os.PathLike[str] | None = None) -> None:
        if path is None:
            self._remote("load_config", (None,), {})
            return
        raw = v.check_path(path, "config file")
        try:
            fd = os.open(raw, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            raise LxcError(self._name, "load_config", f"cannot read {os.fsdecode(raw)}: "
                           f"{exc.strerror}") from exc
        try:
            self._remote("load_config", (0,), {}, [fd], {"path": 0})
        finally:
            os.close(fd)

    def save_config(self, path: str | os.PathLike[str] | None = None) -> None:
        if path is None:
            self._remote("save_config", (None,), {})
            return
        raw = v.check_path(path, "config file")
        try:
            fd = os.open(raw, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise LxcError(self._name, "save_config", f"cannot write {os.fsdecode(raw)}: "
                           f"{exc.strerror}") from exc
        try:
            self._remote("save_config", (0,), {}, [fd], {"path": 0})
        finally:
            os.close(fd)

    def apply_chroot(self, specs: Sequence[ChrootSpec]) -> None:
        """The ``chroot`` spawn option, made by the gate in this container's rootfs.

        Copy sources are opened here, with this user's rights, and sent.
        """
        batch: list[object] = []
        fds: list[int] = []
        try:
            for spec in specs:
                where = "/" + "/".join(spec.path)
                if isinstance(spec, DirSpec):
                    batch.append(("dir", list(spec.path), spec.mode))
                elif isinstance(spec, FileSpec):
                    batch.append(("file", list(spec.path), spec.content, spec.mode))
                elif isinstance(spec, CopySpec):
                    try:
                        fd = os.open(spec.source, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
                    except OSError as exc:
                        raise LxcError(self._name, "chroot",
                                       f"CopySpec {where}: {exc.strerror}") from exc
                    batch.append(("copy", len(fds), list(spec.path), spec.mode))
                    fds.append(fd)
                if len(fds) == wire.MAX_FDS - 1:
                    self._chroot_batch(batch, fds)
                    batch, fds = [], []
            if batch:
                self._chroot_batch(batch, fds)
        finally:
            for fd in fds:
                os.close(fd)

    def _chroot_batch(self, batch: list[object], fds: list[int]) -> None:
        if self._hid is None:
            raise ContainerClosedError(self._name, "chroot", "the handle is closed")
        try:
            self._ask(Chroot(handle=self._hid, specs=batch), fds, timeout=DEFAULT_TIMEOUT)
        finally:
            for fd in fds:
                os.close(fd)
            fds.clear()


def _gate(given: Helper | None) -> Helper:
    if isinstance(given, GateHelper) or (given is not None and getattr(given, "is_gate", False)):
        return given
    return helper()


def _forward(member: str) -> Any:
    original = getattr(Container, member)
    slow = member not in _QUICK

    @functools.wraps(original)
    def method(self: ProxyContainer, *args: Any, **kwargs: Any) -> Any:
        timeout: float | None = QUICK_TIMEOUT
        if slow:
            t = kwargs.get("timeout", args[0] if member in ("shutdown", "reboot2") and args else None)
            if member == "wait":
                t = kwargs.get("timeout", args[1] if len(args) > 1 else -1)
            timeout = (None if isinstance(t, (int, float)) and t < 0
                       else (t + 60 if isinstance(t, (int, float)) else 660.0))
        return self._remote(member, args, kwargs, timeout=timeout)[0]

    return method


#: The quick members forwarded as they are (the others carry fds: methods of their own above).
_QUICK = QUICK - {"console_getfd", "init_pidfd", "load_config", "save_config"}
#: Members that are one Call each, as they are.
FORWARDED = sorted(_QUICK | {
    "start", "stop", "shutdown", "reboot", "reboot2", "wait", "create", "destroy",
    "destroy_with_snapshots", "snapshot", "snapshot_restore", "snapshot_destroy",
    "snapshot_destroy_all", "get_ips", "add_device_node", "remove_device_node",
    "attach_interface", "detach_interface", "mount", "umount", "checkpoint", "restore",
    "migrate", "seccomp_notify_fd", "seccomp_notify_fd_active", "devpts_fd"})
for _m in FORWARDED:
    setattr(ProxyContainer, _m, _forward(_m))


def list_containers(kind: str, path: str | os.PathLike[str] | None) -> list[str]:
    """``list_{kind}_containers`` of a path the gate lets this user read."""
    raw = None if path is None else v.check_path(path, "lxcpath").decode("utf-8", "surrogateescape")
    with send(helper(), ListContainers(kind=kind, path=raw)) as reply:
        return sorted(reply.frame(QUICK_TIMEOUT))
