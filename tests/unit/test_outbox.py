"""The cluster agent's outbox: order, merged console bytes, window released on take, close."""

from __future__ import annotations

import threading
import time

import pytest

import lxactors

pytest.importorskip("ray")
from lxactors.cluster._outbox import Outbox

C = "c1"


def out(data: bytes) -> lxactors.ConsoleOutput:
    return lxactors.ConsoleOutput(C, data)


def test_order_kept_console_runs_merged() -> None:
    box = Outbox(trigger=1 << 20, bulk=1 << 20, linger=0.0)
    exited = lxactors.ContainerExited(C, "normal", 0)
    for m in (out(b"a"), out(b"b"), exited, out(b"c"), out(b"d")):
        assert box.deliver(m)
    assert box.take(0) == [out(b"ab"), exited, out(b"cd")]
    assert box.take(0) == []


def test_done_called_only_when_taken() -> None:
    """Flow control: the container's window is released when the stream takes the bytes."""
    box = Outbox(trigger=1 << 20, bulk=1 << 20, linger=0.0)
    released: list[int] = []
    for i in range(3):
        box.deliver(out(b"x" * 10), lambda i=i: released.append(i))  # type: ignore[misc]
    assert released == []
    assert box.take(0) == [out(b"x" * 30)]
    assert released == [0, 1, 2]


def test_bulk_lingers_until_trigger_then_wakes() -> None:
    box = Outbox(trigger=8192, bulk=4096, linger=30.0)
    box.deliver(out(b"x" * 4096))
    got: list[list[lxactors.Message]] = []
    taker = threading.Thread(target=lambda: got.append(box.take(30.0)))
    taker.start()
    box.deliver(out(b"y" * 4096))  # reaches the trigger: the lingering take returns now
    taker.join(10.0)
    assert not taker.is_alive()
    assert got == [[out(b"x" * 4096 + b"y" * 4096)]]


def test_small_output_is_not_held_back() -> None:
    box = Outbox(trigger=8192, bulk=4096, linger=30.0)
    box.deliver(out(b"$ "))
    t0 = time.monotonic()
    assert box.take(30.0) == [out(b"$ ")]
    assert time.monotonic() - t0 < 5.0


def test_close_releases_and_refuses() -> None:
    box = Outbox(trigger=1 << 20, bulk=1 << 20, linger=0.0)
    released: list[str] = []
    box.deliver(out(b"x"), lambda: released.append("held"))
    box.close()
    assert released == ["held"] and not box.alive()
    assert not box.deliver(out(b"y"), lambda: released.append("late"))
    assert released == ["held", "late"]
    assert box.take(0) == []
