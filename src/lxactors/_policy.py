"""The owner-death policy table and the restart intensity (standard library only).

One table, read by the container actor (an owner that ended while this
process lives on, a container that ended) and by the helper process (this
process is gone: end of file on its socket).  The helper imports this module
without pykka, so it must import nothing but the standard library.

=========  ==========================  ======================  ===================
type       owner exits                 container ends normally  ends abnormally
=========  ==========================  ======================  ===================
temporary  stop, delete the filesystem  told; deleted           told; deleted
transient  stop, keep the filesystem    told; not restarted      restarted, told
permanent  keeps running (adoptable)    restarted                restarted
=========  ==========================  ======================  ===================
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Literal

__all__ = ["TYPES", "Action", "Intensity", "Type", "check_type", "on_container_end", "on_owner_exit"]

Type = Literal["temporary", "transient", "permanent"]
TYPES: tuple[Type, ...] = ("temporary", "transient", "permanent")


@dataclass(frozen=True)
class Action:
    """What to do with a container: stop it, restart it, delete its filesystem."""

    stop: bool = False
    restart: bool = False
    destroy: bool = False


def check_type(value: object) -> Type:
    """*value* as a container type, or ValueError naming the three."""
    if value not in TYPES:
        raise ValueError(f"type must be one of {', '.join(TYPES)}, not {value!r}")
    return value


def on_owner_exit(type_: Type) -> Action:
    """The owner is gone (stopped, crashed, thread ended, process exited or killed)."""
    if type_ == "permanent":
        return Action()
    return Action(stop=True, destroy=type_ == "temporary")


def on_container_end(type_: Type, normal: bool, requested: bool = False) -> Action:
    """The container stopped by itself (*requested*: because its owner asked).

    A restart is subject to the :class:`Intensity`; when it is refused the
    container is left as a non-restarting one of its type would be.
    """
    restart = not requested and (type_ == "permanent" or (type_ == "transient" and not normal))
    return Action(restart=restart, destroy=type_ == "temporary")


class Intensity:
    """OTP-style restart intensity: at most ``restarts`` within ``period`` seconds."""

    def __init__(self, restarts: int = 3, period: float = 5.0) -> None:
        self.restarts = restarts
        self.period = period
        self._times: deque[float] = deque()
        self.count = 0

    def allow(self, now: float | None = None) -> bool:
        """Record a restart; False if it would exceed the intensity."""
        now = time.monotonic() if now is None else now
        while self._times and now - self._times[0] > self.period:
            self._times.popleft()
        if len(self._times) >= self.restarts:
            return False
        self._times.append(now)
        self.count += 1
        return True
