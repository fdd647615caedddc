"""Flow control: a byte window between a reader and an owner.

At most ``size`` bytes are in flight to an owner that has not processed
them; the owner's processing of a message (its ``on_receive`` returned, or
it took the message from its mailbox) releases that message's bytes.  A
reader that must never block (the console thread) reads no more than
:attr:`FlowWindow.room`; one that may block (imc's output pump) waits for
room with :meth:`FlowWindow.wait_room`.  Either way nothing is dropped and
memory stays bounded: past the window the reader stops reading, and the
writer behind it blocks.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from lxactors._messages import Message
from lxactors._owner import Owner

__all__ = ["DEFAULT_WINDOW", "FlowWindow"]

#: Default flow-control window, in bytes: enough that a fast writer runs at a raw
#: pty read's speed (64 KiB held it to ~0.8x of that: the reader waited on acks),
#: small enough to bound what a streaming container costs.
DEFAULT_WINDOW = 256 * 1024


class FlowWindow:
    """At most *size* bytes in flight to an owner that has not processed them; acks release.

    *on_open* is called (in the owner's thread) when a release reopens a
    window that was full: the console thread uses it to read again.
    """

    DEFAULT_SIZE = DEFAULT_WINDOW

    def __init__(self, size: int = DEFAULT_WINDOW,
                 on_open: Callable[[], None] | None = None) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"window size must be a positive int, not {size!r}")
        self.size = size
        self._on_open = on_open
        self._inflight = 0
        self._cond = threading.Condition()

    @property
    def inflight(self) -> int:
        """Bytes delivered to the owner and not yet processed."""
        return self._inflight

    @property
    def room(self) -> int:
        """Bytes that may be delivered now (0: the window is full)."""
        return max(0, self.size - self._inflight)

    def deliver(self, owner: Owner, message: Message, n: int) -> bool:
        """Hand *message* (*n* bytes) to *owner*, counted until processed; False if it is gone.

        The caller has checked :attr:`room` or waited for it; a message is
        never split, so the window may be overshot by one message.
        """
        with self._cond:
            self._inflight += n
        return owner.deliver(message, lambda: self._release(n))

    def wait_room(self, stop: Callable[[], bool], poll: float = 0.5) -> bool:
        """Block until there is room (True), or until *stop()* says so (False).

        *stop* is asked when the window is full, at least every *poll*
        seconds and after :meth:`wake`.
        """
        with self._cond:
            while self._inflight >= self.size:
                if stop():
                    return False
                self._cond.wait(poll)
        return True

    def wake(self) -> None:
        """Make :meth:`wait_room` ask its *stop* again now."""
        with self._cond:
            self._cond.notify_all()

    def _release(self, n: int) -> None:
        with self._cond:
            was_full = self._inflight >= self.size
            self._inflight -= n
            self._cond.notify_all()
        if was_full and self._on_open is not None:
            self._on_open()

    def __repr__(self) -> str:
        return f"<FlowWindow {self._inflight}/{self.size} bytes in flight>"
