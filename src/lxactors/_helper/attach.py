"""The attach op: run a command in a running container.

liblxc's attach forks the caller and changes its signal dispositions, so it
runs in the request's worker, which replies twice: the command's pid once it
runs, then its exit status (and, with ``capture``, its output).
"""

from __future__ import annotations

import os
import select
import signal
import time
from typing import Any

from lxactors._ffi import ffi, lib
from lxactors._helper import signals
from lxactors._helper.handle import Handle, c_argv, c_str
from lxactors._helper.protocol import Attach
from lxactors._helper.wire import (
    ok,
    write_frame,
)

__all__ = ["op_attach"]


def op_attach(req: Attach, fds: list[int], reply: int) -> object:
    """Run a command in the container; reply its pid, then its exit status.

    With ``capture`` the worker collects stdout and stderr through pipes
    (and feeds ``input``) until the command ends or ``timeout`` passes (then
    it is killed).  Otherwise the command uses the fds sent along.
    """
    h = Handle(req)
    c = h.c
    opts = ffi.new("lxc_attach_options_t *")
    opts.attach_flags = lib.LXC_ATTACH_DEFAULT | req.flags
    opts.namespaces = req.namespaces
    opts.personality = lib.LXC_ATTACH_DETECT_PERSONALITY
    keep: list[Any] = []
    if req.cwd is not None:
        keep.append(ffi.new("char[]", c_str(req.cwd)))
        opts.initial_cwd = keep[-1]
    opts.uid = req.uid if req.uid is not None else 0xFFFFFFFF
    opts.gid = req.gid if req.gid is not None else 0xFFFFFFFF
    opts.env_policy = lib.LXC_ATTACH_CLEAR_ENV if req.clear_env else lib.LXC_ATTACH_KEEP_ENV
    env = [f"{k}={v}".encode("utf-8", "surrogateescape") for k, v in req.env.items()]
    if env:
        envp, k2 = c_argv(env)
        keep += [envp, k2]  # the array itself must outlive the call too
        opts.extra_env_vars = envp
    groups = req.groups
    if groups is not None:
        glist = ffi.new("gid_t[]", list(groups) or [0])
        keep.append(glist)
        opts.groups.size = len(groups)
        opts.groups.list = glist
        opts.attach_flags |= lib.LXC_ATTACH_SETGROUPS
    opts.log_fd = -9  # -EBADF: no separate attach log

    capture = req.capture
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
    argv, k3 = c_argv(req.argv)
    keep.append(k3)
    cmd.program = argv[0]
    cmd.argv = argv
    pid_out = ffi.new("pid_t *")
    gate = os.pipe()  # close-on-exec: see _wait_exec
    with signals.defaults():  # the command's, in a session of this worker's own
        ret = c.attach(c, ffi.addressof(lib, "lxc_attach_run_command"), cmd, opts, pid_out)
    os.close(gate[1])
    if ret < 0:
        os.close(gate[0])
        raise h.fail("attach failed")
    pid = int(pid_out[0])
    _wait_exec(gate[0])
    write_frame(reply, ok(pid))

    timeout = req.timeout
    deadline = None if timeout is None or timeout < 0 else time.monotonic() + timeout
    out, err = bytearray(), bytearray()
    timed_out = False
    if capture:
        os.close(pipes["stdin"][0])
        os.close(pipes["stdout"][1])
        os.close(pipes["stderr"][1])
        timed_out = _pump(pid, pipes["stdin"][1], req.input,
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
    """Feed stdin and collect outputs until both outputs close or the deadline.

    A command may end, or close its stdin, before reading all of *data*:
    the write then fails with EPIPE, which must not kill this worker (its
    SIGPIPE is the default) before the command's status is read."""
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
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

