"""lxactors: Linux containers as supervised Pykka actors, on liblxc through cffi.

The high-level API mirrors erlxc: :func:`spawn` a container, :func:`send` to
its console, :func:`exit` it, read or change its :func:`type`, reach the
low-level handle with :func:`container` (see :mod:`lxactors.liblxc`) and the
console with :func:`console`.  The owner gets :class:`ConsoleOutput`,
:class:`ContainerExited`, :class:`ContainerRestarted` and :class:`GaveUp`.
A :class:`Pool` keeps containers booted ahead and hands one over per spawn.

For applications built on it (``lxactors.apps``: the command, tcpvm, imc):
:func:`spawn_options` checks options once for many spawns, :func:`ensure_base`
builds the cached base ahead of the first spawn (:func:`base_name` names it),
:func:`random_name` and :func:`resolve_userns` are spawn's own, and
:class:`Owner` / :func:`as_owner` / :class:`FlowWindow` deliver messages of
one's own to an owner the way the console does; :class:`Limits` bounds what a
container may take (``spawn(limits=...)``) and :func:`limit_events` says how
often it met them.

Names are imported on first use, so that ``lxactors`` (the command) can say
in one line that liblxc is missing instead of failing in this import.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lxactors._api import (
        ContainerRef,
        console,
        container,
        exit,
        limit_events,
        send,
        spawn,
        type,
    )
    from lxactors._base import base_name, ensure_base
    from lxactors._console import Console
    from lxactors._errors import (
        AccessRefused,
        ContainerClosedError,
        HelperError,
        LxcError,
        LxcTimeoutError,
    )
    from lxactors._limits import Limits
    from lxactors._messages import (
        ConsoleOutput,
        ContainerExited,
        ContainerRestarted,
        GaveUp,
        Message,
    )
    from lxactors._options import random_name, spawn_options
    from lxactors._owner import Mailbox, Owner, as_owner
    from lxactors._pool import Pool
    from lxactors._userns import IdMap, resolve_userns
    from lxactors._window import FlowWindow

_EXPORTS = {
    "AccessRefused": "lxactors._errors",
    "Console": "lxactors._console",
    "ConsoleOutput": "lxactors._messages",
    "ContainerClosedError": "lxactors._errors",
    "ContainerExited": "lxactors._messages",
    "ContainerRef": "lxactors._api",
    "ContainerRestarted": "lxactors._messages",
    "FlowWindow": "lxactors._window",
    "GaveUp": "lxactors._messages",
    "HelperError": "lxactors._errors",
    "IdMap": "lxactors._userns",
    "Limits": "lxactors._limits",
    "LxcError": "lxactors._errors",
    "LxcTimeoutError": "lxactors._errors",
    "Mailbox": "lxactors._owner",
    "Message": "lxactors._messages",
    "Owner": "lxactors._owner",
    "Pool": "lxactors._pool",
    "as_owner": "lxactors._owner",
    "base_name": "lxactors._base",
    "container": "lxactors._api",
    "console": "lxactors._api",
    "ensure_base": "lxactors._base",
    "exit": "lxactors._api",
    "limit_events": "lxactors._api",
    "random_name": "lxactors._options",
    "resolve_userns": "lxactors._userns",
    "send": "lxactors._api",
    "spawn": "lxactors._api",
    "spawn_options": "lxactors._options",
    "type": "lxactors._api",
}

__all__ = [
    "AccessRefused",
    "Console",
    "ConsoleOutput",
    "ContainerClosedError",
    "ContainerExited",
    "ContainerRef",
    "ContainerRestarted",
    "FlowWindow",
    "GaveUp",
    "HelperError",
    "IdMap",
    "Limits",
    "LxcError",
    "LxcTimeoutError",
    "Mailbox",
    "Message",
    "Owner",
    "Pool",
    "as_owner",
    "base_name",
    "container",
    "console",
    "ensure_base",
    "exit",
    "limit_events",
    "random_name",
    "resolve_userns",
    "send",
    "spawn",
    "spawn_options",
    "type",
]
assert sorted(__all__) == sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'lxactors' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


logging.getLogger("lxactors").addHandler(logging.NullHandler())
