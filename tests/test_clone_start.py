"""A spawn's clone and start in one helper request (protocol.CloneStart).

What it must keep: the clone gets the items before it starts (and the
handle has them after), a clone that does not start is destroyed, and an
owner killed while the request is under way leaves nothing behind.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import lxactors
from lxactors import _base, liblxc
from lxactors._helper import protocol
from lxactors._helperclient import Helper
from tests.util import read_console_until, unique_name, wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def ops(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The op of every helper request this process sends."""
    seen: list[str] = []
    request = Helper.request

    def recording(self: Helper, req: protocol.Request, *args: Any, **kw: Any) -> Any:
        seen.append(req.op)
        return request(self, req, *args, **kw)

    monkeypatch.setattr(Helper, "request", recording)
    yield seen


def test_an_unnamed_spawn_is_one_clone_start_request(spawn: Any, ops: list[str]) -> None:
    ref = spawn(userns=False, config=[("lxc.uts.name", "one-request")])
    assert [op for op in ops if op not in ("register", "unregister")] == ["clone_start"]
    assert lxactors.container(ref).get_running_config_item("lxc.uts.name") == "one-request"
    lxactors.send(ref, "hostname\n")
    read_console_until(ref, b"one-request\r\n")


def test_chroot_files_still_go_between_clone_and_start(spawn: Any, ops: list[str]) -> None:
    ref = spawn(userns=False, chroot={"file": [("/etc/marker", b"between\n")]})
    assert "clone" in ops and "start" in ops and "clone_start" not in ops
    lxactors.send(ref, "cat /etc/marker\n")
    read_console_until(ref, b"between\r\n")


def test_start_clone_of_sets_items_on_the_clone_and_the_handle(lxcpath: str) -> None:
    name = unique_name("cs")
    with liblxc.Container(name, lxcpath) as c:
        pid = c.start_clone_of(_base.BASE_NAME, [("lxc.uts.name", "cs-host"),
                                                 ("lxc.environment", "CS=1"),
                                                 ("lxc.environment", None)])
        try:
            assert pid is not None and pid == c.init_pid()
            assert c.get_running_config_item("lxc.uts.name") == "cs-host"
            assert c.get_config_item("lxc.uts.name") == "cs-host"
            assert c.get_config_item("lxc.environment") == ""  # cleared after it was set
            assert c.get_config_item("lxc.log.file") not in open(c.config_file_name() or "").read()
        finally:
            c.stop()
            c.destroy()


@pytest.mark.parametrize(("base", "items", "operation"), [
    ("no-such-base", [], "clone"),
    (_base.BASE_NAME, [("lxc.no.such.key", "1")], "set_config_item lxc.no.such.key"),
    (_base.BASE_NAME, [("lxc.init.cmd", "/no/such/init")], "start"),
], ids=["missing base", "unknown key", "missing init"])
def test_a_clone_start_that_fails_leaves_no_container(lxcpath: str, base: str,
                                                      items: list[tuple[str, str]],
                                                      operation: str) -> None:
    name = unique_name("cs")
    before = sorted(os.listdir(lxcpath))
    with liblxc.Container(name, lxcpath) as c:
        with pytest.raises(lxactors.LxcError) as info:
            c.start_clone_of(base, items)
        assert (info.value.container, info.value.operation) == (name, operation)
        assert not c.is_defined()
    assert sorted(os.listdir(lxcpath)) == before


def test_a_clone_start_refuses_an_existing_container(make_container: Any) -> None:
    c = make_container()
    with pytest.raises(lxactors.LxcError, match="already exists"):
        c.start_clone_of(_base.BASE_NAME)
    assert not c.is_running()


OWNER = r"""
import sys, lxactors
path, hook = sys.argv[1], sys.argv[2]
lxactors.spawn(path=path, userns=False, config=[("lxc.hook.pre-start", hook)])
print("spawned", flush=True)
"""


def test_an_owner_killed_mid_spawn_leaves_nothing(lxcpath: str, tmp_path: Path) -> None:
    """SIGKILL while the one request is under way: the helper lets it end,
    then applies the temporary policy to what it made."""
    mark, fifo = tmp_path / "in-hook", tmp_path / "go"
    os.mkfifo(fifo)
    hook = tmp_path / "hook.sh"
    hook.write_text(f"#!/bin/sh\ntouch {mark}\nread line < {fifo}\n")
    hook.chmod(hook.stat().st_mode | stat.S_IXUSR)
    before = set(os.listdir(lxcpath))
    proc = subprocess.Popen([sys.executable, "-c", OWNER, lxcpath, str(hook)], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": ROOT})
    try:
        wait_for(mark.exists, timeout=60, what="the start's pre-start hook")
        made = set(os.listdir(lxcpath)) - before
        assert len(made) == 1, made
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        with open(fifo, "w") as f:  # the start goes on
            f.write("go\n")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    name = made.pop()
    wait_for(lambda: name not in os.listdir(lxcpath), timeout=60,
             what=f"the helper to destroy {name}")
    assert name not in liblxc.list_all_containers(lxcpath)
