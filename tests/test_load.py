"""Load: 200 containers at once from 20 owner actors; spawn/exit cycles with nothing leaked.

Both are slow (``-m slow``).  The number of cycles is LXACTORS_CYCLES (default
1000); see docs/RELIABILITY.md for the figures measured here.
"""

from __future__ import annotations

import logging
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import Any

import pykka
import pytest

import lxactors
from lxactors import _errlog, liblxc
from lxactors._helperclient import helper
from tests import leaks
from tests.util import made_bridge, remove_container, seconds_until, status_field, wait_for

pytestmark = pytest.mark.slow

OWNERS = 20
PER_OWNER = 10
CYCLES = int(os.environ.get("LXACTORS_CYCLES", "1000"))
#: ptys one running container of the base holds (measured: 2, its console and tty1; 3 for margin).
PTYS_PER_CONTAINER = 3


def pty_headroom() -> int:
    """ptys containers can still get: their devpts instances share max - reserve."""
    def read(name: str) -> int:
        with open(f"/proc/sys/kernel/pty/{name}") as f:
            return int(f.read())
    return read("max") - read("reserve") - read("nr")


# --------------------------------------------------------------------------- 200 at once


class Owner(pykka.ThreadingActor):
    """Spawns PER_OWNER containers (alternately temporary and transient), asks each
    console a question and records when every answer is back."""

    def __init__(self, index: int, path: str) -> None:
        super().__init__()
        self.index = index
        self.path = path
        self.refs: list[lxactors.ContainerRef] = []
        self.buffers: dict[str, bytes] = {}
        self.expected: dict[str, bytes] = {}
        self.answered: set[str] = set()

    def spawn_all(self) -> list[tuple[str, str]]:
        for j in range(PER_OWNER):
            type_ = "temporary" if j % 2 == 0 else "transient"
            self.refs.append(lxactors.spawn(path=self.path, type=type_))
        for j, ref in enumerate(self.refs):
            self.buffers[ref.name] = b""
            # The shell computes the answer: the tty's echo of the command does not match it.
            self.expected[ref.name] = f"answer-{self.index * 1000 + j * 7}-{ref.name}".encode()
            lxactors.send(ref, f"\necho answer-$(({self.index}*1000+{j}*7))-{ref.name}\n")
        return [(r.name, lxactors.type(r)) for r in self.refs]

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, lxactors.ConsoleOutput):
            buf = self.buffers.get(message.container, b"") + message.data
            self.buffers[message.container] = buf[-4096:]
            if self.expected.get(message.container, b"-") in buf:
                self.answered.add(message.container)
        return None

    def count_answered(self) -> int:
        return len(self.answered)


def test_200_containers_from_20_owner_actors(lxcpath: str, caplog: pytest.LogCaptureFixture) -> None:
    total = OWNERS * PER_OWNER
    need = total * PTYS_PER_CONTAINER
    assert pty_headroom() >= need, (
        f"the host's pty pool is nearly used up by other processes ({pty_headroom()} left, "
        f"{need} needed): see /proc/sys/kernel/pty/nr")
    owners = [Owner.start(i, lxcpath) for i in range(OWNERS)]
    names: list[tuple[str, str]] = []
    try:
        t0 = time.monotonic()
        futures = [o.proxy().spawn_all() for o in owners]
        for f in futures:
            names += f.get(timeout=600)
        spawned = time.monotonic() - t0
        assert len(names) == total
        active = set(liblxc.list_active_containers(lxcpath))
        assert {n for n, _ in names} <= active
        answered = seconds_until(lambda: sum(o.proxy().count_answered().get() for o in owners) == total,
                                 60, "every console to answer")
        # Every owner stops: temporary ones are deleted, transient ones stopped.
        t1 = time.monotonic()
        for o in owners:
            o.stop(block=False)
        temporary = {n for n, t in names if t == "temporary"}
        transient = {n for n, t in names if t == "transient"}
        assert len(temporary) == len(transient) == total // 2

        def settled() -> bool:
            defined = set(liblxc.list_defined_containers(lxcpath))
            running = set(liblxc.list_active_containers(lxcpath))
            return (not (temporary & (defined | set(os.listdir(lxcpath))))
                    and transient <= defined and not (transient & running))

        cleaned = seconds_until(settled, 10, "temporary containers gone and transient ones stopped")
        wait_for(lambda: not any(o.is_alive() for o in owners), 10, "the owners to stop")
        errors = [r for r in caplog.records if r.name.startswith("lxactors") and r.levelno >= logging.ERROR]
        assert not errors, [r.getMessage() for r in errors]
        print(f"\n200 containers: spawned in {spawned:.1f} s, answered after {answered:.1f} s, "
              f"owners' policies applied {cleaned:.1f} s after their stop "
              f"({time.monotonic() - t1:.1f} s)")
    finally:
        for o in owners:
            if o.is_alive():
                o.stop()
        for name, _ in names:
            remove_container(name, lxcpath)


# --------------------------------------------------------------------------- cycles


@dataclass(frozen=True)
class Counts:
    fds: int
    threads: int
    tasks: int
    mounts: int
    monitors: int
    cgroups: int
    veths: int
    lxcpath: int
    logs: int
    helper_fds: int
    helper_children: int


def children_of(pid: int) -> int:
    """The helper's workers: its children but its launcher (a C process, for good)."""
    n = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="utf-8") as f:
                    comm, rest = f.read().rsplit(")", 1)
                    if int(rest.split()[1]) == pid and not comm.endswith("(lxa-launcher"):
                        n += 1
            except (FileNotFoundError, ProcessLookupError):
                continue
    return n


def our_links(prefix: str, bridge: str) -> int:
    """Host links that are ours: veth ends named PREFIX*, or anything on our bridge."""
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    return sum(1 for line in out.splitlines()
               if line.split(":")[1].strip().split("@")[0].startswith(prefix)
               or f" master {bridge} " in line)


def our_cgroups(names: set[str]) -> int:
    """lxc.monitor.NAME[-N] / lxc.payload.NAME[-N] directories of our containers, empty or
    not, in any hierarchy (only ours: the host runs other containers)."""
    n = 0
    for hierarchy in os.listdir(leaks.CGROUP_ROOT):
        d = os.path.join(leaks.CGROUP_ROOT, hierarchy)
        if not os.path.isdir(d):
            continue
        for entry in os.listdir(d):
            for kind in ("lxc.monitor.", "lxc.payload."):
                if entry.startswith(kind):
                    rest = entry[len(kind):]
                    base, _, suffix = rest.rpartition("-")
                    n += rest in names or (suffix.isdigit() and base in names)
    return n


def count(lxcpath: str, names: set[str], prefix: str, bridge: str) -> Counts:
    hpid = helper().pid
    assert hpid is not None
    return Counts(
        fds=len(os.listdir("/proc/self/fd")),
        threads=threading.active_count(),
        tasks=len(os.listdir("/proc/self/task")),
        mounts=len(leaks._mounts(lxcpath)),
        monitors=len(leaks.monitor_pids(lxcpath)),
        cgroups=our_cgroups(names),
        veths=our_links(prefix, bridge),
        lxcpath=len(os.listdir(lxcpath)),
        logs=len(os.listdir(_errlog.log_dir())),
        helper_fds=len(os.listdir(f"/proc/{hpid}/fd")),
        helper_children=children_of(hpid),
    )


def rss_kib() -> int:
    return int(status_field("self", "VmRSS").split()[0])


@pytest.fixture
def bridge() -> Iterator[str]:
    with made_bridge("lxh7br") as name:
        yield name


def test_spawn_exit_cycles_leak_nothing(lxcpath: str, bridge: str) -> None:
    """CYCLES spawn/exit cycles (1 in 10 with a veth on a bridge, 1 in 100 halted with
    "normal"): afterwards the same fds, threads, mounts, monitors, cgroups, veths,
    directories, log files, helper fds and helper workers as before."""
    prefix = f"lxh7v{os.getpid() % 1000}x"
    names: set[str] = set()

    def cycle(i: int) -> None:
        options: dict[str, Any] = {"path": lxcpath}
        if i % 10 == 3:
            options["config"] = [("lxc.net.0.type", "veth"), ("lxc.net.0.link", bridge),
                                 ("lxc.net.0.flags", "up"),
                                 ("lxc.net.0.veth.pair", f"{prefix}{i}")]
        ref = lxactors.spawn(**options)
        names.add(ref.name)
        if i % 10 == 3:
            assert our_links(prefix, bridge) >= 1
        exited = lxactors.exit(ref, "normal" if i % 100 == 7 else "kill", timeout=10)
        assert exited is not None, ref
        assert not ref.alive

    for i in range(5):  # warm up: the console thread, supervisor, per-process log directory
        cycle(i)
    wait_for(lambda: not leaks.monitor_pids(lxcpath) and not our_cgroups(names)
             and not children_of(helper().pid or 0), 10,
             "the warm-up containers' monitors and helper workers to go")
    before = count(lxcpath, names, prefix, bridge)
    rss_before = rss_kib()
    t0 = time.monotonic()
    for i in range(CYCLES):
        cycle(i)
    elapsed = time.monotonic() - t0

    def same() -> bool:
        return count(lxcpath, names, prefix, bridge) == before

    try:
        wait_for(same, 10, "the counts to come back")
    except AssertionError:
        after = count(lxcpath, names, prefix, bridge)
        diff = {f.name: (getattr(before, f.name), getattr(after, f.name)) for f in fields(Counts)
                if getattr(before, f.name) != getattr(after, f.name)}
        raise AssertionError(f"after {CYCLES} cycles, (before, after): {diff}") from None
    grown = rss_kib() - rss_before
    print(f"\n{CYCLES} spawn/exit cycles in {elapsed:.1f} s ({elapsed / CYCLES * 1000:.0f} ms each); "
          f"RSS {rss_before} -> {rss_kib()} KiB; counts {before}")
    assert grown < 64 * 1024, f"RSS grew by {grown} KiB over {CYCLES} cycles"
    assert not set(liblxc.list_all_containers(lxcpath)) & names
