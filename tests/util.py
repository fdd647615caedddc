"""Helpers for tests of the high-level API."""

from __future__ import annotations

import queue
import time

import lxactors


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
