"""An asyncio task as a container's owner.

The task is alive while it is not done, as a thread is while it runs: when
it ends (returns, fails, is cancelled) the supervisor applies the
container's policy.  Messages come from other threads (the console hub, the
container's actor) and are handed to the task's event loop with
``call_soon_threadsafe``; console bytes are acknowledged only when the task
*takes* the message, so a slow consumer holds the console's window full and
the writer in the container blocks: nothing is dropped, memory stays
bounded by the window.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from lxactors._messages import Message
from lxactors._owner import Done, Owner

__all__ = ["TaskOwner"]


class TaskOwner(Owner):
    """The inbox of one container spawned from *task* (read on *task*'s loop)."""

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self.task = task
        self.loop = task.get_loop()
        self._items: deque[tuple[Message, Done | None]] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        # The task's end releases the window of what it never took.
        task.add_done_callback(lambda _: self.close())

    # any thread ---------------------------------------------------------------

    def deliver(self, message: Message, done: Done | None = None) -> bool:
        if not self.alive():
            if done is not None:
                done()
            return False
        try:
            self.loop.call_soon_threadsafe(self._put, message, done)
        except RuntimeError:  # the loop is closed: nobody will take it
            self._closed = True
            if done is not None:
                done()
            return False
        return True

    def alive(self) -> bool:
        return not self._closed and not self.task.done()

    def describe(self) -> str:
        return f"task {self.task.get_name()}"

    # the loop's thread ----------------------------------------------------------

    def _put(self, message: Message, done: Done | None) -> None:
        if self._closed:
            if done is not None:
                done()
            return
        self._items.append((message, done))
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def take(self) -> Message | None:
        """The next message if one is here (its bytes acknowledged), else None."""
        if not self._items:
            return None
        message, done = self._items.popleft()
        if done is not None:
            done()
        return message

    async def wait(self, timeout: float) -> None:
        """Return once a message is here, or after *timeout* seconds."""
        if self._items or self._closed:
            return
        if self._waiter is None or self._waiter.done():
            self._waiter = self.loop.create_future()
        # asyncio.wait never cancels the waiter: a delivery meanwhile is kept.
        await asyncio.wait({self._waiter}, timeout=timeout)

    def close(self) -> None:
        """The owner is gone: refuse new messages, release the queued ones' bytes."""
        self._closed = True
        while self._items:
            _, done = self._items.popleft()
            if done is not None:
                done()
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
