"""What each ``liblxc.Container`` member may do for an unprivileged caller.

The gate (``gate``) owns the session: the socket, the handles, who the
caller is.  This module owns the rules: which members are refused outright
(``REFUSED``: host devices, host mounts, criu, seccomp...), which may be
called (``ALLOWED``) and which of those answer in the gate's loop
(``QUICK``); beyond the ownership every member needs, the rule a member's
arguments must pass (``RULES``: config items against ``access``, storage
kinds, names, user namespaces); and how a member whose arguments are files
or whose result holds fds or handles runs (:func:`call`), as does the
``chroot`` spawn option (:func:`chroot`).  Each rule raises
:class:`~lxactors._helper.access.Refused` or returns, having changed nothing.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import re
import shutil
import stat
import threading
from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from lxactors import liblxc
from lxactors._chroot import MAX_CONTENT, apply_chroot, lower_dir, parse_chroot, rootfs_dir
from lxactors._errlog import log_dir
from lxactors._helper.access import Refused, check_config, check_item
from lxactors._helper.calls import QUICK, Call
from lxactors._userns import idmap_of

if TYPE_CHECKING:
    from lxactors._helper.gate import Entry, Gate

__all__ = ["ALLOWED", "QUICK", "REFUSED", "RULES", "call", "chroot"]

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
#: A member's rule: the gate, the handle, the bound arguments (it may resolve
#: them in place), and the names of the parameters the client sent as fds.
Rule = Callable[["Gate", "Entry", dict[str, Any], set[str]], None]
#: The members whose arguments a rule reads, and that rule.
RULES: dict[str, Rule] = {}

_FD_RESULTS = frozenset({"init_pidfd"})
_BDEVTYPES = (None, "dir", "overlay", "overlayfs")
_CGROUP_KEY = re.compile(r"(memory|pids|cpu|cpuset|io|blkio|hugetlb|cpuacct|freezer|misc)\.[\w.]+")
_CLONE_NEWUSER = 0x10000000
_SIGNATURES: dict[str, inspect.Signature] = {}


def _signature(member: str) -> inspect.Signature:
    sig = _SIGNATURES.get(member)
    if sig is None:
        sig = _SIGNATURES[member] = inspect.signature(getattr(liblxc.Container, member))
    return sig


# ---------------------------------------------------------------- running a member


def call(gate: Gate, entry: Entry, req: Call, fds: list[int],
         answer: Callable[[object], None]) -> tuple[object, list[int]]:
    """Authorize and run *req* on *entry*: (its result, the fds that go with it).

    *answer* sends an early return value: attach answers with the pid at
    once, then waits for the process (its result goes to the client later).
    """
    member = req.member
    if member in REFUSED:
        rule, what = REFUSED[member]
        raise Refused(rule, f"{member}: {what} are not for unprivileged callers")
    if member not in ALLOWED:
        raise Refused("member", f"{member!r} is not a member unprivileged callers may call")
    c = entry.container
    if member in ("name", "closed", "daemonize", "error_string", "error_num"):
        return getattr(c, member), []
    check = RULES.get(member)
    if check is None and not req.fd_args and member in QUICK:
        # The common case (a read, a plain set): no rule reads the arguments.
        if member not in ("is_defined", "defined", "get_config_path"):
            gate.check_owner(entry.lxcpath, c.name)
        return _result(gate, entry, member, {}, getattr(c, member)(*req.args, **req.kwargs))
    bound = _signature(member).bind(c, *req.args, **req.kwargs)
    bound.apply_defaults()
    for pname, index in req.fd_args.items():
        if pname not in bound.signature.parameters or not 0 <= index < len(fds):
            raise TypeError(f"{member}: no fd parameter {pname!r}")
        bound.arguments[pname] = fds[index]
    a = bound.arguments
    if member not in ("is_defined", "defined", "get_config_path"):
        gate.check_owner(entry.lxcpath, c.name)
    if check is not None:
        check(gate, entry, a, set(req.fd_args))
    if member in ("load_config", "save_config") and "path" in req.fd_args:
        _config_file(c, member, a)
        return None, []
    if member == "create":
        _create(gate, entry, bound)
        return None, []
    if member == "attach":
        attached = c.attach(*bound.args[1:], **bound.kwargs)
        answer(attached.pid)
        attached.wait(None)
        r = attached._result
        assert r is not None
        return asdict(r), []
    value = getattr(c, member)(*bound.args[1:], **bound.kwargs)
    return _result(gate, entry, member, a, value)


def _config_file(c: liblxc.Container, member: str, a: dict[str, Any]) -> None:
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


def _create(gate: Gate, entry: Entry, bound: inspect.BoundArguments) -> None:
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
    gate.mark_owner(entry.lxcpath, c.name)


def _result(gate: Gate, entry: Entry, member: str, a: dict[str, Any],
            value: Any) -> tuple[object, list[int]]:
    """What crosses the socket: fds as fds, a clone as a new handle, records as data."""
    if member == "console_getfd":
        return ("consolefd", value.ttynum), [value.fd, value.ptx]
    if member in _FD_RESULTS:
        return ("fd",), [value]
    if member == "clone":
        path = os.path.realpath(value.get_config_path())
        gate.mark_owner(path, value.name)
        return ("container", gate.add(value, path), value.name, path), []
    if member == "rename":
        gate.mark_owner(entry.lxcpath, a["newname"])
    if member == "snapshot_list":
        return [(s.name, s.comment_pathname, s.timestamp, s.lxcpath) for s in value], []
    if member == "attach_run_wait":
        return asdict(value), []
    return value, []


# ---------------------------------------------------------------- rules


def _rule(*members: str) -> Callable[[Rule], Rule]:
    def register(fn: Rule) -> Rule:
        for m in members:
            RULES[m] = fn
        return fn
    return register


def _whole_config(gate: Gate, entry: Entry) -> None:
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
    check_config(items, gate.context(entry))


def _named(gate: Gate, name: str) -> None:
    if not gate.grant.named and not re.fullmatch(r"(lxa-|imc-)\w{8}|lxactors-base[\w-]*", name):
        raise Refused("named", f"access.conf does not let you make named containers ({name})")


@_rule("set_config_item")
def _set_config_item(gate: Gate, e: Entry, a: dict[str, Any], fds: set[str]) -> None:
    if isinstance(a["key"], str) and isinstance(a["value"], str):
        check_item(a["key"], a["value"], gate.context(e))


@_rule("clear_config_item")
def _clear_config_item(gate: Gate, e: Entry, a: dict[str, Any], fds: set[str]) -> None:
    if a["key"] == "lxc.seccomp.profile" and e.container.get_config_item(a["key"]):
        raise Refused("lxc.seccomp.profile", "the seccomp profile may not be removed")


@_rule("clear_config")
def _clear_config(gate: Gate, e: Entry, a: dict[str, Any], fds: set[str]) -> None:
    _clear_config_item(gate, e, {"key": "lxc.seccomp.profile"}, fds)


@_rule("set_config_path")
def _set_config_path(gate: Gate, e: Entry, a: dict[str, Any], fds: set[str]) -> None:
    a["path"] = e.lxcpath = gate.lxcpath(os.fspath(a["path"]))


@_rule("load_config")
def _load_config(gate: Gate, e: Entry, a: dict[str, Any], fds: set[str]) -> None:
    if a["path"] is None:
        return
    if "path" not in fds:
        raise Refused("host files", "load_config reads the file you send, not a path")
    text = _read_fd(a["path"], 1 << 20, "load_config").decode("utf-8", "surrogateescape")
    ctx = gate.context(e)
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise ValueError(f"load_config: not a 'key = value' line: {line[:100]!r}")
        check_item(key.strip(), value.strip(), ctx)
    a["_checked"] = text.encode("utf-8", "surrogateescape")


@_rule("save_config")
def _save_config(gate: Gate, e: Entry, a: dict[str, Any], fds: set[str]) -> None:
    if a["path"] is not None and "path" not in fds:
        raise Refused("host files", "save_config writes to the file you send, not a path")


@_rule("set_cgroup_item")
def _set_cgroup_item(gate: Gate, e: Entry, a: dict[str, Any], fds: set[str]) -> None:
    if isinstance(a["key"], str) and not _CGROUP_KEY.fullmatch(a["key"]):
        raise Refused("cgroup", f"cgroup key {a['key']}: only resource limits "
                      "(memory, pids, cpu, io...) for unprivileged callers")


@_rule("start")
def _start(gate: Gate, e: Entry, a: dict[str, Any], fds: set[str]) -> None:
    _whole_config(gate, e)


@_rule("create")
def _create_rule(gate: Gate, e: Entry, a: dict[str, Any], fds: set[str]) -> None:
    _named(gate, e.container.name)
    if a["template"] is not None and a["template"] not in gate.grant.templates:
        raise Refused("templates", f"template {a['template']!r} is not in access.conf's "
                      f"templates ({' '.join(sorted(gate.grant.templates))})")
    if a["bdevtype"] not in _BDEVTYPES or a["bdevspec"] is not None or list(a["argv"] or ()):
        raise Refused("create", "create: only dir or overlay storage, without bdevspec or "
                      "template arguments, for unprivileged callers")
    _whole_config(gate, e)


@_rule("clone")
def _clone(gate: Gate, e: Entry, a: dict[str, Any], fds: set[str]) -> None:
    if isinstance(a["newname"], str):
        _named(gate, a["newname"])
    if a["lxcpath"] is not None:
        a["lxcpath"] = gate.lxcpath(os.fspath(a["lxcpath"]))
        gate.check_owner(a["lxcpath"], a["newname"])
    if a["bdevtype"] not in _BDEVTYPES or a["bdevdata"] is not None or a["hookargs"]:
        raise Refused("clone", "clone: only dir or overlay storage, without bdevdata or "
                      "hook arguments, for unprivileged callers")
    _whole_config(gate, e)


@_rule("rename")
def _rename(gate: Gate, e: Entry, a: dict[str, Any], fds: set[str]) -> None:
    if isinstance(a["newname"], str):
        _named(gate, a["newname"])
        gate.check_owner(e.lxcpath, a["newname"])


@_rule("snapshot")
def _snapshot(gate: Gate, e: Entry, a: dict[str, Any], fds: set[str]) -> None:
    if a["commentfile"] is not None:
        raise Refused("host files", "snapshot: a comment file would be read as root")


@_rule("attach", "attach_run_wait")
def _attach(gate: Gate, e: Entry, a: dict[str, Any], fds: set[str]) -> None:
    ns = a["namespaces"]
    if isinstance(ns, int) and ns != -1 and not ns & _CLONE_NEWUSER:
        raise Refused("userns", "attach must join the container's user namespace")
    if idmap_of(e.container.get_config_item("lxc.idmap").splitlines()) is None:
        raise Refused("userns", "attach to a container without a user namespace")


# ---------------------------------------------------------------- chroot


def chroot(gate: Gate, entry: Entry, specs: list[object], fds: list[int]) -> None:
    """The ``chroot`` spawn option in the handle's rootfs; ``copy`` sources are
    fds the client opened with its own rights, never paths read as root."""
    c = entry.container
    gate.check_owner(entry.lxcpath, c.name)
    rootfs = c.get_config_item("lxc.rootfs.path")
    check_item("lxc.rootfs.path", rootfs, gate.context(entry))
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
    """A file in the gate's log dir, for liblxc, which reads and writes configs by path."""
    path = os.path.join(log_dir(), f"config-{threading.get_ident()}.conf")
    with open(path, "wb") as f:
        f.write(data)
    return path
