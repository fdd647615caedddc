"""The start op: through lxc-start when it can, else liblxc's own start.

The daemonized start runs in the worker forked for the request, so the
monitor it forks, and the cgroups liblxc moves its caller into, are the
worker's, never the user's process's (see ``cgroups``).  A foreground start
(``daemonize=False``) makes the worker itself the monitor.
"""

from __future__ import annotations

import contextlib
import os
import select
import struct
import tempfile
import time
from typing import Any

from lxactors import _errlog, _userns
from lxactors._ffi import ffi, lib
from lxactors._helper import host, signals
from lxactors._helper.cgroups import leave_monitor_cgroups, own_cgroups, remove_monitor_cgroups
from lxactors._helper.handle import (
    Handle,
    OpError,
    c_argv,
    c_str,
    config_item,
    log_size,
    op_error,
)
from lxactors._helper.protocol import (
    CloneStart,
    Start,
)
from lxactors._helper.wire import (
    error,
    ok,
    write_frame,
)

__all__ = ["clone_start_path", "op_clone_start", "op_start", "path_without_idmap_tools"]


#: Config items whose programs liblxc runs (at start or stop) with the monitor's PATH.
_START_PROGRAMS = tuple(f"lxc.hook.{h}".encode() for h in (
    "pre-start", "pre-mount", "mount", "autodev", "start", "start-host", "stop", "post-stop"))


def _networks(c: Any) -> list[int]:
    """The indices of the container's networks (they need not start at 0)."""
    want = len(config_item(c, b"lxc.net").split())  # one type per network
    found: list[int] = []
    i = 0
    while len(found) < want and i < 1024:
        if config_item(c, b"lxc.net.%d.type" % i):
            found.append(i)
        i += 1
    return found


def _needs_path(c: Any) -> bool:
    """Whether liblxc may run a program at start or stop (hooks, scripts, tools)."""
    if any(config_item(c, k) for k in _START_PROGRAMS):
        return True
    for i in _networks(c):
        if any(config_item(c, b"lxc.net.%d.script.%s" % (i, end)) for end in (b"up", b"down")):
            return True
        link = config_item(c, b"lxc.net.%d.link" % i).decode("utf-8", "replace")
        # A veth on anything but a Linux bridge may be an Open vSwitch one
        # (ovs-vsctl, in /usr/bin).
        if link and not os.path.isdir(os.path.join("/sys/class/net", link, "bridge")):
            return True
    rootfs = config_item(c, b"lxc.rootfs.path")
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
    path = path_without_idmap_tools(c)
    if path is not None:
        os.environ["PATH"] = path


def path_without_idmap_tools(c: Any) -> str | None:
    """The PATH a start of *c* should run with (see _write_id_maps_directly);
    None: keep this process's."""
    lines = config_item(c, b"lxc.idmap").decode("utf-8", "replace").splitlines()
    if not lines or not all(_userns.delegated_line(ln) for ln in lines) or _needs_path(c):
        return None
    dirs = os.environ.get("PATH", os.defpath).split(os.pathsep)
    return os.pathsep.join(
        d for d in dirs if not any(os.path.exists(os.path.join(d or ".", tool))
                                   for tool in ("newuidmap", "newgidmap")))


def op_start(req: Start, fds: list[int], reply: int) -> object:
    h = Handle(req)
    c = h.c
    _write_id_maps_directly(c)
    close_all_fds = req.close_all_fds
    c.want_close_all_fds(c, close_all_fds)
    argv, _keep = c_argv(req.argv)
    useinit = 1 if req.useinit else 0
    if not req.daemonize:
        return _start_foreground(h, useinit, argv, reply)
    if _can_use_lxc_start(h, req, close_all_fds, useinit):
        if c.is_running(c):
            # lxc-start would call that a success; liblxc's start fails.
            raise h.fail("start failed: the container is already running")
        started = _start_with_lxc_start(h, req)
    else:
        started = None
    if started is None:
        c.want_daemonize(c, True)
        before = own_cgroups()
        signals.to_defaults()
        started = c.start(c, useinit, argv)
        leave_monitor_cgroups(before)
    if not started:
        raise h.fail("start failed")
    pid = c.init_pid(c)
    # <= 0: init already ended (a short-lived command); the caller reads why.
    return pid if pid > 0 else None


def _set_items(c: Any, items: list[list[str | None]]) -> bool:
    """Set (value None: clear) the items of a clone_start on *c*, in order."""
    for key, value in items:
        k = c_str(key)
        if not (c.set_config_item(c, k, c_str(value)) if value is not None
                else c.clear_config_item(c, k)):
            return False
    return True


def clone_start_path(req: CloneStart) -> str | None:
    """The PATH a clone_start should run with: the base's config and the
    items, looked at as the start will see them (see path_without_idmap_tools)."""
    c = lib.lxc_container_new(c_str(req.base), c_str(req.path))
    if c == ffi.NULL:
        return None
    try:
        return path_without_idmap_tools(c) if _set_items(c, req.items) else None
    finally:
        lib.lxc_container_put(c)


def op_clone_start(req: CloneStart, fds: list[int], reply: int) -> object:
    """clone_start in a worker (the launcher does it when it runs: csrc/launcher.c)."""
    base = lib.lxc_container_new(c_str(req.base), c_str(req.path))
    if base == ffi.NULL:
        raise OpError("cannot allocate a liblxc handle")
    offset = log_size(req.log)
    if req.log:
        base.set_config_item(base, b"lxc.log.file", c_str(req.log))
    c = base.clone(base, c_str(req.name), c_str(req.path), lib.LXC_CLONE_SNAPSHOT, b"overlay",
                   ffi.NULL, 0, ffi.NULL)
    lib.lxc_container_put(base)
    if c == ffi.NULL:
        raise op_error("clone failed", req.log, offset)  # the message names the half that failed
    try:
        cfg = os.path.join(req.path, req.name, "config")
        _errlog.strip_from_config(cfg, req.log)  # the clone wrote the base's log line
        started = (not req.log or bool(c.set_config_item(c, b"lxc.log.file", c_str(req.log)))) \
            and _set_items(c, req.items)
        if started:
            path = path_without_idmap_tools(c)
            if path is not None:
                os.environ["PATH"] = path
            c.want_close_all_fds(c, req.close_all_fds)
            c.want_daemonize(c, True)
            argv, _keep = c_argv(req.argv)
            before = own_cgroups()
            signals.to_defaults()
            started = bool(c.start(c, 1 if req.useinit else 0, argv))
            leave_monitor_cgroups(before)
        if not started:
            err = op_error("start failed", req.log, offset)
            if c.is_running(c):
                c.stop(c)
            c.destroy(c)
            raise err
        pid = c.init_pid(c)
        return pid if pid > 0 else None
    finally:
        lib.lxc_container_put(c)


def _can_use_lxc_start(h: Handle, req: Start, close_all_fds: bool, useinit: int) -> bool:
    """Whether lxc-start can do exactly this start (see _start_with_lxc_start)."""
    path = req.path
    return bool(
        host.HOST.lxc_start and close_all_fds and not useinit and req.config and h.log_path
        # lxc-start drops a trailing slash, and the command socket's name
        # is made from the path as given: the handle would not find it.
        and path == path.rstrip("/")
        # -o would override a log file the user set on the handle.
        and config_item(h.c, b"lxc.log.file").decode("utf-8", "surrogateescape") == h.log_path)


def _start_with_lxc_start(h: Handle, req: Start) -> bool | None:
    """Start through lxc-start: the same liblxc call, from a small C process.

    The daemonized start forks its caller into the container's monitor, and
    the monitor forks again for the container (in a user namespace, once
    more): forks of this ~16 MB Python worker cost several ms each, forks of
    lxc-start a fraction of that, and each monitor carries 1.3 MB less.  Its
    config is the client's snapshot, its log ours.  None: lxc-start could
    not be run (the caller starts in-process).
    """
    lxc_start = host.HOST.lxc_start
    assert lxc_start is not None and h.log_path is not None and req.config is not None
    level = config_item(h.c, b"lxc.log.level").decode()
    cmd = [lxc_start, "-q", "-n", h.name, "-P", req.path, "-f", req.config, "-C",
           "-o", h.log_path, *(["-l", level] if level else [])]
    if req.argv:
        cmd += ["--", *(a.decode("utf-8", "surrogateescape") for a in req.argv)]
    devnull = [(os.POSIX_SPAWN_OPEN, fd, os.devnull, os.O_RDWR, 0) for fd in (0, 1, 2)]
    try:
        pid = os.posix_spawn(lxc_start, cmd, dict(os.environ), file_actions=devnull,
                             setsigdef=signals.ignored(), setsigmask=(),
                             setsid=True)  # as signals.to_defaults
    except OSError:
        return None
    _, status = os.waitpid(pid, 0)
    remove_monitor_cgroups(h.name)
    return os.waitstatus_to_exitcode(status) == 0


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
    started = c.start(c, useinit, argv)  # returns when the container stops
    # A foreground start leaves init's wait status in error_num (lxc-execute exits with it).
    with open(status, "wb") as f:
        f.write(struct.pack("!?i", bool(started), int(c.error_num)))
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
    started, error_num = struct.unpack("!?i", data)
    return bool(started), int(error_num)


def _watch_start(h: Handle, name: str, path: str, monitor: int, reply: int,
                 status: str) -> None:
    """Reply init's pid once RUNNING (None: it ran and already ended), then its wait status."""
    code = 1
    pidfd = -1
    try:
        pidfd = os.pidfd_open(monitor)
        w = lib.lxc_container_new(c_str(name), c_str(path))
        deadline = time.monotonic() + 60
        while True:
            ended, _, _ = select.select([pidfd], [], [], 0.01)
            if ffi.string(w.state(w)) == b"RUNNING" and w.init_pid(w) > 0:
                write_frame(reply, ok(w.init_pid(w)))
                break
            if ended:
                started, error_num = _foreground_status(pidfd, status)
                if started:  # a command that ended before RUNNING was seen
                    write_frame(reply, ok(None))
                    write_frame(reply, ok(error_num))
                    code = 0
                else:
                    err = h.fail("start failed")
                    write_frame(reply, error(err.kind, str(err), err.log))
                return
            if time.monotonic() > deadline:
                write_frame(reply, error("lxc", "start failed (not RUNNING within 60 s)", []))
                return
        code = 0
        write_frame(reply, ok(_foreground_status(pidfd, status)[1]))
    finally:
        if pidfd < 0:  # the monitor was already gone
            with contextlib.suppress(OSError):
                os.unlink(status)
        elif os.path.exists(status):  # a failed start: no one else removes it
            _foreground_status(pidfd, status)
        os._exit(code)
