"""A freeze that cannot stay stuck: liblxc's freeze, with the v1 freezer nudged.

liblxc (5.0) freezes a container on a cgroup v1 freezer by writing FROZEN to
``freezer.state`` once, then polling it every second until it reads FROZEN,
with no limit.  The kernel can leave the cgroup FREEZING for good: seen on
Linux 6.1 when a container was frozen just after its start, its init in the
middle of a fork (init in ``kernel_clone``, its new child already in the
refrigerator).  The caller then hangs forever.  Thawing and freezing again
frees the fork, and the second freeze completes; liblxc's poll then sees
FROZEN and returns as usual (its state listeners told).  So while liblxc's
freeze runs, a watcher on a second handle does that whenever the cgroup is
still not FROZEN after ``NUDGE_AFTER`` seconds.  Where the container has no
v1 freezer (cgroup v2 only: liblxc asks the monitor, which waits on
``cgroup.events``), the watcher finds no ``freezer.state`` and stops.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lxactors._errors import LxcError

if TYPE_CHECKING:
    from lxactors._container import Container

__all__ = ["NUDGE_AFTER", "freeze", "nudge"]

log = logging.getLogger("lxactors")

#: Seconds a freeze may stay unfinished before the watcher thaws and freezes again.
NUDGE_AFTER = 2.0
_STATE = "freezer.state"


def freeze(handle: Container, call: Callable[[], Any]) -> Any:
    """*call* (liblxc's freeze on *handle*) with the watcher beside it; its result."""
    done = threading.Event()
    watcher = threading.Thread(target=_watch, args=(handle, done),
                               name=f"lxactors-freeze-{handle.name}", daemon=True)
    watcher.start()
    try:
        return call()
    finally:
        done.set()
        watcher.join()  # a nudge under way must not refreeze after the caller's next unfreeze


def nudge(handle: Container) -> bool:
    """If *handle*'s container is not FROZEN: thaw it and freeze it again (True)."""
    if handle.get_cgroup_item(_STATE).strip() == "FROZEN":
        return False
    handle.set_cgroup_item(_STATE, "THAWED")
    handle.set_cgroup_item(_STATE, "FROZEN")
    return True


def _watch(handle: Container, done: threading.Event) -> None:
    other: Container | None = None
    try:
        while not done.wait(NUDGE_AFTER):
            if other is None:
                other = type(handle)(handle.name, handle.get_config_path(), log=False)
            if nudge(other):
                log.warning("freeze of %s unfinished after %g s: thawed and frozen again",
                            handle.name, NUDGE_AFTER)
    except LxcError:
        pass  # no v1 freezer, or the container went: nothing to free
    finally:
        if other is not None:
            other.close()

