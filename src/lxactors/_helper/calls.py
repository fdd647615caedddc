"""The requests of unprivileged mode: handles held by the gate, members called on them.

An unprivileged process holds no liblxc handle: ``liblxc.Container`` is a
proxy (``lxactors._proxy``) whose every member is a :class:`Call` on a
handle the gate (``lxactors._helper.gate``) opened for it.  Arguments and
results are plain data (the wire's restricted unpickler); fds (a console's
pty, a pidfd, attach's stdio, a file to load or save, a copy source) ride
along by SCM_RIGHTS, named by their index in ``fd_args``.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxactors._helper.protocol import Request, _op

__all__ = ["Call", "Chroot", "CloseHandle", "ListContainers", "Open", "HELLO", "INLINE",
           "INLINE_MAX", "QUICK"]

#: The gate's first message on its socket, once it has authorized its caller.
HELLO = b"lxactors-gate 1"

#: Members the gate answers in its loop: none waits on a container or forks.
QUICK = frozenset({
    "is_defined", "defined", "is_running", "running", "state", "init_pid", "may_control",
    "config_file_name", "get_config_path", "set_config_path", "get_config_item",
    "set_config_item", "clear_config_item", "clear_config", "get_running_config_item",
    "get_keys", "get_cgroup_item", "set_cgroup_item", "want_daemonize", "want_close_all_fds",
    "log_size", "log_lines_since", "get_interfaces", "console_getfd", "console_log",
    "init_pidfd", "load_config", "save_config", "freeze", "unfreeze",
})
#: The hot quick members a client asks with no reply channel: the request alone on
#: the gate's socket, answered there (one at a time per client), which saves a pipe
#: and its passing per call.  None answers with fds; those whose answer can exceed
#: :data:`INLINE_MAX` (a long config value, a key list) only read, so that the gate
#: may answer ``("again",)`` and the client asks once more with a pipe.
INLINE = frozenset({
    "is_defined", "defined", "is_running", "running", "state", "init_pid", "may_control",
    "config_file_name", "get_config_path", "get_config_item", "get_running_config_item",
    "get_keys", "get_cgroup_item", "set_config_item", "clear_config_item", "set_cgroup_item",
    "want_daemonize", "want_close_all_fds", "log_size",
}) & QUICK
#: Largest answer sent on the gate's socket (a SOCK_SEQPACKET message).
INLINE_MAX = 64 * 1024


@_op("open")
@dataclass(frozen=True, kw_only=True)
class Open(Request):
    """A handle on container *name* in *path* (None: the caller's own lxcpath)."""

    name: str
    path: str | None


@_op("call")
@dataclass(frozen=True, kw_only=True)
class Call(Request):
    """``handle.member(*args, **kwargs)``; ``fd_args`` puts sent fds in parameters."""

    handle: int
    member: str
    args: list[object]
    kwargs: dict[str, object]
    fd_args: dict[str, int]

    def __post_init__(self) -> None:
        # The same checks as Request's, written out: this is the hot request.
        ok = (type(self.handle) is int and type(self.member) is str
              and type(self.args) is list and type(self.kwargs) is dict
              and all(type(k) is str for k in self.kwargs) and type(self.fd_args) is dict
              and all(type(k) is str and type(i) is int for k, i in self.fd_args.items()))
        if not ok:
            raise TypeError("helper request call: handle int, member str, args list, "
                            "kwargs {str: object}, fd_args {str: int}")


@_op("close_handle")
@dataclass(frozen=True, kw_only=True)
class CloseHandle(Request):
    handle: int


@_op("list_containers")
@dataclass(frozen=True, kw_only=True)
class ListContainers(Request):
    """``liblxc.list_{kind}_containers(path)``: kind is defined, active or all."""

    kind: str
    path: str | None


@_op("chroot")
@dataclass(frozen=True, kw_only=True)
class Chroot(Request):
    """The ``chroot`` spawn option, made in the handle's rootfs by the gate.

    Each spec is ``("dir", parts, mode)``, ``("file", parts, content, mode)``
    or ``("copy", fd_index, parts, mode)``: a copy source was opened by the
    client, with the client's rights, and is sent along.
    """

    handle: int
    specs: list[object]
