"""Helpers for tests of the high-level API."""

from __future__ import annotations

import os
import queue
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

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


def status_field(pid: int | str, field: str) -> str:
    """One field of /proc/PID/status (PID may be "self"), without its name."""
    with open(f"/proc/{pid}/status", encoding="utf-8") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key == field:
                return value.strip()
    raise KeyError(field)


def host_uid(pid: int) -> int:
    """The real uid of *pid* as the host sees it (from /proc/PID/status)."""
    uids = status_field(pid, "Uid")
    real, effective, saved, fs = (int(x) for x in uids.split())
    assert real == effective == saved == fs, uids
    return real


def pids_in_pidns_of(pid: int) -> list[int]:
    """The host pids of every process in *pid*'s pid namespace."""
    ns = os.readlink(f"/proc/{pid}/ns/pid")
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink(f"/proc/{entry}/ns/pid") == ns:
                    found.append(int(entry))
            except OSError:
                pass  # gone meanwhile
    return found


@contextmanager
def made_bridge(prefix: str, address: str | None = None) -> Iterator[str]:
    """A Linux bridge made for the test (``PREFIX<pid>``), up, with *address*; deleted after."""
    name = f"{prefix}{os.getpid() % 10000}"
    subprocess.run(["ip", "link", "add", name, "type", "bridge"], check=True)
    try:
        if address is not None:
            subprocess.run(["ip", "addr", "add", address, "dev", name], check=True)
        subprocess.run(["ip", "link", "set", name, "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "link", "del", name], check=False)
