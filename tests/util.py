"""What the test modules share: waiting, names, /proc readers, teardown helpers."""

from __future__ import annotations

import itertools
import os
import queue
import subprocess
import threading
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


def seconds_until(predicate: Callable[[], object], timeout: float, what: str) -> float:
    """wait_for *predicate*; return the seconds it took (for tests that measure)."""
    t0 = time.monotonic()
    wait_for(predicate, timeout, what)
    return time.monotonic() - t0


_counter = itertools.count()
_counter_lock = threading.Lock()


def unique_name(prefix: str = "t") -> str:
    """A container name no other test (or test process) uses: PREFIX<pid>-<n>."""
    with _counter_lock:
        return f"{prefix}{os.getpid()}-{next(_counter)}"


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


def pid_gone(pid: int) -> bool:
    """True once *pid* has exited (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError):
        return True


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
