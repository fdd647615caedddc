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

__all__ = ["Call", "Chroot", "CloseHandle", "ListContainers", "Open", "HELLO"]

#: The gate's first message on its socket, once it has authorized its caller.
HELLO = b"lxactors-gate 1"


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
