"""The asyncio face of lxactors: the same API, awaited, never blocking the loop.

::

    import asyncio
    from lxactors import aio, ConsoleOutput

    async def main() -> None:
        async with aio.spawn() as ref:            # owned by this task
            await aio.send(ref, "echo hi-$((6*7))\\n")
            async for msg in ref:                 # ConsoleOutput, ContainerExited, ...
                if isinstance(msg, ConsoleOutput) and b"hi-42" in msg.data:
                    break
        # leaving the block exited the container ("kill"); temporary: deleted

    asyncio.run(main())

The owner of a container spawned from a task is that task: when it ends
(returns, raises, is cancelled) the supervisor applies the container's
policy, as it does when an owner thread ends.  Messages are read with
``async for msg in ref`` or :meth:`ContainerRef.receive`; console bytes are
acknowledged when taken, so a slow reader slows the container's writer and
nothing is dropped.  Calls that block (spawning, exiting, the low-level
handle) run in a thread pool of lxactors' own; :func:`send` waits on the
loop while the console's input window is full.  Works under any asyncio
loop (uvloop included).

Cancellation: a cancelled :func:`spawn` leaves no container behind: the
boot goes on in its thread, and once done its container gets its policy as
if the owning task had ended (temporary: stopped and deleted).  A cancelled
:func:`send` sent all of its data or none; a cancelled :func:`exit` still
completes in its thread.
"""

from __future__ import annotations

import asyncio
import builtins
import functools
from collections.abc import AsyncIterator, Callable, Generator
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, cast

import lxactors
from lxactors._aio_owner import TaskOwner
from lxactors._aio_workers import Workers
from lxactors._api import _seconds
from lxactors._console import Console
from lxactors._errors import LxcError, LxcTimeoutError
from lxactors._messages import ContainerExited, Message
from lxactors._policy import Type
from lxactors._singleton import PerProcess

__all__ = ["ContainerRef", "spawn", "exit", "send", "type", "container", "console"]

P = ParamSpec("P")
R = TypeVar("R")

#: Threads for the blocking calls: enough for many spawns at once (the
#: default executor has only cpu + 4), each mostly waiting on the helper.
MAX_THREADS = 64
#: While the console's input window is full, :func:`send` looks again after
#: this long at first, doubling up to ``_SEND_POLL_MAX``.
_SEND_POLL_MIN = 0.001
_SEND_POLL_MAX = 0.02
#: How often an empty inbox checks whether its container has ended.
_END_POLL = 0.1

_workers: PerProcess[Workers] = PerProcess(lambda: Workers(MAX_THREADS))


async def _blocking(fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """Run *fn* in lxactors' threads, awaiting its result."""
    future = _workers.get().submit(functools.partial(fn, *args, **kwargs))
    return cast(R, await asyncio.wrap_future(future))


class ContainerRef:
    """A container spawned with :func:`spawn`: pass it to :func:`exit`, :func:`send`, ...

    ``async for msg in ref`` yields the owner's messages until the container
    (or the owning task) has ended and every message was taken; ``async with ref`` exits it
    (``"kill"``) on leaving.  :attr:`ref` is the threaded
    :class:`lxactors.ContainerRef` for the blocking API.
    """

    def __init__(self, ref: lxactors.ContainerRef, inbox: TaskOwner) -> None:
        #: The threaded :class:`lxactors.ContainerRef`, for the blocking API.
        self.ref = ref
        self._inbox = inbox
        self._console: Console | None = None

    @property
    def name(self) -> str:
        return self.ref.name

    @property
    def path(self) -> str:
        return self.ref.path

    @property
    def alive(self) -> bool:
        """Is the container's actor still running (the container not ended)?"""
        return self.ref.alive

    @property
    def owner(self) -> asyncio.Task[Any]:
        """The task that owns the container."""
        return self._inbox.task

    async def receive(self, timeout: float | None = None) -> Message:
        """The next message: ``TimeoutError`` after *timeout* seconds, ``LxcError``
        once every message was taken and the container or its owner task has ended."""
        async with asyncio.timeout(timeout):
            message = await self._next()
        if message is None:
            raise LxcError(self.name, "receive", "no more messages: the container or its owner has ended")
        return message

    async def _next(self) -> Message | None:
        if self._inbox.loop is not asyncio.get_running_loop():
            raise LxcError(self.name, "receive", "messages are read on the owner task's loop")
        while True:
            message = self._inbox.take()
            if message is not None:
                return message
            if not self._inbox.alive():
                return None  # the owner task is gone: nothing more comes here
            if not self.ref.alive:
                # Deliveries made before the actor ended are already queued on
                # the loop (call_soon_threadsafe is FIFO): let them land first.
                await asyncio.sleep(0)
                return self._inbox.take()
            await self._inbox.wait(_END_POLL)

    def __aiter__(self) -> AsyncIterator[Message]:
        return self._messages()

    async def _messages(self) -> AsyncIterator[Message]:
        while (message := await self._next()) is not None:
            yield message

    async def __aenter__(self) -> ContainerRef:
        return self

    async def __aexit__(self, t: builtins.type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self.alive:
            await exit(self, "kill")

    def __repr__(self) -> str:
        return f"<aio.ContainerRef {self.name!r} in {self.path} {'alive' if self.alive else 'ended'}>"


class _Spawning:
    """What :func:`spawn` returns: await it, or ``async with`` it."""

    def __init__(self, name: str, owner: asyncio.Task[Any] | None, restarts: int,
                 restart_period: float, options: dict[str, Any]) -> None:
        self._args = (name, owner, restarts, restart_period, options)
        self._ref: ContainerRef | None = None

    def __await__(self) -> Generator[Any, None, ContainerRef]:
        return _spawn(*self._args).__await__()

    async def __aenter__(self) -> ContainerRef:
        self._ref = await self
        return self._ref

    async def __aexit__(self, t: builtins.type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._ref is not None:
            await self._ref.__aexit__(t, e, tb)


def spawn(name: str = "", *, owner: asyncio.Task[Any] | None = None, restarts: int = 3,
          restart_period: float = 5.0, **options: Any) -> _Spawning:
    """Spawn a container: ``ref = await spawn(...)`` or ``async with spawn(...) as ref``.

    The arguments are :func:`lxactors.spawn`'s; the owner is the awaiting
    task, or *owner*, a task of the running loop.  Cancelled, it leaves no
    container: the one being booted gets its policy once booted.
    """
    if owner is not None and not isinstance(owner, asyncio.Task):
        raise TypeError(f"owner must be an asyncio.Task or None, not {builtins.type(owner).__name__}")
    return _Spawning(name, owner, restarts, restart_period, options)


async def _spawn(name: str, owner: asyncio.Task[Any] | None, restarts: int,
                 restart_period: float, options: dict[str, Any]) -> ContainerRef:
    loop = asyncio.get_running_loop()
    task = owner if owner is not None else asyncio.current_task()
    if task is None:
        raise RuntimeError("lxactors.aio.spawn must be awaited in an asyncio task")
    if task.get_loop() is not loop:
        raise ValueError(f"owner {task.get_name()} runs on another event loop")
    if task.done():
        raise ValueError(f"owner {task.get_name()} has already ended")
    inbox = TaskOwner(task)
    try:
        ref = await _blocking(lxactors.spawn, name, owner=inbox, restarts=restarts,
                              restart_period=restart_period, **options)
    except BaseException:
        # Cancelled (or the loop is going away): the boot goes on in its
        # thread; a closed owner is a gone owner, so the supervisor applies
        # the policy as soon as the container is registered.
        inbox.close()
        raise
    return ContainerRef(ref, inbox)


AnyRef = ContainerRef | lxactors.ContainerRef


def _threaded(ref: object) -> lxactors.ContainerRef:
    if isinstance(ref, ContainerRef):
        return ref.ref
    if isinstance(ref, lxactors.ContainerRef):
        return ref
    raise TypeError(f"expected a ContainerRef from lxactors.aio.spawn(), not {builtins.type(ref).__name__}")


async def exit(ref: AnyRef, reason: str = "normal", timeout: float = 10.0) -> ContainerExited | None:
    """Halt the container (see :func:`lxactors.exit`); returns its exit message."""
    return await _blocking(lxactors.exit, _threaded(ref), reason, timeout)


async def send(ref: AnyRef, data: bytes | str, timeout: float = 30.0) -> None:
    """Write *data* to the console, awaiting while a window of input is pending.

    ``LxcTimeoutError`` if the console has not drained within *timeout* s.
    """
    sync = _threaded(ref)
    if isinstance(data, str):
        data = data.encode()
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes or str, not {builtins.type(data).__name__}")
    data = bytes(data)
    seconds = _seconds(timeout)
    con = await _console_of(ref)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    pause = _SEND_POLL_MIN
    while True:
        try:
            # timeout=0: appends at once when there is room, else raises
            # without appending (all or nothing, never blocking the loop).
            con.send(data, 0)
            return
        except LxcTimeoutError:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise LxcTimeoutError(sync.name, "send", "console input is not drained") from None
        except LxcError as exc:
            raise LxcError(sync.name, "send", "the container's console is closed") from exc
        await asyncio.sleep(min(pause, remaining))
        pause = min(pause * 2, _SEND_POLL_MAX)


async def _console_of(ref: AnyRef) -> Console:
    """The console, fetched from the actor once (again after a restart)."""
    if isinstance(ref, ContainerRef):
        if ref._console is None or ref._console.closed:
            ref._console = await console(ref)
        return ref._console
    return await console(ref)


async def type(ref: AnyRef, new: Type | None = None) -> Type:
    """Get the container's type, or change it to *new* (see :func:`lxactors.type`)."""
    return await _blocking(lxactors.type, _threaded(ref), new)


async def console(ref: AnyRef) -> Console:
    """The console endpoint (see :func:`lxactors.console`)."""
    return await _blocking(lxactors.console, _threaded(ref))


class _AsyncHandle:
    """The low-level handle: each method a coroutine, run by the container's actor."""

    def __init__(self, ref: lxactors.ContainerRef) -> None:
        self._handle = lxactors.container(ref)
        self._name = ref.name

    def __getattr__(self, method: str) -> Callable[..., Any]:
        call = getattr(self._handle, method)  # AttributeError for a non-method

        async def run(*args: Any, **kwargs: Any) -> Any:
            return await _blocking(call, *args, **kwargs)

        run.__name__ = method
        return run

    def __repr__(self) -> str:
        return f"<async handle of {self._name!r} via its actor>"


def container(ref: AnyRef) -> Any:
    """The low-level :class:`~lxactors.liblxc.Container`, each method awaited::

        state = await aio.container(ref).state()

    Each call runs in lxactors' threads, never blocking the loop.
    """
    return cast(Any, _AsyncHandle(_threaded(ref)))
