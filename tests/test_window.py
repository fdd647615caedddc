"""The flow-control window (console and imc output), without containers or root."""

from __future__ import annotations

import threading

import pytest

import lxactors
from lxactors import ConsoleOutput, FlowWindow, Mailbox


def _out(n: int) -> ConsoleOutput:
    return ConsoleOutput("c", b"x" * n)


def test_bytes_stay_in_flight_until_the_owner_takes_them() -> None:
    opened: list[int] = []
    window = FlowWindow(10, on_open=lambda: opened.append(window.inflight))
    box = Mailbox()
    assert window.deliver(box, _out(6), 6) and window.room == 4
    assert window.deliver(box, _out(6), 6)  # one message may overshoot
    assert (window.inflight, window.room) == (12, 0)
    assert box.get(0).data == b"x" * 6  # taken: released
    assert (window.inflight, window.room, opened) == (6, 4, [6])
    box.get(0)
    assert (window.inflight, opened) == (0, [6])  # it was not full: no second open


def test_a_gone_owner_releases_at_once() -> None:
    window = FlowWindow(10)
    box = Mailbox()
    box.close()
    assert not window.deliver(box, _out(8), 8)
    assert window.inflight == 0


def test_wait_room_blocks_until_a_release_or_stop() -> None:
    window = FlowWindow(4)
    box = Mailbox()
    window.deliver(box, _out(4), 4)
    assert window.wait_room(lambda: True) is False  # full, and told to stop
    stop = threading.Event()
    result: list[bool] = []
    waiter = threading.Thread(target=lambda: result.append(window.wait_room(stop.is_set, 30)))
    waiter.start()
    waiter.join(0.2)
    assert waiter.is_alive()  # full: it waits
    box.get(0)
    waiter.join(10)
    assert result == [True]

    window.deliver(box, _out(4), 4)
    waiter = threading.Thread(target=lambda: result.append(window.wait_room(stop.is_set, 30)))
    waiter.start()
    stop.set()
    window.wake()  # asked again now, not after the 30 s poll
    waiter.join(10)
    assert result == [True, False]


def test_bad_size() -> None:
    for bad in (0, -1, True, 1.5, "64k"):
        with pytest.raises(ValueError):
            FlowWindow(bad)  # type: ignore[arg-type]


def test_the_console_and_imc_share_it() -> None:
    from lxactors._console import DEFAULT_WINDOW
    from lxactors.apps import imc

    assert FlowWindow.DEFAULT_SIZE == DEFAULT_WINDOW == imc.DEFAULT_WINDOW
    assert lxactors.FlowWindow is FlowWindow
