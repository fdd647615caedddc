"""The high-level API on real containers: spawn, send, exit, type, container, console."""

from __future__ import annotations

import os
import re
import threading
from typing import Any

import pykka
import pytest

import lxactors
from lxactors import liblxc
from lxactors._supervisor import supervisor
from lxactors._userns import resolve_userns
from tests.conftest import unique_name
from tests.util import read_console_until, status_field, wait_for


def test_console_round_trip(spawn: Any) -> None:
    ref = spawn()
    lxactors.send(ref, b"\necho hi-$((6*7))\n")
    out = read_console_until(ref, b"hi-42")
    # The shell echoed the command line and printed the result.
    assert b"hi-$((6*7))" in out


def test_unnamed_is_temporary_overlay_clone_with_random_name(spawn: Any, lxcpath: str) -> None:
    ref = spawn()
    assert re.fullmatch(r"lxa-[a-z0-9]{8}", ref.name)
    assert lxactors.type(ref) == "temporary"
    h = lxactors.container(ref)
    lower, upper = h.get_config_item("lxc.rootfs.path").split(":")
    idmap = resolve_userns(True)
    assert lower == os.path.join(lxcpath, f"lxactors-base-userns-{idmap.tag}", "rootfs")
    assert upper.startswith(os.path.join(lxcpath, ref.name) + "/")
    assert h.state() == "RUNNING"
    assert ref.name in liblxc.list_active_containers(lxcpath)
    other = spawn()
    assert other.name != ref.name


def test_exit_kill_temporary_deletes_it(spawn: Any, lxcpath: str) -> None:
    ref = spawn()
    rootfs = os.path.join(lxcpath, ref.name)
    assert os.path.isdir(rootfs)
    exited = lxactors.exit(ref, "kill")
    assert exited is not None and exited.reason == "kill" and exited.normal
    assert not ref.alive
    assert ref.name not in liblxc.list_all_containers(lxcpath)
    assert not os.path.exists(rootfs)
    # The owner got the same message.
    msgs = []
    while True:
        try:
            msgs.append(ref.receive(timeout=0))
        except Exception:
            break
    assert any(isinstance(m, lxactors.ContainerExited) and m.reason == "kill" for m in msgs)


def test_named_is_transient_and_exit_normal_keeps_it(spawn: Any, lxcpath: str) -> None:
    ref = spawn("named-keep")
    assert lxactors.type(ref) == "transient"
    exited = lxactors.exit(ref, "normal", timeout=10)
    assert exited is not None and exited.reason == "normal"
    with liblxc.Container("named-keep", lxcpath) as c:
        assert c.is_defined() and c.state() == "STOPPED"


def test_existing_stopped_name_is_started_and_running_is_connected(spawn: Any, lxcpath: str) -> None:
    with liblxc.Container("reuse", lxcpath) as c:
        c.create("busybox")
    ref = spawn("reuse")
    pid = lxactors.container(ref).init_pid()
    assert pid is not None
    # A second spawn of the running name from another owner is refused while owned...
    with pytest.raises(lxactors.LxcError, match="already spawned"):
        spawn("reuse")
    # ...and a low-level start elsewhere then spawn connects without restarting.
    lxactors.type(ref, "permanent")
    ref.actor.stop()  # the owner-side actor goes; permanent: left running
    with liblxc.Container("reuse", lxcpath) as c:
        assert c.is_running() and c.init_pid() == pid
    again = spawn("reuse")
    assert lxactors.container(again).init_pid() == pid


def test_type_get_and_set(spawn: Any) -> None:
    ref = spawn()
    assert lxactors.type(ref) == "temporary"
    assert lxactors.type(ref, "permanent") == "permanent"
    assert lxactors.type(ref) == "permanent"
    with pytest.raises(ValueError, match="type must be one of"):
        lxactors.type(ref, "forever")  # type: ignore[arg-type]
    assert lxactors.type(ref) == "permanent"


def test_container_handle_goes_through_the_actor(spawn: Any) -> None:
    ref = spawn()
    h = lxactors.container(ref)
    assert h.get_config_item("lxc.uts.name") == ref.name
    r = h.attach_run_wait(["hostname"])
    assert r.stdout.strip() == ref.name.encode()
    with pytest.raises(AttributeError):
        h.no_such_method  # noqa: B018


def test_console_endpoint(spawn: Any) -> None:
    ref = spawn(window=4096)
    con = lxactors.console(ref)
    assert isinstance(con, lxactors.Console)
    assert con.window == 4096 and con.ptx >= 0
    con.send(b"\necho via-$((1+1))-endpoint\n")
    read_console_until(ref, b"via-2-endpoint")


def test_owner_actor_gets_messages_by_tell(spawn: Any) -> None:
    got = threading.Event()
    seen: list[Any] = []

    class Owner(pykka.ThreadingActor):
        def on_receive(self, message: Any) -> None:
            seen.append(message)
            data = b"".join(m.data for m in seen if isinstance(m, lxactors.ConsoleOutput))
            if b"from-actor-7" in data:
                got.set()

    owner = Owner.start()
    try:
        ref = spawn(owner=owner)
        lxactors.send(ref, "\necho from-actor-$((3+4))\n")
        assert got.wait(10)
        with pytest.raises(lxactors.LxcError, match="owner actor"):
            ref.receive(timeout=0)
        lxactors.exit(ref, "kill")
        assert any(isinstance(m, lxactors.ContainerExited) for m in seen) or _wait_for(
            lambda: any(isinstance(m, lxactors.ContainerExited) for m in seen))
    finally:
        owner.stop()


def test_spawn_from_inside_an_actor_makes_it_the_owner(lxcpath: str) -> None:
    seen: list[Any] = []
    done = threading.Event()

    class Spawner(pykka.ThreadingActor):
        def on_receive(self, message: Any) -> Any:
            if message == "go":
                ref = lxactors.spawn(path=lxcpath)
                lxactors.send(ref, "\necho inside-$((40+2))\n")
                return ref
            seen.append(message)
            if b"inside-42" in b"".join(
                    m.data for m in seen if isinstance(m, lxactors.ConsoleOutput)):
                done.set()
            return None

    a = Spawner.start()
    ref = a.ask("go")
    try:
        assert done.wait(10)
    finally:
        lxactors.exit(ref, "kill")
        a.stop()


def test_exit_status_reported_for_custom_init(spawn: Any) -> None:
    ref = spawn(start={"argv": ["/bin/sh", "-c", "exit 7"]}, type="temporary")
    exited = _receive_exit(ref)
    assert exited.reason == "error" and exited.status == 7
    assert _wait_for(lambda: not ref.alive)


def _receive_exit(ref: lxactors.ContainerRef, timeout: float = 10) -> lxactors.ContainerExited:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = ref.receive(timeout=max(0.01, deadline - time.monotonic()))
        if isinstance(msg, lxactors.ContainerExited):
            return msg
    raise AssertionError("no ContainerExited")


def _wait_for(pred: Any, timeout: float = 5.0) -> bool:
    import time

    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_bad_arguments_are_rejected_before_anything_runs(lxcpath: str) -> None:
    before = set(liblxc.list_all_containers(lxcpath))
    with pytest.raises(TypeError):
        lxactors.spawn(123, path=lxcpath)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        lxactors.spawn("a/b", path=lxcpath)
    with pytest.raises(TypeError, match="unknown option"):
        lxactors.spawn(path=lxcpath, bogus=1)
    with pytest.raises(ValueError):
        lxactors.spawn(path=lxcpath, config=[("lxc.uts.name", "x\ny")])
    with pytest.raises(ValueError, match="type must be"):
        lxactors.spawn(path=lxcpath, type="forever")
    with pytest.raises(TypeError):
        lxactors.send("not a ref", b"x")  # type: ignore[arg-type]
    assert set(liblxc.list_all_containers(lxcpath)) == before


def _monitor_pid(ref: lxactors.ContainerRef) -> int:
    init = lxactors.container(ref).init_pid()
    assert init is not None
    with open(f"/proc/{init}/stat") as f:
        monitor = int(f.read().rsplit(")", 1)[1].split()[1])
    with open(f"/proc/{monitor}/cmdline", "rb") as f:
        assert f.read().startswith(b"[lxc monitor]")
    return monitor


def _monitor_exe(ref: lxactors.ContainerRef) -> str:
    return os.path.basename(os.readlink(f"/proc/{_monitor_pid(ref)}/exe"))


def _private_dirty_kib(pid: int) -> int:
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Private_Dirty:"):
                return int(line.split()[1])
    raise AssertionError("no Private_Dirty")


def test_monitor_is_not_a_fork_of_a_python_worker(spawn: Any) -> None:
    """A monitor forked from a Python worker held ~1.6 MB of private memory
    (the worker's copies of the interpreter's heap), one from a fork of the
    helper that ran the launcher in C ~0.5 MB; the helper's exec'd launcher
    program makes it a copy of a small C process (~0.26 MB)."""
    ref = spawn()
    assert _monitor_exe(ref) == "lxa-launcher"
    assert _private_dirty_kib(_monitor_pid(ref)) < 600
    # No liblxc start runs in the user's process: its monitor is the helper's.
    assert _monitor_exe(spawn(nocloseallfds=True)) == "lxa-launcher"


def test_a_failed_start_reports_its_cause_and_no_noise(spawn: Any, lxcpath: str) -> None:
    before = set(liblxc.list_all_containers(lxcpath))
    with pytest.raises(lxactors.LxcError) as err:
        spawn(config=[("lxc.mount.entry", "/nonexistent-lxactors mnt none bind 0 0")])
    e = err.value
    assert e.operation == "start" and e.container.startswith("lxa-")
    assert any('Failed to mount "/nonexistent-lxactors"' in line for line in e.log), e.log
    # Only warnings and errors, and none of the lines that would mislead:
    # lxc-start's command-line advice, cgroup teardown the helper does itself.
    assert all(line.startswith(("ERROR ", "WARN ")) for line in e.log), e.log
    assert not any("--logfile" in line or "foreground mode" in line or
                   "cgfsng_monitor_destroy" in line for line in e.log), e.log
    assert set(liblxc.list_all_containers(lxcpath)) == before


def _ignored_signals(pid: int) -> int:
    return int(status_field(pid, "SigIgn"), 16)


@pytest.mark.parametrize("options", [{}, {"nocloseallfds": True}], ids=["lxc-start", "in-process"])
def test_init_does_not_inherit_the_helpers_ignored_signals(spawn: Any, options: Any) -> None:
    ref = spawn(start={"argv": ["/bin/sleep", "1000"]}, console=False, **options)
    init = lxactors.container(ref).init_pid()
    assert init is not None
    assert _ignored_signals(init) == 0


def test_starting_a_running_container_fails(make_container: Any) -> None:
    c = make_container(start=True)
    pid = c.init_pid()
    with pytest.raises(lxactors.LxcError, match="start"):
        c.start()
    assert c.init_pid() == pid


def test_a_trailing_slash_in_the_lxcpath_still_finds_the_container(lxcpath: str,
                                                                    make_container: Any) -> None:
    name = make_container().name
    with liblxc.Container(name, lxcpath + "/") as c:
        c.start()
        try:
            assert c.init_pid() is not None and c.state() == "RUNNING"
        finally:
            c.stop()


@pytest.mark.parametrize("named", [True, False], ids=["named", "unnamed"])
def test_spawn_of_a_command_that_ends_at_once_reports_its_exit(spawn: Any, lxcpath: str,
                                                               named: bool) -> None:
    """A start whose init has already exited is a normal, reported exit: spawn returns a
    reference, never pykka's ActorDeadError nor a console error, and the owner is told
    init's status.  (Raced on every try: the end can come at any step of the boot.)"""
    name = unique_name("busy") if named else ""
    for _ in range(10):
        ref = spawn(name, restarts=0, start={"useinit": True, "argv": ["sh", "-c", "exit 1"]})
        exited = ref.receive(timeout=30)
        assert isinstance(exited, lxactors.ContainerExited), exited
        assert (exited.container, exited.reason, exited.status) == (ref.name, "error", 1)
        if named:  # transient, abnormal end, no restart allowed
            gave_up = ref.receive(timeout=30)
            assert isinstance(gave_up, lxactors.GaveUp) and gave_up.restarts == 0, gave_up
        wait_for(lambda r=ref: not r.alive, 10, "the actor to end")
        assert not supervisor().get(lxcpath, ref.name)
