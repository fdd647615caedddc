"""The helper's request loop, its registry, and the owner-death policies.

Each request is decoded here, in the loop; a bad one (unknown op, unknown,
missing or mistyped field, a refused pickle) gets an error reply and the
loop serves on.  ``register``/``unregister`` are answered in the loop;
clone, start, destroy and attach go to the launcher (``launcher``: a C
program that forks a small child per request); every other op runs in a worker forked
for it, which writes its reply and exits (taking any cgroup membership
liblxc gave it along).

End of file on the socket means the user's process is gone, however it
died: the loop applies the registered types' owner-exit actions
(:func:`lxactors._policy.on_owner_exit`) and returns.
"""

from __future__ import annotations

import os
import select
import selectors
import signal
import socket
import sys
import time
import traceback

from lxactors._ffi import ffi, lib
from lxactors._helper.handle import OpError, c_str, unlink_symlinked_rootfs
from lxactors._helper.launcher import Launcher, Pending
from lxactors._helper.layer import release_layer
from lxactors._helper.ops import OPS
from lxactors._helper.protocol import (
    Register,
    Request,
    Unregister,
    decode_request,
)
from lxactors._helper.wire import (
    MAX_REQUEST,
    WireError,
    error,
    ok,
    recv_fds,
    write_frame,
)
from lxactors._policy import Type, check_type, on_owner_exit

__all__ = ["REGISTRY", "apply_policies", "serve"]

#: Containers whose fate the helper decides if the user's process dies:
#: (lxcpath, name) -> type.
REGISTRY: dict[tuple[str, str], Type] = {}


def run_worker(req: Request, fds: list[int], reply: int) -> None:
    """In the forked worker: run one op, write its reply, exit."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGPIPE, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)
    code = 0
    try:
        fn = OPS.get(type(req))
        if fn is None:
            raise OpError(f"helper operation {req.op!r} has no worker", kind="helper")
        result = fn(req, fds, reply)
        write_frame(reply, ok(result))
    except OpError as exc:
        write_frame(reply, error(exc.kind, str(exc), exc.log))
        code = 1
    except BaseException as exc:  # report, never hang the caller
        write_frame(reply, error("helper", f"{type(exc).__name__}: {exc}",
                                 traceback.format_exc().splitlines()[-6:]))
        code = 2
    finally:
        sys.stdout.flush()
        os._exit(code)


def _registry_op(req: Register | Unregister) -> None:
    key = (req.path, req.name)
    if isinstance(req, Register):
        REGISTRY[key] = check_type(req.type)
    else:
        REGISTRY.pop(key, None)


def apply_policies() -> None:
    """The user's process is gone: each registered container gets its type's
    owner-exit action (temporary: stopped and deleted, transient: stopped,
    permanent: left running)."""
    for (path, name), type_ in list(REGISTRY.items()):
        action = on_owner_exit(type_)
        if not (action.stop or action.destroy):
            continue
        c = lib.lxc_container_new(c_str(name), c_str(path))
        if c == ffi.NULL:
            continue
        try:
            if action.stop and c.is_running(c):
                c.stop(c)
                c.wait(c, b"STOPPED", 10)
            if action.destroy and c.is_defined(c):
                release_layer(c)
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


def _answer(reply: int, value: object) -> None:
    try:
        write_frame(reply, value)
    except OSError:
        pass


def serve(sock: socket.socket, log_dir: str | None = None, owner_pidfd: int = -1) -> None:
    # Signals sent to the user's process group (^C, a terminal hangup,
    # `timeout`) are not for us: the socket's end of file tells us when the
    # user's process is gone, and the policies must still be applied then.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    launcher = Launcher.start()
    pending: dict[int, Pending] = {}
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ)
    if launcher is not None:
        sel.register(launcher.sock, selectors.EVENT_READ)
    try:
        while True:
            events = sel.select(1.0)
            _reap()
            for key, _ in events:
                if key.fileobj is sock:
                    if not _serve_one(sock, launcher, pending, sel):
                        # The user's process is gone.  A spawn under way
                        # (registered before it was sent) ends first: the
                        # policies then apply to the container it made.
                        sel.unregister(sock)
                        _finish_pending(pending, sel, launcher)
                        apply_policies()
                        remove_log_dir(log_dir, owner_pidfd)
                        return
                elif launcher is not None and key.fileobj is launcher.sock:
                    if not launcher.reaped():
                        sel.unregister(launcher.sock)
                        launcher.close()
                        launcher = None
                else:
                    _result(key.fd, pending, sel)
    finally:
        for p in pending.values():
            os.close(p.reply)
            os.close(p.result)
        if launcher is not None:
            launcher.close()


def _serve_one(sock: socket.socket, launcher: Launcher | None, pending: dict[int, Pending],
               sel: selectors.BaseSelector) -> bool:
    """Serve one request from the socket; False at end of file."""
    try:
        # CLOEXEC: else every attached command inherits the reply pipe
        # (and could write forged frames to the user's process).
        msg, fds = recv_fds(sock, MAX_REQUEST)
    except (ConnectionResetError, OSError):
        msg, fds = b"", []
    if not msg:
        for fd in fds:
            os.close(fd)
        return False
    if not fds:
        return True  # malformed: no reply pipe
    reply, extra = fds[0], fds[1:]
    try:
        req = decode_request(msg)
    except WireError as exc:
        req = None
        _answer(reply, error("helper", f"bad request: {exc}", []))
    if isinstance(req, (Register, Unregister)):
        _registry_op(req)
        _answer(reply, ok(None))
    elif req is not None:
        launched = None
        if launcher is not None:
            try:
                launched = launcher.dispatch(req, reply, extra)
            except OpError as exc:
                _answer(reply, error(exc.kind, str(exc), exc.log))
                req = None
        if launched is not None:
            for fd in extra:  # the launcher has its own copies
                os.close(fd)
            pending[launched.result] = launched
            sel.register(launched.result, selectors.EVENT_READ)
            return True  # the reply pipe is answered when the result is in
        if req is not None:
            pid = os.fork()
            if pid == 0:
                # A long-lived worker (a capturing attach, console, a foreground monitor)
                # must not keep the launcher's socket open.
                sock.close()
                if launcher is not None:
                    launcher.sock.close()
                for p in pending.values():
                    os.close(p.reply)
                    os.close(p.result)
                run_worker(req, extra, reply)
    for fd in fds:
        os.close(fd)
    return True


def _result(fd: int, pending: dict[int, Pending], sel: selectors.BaseSelector) -> None:
    """The launcher's child wrote (part of) its result: answer once it is whole."""
    p = pending[fd]
    try:
        data = os.read(fd, 256)
    except OSError:
        data = b""
    frames, done = p.feed(data)
    for frame in frames:
        _answer(p.reply, frame)
    if not done:
        return
    sel.unregister(fd)
    del pending[fd]
    os.close(fd)
    os.close(p.reply)


#: Seconds the launcher's requests under way get to end once the user's process is gone.
FINISH_PENDING = 60.0


def _finish_pending(pending: dict[int, Pending], sel: selectors.BaseSelector,
                    launcher: Launcher | None) -> None:
    """Let the launcher's requests under way end (their replies go nowhere).

    Not its attached commands: they may run for as long as their container
    does, and the policies applied next end them with it.
    """
    for fd in [fd for fd, p in pending.items() if p.op == "attach"]:
        p = pending.pop(fd)
        sel.unregister(fd)
        os.close(fd)
        os.close(p.reply)
    deadline = time.monotonic() + FINISH_PENDING
    while pending and (left := deadline - time.monotonic()) > 0:
        for key, _ in sel.select(left):
            if launcher is not None and key.fileobj is launcher.sock:
                if not launcher.reaped():
                    return  # the launcher is gone: so are its children's results
            elif key.fd in pending:
                _result(key.fd, pending, sel)


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
