"""lxactors: Linux containers as supervised Pykka actors, on liblxc through cffi.

The high-level API mirrors erlxc: :func:`spawn` a container, :func:`send` to
its console, :func:`exit` it, read or change its :func:`type`, reach the
low-level handle with :func:`container` (see :mod:`lxactors.liblxc`) and the
console with :func:`console`.  The owner gets :class:`ConsoleOutput`,
:class:`ContainerExited`, :class:`ContainerRestarted` and :class:`GaveUp`.
"""

from __future__ import annotations

import logging

from lxactors._api import ContainerRef, container, console, exit, send, spawn, type
from lxactors._console import Console
from lxactors._errors import ContainerClosedError, HelperError, LxcError, LxcTimeoutError
from lxactors._messages import (
    ConsoleOutput,
    ContainerExited,
    ContainerRestarted,
    GaveUp,
    Message,
)
from lxactors._owner import Mailbox

__all__ = [
    "Console",
    "ConsoleOutput",
    "ContainerClosedError",
    "ContainerExited",
    "ContainerRef",
    "ContainerRestarted",
    "GaveUp",
    "HelperError",
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

logging.getLogger("lxactors").addHandler(logging.NullHandler())
