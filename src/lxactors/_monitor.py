"""A running container's monitor, watched so that its death is not taken for a normal end.

liblxc logs init's exit status from the monitor only.  A SIGKILLed monitor
takes init with it (init's parent-death signal) and logs nothing, so the
end looks like a clean exit with status 0; it also skips its teardown, and
the container's ``lxc.payload.<name>`` / ``lxc.monitor.<name>`` cgroups
stay behind.  That leftover is how a lost monitor is told from a normal end:
once the monitor is gone, a normal one has removed them, a killed one has not.
"""

from __future__ import annotations

import os
import select

from lxactors._errors import LxcError
from lxactors._helper import protocol
from lxactors._helperclient import Helper

__all__ = ["MonitorWatch"]

#: Seconds a monitor may take to finish its teardown after init ended.
TEARDOWN = 5.0


class MonitorWatch:
    """A pidfd on the monitor of the container whose init is *init_pid* (its parent)."""

    def __init__(self, init_pid: int) -> None:
        self.pidfd = -1
        try:
            with open(f"/proc/{init_pid}/stat", encoding="utf-8") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            if ppid > 1:
                self.pidfd = os.pidfd_open(ppid)
        except (OSError, ValueError, IndexError):
            pass  # init already gone: nothing to tell apart

    def lost(self, helper: Helper, name: str, lxcpath: str) -> bool:
        """After init ended: did the monitor die without its teardown?

        Its leftover cgroups are removed then (a restart can reuse the name's).
        """
        if self.pidfd < 0:
            return False
        ended, _, _ = select.select([self.pidfd], [], [], TEARDOWN)
        if not ended:
            return False  # still tearing down, or still running (a reboot): not lost
        try:
            left = helper.call(protocol.RemoveStaleCgroups(name=name, path=lxcpath, log=None),
                               container=name, timeout=30)
        except LxcError:
            return False
        return bool(left)

    def close(self) -> None:
        if self.pidfd >= 0:
            os.close(self.pidfd)
            self.pidfd = -1
