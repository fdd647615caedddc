"""Console flow control: a slow owner, a bounded window, every byte in order."""

from __future__ import annotations

import re
import threading
import time
from typing import Any

import pykka

import lxactors
from tests.util import read_console_until, status_field


def _rss_kib() -> int:
    return int(status_field("self", "VmRSS").split()[0])


class SlowOwner(pykka.ThreadingActor):
    """Takes 2 ms per message: far slower than `yes` writes."""

    def __init__(self) -> None:
        super().__init__()
        self.chunks: list[bytes] = []
        self.max_inflight = 0
        self.console: lxactors.Console | None = None

    def on_receive(self, message: Any) -> None:
        if isinstance(message, lxactors.ConsoleOutput):
            if self.console is not None:
                self.max_inflight = max(self.max_inflight, self.console.inflight)
            self.chunks.append(message.data)
            time.sleep(0.002)

    def set_console(self, console: lxactors.Console) -> None:
        self.console = console

    def result(self) -> tuple[bytes, int]:
        return b"".join(self.chunks), self.max_inflight


def test_slow_owner_under_yes_keeps_memory_bounded_and_loses_nothing(spawn: Any) -> None:
    owner = SlowOwner.start()
    proxy = owner.proxy()
    window = 16 * 1024
    try:
        ref = spawn(owner=owner, window=window)
        con = lxactors.console(ref)
        proxy.set_console(con).get()
        # Activate the console, then flood it for 10 s, then a marker.
        lxactors.send(ref, "\nstty -echo; timeout 10 yes; echo Y-DONE-$((6*7))\n")
        rss0 = _rss_kib()
        peak = rss0
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            data, max_inflight = proxy.result().get()
            peak = max(peak, _rss_kib())
            assert con.inflight <= window
            if b"Y-DONE-42" in data:
                break
            time.sleep(0.2)
        data, max_inflight = proxy.result().get()
        assert b"Y-DONE-42" in data, "the flood did not finish"
        assert (peak - rss0) < 50 * 1024, f"RSS grew by {(peak - rss0) // 1024} MiB"
        assert max_inflight <= window
        # Every byte in order: after the echoed command line, only "y\r\n"
        # (the last one possibly cut by the kill), then the marker.
        echoed = b"Y-DONE-$((6*7))\r\n"
        end = data.index(b"Y-DONE-42")
        flood = data[data.rindex(echoed, 0, end) + len(echoed): end]
        assert re.fullmatch(rb"(y\r\n)+(y\r?(\r\n)?)?(Terminated\r\n)?", flood), \
            "a byte was lost or reordered"
        assert len(flood) > 10_000, f"only {len(flood)} bytes of yes"
    finally:
        owner.stop()


def test_numbered_stream_arrives_complete_through_a_small_window(spawn: Any) -> None:
    ref = spawn(window=1024)
    lxactors.send(ref, "\nstty -echo; seq 1 50000; echo SEQ-$((1+1))-DONE\n")
    out = read_console_until(ref, b"SEQ-2-DONE", timeout=60)
    nums = [int(n) for n in re.findall(rb"(?m)^(\d+)\r$", out)]
    assert nums == list(range(1, 50001))


def test_one_console_thread_serves_every_console(spawn: Any) -> None:
    refs = [spawn() for _ in range(4)]
    for i, ref in enumerate(refs):
        lxactors.send(ref, f"\necho n-$(({i}+100))\n")
    for i, ref in enumerate(refs):
        read_console_until(ref, f"n-{i + 100}".encode())
    names = [t.name for t in threading.enumerate() if t.name.startswith("lxactors-console")]
    assert names == ["lxactors-console"]


def test_send_blocks_rather_than_buffering_without_bound(spawn: Any) -> None:
    # tty 1 is open but nobody reads it: its pty fills, then our buffer,
    # then send() blocks.
    init = "exec 3<>/dev/tty1; stty -icanon -echo <&3; while :; do sleep 3600; done"
    ref = spawn(window=4096, console=1, start={"argv": ["/bin/sh", "-c", init]})
    con = lxactors.console(ref)
    # Nobody reads the console's input: the pty buffer fills, then our buffer.
    try:
        for _ in range(1000):
            con.send(b"x" * 1024, timeout=0.5)
    except lxactors.LxcTimeoutError:
        pass
    else:
        raise AssertionError("send never blocked")
