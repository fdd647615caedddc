"""Owner-death policies, restarts with intensity, adoption: the whole matrix."""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pykka
import pytest

import lxactors
from lxactors import liblxc
from tests.util import wait_for

TYPES = ("temporary", "transient", "permanent")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _status(path: str, name: str) -> tuple[bool, str]:
    """(defined, state) of a container, read with a fresh handle."""
    try:
        with liblxc.Container(name, path) as c:
            return c.is_defined(), c.state()
    except lxactors.LxcError:
        return False, "being destroyed"  # its config vanished while opening


def _expect(path: str, name: str, type_: str, timeout: float = 2.0) -> None:
    """Within *timeout* s the container reaches what *type_*'s owner-death policy says."""
    want = {"temporary": (False, "STOPPED"), "transient": (True, "STOPPED"),
            "permanent": (True, "RUNNING")}[type_]
    deadline = time.monotonic() + timeout
    while True:
        got = _status(path, name)
        if got == want:
            break
        if time.monotonic() > deadline:
            raise AssertionError(f"{type_}: expected {want}, got {got} after {timeout} s")
        time.sleep(0.02)
    rootfs = os.path.join(path, name, "rootfs")
    assert os.path.exists(rootfs) == (type_ != "temporary")
    if type_ == "permanent":
        # It stays up: not merely slow to stop.
        time.sleep(0.3)
        assert _status(path, name) == want


@pytest.fixture
def named(lxcpath: str) -> Iterator[Callable[[str], str]]:
    """Container names for a test; whatever is left of them is removed after."""
    names: list[str] = []

    def make(prefix: str) -> str:
        name = f"{prefix}-{os.getpid()}-{len(names)}"
        names.append(name)
        return name

    yield make
    for name in names:
        with liblxc.Container(name, lxcpath) as c:
            if c.is_running():
                c.stop()
            if c.is_defined():
                c.destroy()


class Spawner(pykka.ThreadingActor):
    """An owner actor: spawns on request, fails on request."""

    def on_receive(self, message: Any) -> Any:
        if message == "fail":
            raise RuntimeError("owner failure (on purpose)")
        _, name, path, type_ = message
        return lxactors.spawn(name, path=path, type=type_)


def _wait_not_alive(ref: lxactors.ContainerRef, timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while ref.alive and time.monotonic() < deadline:
        time.sleep(0.02)


@pytest.mark.parametrize("type_", TYPES)
def test_owner_actor_stopped(type_: str, lxcpath: str, named: Any) -> None:
    name = named("stop")
    owner = Spawner.start()
    ref = owner.ask(("spawn", name, lxcpath, type_))
    assert ref.owner.alive()
    owner.stop()
    _expect(lxcpath, name, type_)
    _wait_not_alive(ref)
    assert not ref.alive


@pytest.mark.parametrize("type_", TYPES)
def test_owner_actor_failed(type_: str, lxcpath: str, named: Any) -> None:
    name = named("fail")
    owner = Spawner.start()
    ref = owner.ask(("spawn", name, lxcpath, type_))
    owner.tell("fail")  # an exception in a tell handler: the actor dies
    _expect(lxcpath, name, type_)
    assert not owner.is_alive()
    _wait_not_alive(ref)


@pytest.mark.parametrize("type_", TYPES)
def test_owner_thread_ended(type_: str, lxcpath: str, named: Any) -> None:
    name = named("thread")
    states: list[str] = []

    def owner() -> None:
        ref = lxactors.spawn(name, path=lxcpath, type=type_)
        # Read while the owner lives: once it ends, the supervisor may act
        # within its next poll (50 ms), before this test looks again.
        states.append(lxactors.container(ref).state())

    t = threading.Thread(target=owner)
    t.start()
    t.join()
    assert states == ["RUNNING"]
    _expect(lxcpath, name, type_)


def _owner_process(path: str, name: str, type_: str, mode: str,
                   new_type: str | None = None, new_session: bool = False) -> subprocess.Popen[str]:
    args = [sys.executable, "-m", "tests.owner_process", path, name, type_, mode]
    if new_type:
        args.append(new_type)
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL, start_new_session=new_session)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("ready"), line
    return proc


@pytest.mark.parametrize("type_", TYPES)
def test_owner_interpreter_exit(type_: str, lxcpath: str, named: Any) -> None:
    name = named("exit")
    proc = _owner_process(lxcpath, name, type_, "exit")
    assert proc.wait(30) == 0
    _expect(lxcpath, name, type_)
    assert not _log_dirs(proc.pid)


@pytest.mark.parametrize("type_", TYPES)
def test_owner_process_sigkilled(type_: str, lxcpath: str, named: Any) -> None:
    name = named("kill9")
    proc = _owner_process(lxcpath, name, type_, "wait")
    assert _status(lxcpath, name)[1] == "RUNNING"
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    _expect(lxcpath, name, type_)
    # Its liblxc log directory (which it could not remove) is removed by its helper.
    wait_for(lambda: not _log_dirs(proc.pid), what=f"log directories of pid {proc.pid} removed")


@pytest.mark.parametrize("type_", TYPES)
def test_owner_process_group_sigkilled(type_: str, lxcpath: str, named: Any) -> None:
    """The owner's whole process group SIGKILLed (as Ray does to a dead worker's): the helper,
    in a session of its own, is not in it and applies the policy."""
    name = named("killpg")
    proc = _owner_process(lxcpath, name, type_, "wait", new_session=True)
    assert _status(lxcpath, name)[1] == "RUNNING"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)
    _expect(lxcpath, name, type_)


def _log_dirs(pid: int) -> list[str]:
    return glob.glob(os.path.join(tempfile.gettempdir(), f"lxactors-{pid}-*"))


def test_type_changed_at_run_time_holds_on_sigkill(lxcpath: str, named: Any) -> None:
    name = named("retype")
    proc = _owner_process(lxcpath, name, "transient", "wait", new_type="temporary")
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    _expect(lxcpath, name, "temporary")


def test_type_changed_at_run_time_holds_on_actor_stop(lxcpath: str, named: Any) -> None:
    name = named("retype2")
    owner = Spawner.start()
    ref = owner.ask(("spawn", name, lxcpath, "temporary"))
    lxactors.type(ref, "permanent")
    owner.stop()
    _expect(lxcpath, name, "permanent")


def _messages(ref: lxactors.ContainerRef, kind: type, count: int = 1,
              timeout: float = 10.0) -> list[Any]:
    got: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(got) < count:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"wanted {count} {kind.__name__}, got {got}"
        try:
            msg = ref.receive(timeout=remaining)
        except Exception:
            continue
        if isinstance(msg, kind):
            got.append(msg)
    return got


def _kill_init(ref: lxactors.ContainerRef) -> int:
    pid = lxactors.container(ref).init_pid()
    assert pid
    os.kill(pid, signal.SIGKILL)
    return pid


def test_permanent_is_restarted_after_its_init_is_killed(spawn: Any) -> None:
    ref = spawn(type="permanent")
    old = _kill_init(ref)
    exited = _messages(ref, lxactors.ContainerExited)[0]
    assert exited.reason == "signal" and exited.signal == signal.SIGKILL
    restarted = _messages(ref, lxactors.ContainerRestarted)[0]
    assert restarted.restarts == 1
    new = lxactors.container(ref).init_pid()
    assert new and new != old


def test_transient_restarted_after_abnormal_end_not_after_normal(spawn: Any, lxcpath: str) -> None:
    ref = spawn(type="transient")
    _kill_init(ref)
    assert _messages(ref, lxactors.ContainerRestarted)
    assert lxactors.container(ref).state() == "RUNNING"
    # A clean poweroff from inside is a normal end: not restarted, kept.
    lxactors.send(ref, "\npoweroff\n")
    exited = _messages(ref, lxactors.ContainerExited)[0]
    assert exited.normal
    _wait_not_alive(ref, 5)
    assert not ref.alive
    assert _status(lxcpath, ref.name) == (True, "STOPPED")


def test_temporary_is_not_restarted_and_is_deleted(spawn: Any, lxcpath: str) -> None:
    ref = spawn()
    _kill_init(ref)
    exited = _messages(ref, lxactors.ContainerExited)[0]
    assert exited.reason == "signal"
    _wait_not_alive(ref, 5)
    assert ref.name not in liblxc.list_all_containers(lxcpath)


def test_restart_intensity_gives_up_and_leaves_it_stopped(spawn: Any, lxcpath: str) -> None:
    ref = spawn("crashy", type="permanent", restarts=3, restart_period=5.0,
                start={"argv": ["/bin/sh", "-c", "sleep 0.2; exit 1"]})
    gave_up = _messages(ref, lxactors.GaveUp, timeout=20)[0]
    assert gave_up.restarts == 3 and gave_up.exited.status == 1
    assert len(_drain(ref, lxactors.ContainerRestarted)) <= 3
    _wait_not_alive(ref, 5)
    assert _status(lxcpath, "crashy") == (True, "STOPPED")


def _drain(ref: lxactors.ContainerRef, kind: type) -> list[Any]:
    out = []
    while True:
        try:
            msg = ref.receive(timeout=0)
        except Exception:
            return out
        if isinstance(msg, kind):
            out.append(msg)


def test_adoption_in_the_same_process(lxcpath: str, named: Any) -> None:
    name = named("adopt")
    owner = Spawner.start()
    ref = owner.ask(("spawn", name, lxcpath, "permanent"))
    pid = lxactors.container(ref).init_pid()
    owner.stop()
    _expect(lxcpath, name, "permanent")
    _wait_not_alive(ref)
    mine = lxactors.spawn(name, path=lxcpath)
    try:
        assert lxactors.container(mine).init_pid() == pid  # connected, not restarted
        lxactors.send(mine, "\necho adopted-$((2*21))\n")
        from tests.util import read_console_until

        read_console_until(mine, b"adopted-42")
    finally:
        lxactors.exit(mine, "kill")


def test_adoption_from_a_new_process(lxcpath: str, named: Any) -> None:
    name = named("adopt2")
    proc = _owner_process(lxcpath, name, "permanent", "exit")
    assert proc.wait(30) == 0
    _expect(lxcpath, name, "permanent")
    with liblxc.Container(name, lxcpath) as c:
        pid = c.init_pid()
    ref = lxactors.spawn(name, path=lxcpath)
    try:
        assert lxactors.container(ref).init_pid() == pid
    finally:
        lxactors.exit(ref, "kill")
