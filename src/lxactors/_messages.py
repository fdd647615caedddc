"""Messages a container's owner receives (frozen dataclasses)."""

from __future__ import annotations

import signal as _signal
from dataclasses import dataclass

__all__ = ["ConsoleOutput", "ContainerExited", "ContainerRestarted", "GaveUp", "Message"]


@dataclass(frozen=True)
class ConsoleOutput:
    """Bytes the container wrote to its console, in order."""

    container: str
    data: bytes


@dataclass(frozen=True)
class ContainerExited:
    """The container stopped.

    ``reason`` is ``"normal"`` (exit status 0, a clean halt, or
    ``exit(ref, "normal")``), ``"kill"`` (``exit(ref, "kill")``), ``"error"``
    (init exited with a non-zero ``status``), ``"signal"`` (init was killed
    by ``signal``) or ``"lost"`` (the container vanished and its status could
    not be read).
    """

    container: str
    reason: str
    status: int | None = None
    signal: int | None = None

    @property
    def normal(self) -> bool:
        """Did it end as asked or cleanly (no restart for transient)?"""
        return self.reason in ("normal", "kill")

    def __str__(self) -> str:
        detail = ""
        if self.status is not None:
            detail = f", status {self.status}"
        if self.signal is not None:
            try:
                detail = f", signal {_signal.Signals(self.signal).name}"
            except ValueError:
                detail = f", signal {self.signal}"
        return f"container {self.container!r} exited ({self.reason}{detail})"


@dataclass(frozen=True)
class ContainerRestarted:
    """The supervisor restarted the container after it exited."""

    container: str
    restarts: int
    exited: ContainerExited


@dataclass(frozen=True)
class GaveUp:
    """Too many restarts within the intensity period: the container stays stopped."""

    container: str
    restarts: int
    period: float
    exited: ContainerExited


#: Any message an owner receives (the union of the four classes above).
Message = ConsoleOutput | ContainerExited | ContainerRestarted | GaveUp
