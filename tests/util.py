"""Helpers for tests of the high-level API."""

from __future__ import annotations

import queue
import time
from collections.abc import Callable

import lxactors
from lxactors import liblxc


def wait_for(predicate: Callable[[], object], timeout: float = 15.0, what: str = "condition",
             interval: float = 0.02) -> object:
    """Poll *predicate* until it returns something truthy; fail after *timeout* s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def read_console_until(ref: lxactors.ContainerRef, needle: bytes, timeout: float = 10.0) -> bytes:
    """Console bytes from a plain-code owner's messages until *needle* shows up."""
    deadline = time.monotonic() + timeout
    buf = b""
    while needle not in buf:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"{needle!r} not seen within {timeout} s; got {buf[-500:]!r}")
        try:
            msg = ref.receive(timeout=remaining)
        except queue.Empty:
            continue
        if isinstance(msg, lxactors.ConsoleOutput):
            buf += msg.data
    return buf


def remove_container(name: str, lxcpath: str) -> None:
    """Teardown: stop and destroy *name* if it is still there (gone already is fine)."""
    try:
        with liblxc.Container(name, lxcpath) as c:
            if c.is_running():
                c.stop()
            if c.is_defined():
                c.destroy()
    except lxactors.LxcError:
        pass
