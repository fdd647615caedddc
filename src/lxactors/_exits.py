"""How a container ended, read from what liblxc leaves behind.

liblxc 5.0 reports init's exit only as an INFO line of the monitor's log
(``Child <PID> ended on error (N)`` / ``... on signal ... (N)``): the handle's
log is where the actor reads the status and signal for
:class:`~lxactors.ContainerExited`.
"""

from __future__ import annotations

import os
import re
import select
import signal
from collections.abc import Iterable

from lxactors._messages import ContainerExited
from lxactors.liblxc import Container

__all__ = ["exit_message", "init_running"]

_ENDED = re.compile(r"Child <(\d+)> ended on (error \((\d+)\)|signal [^(]*\((\d+)\))")


def exit_message(name: str, log_lines: Iterable[str], init_pid: int | None,
                 requested: str | None = None) -> ContainerExited:
    """The exit of *name* whose init was *init_pid* (0: a start whose init had
    already ended, any pid matches), from the log lines since its start.

    *requested* is the owner's own reason (``exit()``), which wins.
    """
    status = sig = None
    for line in log_lines:
        m = _ENDED.search(line)
        if m and init_pid in (0, int(m.group(1))):
            if m.group(3) is not None:
                status = int(m.group(3))
            else:
                sig = int(m.group(4))
    if requested is not None:
        reason = requested
    elif sig is not None:
        # SIGINT is how a pid namespace's init is told to power off.
        reason = "normal" if sig == signal.SIGINT else "signal"
    elif status:
        reason = "error"
    else:
        reason = "normal"
        status = 0
    return ContainerExited(name, reason, status, sig)


def init_running(h: Container, pid: int) -> bool:
    """Is *pid* still the container's running init?"""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return False
    try:
        ended, _, _ = select.select([pidfd], [], [], 0)
    finally:
        os.close(pidfd)
    return not ended and h.is_running()
