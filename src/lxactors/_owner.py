"""Owners: who a container's messages go to, and whether they are still alive.

An owner is a pykka actor (messages arrive in its ``on_receive``) or plain
code (a thread reading a :class:`Mailbox`).  Each delivery carries a
callback run once the owner has *processed* the message: for an actor, when
its ``on_receive`` returned; for a mailbox, when the message was taken.  The
console's flow control counts bytes between delivery and that callback.
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pykka
from pykka import ThreadingFuture

from lxactors._messages import Message

__all__ = ["Owner", "ActorOwner", "Mailbox", "ThreadOwner", "calling_actor", "current_owner",
           "as_owner"]

log = logging.getLogger("lxactors")

_Envelope: Any
try:  # The one private pykka name used: to learn when on_receive returned.
    from pykka._envelope import Envelope as _Envelope
except ImportError:  # pragma: no cover - a future pykka
    _Envelope = None

Done = Callable[[], None]


class Owner:
    """Who gets a container's messages: deliver them, say whether still alive.

    :func:`as_owner` makes one of a pykka ``ActorRef`` or a :class:`Mailbox`.
    """

    def deliver(self, message: Message, done: Done | None = None) -> bool:
        """Hand over *message*; False (and *done* called) if the owner is gone."""
        raise NotImplementedError

    def alive(self) -> bool:
        raise NotImplementedError

    def describe(self) -> str:
        return repr(self)


class _AckFuture(ThreadingFuture[Any]):
    """A future that runs a callback when the owner's on_receive returned."""

    def __init__(self, done: Done) -> None:
        super().__init__()
        self._done: Done | None = done

    def _fire(self) -> None:
        done, self._done = self._done, None
        if done is not None:
            done()

    def set(self, value: Any | None = None) -> None:
        super().set(value)
        self._fire()

    def set_exception(self, exc_info: Any = None) -> None:
        if exc_info is None:
            exc_info = sys.exc_info()
        super().set_exception(exc_info)
        self._fire()


class ActorOwner(Owner):
    """A pykka actor: messages arrive in its ``on_receive``."""

    def __init__(self, ref: pykka.ActorRef[Any]) -> None:
        self.ref = ref

    def deliver(self, message: Message, done: Done | None = None) -> bool:
        if not self.ref.is_alive():
            if done:
                done()
            return False
        if done is None or _Envelope is None:
            try:
                self.ref.tell(message)
            except pykka.ActorDeadError:
                return False
            finally:
                if done and _Envelope is None:
                    done()
            return True
        self.ref.actor_inbox.put(_Envelope(message, reply_to=_AckFuture(done)))
        if not self.ref.is_alive():
            # Stopped between the check and the put: nobody will process it.
            done()
            return False
        return True

    def alive(self) -> bool:
        return self.ref.is_alive()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ActorOwner) and other.ref.actor_urn == self.ref.actor_urn

    def __hash__(self) -> int:
        return hash(self.ref.actor_urn)

    def describe(self) -> str:
        return f"actor {self.ref}"


class Mailbox(Owner):
    """A queue of messages for plain code; iterate or :meth:`get`.

    One mailbox may own several containers, like an Erlang process.
    """

    def __init__(self) -> None:
        self._q: queue.SimpleQueue[tuple[Message, Done | None]] = queue.SimpleQueue()
        self._closed = False

    def deliver(self, message: Message, done: Done | None = None) -> bool:
        if self._closed:
            if done:
                done()
            return False
        self._q.put((message, done))
        return True

    def get(self, timeout: float | None = None) -> Message:
        """The next message; ``queue.Empty`` after *timeout* seconds."""
        message, done = self._q.get(timeout=timeout)
        if done is not None:
            done()
        return message

    def get_nowait(self) -> Message:
        """The next message, or ``queue.Empty``."""
        return self.get(timeout=0)

    def __iter__(self) -> Iterator[Message]:
        while True:
            yield self.get()

    def alive(self) -> bool:
        return not self._closed

    def close(self) -> None:
        """Stop accepting messages; those queued are dropped (their bytes released)."""
        self._closed = True
        while True:
            try:
                _, done = self._q.get_nowait()
            except queue.Empty:
                return
            if done is not None:
                done()


class ThreadOwner(Mailbox):
    """A mailbox whose owner is a thread: alive while the thread is."""

    def __init__(self, thread: threading.Thread) -> None:
        super().__init__()
        self.thread = thread

    def alive(self) -> bool:
        return not self._closed and self.thread.is_alive()

    def describe(self) -> str:
        return f"thread {self.thread.name}"


def calling_actor() -> pykka.ActorRef[Any] | None:
    """The pykka actor whose thread is running this code, if any.

    pykka does not say which actor is current; its actor loop is on this
    thread's stack, with the actor as ``self``.
    """
    frame = sys._getframe(2)
    while frame is not None:
        if frame.f_code.co_name in ("_actor_loop_running", "_actor_loop", "_handle_receive"):
            actor = frame.f_locals.get("self")
            if isinstance(actor, pykka.Actor):
                return actor.actor_ref
        frame = frame.f_back  # type: ignore[assignment]
    return None


def current_owner() -> Owner:
    """The calling pykka actor, else a new mailbox tied to the calling thread."""
    ref = calling_actor()
    if ref is not None:
        return ActorOwner(ref)
    return ThreadOwner(threading.current_thread())


def as_owner(owner: object) -> Owner:
    """Accept an Owner, a pykka ActorRef or a Mailbox; None means the caller."""
    if owner is None:
        return current_owner()
    if isinstance(owner, Owner):
        return owner
    if isinstance(owner, pykka.ActorRef):
        return ActorOwner(owner)
    raise TypeError(
        f"owner must be a pykka.ActorRef, an lxactors.Mailbox or None, not {type(owner).__name__}"
    )
