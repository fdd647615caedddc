"""The gate: the privileged helper of an unprivileged process (issue 16).

``sudo -n PYTHON -I -m lxactors._helper.gate``, the client's end of a
SOCK_SEQPACKET socketpair as stdin (sudo closes other fds).  Who the client
is comes from the kernel (SO_PEERCRED), never from it; what it may do, from
the root-owned policy (``access``).  The gate holds every liblxc handle of
its client (real ``liblxc.Container`` objects, root's in-process fast path,
whose forking calls go to the gate's own root helper) and runs each
:class:`~lxactors._helper.calls.Call` after authorizing it member by member
(``members``: the rules; here: the session, its handles, the caller's
lxcpaths and ownership, the dispatch).
Quick members run in the loop; those that block (start, attach, wait...)
run in a thread each, so one slow call never holds up the others.  A
request comes with a reply channel (a pipe, first of its fds), except the
hot quick calls (``calls.INLINE``), answered on the socket itself.

End of file means the client is gone, however it died: the gate closes its
own helper, which applies the registered containers' policies as it does
for root callers.  Nothing here trusts a field of a request: a refused one
gets an :class:`~lxactors.AccessRefused` naming the rule, and changes nothing.
"""

from __future__ import annotations

import os
import signal
import socket
import stat
import struct
import sys
import threading
import traceback
from collections.abc import Callable
from typing import Any

from lxactors import liblxc
from lxactors._errors import (
    AccessRefused,
    ContainerClosedError,
    HelperError,
    LxcError,
    LxcTimeoutError,
)
from lxactors._helper import members, protocol, wire
from lxactors._helper.access import (
    Caller,
    ConfigContext,
    Grant,
    Policy,
    Refused,
    caller_of,
    check_lxcpath,
    id_ranges,
)
from lxactors._helper.calls import (
    HELLO,
    INLINE,
    INLINE_MAX,
    Call,
    Chroot,
    CloseHandle,
    ListContainers,
    Open,
)
from lxactors._helperclient import helper

__all__ = ["Gate", "main"]

#: Marks a container made by the gate in a shared lxcpath: the owner's uid.
OWNER_FILE = "lxactors-owner"
_ERROR_KINDS: tuple[tuple[type[BaseException], str], ...] = (
    (Refused, "refused"), (AccessRefused, "refused"), (ContainerClosedError, "closed"),
    (LxcTimeoutError, "timeout"), (HelperError, "helper"), (LxcError, "lxc"),
    (KeyError, "key"), (TypeError, "type"), (ValueError, "value"),
)
def _raise_frame(exc: BaseException, container: str | None, operation: str) -> tuple[Any, ...]:
    kind = next((k for cls, k in _ERROR_KINDS if isinstance(exc, cls)), "helper")
    if isinstance(exc, LxcError):
        return wire.ok(("raise", kind, exc.container, exc.operation, exc.message, list(exc.log)))
    message = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    if kind == "helper":
        message = f"{type(exc).__name__}: {exc}"
    return wire.ok(("raise", kind, container, operation, message, []))


def _no_early_answer(value: object) -> None:
    raise AssertionError("an inline member answered early")  # INLINE members do not


def _send(reply: int, frame: tuple[Any, ...], fds: list[int] | None = None) -> None:
    try:
        if fds:
            s = socket.socket(fileno=os.dup(reply))
            try:
                socket.send_fds(s, [wire.encode_frame(frame)], fds)
            finally:
                s.close()
        else:
            wire.write_frame(reply, frame)
    except OSError:
        pass  # the client is gone, or gave a channel that is not a socket


class Entry:
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
        self.handles: dict[int, Entry] = {}
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

    def context(self, entry: Entry) -> ConfigContext:
        c = entry.container
        return ConfigContext(self.caller, self.grant, entry.lxcpath, c.name, self._uids,
                             self._gids, own_log=c._log.path)

    # ------------------------------------------------------------ the loop

    def serve(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        inline = False
        while True:
            if inline:  # a client asking quick calls often asks the next at once
                wire.readable(self.sock.fileno(), None)
            try:
                msg, fds = wire.recv_fds(self.sock, wire.MAX_REQUEST)
            except (ConnectionResetError, OSError):
                msg, fds = b"", []
            if not msg:
                _close(fds)
                self.finish()
                return
            inline = not fds
            if inline:
                self.answer_inline(msg)
                continue
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
            req = protocol.decode_request(msg)
        except wire.WireError as exc:
            _send(reply, wire.error("helper", f"bad request: {exc}", []))
            _close(fds)
            return
        if isinstance(req, (protocol.Register, protocol.Unregister, protocol.BoundLayer)):
            try:
                path = self.lxcpath(req.path)
                self.check_owner(path, req.name)
                if isinstance(req, protocol.Register):
                    helper().register(path, req.name, req.type)
                elif isinstance(req, protocol.Unregister):
                    helper().unregister(path, req.name)
                else:  # Limits.disk: a tmpfs under the caller's own container, nothing else
                    helper().call(protocol.BoundLayer(name=req.name, path=path, log=None,
                                                  size=req.size), container=req.name, timeout=60)
                _send(reply, wire.ok(None))
            except Refused as exc:
                _send(reply, wire.error("refused", str(exc), []))
            except LxcError as exc:
                _send(reply, wire.error("helper", exc.message, list(exc.log)))
            _close(fds)
            return
        if isinstance(req, Call) and req.member not in members.QUICK:
            threading.Thread(target=self._run, args=(req, reply, extra), daemon=True,
                             name=f"gate {req.member}").start()
            return
        self._run(req, reply, extra)

    def answer_inline(self, msg: bytes) -> None:
        """A request with no reply channel: one of the :data:`~lxactors._helper.calls.INLINE`
        calls, answered on the socket itself (the client waits for each answer)."""
        try:
            req = protocol.decode_request(msg)
        except wire.WireError as exc:
            frame = wire.error("helper", f"bad request: {exc}", [])
        else:
            if isinstance(req, Call) and req.member in INLINE and not req.fd_args:
                frame, out = self._answer(req, [], _no_early_answer)
                _close(out)
            else:
                frame = wire.error("helper", f"{getattr(req, 'member', req.op)} needs a "
                                   "reply channel", [])
        data = wire.encode_frame(frame)
        if len(data) > INLINE_MAX:  # only reads answer this much: asked again, with a pipe
            data = wire.encode_frame(wire.ok(("again",)))
        try:
            self.sock.send(data)
        except OSError:
            pass  # the client is gone: end of file comes next

    def _run(self, req: protocol.Request, reply: int, fds: list[int]) -> None:
        try:
            frame, out = self._answer(req, fds, lambda v: _send(reply, wire.ok(("return", v))))
            _send(reply, frame, out)
            _close(out)
        finally:
            _close([reply, *fds])

    def _answer(self, req: protocol.Request, fds: list[int],
                early: Callable[[Any], None]) -> tuple[tuple[Any, ...], list[int]]:
        """Run *req*: its answer frame and the fds to send with it."""
        container = getattr(req, "name", None)
        try:
            if isinstance(req, Call):
                entry = self._entry(req.handle)
                container = entry.container.name
                value, out = members.call(self, entry, req, fds, early)
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
                members.chroot(self, self._entry(req.handle), req.specs, fds)
                value, out = None, []
            else:
                raise Refused("operation", f"helper operation {req.op!r} is for root callers")
            return wire.ok(("return", value)), out
        except BaseException as exc:  # every failure is an answer, never a hang
            if not isinstance(exc, (Refused, LxcError, TypeError, ValueError, KeyError)):
                traceback.print_exc(file=sys.stderr)
            return _raise_frame(exc, container, getattr(req, "member", req.op)), []

    def _entry(self, handle: int) -> Entry:
        with self._lock:
            e = self.handles.get(handle)
        if e is None:
            raise ContainerClosedError(None, "use", f"no open handle {handle}")
        return e

    def add(self, container: liblxc.Container, lxcpath: str) -> int:
        """A new handle on *container*, its number what the client names it by."""
        with self._lock:
            hid, self._next = self._next, self._next + 1
            self.handles[hid] = Entry(container, lxcpath)
        return hid

    def open(self, req: Open) -> tuple[int, str]:
        path = self.lxcpath(req.path)
        return self.add(liblxc.Container(req.name, path), path), path

# ---------------------------------------------------------------- helpers


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
