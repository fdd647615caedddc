"""The agent's owner of one container: its messages, batched as they arrive, for one stream.

A plain :class:`lxactors.Mailbox` wakes its reader once per message, and a
pty gives about 4 KiB per read: 5,000 wake-ups (and GIL hand-offs) for
20 MB, on top of the batching thread's own work.  Here consecutive console
bytes are merged as they arrive, and the stream thread is woken only when
a batch is worth sending: the first message into an empty outbox, a
non-console message, or ``trigger`` bytes of console output.  A bulk batch
then waits up to ``linger`` s for more.

Flow control is lxactors' own: each delivery's ``done`` is called when the
stream takes its batch, so at most the container's window of bytes is held
here; ``trigger`` is at most half that window, or a batch could wait for
bytes that the window keeps in the pty.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import lxactors

__all__ = ["Outbox"]


class Outbox(lxactors.Owner):
    """Messages of one container, consecutive console bytes merged, taken in batches."""

    def __init__(self, trigger: int, bulk: int, linger: float) -> None:
        self.trigger = trigger
        self.bulk = bulk
        self.linger = linger
        self._cond = threading.Condition(threading.Lock())
        #: In order: messages, and lists of console chunks (one list per run of console output).
        self._items: list[lxactors.Message | list[bytes]] = []
        self._done: list[Callable[[], None]] = []
        self._bytes = 0
        self._largest = 0
        self._name = ""
        self._closed = False

    def deliver(self, message: lxactors.Message, done: Callable[[], None] | None = None) -> bool:
        with self._cond:
            if self._closed:
                closed = True
            else:
                closed = False
                if done is not None:
                    self._done.append(done)
                wake = not self._items
                if isinstance(message, lxactors.ConsoleOutput):
                    self._name = message.container
                    if self._items and isinstance(self._items[-1], list):
                        self._items[-1].append(message.data)
                    else:
                        self._items.append([message.data])
                    self._bytes += len(message.data)
                    self._largest = max(self._largest, len(message.data))
                    wake = wake or self._bytes >= self.trigger
                else:
                    self._items.append(message)
                    wake = True
                if wake:
                    self._cond.notify()
        if closed and done is not None:
            done()
        return not closed

    def take(self, timeout: float) -> list[lxactors.Message]:
        """What has arrived, as one batch (empty after *timeout* s with nothing, or once closed)."""
        with self._cond:
            if not self._items and not self._closed:
                self._cond.wait(timeout)
            if self._items and self._largest >= self.bulk:
                # Bulk output: more is coming; wait a moment for a fuller batch.
                deadline = time.monotonic() + self.linger
                while (not self._closed and self._bytes < self.trigger
                       and isinstance(self._items[-1], list)):
                    left = deadline - time.monotonic()
                    if left <= 0 or not self._cond.wait(left):
                        break
            items, done, name = self._items, self._done, self._name
            self._items, self._done, self._bytes, self._largest = [], [], 0, 0
        for d in done:
            d()
        return [lxactors.ConsoleOutput(name, item[0] if len(item) == 1 else b"".join(item))
                if isinstance(item, list) else item for item in items]

    def alive(self) -> bool:
        return not self._closed

    def close(self) -> None:
        """Stop accepting messages; those held are dropped (their bytes released)."""
        with self._cond:
            self._closed = True
            done, self._done, self._items, self._bytes = self._done, [], [], 0
            self._cond.notify_all()
        for d in done:
            d()

    def describe(self) -> str:
        return "a cluster owner's stream"
