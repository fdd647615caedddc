"""The helper's end of the launcher (``csrc/launcher.c``): clone, start,
destroy and attach without a forked Python worker.

A Python worker costs a fork of the ~16 MB helper, its copy-on-write
faults and teardown, per request: most of a spawn's time.  The launcher is
a small C program the helper execs once (a fork of the helper that stayed
in C still handed its address space to every child and monitor: ~6 ms a
spawn, ~0.26 MB a monitor).  It forks a small child per request (the
caller of liblxc's start, so what liblxc moves into the monitor's cgroups,
and what the monitor is a copy of).  Requests it cannot
do exactly as the Python ops would (a foreground start, clone hooks, an
attach that captures its output or has a timeout) go to a worker as before.
``clone_start`` is a spawn's clone and start in one child.

Each dispatched request is a :class:`Pending` in the helper's loop: the
launcher's child writes a line to its result pipe (an attach two: its pid,
then its end), which the helper turns into the reply frames (with liblxc's
log lines on failure).
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import sys
from dataclasses import dataclass, field

from lxactors._helper.cgroups import remove_monitor_cgroups
from lxactors._helper.handle import (
    Handle,
    config_item,
    log_size,
    op_error,
    unlink_symlinked_rootfs,
)
from lxactors._helper.layer import release_layer
from lxactors._helper.protocol import (
    Attach,
    Clone,
    CloneStart,
    Destroy,
    DestroyWithSnapshots,
    Request,
    Start,
)
from lxactors._helper.start import clone_start_path, path_without_idmap_tools
from lxactors._helper.wire import (
    error,
    ok,
)

__all__ = ["PROGRAM", "Launcher", "Pending"]

#: The launcher program, built with the extension (``_ffi_build.build_launcher``).
PROGRAM = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lxa-launcher")


def _opt(value: str | bytes | None) -> bytes:
    """An optional field: b"" for None, b"+value" otherwise."""
    if value is None:
        return b""
    return b"+" + (value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value)


def _s(value: str) -> bytes:
    return value.encode("utf-8", "surrogateescape")


def _maps_ids(config: str | None) -> bool:
    """Whether a config snapshot may map ids (a text search: no liblxc parse
    in the helper's loop for the common start without a user namespace)."""
    if config is None:
        return True
    try:
        with open(config, "rb") as f:
            return b"lxc.idmap" in f.read()
    except OSError:
        return True  # let liblxc report the snapshot


#: Fields the launcher parses at most (csrc/launcher.c's LXA_MAX_FIELDS).
MAX_FIELDS = 1100
#: Seconds the launcher program gets to say it serves.
READY_TIMEOUT = 10.0
#: A reply frame: ok(value) or error(kind, message, log).
Frame = tuple[str, object] | tuple[str, str, str, list[str]]

#: The ops whose child is the caller of a daemonized start (answered with init's pid).
_STARTS = ("start", "clone_start")


@dataclass
class Pending:
    """A request the launcher runs: its reply pipe and how to read a failure."""

    op: str
    name: str
    reply: int
    result: int
    log_path: str | None
    log_offset: int
    buf: bytearray = field(default_factory=bytearray)
    pid: int = 0  # an attach's command, once it runs

    def feed(self, data: bytes) -> tuple[list[Frame], bool]:
        """The reply frames whose result lines are in (an attach has two: its
        pid, then its end), and whether the request is done (end of file
        without a last line is an error)."""
        self.buf += data
        frames: list[Frame] = []
        while b"\n" in self.buf:
            raw, _, rest = bytes(self.buf).partition(b"\n")
            self.buf = bytearray(rest)
            frame, done = self._line(raw.decode("ascii", "replace").split())
            frames.append(frame)
            if done:
                return frames, True
        if not data:
            what = "the end of the attached command" if self.pid else "answering"
            frames.append(error("helper", f"the helper's launcher ended without {what} "
                                f"({self.op} of {self.name})", []))
            return frames, True
        return frames, False

    def _line(self, line: list[str]) -> tuple[Frame, bool]:
        if line[:1] == ["ok"] and len(line) == 2 and line[1].isdigit():
            value = int(line[1])
            if self.op in _STARTS:
                # 0: init already ended (a short-lived command); the caller reads why.
                return ok(value if value > 0 else None), True
            return ok(None), True
        if self.op == "attach" and line[:1] == ["pid"] and len(line) == 2 and line[1].isdigit():
            self.pid = int(line[1])
            return ok(self.pid), False
        if self.op == "attach" and line[:1] == ["exit"] and len(line) == 2 and self.pid \
                and line[1].isdigit():
            with contextlib.suppress(ValueError):
                status = os.waitstatus_to_exitcode(int(line[1]))
                return ok({"pid": self.pid, "status": status, "stdout": b"", "stderr": b"",
                           "timed_out": False}), True
        if line == ["err", "busy"]:
            return error("helper", f"{self.op} of {self.name}: the helper's launcher already "
                         "runs as many requests as it may", []), True
        # A clone_start says which half failed ("err clone"; else its start).
        what = {"clone_start": "clone" if line[1:] == ["clone"] else "start"}.get(self.op, self.op)
        err = op_error(f"{what} failed", self.log_path, self.log_offset)
        return error(err.kind, str(err), err.log), True


class Launcher:
    """The launcher process and the socket to it."""

    def __init__(self, sock: socket.socket, pid: int) -> None:
        self.sock = sock
        self.pid = pid

    @classmethod
    def start(cls) -> Launcher | None:
        """Fork and exec the launcher program with its end of a socket pair and
        no other fd of the helper's (the client's socket, the owner's pidfd:
        a launcher holding them would keep the user's session alive).

        None if it cannot run (not built, or the exec failed): requests go
        to workers.
        """
        if not os.access(PROGRAM, os.X_OK):
            print(f"lxactors helper: {PROGRAM} is missing (reinstall lxactors): clone, start "
                  "and attach go through Python workers", file=sys.stderr)
            return None
        try:
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        except OSError:
            return None
        fd = theirs.fileno()
        pid = os.fork()
        if pid == 0:
            try:
                os.closerange(3, fd)
                os.closerange(fd + 1, os.sysconf("SC_OPEN_MAX"))
                os.set_inheritable(fd, True)
                os.execv(PROGRAM, [PROGRAM, str(fd)])
            finally:
                os._exit(5)
        theirs.close()
        # It says "ready" once it serves: a program that cannot run (its
        # liblxc gone after an upgrade) ends instead, and workers serve.
        ready = b""
        with contextlib.suppress(OSError):
            if select.select([ours], [], [], READY_TIMEOUT)[0]:
                ready = ours.recv(16)
        if ready != b"ready":
            ours.close()
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)  # reaped by the helper's loop
            print(f"lxactors helper: {PROGRAM} did not start: clone, start and attach go "
                  "through Python workers", file=sys.stderr)
            return None
        return cls(ours, pid)

    def close(self) -> None:
        """The launcher exits when its socket closes (children finish their call)."""
        self.sock.close()

    def dispatch(self, req: Request, reply: int, extra: list[int]) -> Pending | None:
        """Hand *req* (and the fds sent with it) to the launcher; None if the
        launcher does not do it this way."""
        found = self._fields(req, extra)
        if found is None:
            return None
        fields, log_path, offset = found
        if len(fields) > MAX_FIELDS or any(b"\0" in f for f in fields):
            return None  # the launcher's parser would cut them: a worker's call
        r, w = os.pipe2(os.O_CLOEXEC)
        try:
            socket.send_fds(self.sock, [b"\0".join(fields) + b"\0"], [w, *extra])
        except OSError:
            os.close(r)
            return None
        finally:
            os.close(w)
        assert isinstance(req, (Start, Clone, CloneStart, Destroy, DestroyWithSnapshots, Attach))
        return Pending(req.op, req.name, reply, r, log_path, offset)

    @staticmethod
    def _fields(req: Request, extra: list[int]) -> tuple[list[bytes], str | None, int] | None:
        if isinstance(req, Attach):
            if req.capture or req.timeout is not None or len(extra) != 3 or not req.argv:
                return None  # capture pumps the pipes, and a timeout kills, in a worker
            env = [_s(f"{k}={v}") for k, v in req.env.items()]
            groups = [] if req.groups is None else [b"%d" % g for g in req.groups]
            return ([b"attach", _s(req.name), _s(req.path), _opt(req.config), _opt(req.log),
                     b"%d" % req.flags, b"%d" % req.namespaces, _opt(req.cwd),
                     b"%d" % (-1 if req.uid is None else req.uid),
                     b"%d" % (-1 if req.gid is None else req.gid),
                     b"1" if req.clear_env else b"0", b"%d" % len(env), *env,
                     b"%d" % (-1 if req.groups is None else len(groups)), *groups, *req.argv],
                    req.log, log_size(req.log))
        if extra:
            return None
        if isinstance(req, Start):
            if not req.daemonize:
                return None  # the worker becomes the monitor: see start._start_foreground
            path = None
            if _maps_ids(req.config):
                h = Handle(req)  # the config, to decide on PATH; no fork here
                try:
                    path = path_without_idmap_tools(h.c)
                finally:
                    h.close()
            head = [b"start", _s(req.name), _s(req.path), _opt(req.config), _opt(req.log),
                    b"1" if req.useinit else b"0", b"1" if req.close_all_fds else b"0",
                    _opt(path)]
            argv = [b"0"] if req.argv is None else [b"1", *req.argv]
            return head + argv, req.log, log_size(req.log)
        if isinstance(req, CloneStart):
            base_config = os.path.join(req.path, req.base, "config")
            maps = _maps_ids(base_config) or any(str(k).startswith("lxc.idmap") for k, _ in req.items)
            path = clone_start_path(req) if maps else None
            items = [f for key, value in req.items for f in (_s(str(key)), _opt(value))]
            head = [b"clone_start", _s(req.name), _s(req.path), _opt(req.log), _s(req.base),
                    b"1" if req.useinit else b"0", b"1" if req.close_all_fds else b"0",
                    _opt(path), b"%d" % len(req.items), *items]
            argv = [b"0"] if req.argv is None else [b"1", *req.argv]
            return head + argv, req.log, log_size(req.log)
        if isinstance(req, Clone):
            if req.hookargs is not None:
                return None
            return ([b"clone", _s(req.name), _s(req.path), _opt(req.config), _opt(req.log),
                     _s(req.newname), _opt(req.lxcpath), b"%d" % req.flags, _opt(req.bdevtype),
                     _opt(req.bdevdata), b"%d" % req.newsize], req.log, log_size(req.log))
        if isinstance(req, (Destroy, DestroyWithSnapshots)):
            h = Handle(req)
            try:
                unlink_symlinked_rootfs(h.c)
                release_layer(h.c)  # destroy does not cross the bounded layer's mount
                # A user-namespaced rootfs is removed inside the namespace:
                # without newuidmap/newgidmap on PATH liblxc writes the maps
                # itself instead of running both (most of such a destroy).
                path = (path_without_idmap_tools(h.c)
                        if not config_item(h.c, b"lxc.hook.destroy") else None)
            finally:
                h.close()
            return ([_s(req.op), _s(req.name), _s(req.path), _opt(req.config), _opt(req.log),
                     _opt(path)], req.log, h.log_offset)
        return None

    def reaped(self) -> bool:
        """Read one message from the launcher: a child ended (False: the launcher is gone)."""
        try:
            msg = self.sock.recv(8192)
        except OSError:
            msg = b""
        if not msg:
            return False
        parts = msg.decode("utf-8", "surrogateescape").split(" ", 2)
        if len(parts) == 3 and parts[0] == "reaped" and parts[1] in _STARTS:
            # The child was the start's caller, in the monitor's cgroups:
            # a monitor that ended first could not remove them.
            with contextlib.suppress(OSError):
                remove_monitor_cgroups(parts[2])
        return True
