"""lxactors.aio on real containers, under asyncio's loop and uvloop's."""

from __future__ import annotations

import asyncio
import gc
import re
import sys
import time
from asyncio.subprocess import PIPE
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest

import lxactors
from lxactors import aio, liblxc

T = TypeVar("T")

try:
    import uvloop
except ImportError:  # not a dependency: tested when installed
    uvloop = None  # type: ignore[assignment]

LOOPS = ["asyncio", pytest.param("uvloop", marks=pytest.mark.skipif(
    uvloop is None, reason="uvloop is not installed"))]


@pytest.fixture(scope="session")
def uvloop_ready() -> None:
    """uvloop's first loop opens a pipe it keeps for the process: open it before leak checks."""
    if uvloop is not None:
        uvloop.run(asyncio.sleep(0))


@pytest.fixture(params=LOOPS)
def run(request: pytest.FixtureRequest,
        uvloop_ready: None) -> Callable[[Coroutine[Any, Any, T]], T]:
    """``asyncio.run`` on the default loop or on uvloop's."""
    def run(coro: Coroutine[Any, Any, T]) -> T:
        if request.param == "uvloop":
            assert uvloop is not None
            return uvloop.run(coro)
        return asyncio.run(coro)
    return run


async def poll(predicate: Callable[[], object], timeout: float = 15.0,
               what: str = "condition") -> None:
    """Await *predicate* becoming true (checked every 10 ms on the loop)."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


async def console_until(ref: aio.ContainerRef, needle: bytes, timeout: float = 20.0) -> bytes:
    buf = bytearray()
    async with asyncio.timeout(timeout):
        async for msg in ref:
            if isinstance(msg, lxactors.ConsoleOutput):
                buf += msg.data
                if needle in buf[-len(msg.data) - len(needle):]:
                    return bytes(buf)
    raise AssertionError(f"{needle!r} not seen before the container ended; got {buf[-300:]!r}")


def ours(lxcpath: str) -> set[str]:
    return {n for n in liblxc.list_all_containers(lxcpath) if n.startswith("lxa-")}


def test_spawn_send_receive_and_exit_on_leaving(lxcpath: str, run: Callable[..., Any]) -> None:
    async def main() -> str:
        async with aio.spawn(path=lxcpath) as ref:
            assert ref.owner is asyncio.current_task()
            assert ref.name in liblxc.list_active_containers(lxcpath)
            await aio.send(ref, "\necho hi-$((6*7))\n")
            await console_until(ref, b"hi-42")
            assert await aio.container(ref).state() == "RUNNING"
            assert await aio.type(ref) == "temporary"
        assert not ref.alive
        return ref.name

    name = run(main())
    assert name not in liblxc.list_all_containers(lxcpath)


def test_messages_end_with_the_container(lxcpath: str, run: Callable[..., Any]) -> None:
    async def main() -> list[lxactors.Message]:
        ref = await aio.spawn(path=lxcpath)
        await aio.send(ref, "\npoweroff -f\n")
        async with asyncio.timeout(20):
            return [msg async for msg in ref]

    messages = run(main())
    exited = [m for m in messages if isinstance(m, lxactors.ContainerExited)]
    assert len(exited) == 1 and messages[-1] is exited[0]
    assert not ours(lxcpath)


def test_exit_returns_what_the_owner_gets(lxcpath: str) -> None:
    async def main() -> None:
        ref = await aio.spawn(path=lxcpath)
        exited = await aio.exit(ref, "kill")
        assert isinstance(exited, lxactors.ContainerExited) and exited.reason == "kill"
        got = [m async for m in ref]
        assert exited in got
        assert await aio.exit(ref) is None
        with pytest.raises(lxactors.LxcError, match="ended"):
            await ref.receive(1)

    asyncio.run(main())


def test_slow_consumer_slows_the_writer_and_nothing_is_dropped(lxcpath: str) -> None:
    window = 4096
    count = 20000  # ~110 KB of output, 27 windows

    async def main() -> bytes:
        async with aio.spawn(path=lxcpath, window=window) as ref:
            con = await aio.console(ref)
            await aio.send(ref, f"\nseq 1 {count}; echo END-$((6*7))\n")
            # Nothing taken: the console stops at one window, read and unacknowledged.
            await poll(lambda: con.inflight == window, what="a full window")
            for _ in range(20):
                await asyncio.sleep(0)
            assert con.bytes_read == window and con.inflight == window
            return await console_until(ref, b"END-42")

    out = asyncio.run(main())
    numbers = [int(n) for n in re.findall(rb"^(\d+)\r?$", out, re.M)]
    assert numbers == list(range(1, count + 1))


def test_send_awaits_a_full_input_window_and_times_out(lxcpath: str) -> None:
    async def main() -> None:
        async with aio.spawn(path=lxcpath, window=1024) as ref:
            await aio.send(ref, "\nstty -echo; sleep 60\n")
            con = await aio.console(ref)
            chunk = b"x" * 1024  # no newline: the sleeping shell never reads it
            with pytest.raises(lxactors.LxcTimeoutError, match="not drained"):
                async with asyncio.timeout(30):
                    while True:
                        await aio.send(ref, chunk, timeout=0.3)
            # A send awaiting room is cancelled: the loop went on, nothing was queued.
            pending = asyncio.create_task(aio.send(ref, b"y" * 10))
            ticks = 0
            while ticks < 20:
                await asyncio.sleep(0.005)
                ticks += 1
            assert not pending.done()
            pending.cancel()
            with pytest.raises(asyncio.CancelledError):
                await pending
            assert b"y" not in bytes(con._wbuf)

    asyncio.run(main())


def test_task_end_applies_the_policy(lxcpath: str, run: Callable[..., Any]) -> None:
    name = f"aio-transient-{time.monotonic_ns() % 10**8}"

    async def owner(named: str) -> lxactors.ContainerRef:
        return (await aio.spawn(named, path=lxcpath)).ref

    async def main() -> tuple[lxactors.ContainerRef, lxactors.ContainerRef]:
        temporary = await asyncio.create_task(owner(""))
        transient = await asyncio.create_task(owner(name))
        # The owning tasks have returned: the supervisor applies each policy.
        await poll(lambda: not temporary.alive and not transient.alive, what="the policies")
        return temporary, transient

    try:
        temporary, transient = run(main())
        assert transient.name == name
        assert temporary.name not in liblxc.list_all_containers(lxcpath)   # stopped, deleted
        with liblxc.Container(name, lxcpath) as c:                          # stopped, kept
            assert c.is_defined() and not c.is_running()
    finally:
        with liblxc.Container(name, lxcpath) as c:
            if c.is_running():
                c.stop()
            if c.is_defined():
                c.destroy()


def test_cancelled_spawn_leaves_no_container(lxcpath: str, run: Callable[..., Any]) -> None:
    async def main() -> None:
        cancelled = asyncio.Event()
        release = asyncio.Event()

        async def owner() -> None:
            try:
                await aio.spawn(path=lxcpath)
            except asyncio.CancelledError:
                cancelled.set()
                await release.wait()  # the task lives on: its cancelled spawn must not
                return
            raise AssertionError("the spawn was not cancelled")

        task = asyncio.create_task(owner())
        await poll(lambda: ours(lxcpath), what="the spawn to be under way")
        task.cancel()
        await cancelled.wait()
        # The boot finishes in its thread, and its container is then exited.
        await poll(lambda: not ours(lxcpath), 20, what="the half-made container to go")
        assert not task.done()
        release.set()
        await task

    run(main())


def test_cancelled_owner_task_applies_the_policy(lxcpath: str) -> None:
    async def main() -> None:
        started = asyncio.Event()
        refs: list[aio.ContainerRef] = []

        async def owner() -> None:
            ref = await aio.spawn(path=lxcpath)
            refs.append(ref)
            started.set()
            async for _ in ref:  # consumes until cancelled
                pass

        task = asyncio.create_task(owner())
        await started.wait()
        task.cancel()
        await poll(lambda: not refs[0].alive, what="the policy")
        assert refs[0].name not in liblxc.list_all_containers(lxcpath)

    asyncio.run(main())


REFERENCE_TICKER = """
import select, sys, time
period, worst = 0.010, 0.0
print("ready", flush=True)
due = time.monotonic()
while True:
    due += period
    if select.select([sys.stdin], [], [], max(0.0, due - time.monotonic()))[0]:
        break
    now = time.monotonic()
    worst, due = max(worst, now - due), max(due, now - period)
print(worst)
"""


async def ticker(late: list[float], stop: asyncio.Event, period: float = 0.010) -> None:
    """Wake every *period* seconds until *stop*; record how late each wakeup was."""
    loop = asyncio.get_running_loop()
    due = loop.time()
    while not stop.is_set():
        due += period
        await asyncio.sleep(max(0.0, due - loop.time()))
        now = loop.time()
        late.append(now - due)
        due = max(due, now - period)  # each wakeup measured on its own, not accumulated


def test_loop_stays_responsive_while_20_containers_spawn_and_stream(
        lxcpath: str, run: Callable[..., Any]) -> None:
    lines = 20000  # ~110 KB of console output per container, all consumed

    async def one(i: int) -> bytes:
        async with aio.spawn(path=lxcpath) as ref:
            await aio.send(ref, f"\nseq 1 {lines}; echo END-$(({i}*7))\n")
            return await console_until(ref, f"END-{i * 7}".encode(), 120)

    async def main() -> tuple[float, list[bytes], list[float]]:
        # The same ticker in a process of its own, meanwhile: the machine's
        # scheduling noise (a loaded 2-core box), which no loop escapes.
        reference = await asyncio.create_subprocess_exec(
            sys.executable, "-c", REFERENCE_TICKER, stdin=PIPE, stdout=PIPE)
        assert reference.stdin is not None and reference.stdout is not None
        assert await reference.stdout.readline() == b"ready\n"
        late: list[float] = []
        stop = asyncio.Event()
        busy = asyncio.create_task(ticker(late, stop))
        async with asyncio.TaskGroup() as tg:
            jobs = [tg.create_task(one(i)) for i in range(20)]
        stop.set()
        await busy
        reference.stdin.close()
        noise = float(await reference.stdout.read())
        assert await reference.wait() == 0
        return noise, [j.result() for j in jobs], late

    # The suite's own heap (hundreds of tests before this one) is frozen out
    # of the collector meanwhile: a full collection over it holds the GIL
    # for as long as the bound, and is not the loop's or lxactors' doing.
    gc.collect()
    gc.freeze()
    try:
        noise, outputs, late = run(main())
    finally:
        gc.unfreeze()
    # Counted here, not on the loop: 20 regex scans of 110 KB would be the
    # test's own blocking (several ms each, back to back when tasks end together).
    counts = [len(re.findall(rb"^\d+\r?$", out, re.M)) for out in outputs]
    assert all(c >= lines for c in counts), counts
    assert len(late) > 20
    # A spawn run on the loop would hold it for 20 spawns in a row (> 300 ms).
    # Below that, the loop's thread waits for the GIL among 20 streams' threads
    # on two CPUs: 109 ms once, with 42 ms of noise in a process of its own.
    assert max(late) < 0.100 + noise, (
        f"ticker late by {max(late) * 1000:.1f} ms (of {len(late)} ticks; "
        f"{noise * 1000:.1f} ms in a process of its own)")
    assert not ours(lxcpath)


def test_bad_input(lxcpath: str) -> None:
    async def main() -> None:
        with pytest.raises(TypeError, match="owner"):
            aio.spawn(owner=3)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="no_such_option"):
            await aio.spawn(path=lxcpath, no_such_option=1)
        with pytest.raises(TypeError, match="ContainerRef"):
            await aio.exit("lxa-x")  # type: ignore[arg-type]
        ref = await aio.spawn(path=lxcpath)
        try:
            with pytest.raises(TypeError, match="bytes or str"):
                await aio.send(ref, 3)  # type: ignore[arg-type]
            with pytest.raises(ValueError, match="timeout"):
                await aio.send(ref, "x", timeout=-1)
            with pytest.raises(ValueError, match="reason"):
                await aio.exit(ref, "later")
            with pytest.raises(AttributeError):
                await aio.container(ref).no_such_method()
            # The console's first bytes (the prompt) may already be in: read
            # what waits; once none does, receive(0) says so at once.
            for _ in range(200):
                try:
                    await ref.receive(0)
                except TimeoutError:
                    break
            else:
                raise AssertionError("receive(0) never raised TimeoutError on an empty inbox")
            assert ref.alive
        finally:
            await aio.exit(ref, "kill")

    asyncio.run(main())


def test_owner_of_another_loop_is_refused(lxcpath: str) -> None:
    other = asyncio.new_event_loop()
    try:
        stranger = other.create_task(asyncio.sleep(0))

        async def main() -> None:
            with pytest.raises(ValueError, match="another event loop"):
                await aio.spawn(path=lxcpath, owner=stranger)

        asyncio.run(main())
        other.run_until_complete(stranger)
    finally:
        other.close()
