"""imc with a pool: commands attached to containers booted ahead."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import Any

import pytest

from lxactors import imc
from tests.util import wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _imcs(lxcpath: str) -> set[str]:
    return {n for n in os.listdir(lxcpath) if n.startswith("imc-")}


@pytest.fixture
def pool(lxcpath: str) -> Any:
    p = imc.Pool(2, path=lxcpath)
    yield p
    p.close()


def test_a_command_from_the_pool_runs_in_a_booted_container_as_its_uid(pool: Any,
                                                                       lxcpath: str) -> None:
    wait_for(lambda: pool.ready == 2, timeout=120, what="two imc containers booted ahead")
    ahead = _imcs(lxcpath)
    result = imc.run(["/bin/sh", "-c", "id -u; hostname; stat -c %u $HOME; touch /x; exit 3"],
                     pool=pool, env={"A": "1"})
    assert result.status == 3
    uid, host, home_owner = result.stdout.decode().split()
    assert host in ahead  # handed over, not made for the command
    assert uid == home_owner and int(uid) >= imc.NS_UID_LOW
    assert b"Read-only file system" in result.stderr
    assert host not in _imcs(lxcpath)  # the command's container is gone with it
    wait_for(lambda: pool.ready == 2, timeout=120, what="the pool to refill")


def test_closing_the_pool_leaves_no_container_nor_directory(lxcpath: str) -> None:
    before = _imcs(lxcpath)
    p = imc.Pool(2, path=lxcpath)
    wait_for(lambda: p.ready == 2, timeout=120, what="two imc containers booted ahead")
    assert len(_imcs(lxcpath) - before) == 2
    p.close()
    assert _imcs(lxcpath) == before


def test_what_a_pool_cannot_choose_is_refused(pool: Any) -> None:
    with pytest.raises(ValueError, match="uid"):
        imc.run(["true"], pool=pool, uid=5000)
    with pytest.raises(ValueError, match="hostname"):
        imc.run(["true"], pool=pool, hostname="h")
    with pytest.raises(TypeError, match="cwd"):
        imc.Pool(1, cwd="/")
    with pytest.raises(TypeError, match=r"imc\.Pool"):
        imc.run(["true"], pool=object())  # type: ignore[arg-type]


OWNER = r"""
import sys, time
from lxactors import imc
p = imc.Pool(2, path=sys.argv[1])
deadline = time.monotonic() + 120
while p.ready < 2 and time.monotonic() < deadline:
    time.sleep(0.02)
print("ready", flush=True)
sys.stdin.readline()
"""


def test_a_pool_sigkilled_with_its_process_leaves_nothing(lxcpath: str) -> None:
    before = _imcs(lxcpath)
    proc = subprocess.Popen([sys.executable, "-c", OWNER, lxcpath], cwd=ROOT, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": ROOT})
    try:
        assert proc.stdout is not None and proc.stdout.readline().split() == ["ready"]
        assert len(_imcs(lxcpath) - before) == 2
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    wait_for(lambda: _imcs(lxcpath) == before, timeout=60, what="the helper's cleanup")
