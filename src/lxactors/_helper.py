"""The helper process: runs every liblxc call that forks.

liblxc's daemonized ``start`` forks its caller (each ``[lxc monitor]`` would
be a copy of the user's whole process, threads and heap included), ``attach``
changes the caller's signal dispositions, and on cgroup v1 hosts ``start``
moves its caller into the new container's monitor cgroup.  So none of these
run in the user's process: they run here, in a small re-executed Python that
imports only the standard library and the cffi extension, and each request
runs in a worker forked for it, which exits when done (taking any cgroup
membership with it).

Run as ``python -I _helper.py FD [LOG_DIR PID]``: FD is a SOCK_SEQPACKET
socket; LOG_DIR is the log directory of the user's process PID, removed if
that process is killed.  Each
request is one pickled ``(op, args)`` message carrying, by SCM_RIGHTS, a reply
pipe and any fds the op needs.  The worker writes length-prefixed pickled
frames to the reply pipe: ``("ok", value)`` or ``("err", kind, message, log)``;
``attach`` writes a first frame (the pid) and a last (the exit status).

End of file on the socket means the user's process is gone, however it died:
the helper then applies the registered owner-death policies (see
``apply_policies``) and exits.

This file must stay importable without the ``lxactors`` package: it loads
the extension by path and uses only its sibling ``_errlog`` and ``_userns``
modules (standard library only).
"""

from __future__ import annotations

import array
import contextlib
import glob
import importlib.machinery
import importlib.util
import os
import pickle
import select
import signal
import socket
import struct
import sys
import tempfile
import time
import traceback
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
MAX_FDS = 8
MAX_REQUEST = 1 << 20

ffi: Any = None
lib: Any = None


def _load_extension() -> None:
    """Load lxactors._lxc by path, so the package (pykka...) is not imported."""
    global ffi, lib
    candidates = sorted(glob.glob(os.path.join(HERE, "_lxc.*so")))
    if not candidates:
        raise SystemExit("lxactors helper: the _lxc extension is not built")
    loader = importlib.machinery.ExtensionFileLoader("lxactors._lxc", candidates[0])
    spec = importlib.util.spec_from_file_location("lxactors._lxc", candidates[0], loader=loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    ffi, lib = module.ffi, module.lib


# --------------------------------------------------------------------------- frames


def write_frame(fd: int, value: object) -> None:
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    view = memoryview(struct.pack("!I", len(data)) + data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


class OpError(Exception):
    """An operation failed; ``kind`` picks the client-side exception class."""

    def __init__(self, message: str, kind: str = "lxc", log: list[str] | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.log = log or []


# --------------------------------------------------------------------------- liblxc


def _s(text: str | None) -> Any:
    return ffi.NULL if text is None else text.encode("utf-8", "surrogateescape")


def _argv(args: list[bytes] | None) -> tuple[Any, list[Any]]:
    """A NULL-terminated char*[] and the buffers that must outlive it."""
    if args is None:
        return ffi.NULL, []
    keep = [ffi.new("char[]", a) for a in args]
    arr = ffi.new("char *[]", keep + [ffi.NULL])
    return arr, keep


class Handle:
    """A liblxc handle for one request, loaded from the client's config snapshot."""

    def __init__(self, args: dict[str, Any]) -> None:
        self.name: str = args["name"]
        self.c = lib.lxc_container_new(_s(self.name), _s(args.get("path")))
        if self.c == ffi.NULL:
            raise OpError("cannot allocate a liblxc handle")
        self.log_path: str | None = args.get("log")
        snapshot = args.get("config")
        if snapshot:
            self.c.clear_config(self.c)
            if not self.c.load_config(self.c, _s(snapshot)):
                raise OpError(f"cannot load the configuration snapshot {snapshot}")
        elif self.log_path:
            # The on-disk config has no lxc.log.file (it is stripped when
            # written): without this, liblxc's reasons for a failure are lost.
            self.c.set_config_item(self.c, b"lxc.log.file", _s(self.log_path))
        self.log_offset = self._log_size()

    def _log_size(self) -> int:
        try:
            return os.stat(self.log_path).st_size if self.log_path else 0
        except OSError:
            return 0

    def fail(self, message: str) -> OpError:
        """An OpError carrying the log lines written since this request began."""
        lines: list[str] = []
        if self.log_path:
            try:
                with open(self.log_path, "rb") as f:
                    # The last 64 KiB since the request began: the cause
                    # comes last (at DEBUG or TRACE there is much before it).
                    size = os.fstat(f.fileno()).st_size
                    f.seek(max(self.log_offset, size - 65536))
                    lines = f.read().decode("utf-8", "replace").splitlines()
            except OSError:
                pass
        return OpError(message, log=_errlog().report_lines(lines))

    def strip_log_line(self, config_file: str) -> None:
        _errlog().strip_from_config(config_file, self.log_path)

    def config_file(self) -> str | None:
        p = self.c.config_file_name(self.c)
        if p == ffi.NULL:
            return None
        try:
            return ffi.string(p).decode("utf-8", "surrogateescape")  # type: ignore[no-any-return]
        finally:
            lib.free(p)


# --------------------------------------------------------------------------- cgroups


def _errlog() -> Any:
    """The sibling stdlib-only module (imported in main(), before any fork)."""
    import _errlog  # type: ignore[import-not-found]

    return _errlog


def _userns() -> Any:
    """The sibling stdlib-only module that knows root's id ranges."""
    import _userns  # type: ignore[import-not-found]

    return _userns


_MOUNTS: dict[frozenset[str], str] | None = None


def _cgroup_mounts() -> dict[frozenset[str], str]:
    """The hierarchies' mount points, read once (in the helper, before forks)."""
    global _MOUNTS
    if _MOUNTS is None:
        _MOUNTS = _read_cgroup_mounts()
    return _MOUNTS


def _read_cgroup_mounts() -> dict[frozenset[str], str]:
    """Map each cgroup hierarchy (its controller set) to its mount point."""
    mounts: dict[frozenset[str], str] = {}
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields, rfields = left.split(), right.split()
            if not rfields:
                continue
            if rfields[0] == "cgroup2":
                mounts.setdefault(frozenset([""]), fields[4])
            elif rfields[0] == "cgroup":
                opts = set(rfields[2].split(",")) if len(rfields) > 2 else set()
                known = {o for o in opts if o not in {"rw", "ro", "relatime", "noatime", "nosuid",
                                                      "nodev", "noexec", "clone_children", "xattr"}}
                mounts.setdefault(frozenset(known), fields[4])
    return mounts


def _own_cgroups(source: str = "/proc/self/cgroup") -> dict[frozenset[str], str]:
    out: dict[frozenset[str], str] = {}
    with open(source, encoding="utf-8") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            out[frozenset(ctrls.split(",")) if ctrls else frozenset([""])] = path
    return out


def _leave_monitor_cgroups(before: dict[frozenset[str], str]) -> None:
    """Move back to our cgroups and remove the monitor cgroups start left us in.

    On cgroup v1 hybrid hosts liblxc 5.0's daemonized start moves its caller
    into ``lxc.monitor.<name>``; after a failed start nothing else removes it.
    """
    mounts = _cgroup_mounts()
    after = _own_cgroups()
    for ctrls, path in after.items():
        mount = mounts.get(ctrls)
        old = before.get(ctrls)
        if mount is None or old is None or old == path:
            continue
        try:
            with open(os.path.join(mount, old.lstrip("/"), "cgroup.procs"), "w") as f:
                f.write(str(os.getpid()))
        except OSError:
            continue
        if os.path.basename(path).startswith("lxc.monitor."):
            try:
                os.rmdir(os.path.join(mount, path.lstrip("/")))
            except OSError:
                pass


# --------------------------------------------------------------------------- ops


#: Config items whose programs liblxc runs (at start or stop) with the monitor's PATH.
_START_PROGRAMS = tuple(f"lxc.hook.{h}".encode() for h in (
    "pre-start", "pre-mount", "mount", "autodev", "start", "start-host", "stop", "post-stop"))


def _config_item(c: Any, key: bytes) -> bytes:
    n = c.get_config_item(c, key, ffi.NULL, 0)
    if n <= 0:
        return b""
    buf = ffi.new("char[]", n + 1)
    c.get_config_item(c, key, buf, n + 1)
    return ffi.string(buf)  # type: ignore[no-any-return]


def _networks(c: Any) -> list[int]:
    """The indices of the container's networks (they need not start at 0)."""
    want = len(_config_item(c, b"lxc.net").split())  # one type per network
    found: list[int] = []
    i = 0
    while len(found) < want and i < 1024:
        if _config_item(c, b"lxc.net.%d.type" % i):
            found.append(i)
        i += 1
    return found


def _needs_path(c: Any) -> bool:
    """Whether liblxc may run a program at start or stop (hooks, scripts, tools)."""
    if any(_config_item(c, k) for k in _START_PROGRAMS):
        return True
    for i in _networks(c):
        if any(_config_item(c, b"lxc.net.%d.script.%s" % (i, end)) for end in (b"up", b"down")):
            return True
        link = _config_item(c, b"lxc.net.%d.link" % i).decode("utf-8", "replace")
        # A veth on anything but a Linux bridge may be an Open vSwitch one
        # (ovs-vsctl, in /usr/bin).
        if link and not os.path.isdir(os.path.join("/sys/class/net", link, "bridge")):
            return True
    rootfs = _config_item(c, b"lxc.rootfs.path")
    return bool(rootfs) and not rootfs.startswith((b"/", b"dir:", b"overlay:", b"overlayfs:"))


def _write_id_maps_directly(c: Any) -> None:
    """Keep newuidmap/newgidmap off this worker's PATH for a user-namespaced start.

    liblxc execs both to write a container's id maps whenever it finds them
    on PATH, even when the caller is root and may write the maps itself:
    two programs per start, 15-25% of an ephemeral spawn.  Without them it
    writes the maps itself.  Done only where that changes nothing else:
    every mapped range is delegated to root in /etc/subuid or /etc/subgid
    (what newuidmap would check), and liblxc runs no other program from
    PATH for this container (no hooks or network scripts, no Open vSwitch
    port, a dir or overlay rootfs).  The monitor inherits the PATH; the
    worker exits after the start.
    """
    lines = _config_item(c, b"lxc.idmap").decode("utf-8", "replace").splitlines()
    if not lines or not all(_userns().delegated_line(ln) for ln in lines) or _needs_path(c):
        return
    dirs = os.environ.get("PATH", os.defpath).split(os.pathsep)
    os.environ["PATH"] = os.pathsep.join(
        d for d in dirs if not any(os.path.exists(os.path.join(d or ".", tool))
                                   for tool in ("newuidmap", "newgidmap")))


#: liblxc's own small start command (None: not installed; found in main()).
LXC_START: str | None = None


def op_start(args: dict[str, Any], fds: list[int], reply: int) -> object:
    h = Handle(args)
    c = h.c
    _write_id_maps_directly(c)
    close_all_fds = bool(args.get("close_all_fds", True))
    c.want_close_all_fds(c, close_all_fds)
    argv, _keep = _argv(args.get("argv"))
    useinit = 1 if args.get("useinit") else 0
    if not args.get("daemonize", True):
        return _start_foreground(h, useinit, argv, reply)
    if _can_use_lxc_start(h, args, close_all_fds, useinit):
        if c.is_running(c):
            # lxc-start would call that a success; liblxc's start fails.
            raise h.fail("start failed: the container is already running")
        ok = _start_with_lxc_start(h, args)
    else:
        ok = None
    if ok is None:
        c.want_daemonize(c, True)
        before = _own_cgroups()
        _default_signals()
        ok = c.start(c, useinit, argv)
        _leave_monitor_cgroups(before)
    if not ok:
        raise h.fail("start failed")
    pid = c.init_pid(c)
    # <= 0: init already ended (a short-lived command); the caller reads why.
    return pid if pid > 0 else None


#: Ignored here (Python ignores SIGPIPE and SIGXFSZ; the helper SIGHUP,
#: SIGINT and SIGTERM), and an ignored signal stays ignored across fork and
#: exec: the monitor and the container's init would inherit that.
_RESET_SIGNALS = (signal.SIGHUP, signal.SIGINT, signal.SIGTERM, signal.SIGPIPE, signal.SIGXFSZ)


def _default_signals() -> None:
    """Default dispositions, in a session of our own: the terminal's ^C and
    hangups, which the helper ignores, must not reach a start half done."""
    os.setsid()
    for sig in _RESET_SIGNALS:
        signal.signal(sig, signal.SIG_DFL)


def _can_use_lxc_start(h: Handle, args: dict[str, Any], close_all_fds: bool,
                       useinit: int) -> bool:
    """Whether lxc-start can do exactly this start (see _start_with_lxc_start)."""
    path = args.get("path") or ""
    return bool(
        LXC_START and close_all_fds and not useinit and args.get("config") and h.log_path
        # lxc-start drops a trailing slash, and the command socket's name
        # is made from the path as given: the handle would not find it.
        and path == path.rstrip("/")
        # -o would override a log file the user set on the handle.
        and _config_item(h.c, b"lxc.log.file").decode("utf-8", "surrogateescape") == h.log_path)


def _find_lxc_start() -> str | None:
    """liblxc's lxc-start, if it is the same liblxc version as ours."""
    ours = ffi.string(lib.lxc_get_version()).decode()
    for d in ("/usr/bin", "/bin", "/usr/local/bin"):
        path = os.path.join(d, "lxc-start")
        if not os.access(path, os.X_OK):
            continue
        r, w = os.pipe()
        try:
            pid = os.posix_spawn(path, [path, "--version"], {}, file_actions=[
                (os.POSIX_SPAWN_DUP2, w, 1), (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0)])
        except OSError:
            os.close(r)
            os.close(w)
            continue
        os.close(w)
        with os.fdopen(r, "rb") as out:
            version = out.read(256).decode("utf-8", "replace").strip()
        os.waitpid(pid, 0)
        return path if version == ours else None
    return None


def _start_with_lxc_start(h: Handle, args: dict[str, Any]) -> bool | None:
    """Start through lxc-start: the same liblxc call, from a small C process.

    The daemonized start forks its caller into the container's monitor, and
    the monitor forks again for the container (in a user namespace, once
    more): forks of this ~16 MB Python worker cost several ms each, forks of
    lxc-start a fraction of that, and each monitor carries 1.3 MB less.  Its
    config is the client's snapshot, its log ours.  None: lxc-start could
    not be run (the caller starts in-process).
    """
    assert LXC_START is not None and h.log_path is not None
    level = _config_item(h.c, b"lxc.log.level").decode()
    cmd = [LXC_START, "-q", "-n", h.name, "-P", args["path"], "-f", args["config"], "-C",
           "-o", h.log_path, *(["-l", level] if level else [])]
    if args.get("argv"):
        cmd += ["--", *(a.decode("utf-8", "surrogateescape") for a in args["argv"])]
    devnull = [(os.POSIX_SPAWN_OPEN, fd, os.devnull, os.O_RDWR, 0) for fd in (0, 1, 2)]
    try:
        pid = os.posix_spawn(LXC_START, cmd, dict(os.environ), file_actions=devnull,
                             setsigdef=_RESET_SIGNALS, setsid=True)  # as _default_signals
    except OSError:
        return None
    _, status = os.waitpid(pid, 0)
    _remove_monitor_cgroups(h.name)
    return os.waitstatus_to_exitcode(status) == 0


def op_remove_stale_cgroups(args: dict[str, Any], fds: list[int], reply: int) -> object:
    """Remove the cgroups of a stopped container whose monitor was killed.

    A monitor removes ``lxc.payload.<name>`` and ``lxc.monitor.<name>`` as
    its last act; a SIGKILLed one leaves both, in every hierarchy.  Only
    empty ones of a container that is not running are removed.  Returns how
    many payload directories there were: none once a monitor ended normally,
    so the caller can tell a killed monitor from a normal end.
    """
    h = Handle(args)
    if h.c.is_running(h.c):
        return 0
    return _remove_stale_cgroups(h.name)


def _remove_stale_cgroups(name: str) -> int:
    payloads = 0
    for d in _container_cgroup_dirs(name, ("lxc.payload.", "lxc.monitor.")):
        payloads += os.path.basename(d).startswith("lxc.payload.")
        for sub, _dirs, _files in os.walk(d, topdown=False):
            try:
                os.rmdir(sub)
            except OSError:
                pass  # busy: not a leftover
    return payloads


def _container_cgroup_dirs(name: str, kinds: tuple[str, ...]) -> list[str]:
    """The existing ``<kind><name>`` directories, beside the cgroups of init
    (without systemd's init.scope) or ours, in every hierarchy."""
    mounts = _cgroup_mounts()
    found: list[str] = []
    for cgroups in (_own_cgroups(), _own_cgroups("/proc/1/cgroup")):
        for ctrls, path in cgroups.items():
            mount = mounts.get(ctrls)
            if path.endswith("/init.scope"):
                path = path[: -len("/init.scope")]
            if mount is None:
                continue
            for kind in kinds:
                d = os.path.join(mount, path.lstrip("/"), f"{kind}{name}")
                if d not in found and os.path.isdir(d):
                    found.append(d)
    return found


def _remove_monitor_cgroups(name: str) -> None:
    """Remove ``lxc.monitor.<name>`` cgroups its monitor could not remove.

    The daemonized start moves its caller (here lxc-start) into the
    monitor's cgroups; a monitor that ended before lxc-start did (init
    exited at once, or the start failed) found them busy and left them.
    Now lxc-start is gone: an empty one is such a leftover; a busy one
    holds a live monitor, which will remove it itself.  (Same-named
    containers of another lxcpath get ``lxc.monitor.<name>-N``: not touched.)
    """
    mounts = _cgroup_mounts()
    tried = set()
    # liblxc makes them beside the cgroups of init (without systemd's
    # init.scope), or ours where init's are not visible: try both.
    for cgroups in (_own_cgroups(), _own_cgroups("/proc/1/cgroup")):
        for ctrls, path in cgroups.items():
            mount = mounts.get(ctrls)
            if path.endswith("/init.scope"):
                path = path[: -len("/init.scope")]
            if mount is None:
                continue
            d = os.path.join(mount, path.lstrip("/"), f"lxc.monitor.{name}")
            if d in tried:
                continue
            tried.add(d)
            try:
                os.rmdir(d)
            except OSError:
                pass  # not there, or busy: a live monitor's


def _start_foreground(h: Handle, useinit: int, argv: Any, reply: int) -> object:
    """nodaemonize: this worker becomes the monitor; a forked watcher replies.

    liblxc refuses a non-daemonized start in a threaded process, so the
    watcher is a process: it answers once the container is RUNNING, or with
    the log once this worker (the monitor) has exited without getting there;
    then, once the container has stopped, with init's wait status (see
    _watch_start).
    """
    c = h.c
    c.want_daemonize(c, False)
    name, path = h.name, ffi.string(c.config_path).decode()
    monitor = os.getpid()
    # A file, not a pipe: the foreground start closes every fd it inherits.
    fd, status = tempfile.mkstemp(prefix="lxactors-foreground-")
    os.close(fd)
    # Fork twice: a failing liblxc start waits for its children, and must not
    # wait for the watcher (which waits on liblxc's command socket: deadlock).
    child = os.fork()
    if child == 0:
        if os.fork() == 0:
            _watch_start(h, name, path, monitor, reply, status)
        os._exit(0)
    os.waitpid(child, 0)
    os.close(reply)
    ok = c.start(c, useinit, argv)  # returns when the container stops
    # A foreground start leaves init's wait status in error_num (lxc-execute exits with it).
    with open(status, "wb") as f:
        f.write(struct.pack("!?i", bool(ok), int(c.error_num)))
    os._exit(0)


def _foreground_status(pidfd: int, status: str) -> tuple[bool, int | None]:
    """Once the monitor has exited: (start succeeded, init's wait status);
    (False, None) if it died before writing them."""
    select.select([pidfd], [], [])
    try:
        with open(status, "rb") as f:
            data = f.read()
        os.unlink(status)
    except OSError:
        return False, None
    if len(data) != 5:
        return False, None
    ok, error_num = struct.unpack("!?i", data)
    return bool(ok), int(error_num)


def _watch_start(h: Handle, name: str, path: str, monitor: int, reply: int,
                 status: str) -> None:
    """Reply init's pid once RUNNING (None: it ran and already ended), then its wait status."""
    code = 1
    pidfd = -1
    try:
        pidfd = os.pidfd_open(monitor)
        w = lib.lxc_container_new(_s(name), _s(path))
        deadline = time.monotonic() + 60
        while True:
            ended, _, _ = select.select([pidfd], [], [], 0.01)
            if ffi.string(w.state(w)) == b"RUNNING" and w.init_pid(w) > 0:
                write_frame(reply, ("ok", w.init_pid(w)))
                break
            if ended:
                ok, error_num = _foreground_status(pidfd, status)
                if ok:  # a command that ended before RUNNING was seen
                    write_frame(reply, ("ok", None))
                    write_frame(reply, ("ok", error_num))
                    code = 0
                else:
                    err = h.fail("start failed")
                    write_frame(reply, ("err", err.kind, str(err), err.log))
                return
            if time.monotonic() > deadline:
                write_frame(reply, ("err", "lxc", "start failed (not RUNNING within 60 s)", []))
                return
        code = 0
        write_frame(reply, ("ok", _foreground_status(pidfd, status)[1]))
    finally:
        if pidfd < 0:  # the monitor was already gone
            with contextlib.suppress(OSError):
                os.unlink(status)
        elif os.path.exists(status):  # a failed start: no one else removes it
            _foreground_status(pidfd, status)
        os._exit(code)


def op_create(args: dict[str, Any], fds: list[int], reply: int) -> object:
    h = Handle(args)
    c = h.c
    specs = ffi.NULL
    keep: list[Any] = []
    if args.get("specs"):
        specs = ffi.new("struct bdev_specs *")
        for field, value in args["specs"].items():
            if field == "fssize":
                specs.fssize = value
            elif field in ("fstype", "dir"):
                keep.append(ffi.new("char[]", _s(value)))
                setattr(specs, field, keep[-1])
            else:
                group, sub = field.split(".")
                keep.append(ffi.new("char[]", _s(value)))
                setattr(getattr(specs, group), sub, keep[-1])
    argv, _k = _argv(args.get("argv") or [])
    # The template's own output goes to a file, shown if it fails.
    out = tempfile.TemporaryFile()
    saved = os.dup(1), os.dup(2)
    os.dup2(out.fileno(), 1)
    os.dup2(out.fileno(), 2)
    try:
        ok = c.create(c, _s(args.get("template")), _s(args.get("bdevtype")), specs,
                      int(args.get("flags", 0)), argv)
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
    if not ok:
        err = h.fail("create failed")
        out.seek(0)
        text = out.read()[-4000:].decode("utf-8", "replace").splitlines()
        err.log.extend(f"template: {ln}" for ln in text if ln.strip())
        raise err
    cfg = h.config_file()
    if cfg:
        h.strip_log_line(cfg)
    return None


def op_clone(args: dict[str, Any], fds: list[int], reply: int) -> object:
    h = Handle(args)
    c = h.c
    hooks, _k = _argv(args.get("hookargs"))
    c2 = c.clone(c, _s(args["newname"]), _s(args.get("lxcpath")), int(args.get("flags", 0)),
                 _s(args.get("bdevtype")), _s(args.get("bdevdata")), int(args.get("newsize", 0)),
                 hooks)
    if c2 == ffi.NULL:
        raise h.fail("clone failed")
    try:
        p = c2.config_file_name(c2)
        cfg = ffi.string(p).decode("utf-8", "surrogateescape")
        lib.free(p)
        h.strip_log_line(cfg)
    finally:
        lib.lxc_container_put(c2)
    return None


def op_rename(args: dict[str, Any], fds: list[int], reply: int) -> object:
    h = Handle(args)
    if not h.c.rename(h.c, _s(args["newname"])):
        raise h.fail("rename failed")
    # liblxc leaves the handle's name and config path on the old container.
    path = ffi.string(h.c.config_path).decode("utf-8", "surrogateescape")
    h.strip_log_line(os.path.join(path, args["newname"], "config"))
    return None


def _simple(method: str, *names: str) -> Any:
    """An op that calls one bool-returning member with string arguments."""

    def op(args: dict[str, Any], fds: list[int], reply: int) -> object:
        h = Handle(args)
        fn = getattr(h.c, method)
        if not fn(h.c, *[_s(args.get(n)) for n in names]):
            raise h.fail(f"{method} failed")
        return None

    return op


def unlink_symlinked_rootfs(c: Any) -> None:
    """liblxc's destroy empties a dir rootfs (or overlay upper) by following a
    symlink put in its place or above it, then fails on the link: unlink it first."""
    rootfs = _config_item(c, b"lxc.rootfs.path").decode("utf-8", "surrogateescape")
    if not rootfs.startswith(("dir:", "overlay:", "overlayfs:", "/")):
        return
    store = p = rootfs.rsplit(":", 1)[-1]  # dir:PATH, [overlay:]LOWER:UPPER: what destroy removes
    home = os.path.join(ffi.string(c.config_path), ffi.string(c.name)).decode("utf-8", "surrogateescape")
    while p.startswith(home + "/"):
        if os.path.islink(p):
            os.unlink(p)
        p = os.path.dirname(p)
    if os.path.islink(store) and os.path.isdir(store):
        os.unlink(store)


def op_destroy(args: dict[str, Any], fds: list[int], reply: int,
               method: str = "destroy") -> object:
    h = Handle(args)
    unlink_symlinked_rootfs(h.c)
    if not getattr(h.c, method)(h.c):
        raise h.fail(f"{method} failed")
    return None


def op_mount(args: dict[str, Any], fds: list[int], reply: int) -> object:
    h = Handle(args)
    mnt = ffi.new("struct lxc_mount *")
    mnt.version = lib.LXC_MOUNT_API_V1
    data = ffi.NULL if args.get("data") is None else ffi.new("char[]", _s(args["data"]))
    ret = h.c.mount(h.c, _s(args.get("source")), _s(args["target"]), _s(args.get("fstype")),
                    int(args.get("flags", 0)), data, mnt)
    if ret < 0:
        raise h.fail(f"mount failed ({os.strerror(-ret) if ret < -1 else ret})")
    return None


def op_umount(args: dict[str, Any], fds: list[int], reply: int) -> object:
    h = Handle(args)
    mnt = ffi.new("struct lxc_mount *")
    mnt.version = lib.LXC_MOUNT_API_V1
    ret = h.c.umount(h.c, _s(args["target"]), int(args.get("flags", 0)), mnt)
    if ret < 0:
        raise h.fail(f"umount failed ({os.strerror(-ret) if ret < -1 else ret})")
    return None


def op_snapshot(args: dict[str, Any], fds: list[int], reply: int) -> object:
    h = Handle(args)
    n = h.c.snapshot(h.c, _s(args.get("commentfile")))
    if n < 0:
        raise h.fail("snapshot failed")
    path = ffi.string(h.c.config_path).decode("utf-8", "surrogateescape")
    h.strip_log_line(os.path.join(path, h.name, "snaps", f"snap{n}", "config"))
    return n


def op_checkpoint(args: dict[str, Any], fds: list[int], reply: int) -> object:
    h = Handle(args)
    d = ffi.new("char[]", _s(args["directory"]))
    if not h.c.checkpoint(h.c, d, bool(args.get("stop")), bool(args.get("verbose"))):
        raise h.fail("checkpoint failed")
    return None


def op_restore(args: dict[str, Any], fds: list[int], reply: int) -> object:
    h = Handle(args)
    d = ffi.new("char[]", _s(args["directory"]))
    if not h.c.restore(h.c, d, bool(args.get("verbose"))):
        raise h.fail("restore failed")
    return None


def op_migrate(args: dict[str, Any], fds: list[int], reply: int) -> object:
    h = Handle(args)
    opts = ffi.new("struct migrate_opts *")
    keep = []
    for field in ("directory", "predump_dir", "pageserver_address", "pageserver_port",
                  "action_script"):
        if args.get(field) is not None:
            keep.append(ffi.new("char[]", _s(args[field])))
            setattr(opts, field, keep[-1])
    for field in ("verbose", "stop", "preserves_inodes", "disable_skip_in_flight"):
        setattr(opts, field, bool(args.get(field)))
    opts.ghost_limit = int(args.get("ghost_limit", 0))
    opts.features_to_check = int(args.get("features_to_check", 0))
    ret = h.c.migrate(h.c, int(args["cmd"]), opts, ffi.sizeof("struct migrate_opts"))
    if ret != 0:
        raise h.fail(f"migrate failed ({ret})")
    return 0


def op_console(args: dict[str, Any], fds: list[int], reply: int) -> object:
    h = Handle(args)
    stdin, stdout, stderr = fds[:3]
    ret = h.c.console(h.c, int(args.get("ttynum", -1)), stdin, stdout, stderr,
                      int(args.get("escape", 1)))
    if ret != 0:
        raise h.fail("console failed")
    return None


def op_attach(args: dict[str, Any], fds: list[int], reply: int) -> object:
    """Run a command in the container; reply its pid, then its exit status.

    With ``capture`` the worker collects stdout and stderr through pipes
    (and feeds ``input``) until the command ends or ``timeout`` passes (then
    it is killed).  Otherwise the command uses the fds sent along.
    """
    h = Handle(args)
    c = h.c
    opts = ffi.new("lxc_attach_options_t *")
    opts.attach_flags = lib.LXC_ATTACH_DEFAULT | int(args.get("flags", 0))
    opts.namespaces = int(args.get("namespaces", -1))
    opts.personality = lib.LXC_ATTACH_DETECT_PERSONALITY
    keep: list[Any] = []
    cwd = args.get("cwd")
    if cwd is not None:
        keep.append(ffi.new("char[]", _s(cwd)))
        opts.initial_cwd = keep[-1]
    opts.uid = args["uid"] if args.get("uid") is not None else 0xFFFFFFFF
    opts.gid = args["gid"] if args.get("gid") is not None else 0xFFFFFFFF
    opts.env_policy = lib.LXC_ATTACH_CLEAR_ENV if args.get("clear_env") else lib.LXC_ATTACH_KEEP_ENV
    env = [f"{k}={v}".encode("utf-8", "surrogateescape") for k, v in (args.get("env") or {}).items()]
    if env:
        envp, k2 = _argv(env)
        keep += [envp, k2]  # the array itself must outlive the call too
        opts.extra_env_vars = envp
    groups = args.get("groups")
    if groups is not None:
        glist = ffi.new("gid_t[]", list(groups) or [0])
        keep.append(glist)
        opts.groups.size = len(groups)
        opts.groups.list = glist
        opts.attach_flags |= lib.LXC_ATTACH_SETGROUPS
    opts.log_fd = -9  # -EBADF: no separate attach log

    capture = bool(args.get("capture"))
    pipes: dict[str, tuple[int, int]] = {}
    if capture:
        for stream in ("stdin", "stdout", "stderr"):
            pipes[stream] = os.pipe()
        opts.stdin_fd = pipes["stdin"][0]
        opts.stdout_fd = pipes["stdout"][1]
        opts.stderr_fd = pipes["stderr"][1]
    else:
        devnull = os.open(os.devnull, os.O_RDWR)
        std = list(fds[:3]) + [devnull] * (3 - len(fds[:3]))
        opts.stdin_fd, opts.stdout_fd, opts.stderr_fd = std

    cmd = ffi.new("lxc_attach_command_t *")
    argv, k3 = _argv(args["argv"])
    keep.append(k3)
    cmd.program = argv[0]
    cmd.argv = argv
    pid_out = ffi.new("pid_t *")
    gate = os.pipe()  # close-on-exec: see _wait_exec
    ret = c.attach(c, ffi.addressof(lib, "lxc_attach_run_command"), cmd, opts, pid_out)
    os.close(gate[1])
    if ret < 0:
        os.close(gate[0])
        raise h.fail("attach failed")
    pid = int(pid_out[0])
    _wait_exec(gate[0])
    write_frame(reply, ("ok", pid))

    deadline = args.get("timeout")
    deadline = None if deadline is None or deadline < 0 else time.monotonic() + deadline
    out, err = bytearray(), bytearray()
    timed_out = False
    if capture:
        os.close(pipes["stdin"][0])
        os.close(pipes["stdout"][1])
        os.close(pipes["stderr"][1])
        timed_out = _pump(pid, pipes["stdin"][1], args.get("input") or b"",
                          {pipes["stdout"][0]: out, pipes["stderr"][0]: err}, deadline)
    status, killed = _wait(pid, deadline)
    code = os.waitstatus_to_exitcode(status)
    timed_out = timed_out or killed
    return {"pid": pid, "status": code, "stdout": bytes(out), "stderr": bytes(err),
            "timed_out": timed_out}


def _wait_exec(gate: int, timeout: float = 10.0) -> None:
    """Wait until the attached process has exec'd its command (or died).

    Until then it is a fork of this worker holding every fd the worker has
    (its reply pipe to the user's process, the helper's stderr) inside the
    container's namespaces; close-on-exec drops them, and the gate pipe's
    end of file says that has happened.  Its pid is reported only then.
    """
    try:
        select.select([gate], [], [], timeout)
    finally:
        os.close(gate)


def _pump(pid: int, stdin: int, data: bytes, outs: dict[int, bytearray],
          deadline: float | None) -> bool:
    """Feed stdin and collect outputs until both outputs close or the deadline."""
    view = memoryview(data)
    if not view:
        os.close(stdin)
        stdin = -1
    else:
        os.set_blocking(stdin, False)
    while outs or stdin >= 0:
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            os.kill(pid, signal.SIGKILL)
            return True
        rlist = list(outs)
        wlist = [stdin] if stdin >= 0 else []
        r, w, _ = select.select(rlist, wlist, [], remaining)
        for fd in r:
            chunk = os.read(fd, 65536)
            if chunk:
                outs[fd] += chunk
            else:
                os.close(fd)
                del outs[fd]
        if w:
            try:
                n = os.write(stdin, view[:65536])
                view = view[n:]
            except BrokenPipeError:
                view = view[:0]
            if not view:
                os.close(stdin)
                stdin = -1
    return False


def _wait(pid: int, deadline: float | None) -> tuple[int, bool]:
    """Wait for *pid*; past the deadline kill it.  Returns (status, killed)."""
    if deadline is not None:
        pidfd = os.pidfd_open(pid)
        try:
            r, _, _ = select.select([pidfd], [], [], max(0.0, deadline - time.monotonic()))
        finally:
            os.close(pidfd)
        if not r:
            os.kill(pid, signal.SIGKILL)
            return os.waitpid(pid, 0)[1], True
    return os.waitpid(pid, 0)[1], False


OPS = {
    "start": op_start,
    "create": op_create,
    "clone": op_clone,
    "rename": op_rename,
    "destroy": op_destroy,
    "destroy_with_snapshots": lambda a, f, r: op_destroy(a, f, r, "destroy_with_snapshots"),
    "snapshot": op_snapshot,
    "snapshot_restore": _simple("snapshot_restore", "snapname", "newname"),
    "snapshot_destroy": _simple("snapshot_destroy", "snapname"),
    "snapshot_destroy_all": _simple("snapshot_destroy_all"),
    "add_device_node": _simple("add_device_node", "src_path", "dest_path"),
    "remove_device_node": _simple("remove_device_node", "src_path", "dest_path"),
    "attach_interface": _simple("attach_interface", "dev", "dst_dev"),
    "detach_interface": _simple("detach_interface", "dev", "dst_dev"),
    "mount": op_mount,
    "umount": op_umount,
    "checkpoint": op_checkpoint,
    "restore": op_restore,
    "migrate": op_migrate,
    "console": op_console,
    "attach": op_attach,
    "remove_stale_cgroups": op_remove_stale_cgroups,
}


# --------------------------------------------------------------------------- main loop


def run_worker(op: str, args: dict[str, Any], fds: list[int], reply: int) -> None:
    """In the forked worker: run one op, write its reply, exit."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGPIPE, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)
    code = 0
    try:
        fn = OPS.get(op)
        if fn is None:
            raise OpError(f"unknown helper operation {op!r}", kind="helper")
        result = fn(args, fds, reply)
        write_frame(reply, ("ok", result))
    except OpError as exc:
        write_frame(reply, ("err", exc.kind, str(exc), exc.log))
        code = 1
    except BaseException as exc:  # report, never hang the caller
        write_frame(reply, ("err", "helper", f"{type(exc).__name__}: {exc}",
                            traceback.format_exc().splitlines()[-6:]))
        code = 2
    finally:
        sys.stdout.flush()
        os._exit(code)


#: Containers whose fate the helper decides if the user's process dies:
#: (lxcpath, name) -> type.
REGISTRY: dict[tuple[str, str], str] = {}


def _registry_op(op: str, args: dict[str, Any]) -> object:
    key = (args["path"], args["name"])
    if op == "register":
        REGISTRY[key] = args["type"]
    else:
        REGISTRY.pop(key, None)
    return None


def apply_policies() -> None:
    """The user's process is gone: temporary -> stopped and deleted,
    transient -> stopped, permanent -> left running."""
    for (path, name), type_ in list(REGISTRY.items()):
        if type_ == "permanent":
            continue
        c = lib.lxc_container_new(_s(name), _s(path))
        if c == ffi.NULL:
            continue
        try:
            if c.is_running(c):
                c.stop(c)
                c.wait(c, b"STOPPED", 10)
            if type_ == "temporary" and c.is_defined(c):
                unlink_symlinked_rootfs(c)
                c.destroy(c)
        finally:
            lib.lxc_container_put(c)
    REGISTRY.clear()


def remove_log_dir(log_dir: str | None, owner_pidfd: int) -> None:
    """Remove the user's log directory once the user's process is gone.

    A process that exits normally removes it itself (atexit); a killed one
    cannot.  The socket closes a moment before the process is fully gone,
    and the process may be waiting for this helper to exit: a forked child
    waits on its pidfd instead, and leaves the directory alone if the
    process lives on (it closed this helper to start another).
    """
    if not log_dir or owner_pidfd < 0 or not os.path.basename(log_dir).startswith("lxactors-"):
        return
    if os.fork() != 0:
        return
    try:
        r, _, _ = select.select([owner_pidfd], [], [], 10.0)
        if r:
            import shutil

            shutil.rmtree(log_dir, ignore_errors=True)
    finally:
        os._exit(0)


def serve(sock: socket.socket, log_dir: str | None = None, owner_pidfd: int = -1) -> None:
    # Signals sent to the user's process group (^C, a terminal hangup,
    # `timeout`) are not for us: the socket's end of file tells us when the
    # user's process is gone, and the policies must still be applied then.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    while True:
        r, _, _ = select.select([sock], [], [], 1.0)
        _reap()
        if not r:
            continue
        try:
            # CLOEXEC: else every attached command inherits the reply pipe
            # (and could write forged frames to the user's process).
            msg, ancdata, _flags, _addr = sock.recvmsg(MAX_REQUEST, socket.CMSG_SPACE(MAX_FDS * 4),
                                                       socket.MSG_CMSG_CLOEXEC)
        except (ConnectionResetError, OSError):
            msg, ancdata = b"", []
        fds: list[int] = []
        for level, kind, data in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                a = array.array("i")
                a.frombytes(data[: len(data) - (len(data) % a.itemsize)])
                fds.extend(a)
        if not msg:
            for fd in fds:
                os.close(fd)
            apply_policies()  # the user's process is gone
            remove_log_dir(log_dir, owner_pidfd)
            return
        if not fds:
            continue  # malformed: no reply pipe
        reply, extra = fds[0], fds[1:]
        try:
            op, args = pickle.loads(msg)
        except Exception:
            for fd in fds:
                os.close(fd)
            continue
        if op in ("register", "unregister"):
            try:
                write_frame(reply, ("ok", _registry_op(op, args)))
            except OSError:
                pass
            for fd in fds:
                os.close(fd)
            continue
        pid = os.fork()
        if pid == 0:
            sock.close()
            run_worker(op, args, extra, reply)
        for fd in fds:
            os.close(fd)


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def main(argv: list[str]) -> int:
    sys.path.append(HERE)  # for the stdlib-only sibling _errlog (-I left it out)
    _load_extension()
    _errlog()  # imported once here, not in every forked worker
    _userns()
    global LXC_START
    LXC_START = _find_lxc_start()
    _cgroup_mounts()
    fd = int(argv[1])
    sock = socket.socket(fileno=fd)
    os.set_inheritable(fd, False)
    # The user's process and its log directory, if given (by pid: a wrapper
    # command such as strace may stand between it and us).
    log_dir = argv[2] if len(argv) > 3 else None
    try:
        owner_pidfd = os.pidfd_open(int(argv[3])) if log_dir else -1
    except (OSError, ValueError):
        owner_pidfd = -1
    serve(sock, log_dir, owner_pidfd)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
