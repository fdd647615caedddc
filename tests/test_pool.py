"""lxactors.Pool on real containers: hand-over, refill, teardown, owner death."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from typing import Any

import pykka
import pytest

import lxactors
from lxactors import liblxc
from tests.util import read_console_until, wait_for

MARKER = b"boot-marker-42"
#: The tty1 shell is a login shell: it prints this while the container boots.
BOOT_PROFILE = {"file": [("etc/profile", "echo boot-marker-$((40+2))\n")]}


def _names(pool: lxactors.Pool) -> list[str]:
    with pool._lock:
        return [ref.name for ref, _ in pool._ready]


def _defined(lxcpath: str) -> set[str]:
    return {n for n in liblxc.list_all_containers(lxcpath) if n.startswith("lxa-")}


@pytest.fixture
def pool(lxcpath: str) -> Any:
    made: list[lxactors.Pool] = []

    def make(size: int, **options: Any) -> lxactors.Pool:
        p = lxactors.Pool(size, path=lxcpath, **options)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()


def test_hand_over_gives_a_fresh_console_to_the_new_owner(pool: Any) -> None:
    p = pool(1, chroot=BOOT_PROFILE)
    wait_for(lambda: p.ready == 1, what="the pool to fill")
    wait_for(lambda: MARKER in p._ready[0][1].boot, what="the boot output")
    ref = p.spawn()
    try:
        assert isinstance(ref.owner, lxactors.Mailbox) and ref.alive
        lxactors.send(ref, "echo probe-$((1+1))\n")
        seen = read_console_until(ref, b"probe-2")
        assert MARKER not in seen  # the boot's output stayed with the pool
        assert b"/ # " in seen  # the shell's prompt
    finally:
        lxactors.exit(ref, "kill")


def test_boot_log_on_request(pool: Any, lxcpath: str) -> None:
    p = pool(1, chroot=BOOT_PROFILE)
    wait_for(lambda: p.ready == 1 and MARKER in p._ready[0][1].boot, what="a booted container")
    ref = lxactors.spawn(pool=p, boot_log=True)
    try:
        first = ref.receive(10)
        assert isinstance(first, lxactors.ConsoleOutput) and MARKER in first.data
        assert ref.path == lxcpath
    finally:
        lxactors.exit(ref, "kill")


def test_refills_after_a_hand_over_and_cold_spawns_when_empty(pool: Any) -> None:
    p = pool(2)
    wait_for(lambda: p.ready == 2, what="the pool to fill")
    before = set(_names(p))
    ref = p.spawn()
    assert ref.name in before
    wait_for(lambda: p.ready == 2, what="the refill")
    assert ref.name not in _names(p)
    lxactors.exit(ref, "kill")
    empty = pool(0)
    cold = empty.spawn()  # nothing ready: a cold spawn with the pool's options
    assert cold.alive and lxactors.type(cold) == "temporary"
    lxactors.exit(cold, "kill")


def test_concurrent_spawns_never_get_the_same_container(pool: Any) -> None:
    p = pool(4, refill=2)
    wait_for(lambda: p.ready == 4, timeout=30, what="the pool to fill")
    refs: list[lxactors.ContainerRef] = []
    lock = threading.Lock()
    go = threading.Barrier(8)

    def taker() -> None:
        go.wait()
        ref = p.spawn(owner=mailbox)
        with lock:
            refs.append(ref)

    mailbox = lxactors.Mailbox()
    threads = [threading.Thread(target=taker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        assert len(refs) == 8
        assert len({r.name for r in refs}) == 8
        assert all(r.alive and r.owner is mailbox for r in refs)
        assert not {r.name for r in refs} & set(_names(p))
    finally:
        for r in refs:
            lxactors.exit(r, "kill")


def test_closing_the_pool_leaves_nothing_and_spares_handed_containers(pool: Any,
                                                                      lxcpath: str) -> None:
    p = pool(3)
    wait_for(lambda: p.ready == 3, timeout=30, what="the pool to fill")
    ref = p.spawn()
    held = set(_names(p))
    p.close()
    assert p.ready == 0 and not held & _defined(lxcpath)
    assert ref.alive and lxactors.type(ref) == "temporary"  # the owner's now, not the pool's
    with pytest.raises(lxactors.LxcError, match="closed"):
        p.spawn()
    lxactors.exit(ref, "kill")
    assert not _defined(lxcpath)


def test_options_that_cannot_apply_to_a_running_container_are_refused(pool: Any) -> None:
    p = pool(0)
    with pytest.raises(ValueError, match="cannot apply to a running container"):
        lxactors.spawn(pool=p, config=[("lxc.environment", "A=1")])
    with pytest.raises(ValueError, match="unnamed"):
        lxactors.spawn("named", pool=p)
    with pytest.raises(ValueError, match="temporary"):
        lxactors.Pool(1, type="permanent")
    with pytest.raises(TypeError, match="Pool"):
        lxactors.spawn(pool="nope")
    with pytest.raises(ValueError, match="size"):
        lxactors.Pool(-1)


def test_a_pool_owned_by_an_actor_goes_with_it(lxcpath: str) -> None:
    made: list[lxactors.Pool] = []

    class Keeper(pykka.ThreadingActor):
        def on_start(self) -> None:
            made.append(lxactors.Pool(2, path=lxcpath))

    actor = Keeper.start()
    wait_for(lambda: made and made[0].ready == 2, timeout=30, what="the pool to fill")
    names = set(_names(made[0]))
    actor.stop()
    wait_for(lambda: not names & _defined(lxcpath), what="the pooled containers to go")
    made[0].close()


def test_a_pool_owned_by_a_thread_goes_with_it(lxcpath: str) -> None:
    made: list[lxactors.Pool] = []
    done = threading.Event()

    def owner() -> None:
        made.append(lxactors.Pool(2, path=lxcpath))
        wait_for(lambda: made[0].ready == 2, timeout=30, what="the pool to fill")
        done.set()

    t = threading.Thread(target=owner)
    t.start()
    t.join(60)
    assert done.is_set()
    names = set(_names(made[0]))
    assert len(names) == 2
    wait_for(lambda: not names & _defined(lxcpath), what="the pooled containers to go")
    made[0].close()


OWNER = r"""
import sys, threading, time, lxactors
path, end = sys.argv[1], sys.argv[2]
pool = lxactors.Pool(2, path=path)
deadline = time.monotonic() + 60
while pool.ready < 2 and time.monotonic() < deadline:
    time.sleep(0.02)
handed = pool.spawn()
while pool.ready < 2 and time.monotonic() < deadline:
    time.sleep(0.02)
with pool._lock:
    names = [r.name for r, _ in pool._ready]
print("ready", handed.name, *names, flush=True)
if end == "wait":
    threading.Event().wait()
"""


@pytest.mark.parametrize("end", ["exit", "wait"], ids=["interpreter exit", "SIGKILL"])
def test_pooled_and_handed_containers_go_with_the_process(lxcpath: str, end: str) -> None:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.Popen([sys.executable, "-c", OWNER, lxcpath, end], stdout=subprocess.PIPE,
                            text=True, cwd=root, env={**os.environ, "PYTHONPATH": root})
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().split()
        assert line[:1] == ["ready"] and len(line) == 4, line
        names = set(line[1:])
        if end == "wait":
            assert names <= _defined(lxcpath)
            proc.send_signal(signal.SIGKILL)
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    wait_for(lambda: not names & _defined(lxcpath), timeout=30, what="the helper's cleanup")


def test_a_factory_makes_the_pools_containers_and_its_cold_spawns(lxcpath: str) -> None:
    made: list[str] = []

    def factory(owner: Any) -> lxactors.ContainerRef:
        name = f"pf{os.getpid()}-{len(made)}"
        made.append(name)
        return lxactors.spawn(name, path=lxcpath, owner=owner, type="temporary",
                              create={"template": "busybox"}, userns=False)

    with lxactors.Pool(1, factory=factory) as p:
        wait_for(lambda: p.ready == 1, timeout=120, what="the factory's container")
        first = made[0]
        ref = p.spawn()
        assert ref.name == first and lxactors.container(ref).is_running()
        lxactors.exit(ref, "kill")
        p.close()  # the refill's container goes with the pool
        cold = p._make(lxactors.Mailbox())  # the cold path spawns through the factory too
        assert cold.name == made[-1]
        lxactors.exit(cold, "kill")
    assert not set(made) & set(liblxc.list_all_containers(lxcpath))


def test_a_factory_must_spawn_temporary_containers_for_its_owner(lxcpath: str) -> None:
    def transient(owner: Any) -> lxactors.ContainerRef:
        return lxactors.spawn(f"pt{os.getpid()}", path=lxcpath, owner=owner, type="transient",
                              create={"template": "busybox"}, userns=False)

    p = lxactors.Pool(0, factory=transient)
    with pytest.raises(ValueError, match="temporary"):
        p._make(lxactors.Mailbox())
    p.close()
    with liblxc.Container(f"pt{os.getpid()}", lxcpath) as c:
        if c.is_defined():
            c.destroy()
    with pytest.raises(ValueError, match="either"):
        lxactors.Pool(1, factory=transient, path=lxcpath)
    with pytest.raises(TypeError, match="callable"):
        lxactors.Pool(1, factory=42)  # type: ignore[arg-type]


def test_hand_over_with_a_window_sets_the_flow_window_not_only_the_read_size(pool: Any) -> None:
    window = 256 * 1024  # four times the pooled container's own (the default, 64 KiB)
    p = pool(1)
    wait_for(lambda: p.ready == 1, what="the pool to fill")
    ref = p.spawn(window=window)
    try:
        con = lxactors.console(ref)
        assert con.window == window
        lxactors.send(ref, "head -c 1000000 /dev/zero | tr '\\0' x; echo; echo END-$((6*7))\n")
        # Nothing taken: the console stops at the new window (a 64 KiB one would stop at 64-80 KiB).
        wait_for(lambda: con.inflight >= window - 16 * 1024, timeout=20, what="the new window full")
        assert con.inflight <= window + 64 * 1024
        assert b"END-42" in read_console_until(ref, b"END-42", timeout=60)
    finally:
        lxactors.exit(ref, "kill")
