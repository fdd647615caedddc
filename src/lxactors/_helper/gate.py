"""The gate: the privileged helper of an unprivileged process (issue 16).

``sudo -n PYTHON -I -m lxactors._helper.gate``, the client's end of a
SOCK_SEQPACKET socketpair as stdin (sudo closes other fds).  Who the client
is comes from the kernel (SO_PEERCRED), never from it; what it may do, from
the root-owned policy (``access``).  The gate holds every liblxc handle of
its client (real ``liblxc.Container`` objects, root's in-process fast path,
whose forking calls go to the gate's own root helper) and runs each
:class:`~lxactors._helper.calls.Call` after authorizing it member by member.
Quick members run in the loop; those that block (start, attach, wait...)
run in a thread each, so one slow call never holds up the others.

End of file means the client is gone, however it died: the gate closes its
own helper, which applies the registered containers' policies as it does
for root callers.  Nothing here trusts a field of a request: a refused one
gets an :class:`~lxactors.AccessRefused` naming the rule, and changes nothing.
"""

from __future__ import annotations

import array
import contextlib
import inspect
import os
import re
import shutil
import signal
import socket
import stat
import struct
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from lxactors import liblxc
from lxactors._chroot import MAX_CONTENT, apply_chroot, lower_dir, parse_chroot, rootfs_dir
from lxactors._errlog import log_dir
from lxactors._errors import (
    AccessRefused,
    ContainerClosedError,
    HelperError,
    LxcError,
    LxcTimeoutError,
)
from lxactors._helper import wire
from lxactors._helper.access import (
    Caller,
    ConfigContext,
    Grant,
    Policy,
    Refused,
    caller_of,
    check_config,
    check_item,
    check_lxcpath,
    id_ranges,
)
from lxactors._helper.calls import HELLO, Call, Chroot, CloseHandle, ListContainers, Open
from lxactors._helperclient import helper
from lxactors._userns import idmap_of

__all__ = ["Gate", "main"]

#: Marks a container made by the gate in a shared lxcpath: the owner's uid.
OWNER_FILE = "lxactors-owner"
#: Members answered in the loop: none waits on a container or forks.
QUICK = frozenset({
    "is_defined", "defined", "is_running", "running", "state", "init_pid", "may_control",
    "config_file_name", "get_config_path", "set_config_path", "get_config_item",
    "set_config_item", "clear_config_item", "clear_config", "get_running_config_item",
    "get_keys", "get_cgroup_item", "set_cgroup_item", "want_daemonize", "want_close_all_fds",
    "log_size", "log_lines_since", "get_interfaces", "console_getfd", "console_log",
    "init_pidfd", "load_config", "save_config", "freeze", "unfreeze",
})
#: Members refused to unprivileged callers, and why (the rule's name and text).
REFUSED = {
    "add_device_node": ("devices", "host device nodes"),
    "remove_device_node": ("devices", "host device nodes"),
    "attach_interface": ("host network", "host network interfaces"),
    "detach_interface": ("host network", "host network interfaces"),
    "mount": ("host mounts", "mounts of host paths"),
    "umount": ("host mounts", "mounts made as root"),
    "checkpoint": ("criu", "criu runs as root on host directories"),
    "restore": ("criu", "criu runs as root on host directories"),
    "migrate": ("criu", "criu runs as root on host directories"),
    "seccomp_notify_fd": ("seccomp", "the seccomp notify fd answers for the kernel"),
    "seccomp_notify_fd_active": ("seccomp", "the seccomp notify fd answers for the kernel"),
    "devpts_fd": ("devpts", "the container's devpts fd"),
}
ALLOWED = QUICK | {
    "start", "stop", "shutdown", "reboot", "reboot2", "wait", "create", "clone", "rename",
    "destroy", "destroy_with_snapshots", "snapshot", "snapshot_list", "snapshot_restore",
    "snapshot_destroy", "snapshot_destroy_all", "get_ips", "console", "attach",
    "attach_run_wait", "error_string", "error_num", "daemonize", "name", "closed",
}
_FD_RESULTS = frozenset({"init_pidfd"})
_BDEVTYPES = (None, "dir", "overlay", "overlayfs")
_CGROUP_KEY = re.compile(r"(memory|pids|cpu|cpuset|io|blkio|hugetlb|cpuacct|freezer|misc)\.[\w.]+")
_CLONE_NEWUSER = 0x10000000
_ERROR_KINDS: tuple[tuple[type[BaseException], str], ...] = (
    (Refused, "refused"), (AccessRefused, "refused"), (ContainerClosedError, "closed"),
    (LxcTimeoutError, "timeout"), (HelperError, "helper"), (LxcError, "lxc"),
    (KeyError, "key"), (TypeError, "type"), (ValueError, "value"),
)
_SIGNATURES: dict[str, inspect.Signature] = {}


def _signature(member: str) -> inspect.Signature:
    sig = _SIGNATURES.get(member)
    if sig is None:
        sig = _SIGNATURES[member] = inspect.signature(getattr(liblxc.Container, member))
    return sig


def _raise_frame(exc: BaseException, container: str | None, operation: str) -> tuple[Any, ...]:
    kind = next((k for cls, k in _ERROR_KINDS if isinstance(exc, cls)), "helper")
    if isinstance(exc, LxcError):
        return wire.ok(("raise", kind, exc.container, exc.operation, exc.message, list(exc.log)))
    message = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    if kind == "helper":
        message = f"{type(exc).__name__}: {exc}"
    return wire.ok(("raise", kind, container, operation, message, []))


def _send(reply: int, frame: tuple[Any, ...], fds: list[int] | None = None) -> None:
    try:
        if fds:
            s = socket.socket(fileno=os.dup(reply))
            try:
                s.sendmsg([wire.encode_frame(frame)],
                          [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
            finally:
                s.close()
        else:
            wire.write_frame(reply, frame)
    except OSError:
        pass  # the client is gone, or gave a channel that is not a socket


class _Entry:
    """One handle of the client's: the container and its resolved lxcpath."""

    def __init__(self, container: liblxc.Container, lxcpath: str) -> None:
        self.container = container
        self.lxcpath = lxcpath


class Gate:
    """Serves one unprivileged client on *sock* (see the module's docstring)."""

    def __init__(self, sock: socket.socket, caller: Caller, grant: Grant) -> None:
        self.sock = sock
        self.caller = caller
        self.grant = grant
        self.handles: dict[int, _Entry] = {}
        self._next = 1
        self._lock = threading.Lock()
        self._own = os.path.realpath(grant.own_lxcpath(caller.uid))
        self._uids = tuple(id_ranges(caller, "/etc/subuid"))
        self._gids = tuple(id_ranges(caller, "/etc/subgid"))

    # ------------------------------------------------------------ paths, owners

    def lxcpath(self, path: str | None) -> str:
        """The resolved lxcpath the caller may use (its own is made on first use)."""
        own = self.grant.own_lxcpath(self.caller.uid)
        if path is None or os.path.realpath(path) == os.path.realpath(own):
            os.makedirs(os.path.dirname(self.grant.users_dir), 0o755, exist_ok=True)
            for d in (self.grant.users_dir, own):
                try:
                    os.mkdir(d, 0o711)
                except FileExistsError:
                    pass
                st = os.lstat(d)
                if not stat.S_ISDIR(st.st_mode) or st.st_uid != 0:
                    raise Refused("lxcpath", f"{d} must be a directory owned by root")
            path = own
        return check_lxcpath(path, self.caller, self.grant)

    def _own_path(self, lxcpath: str) -> bool:
        return lxcpath == self._own

    def check_owner(self, lxcpath: str, name: str) -> None:
        """In a shared lxcpath, only containers the caller made through the gate."""
        if self._own_path(lxcpath):
            return
        home = os.path.join(lxcpath, name)
        if not os.path.lexists(home):
            return
        try:
            fd = os.open(os.path.join(home, OWNER_FILE), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            with open(fd, encoding="ascii") as f:
                owner = f.read(32).strip()
        except OSError:
            owner = "?"
        if owner != str(self.caller.uid):
            raise Refused("owner", f"container {name} in {lxcpath} is not yours")

    def mark_owner(self, lxcpath: str, name: str) -> None:
        if self._own_path(lxcpath):
            return
        home = os.path.join(lxcpath, name)
        fd = os.open(os.path.join(home, OWNER_FILE),
                     os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        with open(fd, "w", encoding="ascii") as f:
            f.write(f"{self.caller.uid}\n")

    def context(self, entry: _Entry) -> ConfigContext:
        c = entry.container
        return ConfigContext(self.caller, self.grant, entry.lxcpath, c.name, self._uids,
                             self._gids, own_log=c._log.path)

    def check_whole_config(self, entry: _Entry) -> None:
        """Every item set (what save_config writes: not liblxc's defaults)."""
        c = entry.container
        home = os.path.join(entry.lxcpath, c.name)
        made = not os.path.lexists(home)  # liblxc's save_config makes it: a refusal must not
        path = _private_copy(b"")
        try:
            c.save_config(path)
            with open(path, encoding="utf-8", errors="surrogateescape") as f:
                text = f.read()
        finally:
            os.unlink(path)
            if made:
                with contextlib.suppress(OSError):
                    os.rmdir(home)
        items = []
        for line in text.splitlines():
            key, sep, value = line.partition("=")
            if sep and not line.lstrip().startswith("#"):
                items.append((key.strip(), value.strip()))
        check_config(items, self.context(entry))

    def _named(self, name: str) -> None:
        if not self.grant.named and not re.fullmatch(r"(lxa-|imc-)\w{8}|lxactors-base[\w-]*", name):
            raise Refused("named", f"access.conf does not let you make named containers ({name})")

    # ------------------------------------------------------------ the loop

    def serve(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        while True:
            try:
                msg, ancdata, _flags, _addr = self.sock.recvmsg(
                    wire.MAX_REQUEST, socket.CMSG_SPACE(wire.MAX_FDS * 4), socket.MSG_CMSG_CLOEXEC)
            except (ConnectionResetError, OSError):
                msg, ancdata = b"", []
            fds: list[int] = []
            for level, kind, data in ancdata:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    a = array.array("i")
                    a.frombytes(data[: len(data) - (len(data) % a.itemsize)])
                    fds.extend(a)
            if not msg:
                _close(fds)
                self.finish()
                return
            if not fds:
                continue  # no reply channel: nothing to answer on
            self.handle(msg, fds)

    def finish(self) -> None:
        """The client is gone: drop its handles; the gate's helper applies the policies."""
        with self._lock:
            entries, self.handles = list(self.handles.values()), {}
        for e in entries:
            e.container.close()
        helper().close()

    def handle(self, msg: bytes, fds: list[int]) -> None:
        """Decode, authorize and run one request; *fds* (reply channel first) are ours."""
        reply, extra = fds[0], fds[1:]
        try:
            req = wire.decode_request(msg)
        except wire.WireError as exc:
            _send(reply, wire.error("helper", f"bad request: {exc}", []))
            _close(fds)
            return
        if isinstance(req, (wire.Register, wire.Unregister)):
            try:
                path = self.lxcpath(req.path)
                self.check_owner(path, req.name)
                if isinstance(req, wire.Register):
                    helper().register(path, req.name, req.type)
                else:
                    helper().unregister(path, req.name)
                _send(reply, wire.ok(None))
            except Refused as exc:
                _send(reply, wire.error("refused", str(exc), []))
            except LxcError as exc:
                _send(reply, wire.error("helper", exc.message, list(exc.log)))
            _close(fds)
            return
        if isinstance(req, Call) and req.member not in QUICK:
            threading.Thread(target=self._run, args=(req, reply, extra), daemon=True,
                             name=f"gate {req.member}").start()
            return
        self._run(req, reply, extra)

    def _run(self, req: wire.Request, reply: int, fds: list[int]) -> None:
        container = getattr(req, "name", None)
        try:
            if isinstance(req, Call):
                entry = self._entry(req.handle)
                container = entry.container.name
                value, out = self.call(entry, req, fds, reply)
            elif isinstance(req, Open):
                value, out = self.open(req), []
            elif isinstance(req, CloseHandle):
                with self._lock:
                    e = self.handles.pop(req.handle, None)
                if e is not None:
                    e.container.close()
                value, out = None, []
            elif isinstance(req, ListContainers):
                fn = {"defined": liblxc.list_defined_containers,
                      "active": liblxc.list_active_containers,
                      "all": liblxc.list_all_containers}.get(req.kind)
                if fn is None:
                    raise ValueError(f"no list of {req.kind!r} containers")
                value, out = fn(self.lxcpath(req.path)), []
            elif isinstance(req, Chroot):
                self.chroot(self._entry(req.handle), req.specs, fds)
                value, out = None, []
            else:
                raise Refused("operation", f"helper operation {req.op!r} is for root callers")
            _send(reply, wire.ok(("return", value)), out)
            _close(out)
        except BaseException as exc:  # every failure is an answer, never a hang
            if not isinstance(exc, (Refused, LxcError, TypeError, ValueError, KeyError)):
                traceback.print_exc(file=sys.stderr)
            _send(reply, _raise_frame(exc, container, getattr(req, "member", req.op)))
        finally:
            _close([reply, *fds])

    def _entry(self, handle: int) -> _Entry:
        with self._lock:
            e = self.handles.get(handle)
        if e is None:
            raise ContainerClosedError(None, "use", f"no open handle {handle}")
        return e

    def _add(self, container: liblxc.Container, lxcpath: str) -> int:
        with self._lock:
            hid, self._next = self._next, self._next + 1
            self.handles[hid] = _Entry(container, lxcpath)
        return hid

    def open(self, req: Open) -> tuple[int, str]:
        path = self.lxcpath(req.path)
        return self._add(liblxc.Container(req.name, path), path), path

    # ------------------------------------------------------------ members

    def call(self, entry: _Entry, req: Call, fds: list[int],
             reply: int) -> tuple[object, list[int]]:
        member = req.member
        if member in REFUSED:
            rule, what = REFUSED[member]
            raise Refused(rule, f"{member}: {what} are not for unprivileged callers")
        if member not in ALLOWED:
            raise Refused("member", f"{member!r} is not a member unprivileged callers may call")
        c = entry.container
        if member in ("name", "closed", "daemonize", "error_string", "error_num"):
            return getattr(c, member), []
        check = getattr(self, f"_allow_{member}", None)
        if check is None and not req.fd_args and member in QUICK:
            # The common case (a read, a plain set): no rule reads the arguments.
            if member not in ("is_defined", "defined", "get_config_path"):
                self.check_owner(entry.lxcpath, c.name)
            return self._result(entry, member, {}, getattr(c, member)(*req.args, **req.kwargs))
        bound = _signature(member).bind(c, *req.args, **req.kwargs)
        bound.apply_defaults()
        for pname, index in req.fd_args.items():
            if pname not in bound.signature.parameters or not 0 <= index < len(fds):
                raise TypeError(f"{member}: no fd parameter {pname!r}")
            bound.arguments[pname] = fds[index]
        a = bound.arguments
        if member not in ("is_defined", "defined", "get_config_path"):
            self.check_owner(entry.lxcpath, c.name)
        if check is not None:
            check(entry, a, set(req.fd_args))
        if member in ("load_config", "save_config") and "path" in req.fd_args:
            self._config_file(c, member, a)
            return None, []
        if member == "create":
            self._create(entry, bound)
            return None, []
        if member == "attach":
            attached = c.attach(*bound.args[1:], **bound.kwargs)
            _send(reply, wire.ok(("return", attached.pid)))
            attached.wait(None)
            r = attached._result
            assert r is not None
            return asdict(r), []
        value = getattr(c, member)(*bound.args[1:], **bound.kwargs)
        return self._result(entry, member, a, value)

    def _config_file(self, c: liblxc.Container, member: str, a: dict[str, Any]) -> None:
        """load_config from, or save_config to, a file the client opened."""
        fd = a["path"]
        if member == "load_config":
            text = a.pop("_checked")
            path = _private_copy(text)
            try:
                c.load_config(path)
            finally:
                os.unlink(path)
            return
        path = _private_copy(b"")
        try:
            c.save_config(path)
            with open(path, "rb") as f:
                data = f.read()
            os.ftruncate(fd, 0)
            view = memoryview(data)
            while view:
                view = view[os.pwrite(fd, view, len(data) - len(view)):]
        finally:
            os.unlink(path)

    def _create(self, entry: _Entry, bound: inspect.BoundArguments) -> None:
        """create, leaving nothing if it fails; a config-only create (template
        None, as imc's) gets its empty dir rootfs made first, as liblxc wants."""
        c = entry.container
        home = os.path.join(entry.lxcpath, c.name)
        made = not os.path.lexists(home)
        try:
            rootfs = c.get_config_item("lxc.rootfs.path").removeprefix("dir:")
            if bound.arguments["template"] is None and rootfs.startswith(home + "/"):
                os.makedirs(rootfs, 0o755, exist_ok=True)
            c.create(*bound.args[1:], **bound.kwargs)
        except BaseException:
            if made and os.path.isdir(home) and not os.path.islink(home):
                shutil.rmtree(home, ignore_errors=True)
            raise
        self.mark_owner(entry.lxcpath, c.name)

    def _result(self, entry: _Entry, member: str, a: dict[str, Any],
                value: Any) -> tuple[object, list[int]]:
        if member == "console_getfd":
            return ("consolefd", value.ttynum), [value.fd, value.ptx]
        if member in _FD_RESULTS:
            return ("fd",), [value]
        if member == "clone":
            path = os.path.realpath(value.get_config_path())
            self.mark_owner(path, value.name)
            return ("container", self._add(value, path), value.name, path), []
        if member == "rename":
            self.mark_owner(entry.lxcpath, a["newname"])
        if member == "snapshot_list":
            return [(s.name, s.comment_pathname, s.timestamp, s.lxcpath) for s in value], []
        if member == "attach_run_wait":
            return asdict(value), []
        return value, []

    # Rules per member (beyond ownership): each raises Refused or returns.

    def _allow_set_config_item(self, e: _Entry, a: dict[str, Any], fds: set[str]) -> None:
        if isinstance(a["key"], str) and isinstance(a["value"], str):
            check_item(a["key"], a["value"], self.context(e))

    def _allow_clear_config_item(self, e: _Entry, a: dict[str, Any], fds: set[str]) -> None:
        if a["key"] == "lxc.seccomp.profile" and e.container.get_config_item(a["key"]):
            raise Refused("lxc.seccomp.profile", "the seccomp profile may not be removed")

    def _allow_clear_config(self, e: _Entry, a: dict[str, Any], fds: set[str]) -> None:
        self._allow_clear_config_item(e, {"key": "lxc.seccomp.profile"}, fds)

    def _allow_set_config_path(self, e: _Entry, a: dict[str, Any], fds: set[str]) -> None:
        a["path"] = e.lxcpath = self.lxcpath(os.fspath(a["path"]))

    def _allow_load_config(self, e: _Entry, a: dict[str, Any], fds: set[str]) -> None:
        if a["path"] is None:
            return
        if "path" not in fds:
            raise Refused("host files", "load_config reads the file you send, not a path")
        text = _read_fd(a["path"], 1 << 20, "load_config").decode("utf-8", "surrogateescape")
        ctx = self.context(e)
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            key, sep, value = line.partition("=")
            if not sep:
                raise ValueError(f"load_config: not a 'key = value' line: {line[:100]!r}")
            check_item(key.strip(), value.strip(), ctx)
        a["_checked"] = text.encode("utf-8", "surrogateescape")

    def _allow_save_config(self, e: _Entry, a: dict[str, Any], fds: set[str]) -> None:
        if a["path"] is not None and "path" not in fds:
            raise Refused("host files", "save_config writes to the file you send, not a path")

    def _allow_set_cgroup_item(self, e: _Entry, a: dict[str, Any], fds: set[str]) -> None:
        if isinstance(a["key"], str) and not _CGROUP_KEY.fullmatch(a["key"]):
            raise Refused("cgroup", f"cgroup key {a['key']}: only resource limits "
                          "(memory, pids, cpu, io...) for unprivileged callers")

    def _allow_start(self, e: _Entry, a: dict[str, Any], fds: set[str]) -> None:
        self.check_whole_config(e)

    def _allow_create(self, e: _Entry, a: dict[str, Any], fds: set[str]) -> None:
        self._named(e.container.name)
        if a["template"] is not None and a["template"] not in self.grant.templates:
            raise Refused("templates", f"template {a['template']!r} is not in access.conf's "
                          f"templates ({' '.join(sorted(self.grant.templates))})")
        if a["bdevtype"] not in _BDEVTYPES or a["bdevspec"] is not None or list(a["argv"] or ()):
            raise Refused("create", "create: only dir or overlay storage, without bdevspec or "
                          "template arguments, for unprivileged callers")
        self.check_whole_config(e)

    def _allow_clone(self, e: _Entry, a: dict[str, Any], fds: set[str]) -> None:
        if isinstance(a["newname"], str):
            self._named(a["newname"])
        if a["lxcpath"] is not None:
            a["lxcpath"] = self.lxcpath(os.fspath(a["lxcpath"]))
            self.check_owner(a["lxcpath"], a["newname"])
        if a["bdevtype"] not in _BDEVTYPES or a["bdevdata"] is not None or a["hookargs"]:
            raise Refused("clone", "clone: only dir or overlay storage, without bdevdata or "
                          "hook arguments, for unprivileged callers")
        self.check_whole_config(e)

    def _allow_rename(self, e: _Entry, a: dict[str, Any], fds: set[str]) -> None:
        if isinstance(a["newname"], str):
            self._named(a["newname"])
            self.check_owner(e.lxcpath, a["newname"])

    def _allow_snapshot(self, e: _Entry, a: dict[str, Any], fds: set[str]) -> None:
        if a["commentfile"] is not None:
            raise Refused("host files", "snapshot: a comment file would be read as root")

    def _allow_attach(self, e: _Entry, a: dict[str, Any], fds: set[str]) -> None:
        ns = a["namespaces"]
        if isinstance(ns, int) and ns != -1 and not ns & _CLONE_NEWUSER:
            raise Refused("userns", "attach must join the container's user namespace")
        if idmap_of(e.container.get_config_item("lxc.idmap").splitlines()) is None:
            raise Refused("userns", "attach to a container without a user namespace")

    _allow_attach_run_wait = _allow_attach

    # ------------------------------------------------------------ chroot

    def chroot(self, entry: _Entry, specs: list[object], fds: list[int]) -> None:
        c = entry.container
        self.check_owner(entry.lxcpath, c.name)
        rootfs = c.get_config_item("lxc.rootfs.path")
        check_item("lxc.rootfs.path", rootfs, self.context(entry))
        dirs: list[object] = []
        files: list[object] = []
        for spec in specs:
            if not isinstance(spec, tuple) or not spec or spec[0] not in ("dir", "file", "copy"):
                raise TypeError(f"chroot spec must be ('dir'|'file'|'copy', ...): {spec!r:.100}")
            kind, *rest = spec
            if kind == "dir" and len(rest) == 2:
                dirs.append((_spec_path(rest[0]), rest[1]))
            elif kind == "file" and len(rest) == 3:
                files.append((_spec_path(rest[0]), rest[1], rest[2]))
            elif kind == "copy" and len(rest) == 3 and isinstance(rest[0], int) \
                    and 0 <= rest[0] < len(fds):
                fd = fds[rest[0]]
                data = _read_fd(fd, MAX_CONTENT, f"chroot copy to {_spec_path(rest[1])}")
                mode = rest[2] if rest[2] is not None else os.fstat(fd).st_mode & 0o7777
                files.append((_spec_path(rest[1]), data, mode))
            else:
                raise TypeError(f"malformed chroot {kind} spec: {spec!r:.100}")
        parsed = parse_chroot({"dir": dirs, "file": files})
        idmap = idmap_of(c.get_config_item("lxc.idmap").splitlines())
        owner = None if idmap is None else (idmap.uid, idmap.gid)
        apply_chroot(c.name, rootfs_dir(rootfs), parsed, owner, lower_dir(rootfs))


# ---------------------------------------------------------------- helpers


def _spec_path(parts: object) -> str:
    if not isinstance(parts, list) or not all(isinstance(p, str) for p in parts):
        raise TypeError(f"chroot path must be a list of str: {parts!r:.100}")
    return "/".join(parts)


def _read_fd(fd: int, limit: int, what: str) -> bytes:
    """A regular file the client opened (with its own rights), read whole."""
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"{what}: the source is not a regular file")
    data = os.pread(fd, limit + 1, 0)
    if len(data) > limit:
        raise ValueError(f"{what}: the source is over {limit} bytes")
    return data


def _private_copy(data: bytes) -> str:
    path = os.path.join(log_dir(), f"config-{threading.get_ident()}.conf")
    with open(path, "wb") as f:
        f.write(data)
    return path


def _close(fds: list[int]) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def _refuse(sock: socket.socket, message: str) -> int:
    try:
        sock.send(b"refused " + message.encode("utf-8", "replace")[:4000])
    except OSError:
        pass
    return 1


def main(policy_path: str = "/etc/lxactors/access.conf",
         make_gate: Callable[[socket.socket, Caller, Grant], Gate] = Gate) -> int:
    # sudo passed the client's end as stdin: keep it off fd 0, where
    # children would inherit it.
    fd = os.dup(0)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.close(null)
    try:
        sock = socket.socket(fileno=fd)
        if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_SEQPACKET:
            raise OSError("stdin is not the client's socket")
        cred = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError as exc:
        print(f"lxactors gate: {exc}", file=sys.stderr)
        return 2
    os.set_inheritable(fd, False)
    pid, uid, gid = struct.unpack("3i", cred)
    if uid == 0:
        return _refuse(sock, "root callers run liblxc themselves")
    caller = caller_of(pid, uid, gid)
    try:
        policy = Policy.load(policy_path)
    except (OSError, ValueError) as exc:
        return _refuse(sock, f"cannot read the policy: {exc}")
    grant = policy.grant(caller)
    if not grant.allowed:
        return _refuse(sock, f"{policy_path} does not let {caller.name} use lxactors (rule user)")
    sock.send(HELLO)
    make_gate(sock, caller, grant).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
