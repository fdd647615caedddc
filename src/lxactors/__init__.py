"""lxactors: Linux containers as supervised Pykka actors, on liblxc through cffi.

The high-level API mirrors erlxc: :func:`spawn` a container, :func:`send` to
its console, :func:`exit` it, read or change its :func:`type`, reach the
low-level handle with :func:`container` (see :mod:`lxactors.liblxc`) and the
console with :func:`console`.  The owner gets :class:`ConsoleOutput`,
:class:`ContainerExited`, :class:`ContainerRestarted` and :class:`GaveUp`.

Names are imported on first use, so that ``lxactors`` (the command) can say
in one line that liblxc is missing instead of failing in this import.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lxactors._api import ContainerRef, console, container, exit, send, spawn, type
    from lxactors._console import Console
    from lxactors._errors import (
        AccessRefused,
        ContainerClosedError,
        HelperError,
        LxcError,
        LxcTimeoutError,
    )
    from lxactors._messages import (
        ConsoleOutput,
        ContainerExited,
        ContainerRestarted,
        GaveUp,
        Message,
    )
    from lxactors._owner import Mailbox
    from lxactors._userns import IdMap

_EXPORTS = {
    "AccessRefused": "lxactors._errors",
    "Console": "lxactors._console",
    "ConsoleOutput": "lxactors._messages",
    "ContainerClosedError": "lxactors._errors",
    "ContainerExited": "lxactors._messages",
    "ContainerRef": "lxactors._api",
    "ContainerRestarted": "lxactors._messages",
    "GaveUp": "lxactors._messages",
    "HelperError": "lxactors._errors",
    "IdMap": "lxactors._userns",
    "LxcError": "lxactors._errors",
    "LxcTimeoutError": "lxactors._errors",
    "Mailbox": "lxactors._owner",
    "Message": "lxactors._messages",
    "container": "lxactors._api",
    "console": "lxactors._api",
    "exit": "lxactors._api",
    "send": "lxactors._api",
    "spawn": "lxactors._api",
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
    "GaveUp",
    "HelperError",
    "IdMap",
    "LxcError",
    "LxcTimeoutError",
    "Mailbox",
    "Message",
    "container",
    "console",
    "exit",
    "send",
    "spawn",
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
