"""The small paths made fast (issue 15): get_config_item's one C call into a
per-thread buffer, and the monitor's queries answered in the caller's thread."""

from __future__ import annotations

import os
import threading
from typing import Any

import pytest

import lxactors
from lxactors import _actor, liblxc
from tests.util import wait_for


def test_get_config_item_short_long_empty_and_unknown(make_container: Any) -> None:
    c = make_container()
    rootfs = c.get_config_item("lxc.rootfs.path")
    assert rootfs.startswith("overlay:") or rootfs.startswith("/")
    long = "A=" + "x" * 6000  # past the per-thread buffer: liblxc is asked for the length
    c.set_config_item("lxc.environment", long)
    c.set_config_item("lxc.environment", "B=2")
    assert c.get_config_item("lxc.environment") == f"{long}\nB=2"
    # An empty value right after a long one: nothing of the last read shows.
    assert c.get_config_item("lxc.hook.pre-start") == ""
    assert c.get_config_item("lxc.rootfs.path") == rootfs
    with pytest.raises(KeyError, match=r"lxc\.no\.such\.key"):
        c.get_config_item("lxc.no.such.key")
    for bad in ("lxc.uts name", "", "a\0b"):
        with pytest.raises(ValueError):
            c.get_config_item(bad)
    with pytest.raises(TypeError):
        c.get_config_item(b"lxc.rootfs.path")  # type: ignore[arg-type]


def test_get_config_item_from_many_threads_reads_each_its_own_value(make_container: Any) -> None:
    c = make_container()
    c.set_config_item("lxc.uts.name", "u" * 40)
    want = {"lxc.uts.name": "u" * 40, "lxc.rootfs.path": c.get_config_item("lxc.rootfs.path"),
            "lxc.hook.pre-start": ""}
    wrong: list[tuple[str, str]] = []

    def reader(key: str) -> None:
        for _ in range(3000):
            got = c.get_config_item(key)
            if got != want[key]:
                wrong.append((key, got))
                return

    threads = [threading.Thread(target=reader, args=(k,)) for k in want for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not wrong


def test_monitor_queries_skip_the_actor_and_the_rest_go_through_it(
        spawn: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    call = _actor.ContainerActor.call

    def recording(self: Any, method: str, args: Any, kwargs: Any) -> Any:
        calls.append(method)
        return call(self, method, args, kwargs)

    monkeypatch.setattr(_actor.ContainerActor, "call", recording)
    ref = spawn(userns=False)
    via = lxactors.container(ref)
    assert via.state() == "RUNNING" and via.is_running()
    pid = via.init_pid()
    assert pid and pid > 1
    assert calls == []
    assert via.get_config_item("lxc.log.level") == "INFO"  # the actor's handle, in memory
    assert calls == ["get_config_item"]
    lxactors.exit(ref, "kill")
    assert ref._query is None  # released with the container
    with pytest.raises(lxactors.LxcError, match="ended"):
        via.state()


def test_console_reads_what_waits_into_one_message_of_at_most_a_quarter_window(
        spawn: Any) -> None:
    window = 64 * 1024
    ref = spawn(userns=False, window=window)
    con = lxactors.console(ref)
    lxactors.send(ref, "yes 0123456789abcdef | head -c 2000000; echo; echo E''ND\n")
    # Nobody reads the mailbox: the window fills, then the pty behind it.
    wait_for(lambda: con.inflight >= window, timeout=30, what="a full window")
    sizes: list[int] = []
    seen = b""
    while b"END" not in seen:
        msg = ref.receive(30)
        if isinstance(msg, lxactors.ConsoleOutput):
            sizes.append(len(msg.data))
            seen = seen[-8:] + msg.data
    assert max(sizes) > 4096, sizes[:50]  # several 4 KiB pty reads made one message
    assert max(sizes) <= window // 4, max(sizes)
    assert sum(sizes) > 2_000_000


def _no_helper(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("a helper round trip")


def test_destroy_of_a_plain_overlay_clone_is_done_in_the_caller(
        make_container: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    c = make_container(start=True)
    home = os.path.join(c.get_config_path(), c.name)
    c.stop()
    monkeypatch.setattr(c, "_via_helper", _no_helper)
    c.destroy()
    assert not c.is_defined() and not os.path.exists(home)
    assert c.name not in liblxc.list_all_containers(c.get_config_path())


def test_the_callers_destroy_removes_what_the_saved_config_says(
        make_container: Any, outside: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """An unsaved rootfs path on the handle (here: a directory outside) is not
    what gets deleted: the destroy reads the container's saved config."""
    keep = os.path.join(outside, "keep")
    os.mkdir(keep)
    c = make_container()
    home = os.path.join(c.get_config_path(), c.name)
    c.set_config_item("lxc.rootfs.path", f"dir:{keep}")
    monkeypatch.setattr(c, "_via_helper", _no_helper)
    c.destroy()
    assert os.path.isdir(keep) and not os.path.exists(home)
    os.rmdir(keep)


@pytest.mark.parametrize("what", ["idmap", "hook"])
def test_a_destroy_that_forks_goes_through_the_helper(
        make_container: Any, what: str, monkeypatch: pytest.MonkeyPatch) -> None:
    c = make_container()
    home = os.path.join(c.get_config_path(), c.name)
    if what == "idmap":  # liblxc removes a mapped rootfs inside the namespace: a fork
        c.set_config_item("lxc.idmap", "u 0 100000 65536")
        c.set_config_item("lxc.idmap", "g 0 100000 65536")
    else:  # a destroy hook is a command: a fork
        c.set_config_item("lxc.hook.destroy", "/bin/true")
    c.save_config()
    calls: list[object] = []
    real = c._via_helper

    def counted(op: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(op)
        return real(op, *args, **kwargs)

    monkeypatch.setattr(c, "_via_helper", counted)
    c.destroy()
    assert [op.__name__ for op in calls] == ["Destroy"]  # type: ignore[attr-defined]
    assert not c.is_defined() and not os.path.exists(home)
