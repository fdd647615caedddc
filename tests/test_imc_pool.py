"""imc.Pool on real containers: hand-over to one command each, refused
options, teardown and every owner-death path leaving nothing.

(Every imc promise for a command from a pool is checked in test_imc.py,
whose tests run cold and pooled.)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import pykka
import pytest

from lxactors import Limits, LxcError, liblxc
from lxactors.apps import imc
from lxactors.apps.imc_command import _remove_dir
from tests import leaks
from tests.util import AS_USER, dirs_left, wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _imcs(lxcpath: str) -> set[str]:
    """imc containers in *lxcpath*: defined, or their directory still there (seen as root)."""
    defined = {n for n in liblxc.list_all_containers(lxcpath) if n.startswith("imc-")}
    return defined | set(dirs_left(lxcpath, "imc-"))


def test_concurrent_commands_never_share_a_container(lxcpath: str) -> None:
    before = _imcs(lxcpath)
    with imc.Pool(4, path=lxcpath) as pool:
        wait_for(lambda: pool.ready == 4, timeout=120, what="four containers booted ahead")
        ahead = _imcs(lxcpath) - before
        results: dict[int, imc.Result] = {}

        def one(i: int) -> None:
            results[i] = imc.run(["sh", "-c", "hostname; id -u; ls /tmp; touch /tmp/mark"],
                                 pool=pool)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert sorted(results) == list(range(8))
        hosts = [r.stdout.decode().split()[0] for r in results.values()]
        uids = {r.stdout.decode().split()[1] for r in results.values()}
        # Eight containers (four booted ahead, the rest cold or refilled), none twice;
        # each command found an empty /tmp: no other command's mark.
        assert len(set(hosts)) == 8 and len(uids) == 8
        assert set(hosts) & ahead
        assert all(len(r.stdout.split()) == 2 and r.status == 0 for r in results.values())
        # Each goes with its command (run returns as its container ends).
        wait_for(lambda: not set(hosts) & _imcs(lxcpath), what="the commands' containers gone")
    assert _imcs(lxcpath) == before


def test_the_refill_waits_for_the_command(lxcpath: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # On a small machine a boot beside a short command slows it: the refill
    # boots once the commands taken from the pool ended (or REFILL_DELAY).
    from lxactors.apps import imc_pool

    monkeypatch.setattr(imc_pool, "REFILL_DELAY", 300.0)
    before = _imcs(lxcpath)
    with imc.Pool(1, path=lxcpath) as pool:
        wait_for(lambda: pool.ready == 1, timeout=120, what="a container booted ahead")
        run = imc.spawn(["sleep", "60"], pool=pool)
        wait_for(lambda: pool._pool._booting == 1, what="the refill under way")
        assert _imcs(lxcpath) - before == {run.name}  # waiting, not booting
        run.kill()
        assert run.wait(30) == -9
        wait_for(lambda: pool.ready == 1, timeout=60, what="the refill once the command ended")
    assert _imcs(lxcpath) == before


def test_a_command_chooses_its_input_environment_and_cwd(lxcpath: str) -> None:
    with imc.Pool(1, path=lxcpath) as pool:
        status, out, _ = imc.run(["sh", "-c", "cat; echo \"$GREETING $(pwd)\""], pool=pool,
                                 input=b"from-stdin\n", env={"GREETING": "hello"}, cwd="/tmp")
    assert (status, out) == (0, b"from-stdin\nhello /tmp\n")


def test_the_pool_torn_down_leaves_nothing(lxcpath: str) -> None:
    snap = None if AS_USER else leaks.snapshot(lxcpath)
    before = _imcs(lxcpath)
    pool = imc.Pool(2, path=lxcpath, limits=Limits(pids=64))
    wait_for(lambda: pool.ready == 2, timeout=120, what="two containers booted ahead")
    assert len(_imcs(lxcpath) - before) == 2
    assert imc.run(["true"], pool=pool).status == 0
    wait_for(lambda: pool.ready == 2, timeout=120, what="the refill")
    pool.close()
    pool.close()  # idempotent
    assert _imcs(lxcpath) == before
    if not AS_USER:  # (the gate's cgroups and mounts are root's to see)
        assert snap is not None
        leaks.assert_same(snap, leaks.settle(lxcpath, snap))  # containers, monitors, cgroups
    with pytest.raises(LxcError, match="closed"):
        imc.run(["true"], pool=pool)


def test_what_a_running_container_cannot_take_is_refused(lxcpath: str) -> None:
    with imc.Pool(0, path=lxcpath, limits=Limits(pids=100)) as pool:
        for option, value in [("uid", 5000), ("gid", 5000), ("hostname", "h")]:
            with pytest.raises(ValueError, match=f"{option} is drawn when it boots"):
                imc.run(["true"], pool=pool, **{option: value})
        with pytest.raises(ValueError, match="tmpfs_size is the pool's"):
            imc.run(["true"], pool=pool, tmpfs_size="1m")
        with pytest.raises(ValueError, match="userns is the pool's"):
            imc.run(["true"], pool=pool, userns=False)
        with pytest.raises(ValueError, match="path is the pool's"):
            imc.run(["true"], pool=pool, path=lxcpath + "/elsewhere")
        with pytest.raises(ValueError, match="limits is the pool's"):
            imc.run(["true"], pool=pool, limits=Limits(pids=3))
        with pytest.raises(TypeError, match="cmd"):
            imc.run("true", pool=pool)
        # The pool's own values may be repeated.
        assert imc.run(["true"], pool=pool, path=lxcpath,
                       limits=Limits(pids=100)).status == 0
    with pytest.raises(TypeError, match="cwd"):
        imc.Pool(1, cwd="/")
    with pytest.raises(ValueError, match="uid is drawn when each container boots"):
        imc.Pool(1, uid=5000)
    with pytest.raises(ValueError, match="tmpfs size"):
        imc.Pool(1, tmpfs_size="lots")
    with pytest.raises(TypeError, match=r"imc\.Pool"):
        imc.run(["true"], pool=object())  # type: ignore[arg-type]
    wait_for(lambda: not _imcs(lxcpath), what="the one command's container gone")


def test_a_pool_owned_by_an_actor_goes_with_it(lxcpath: str) -> None:
    made: list[imc.Pool] = []

    class Keeper(pykka.ThreadingActor):
        def on_start(self) -> None:
            made.append(imc.Pool(2, path=lxcpath))

    before = _imcs(lxcpath)
    actor = Keeper.start()
    wait_for(lambda: made and made[0].ready == 2, timeout=120, what="the pool to fill")
    assert len(_imcs(lxcpath) - before) == 2
    actor.stop()
    wait_for(lambda: _imcs(lxcpath) == before, timeout=30, what="the pooled containers to go")
    made[0].close()


OWNER = r"""
import sys, threading, time
from lxactors import imc
path, end = sys.argv[1], sys.argv[2]
pool = imc.Pool(2, path=path)
deadline = time.monotonic() + 120
while pool.ready < 2 and time.monotonic() < deadline:
    time.sleep(0.02)
running = imc.spawn(["sleep", "300"], pool=pool)
while pool.ready < 2 and time.monotonic() < deadline:
    time.sleep(0.02)
print("ready", running.name, flush=True)
if end == "wait":
    threading.Event().wait()
"""


@pytest.mark.parametrize("end", ["exit", "wait"], ids=["interpreter exit", "SIGKILL"])
def test_pooled_and_running_containers_go_with_the_process(lxcpath: str, end: str) -> None:
    before = _imcs(lxcpath)
    proc = subprocess.Popen([sys.executable, "-c", OWNER, lxcpath, end], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": ROOT})
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().split()
        assert line[:1] == ["ready"], line
        if end == "wait":
            # Two booted ahead and the one running the command.
            assert len(_imcs(lxcpath) - before) == 3 and line[1] in _imcs(lxcpath)
            proc.send_signal(signal.SIGKILL)
        proc.wait(120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    wait_for(lambda: not {n for n in liblxc.list_all_containers(lxcpath)
                          if n.startswith("imc-")} - before,
             timeout=60, what="the helper's cleanup")
    # A container the helper destroyed leaves the empty directory imc made: no
    # rootfs, nothing mounted (the next imc run in this lxcpath is unaffected).
    for name in _imcs(lxcpath) - before:  # (none as an ordinary user: the gate's)
        assert not os.path.exists(os.path.join(lxcpath, name, "rootfs")), name
        _remove_dir(os.path.join(lxcpath, name))


def test_the_command_line_pool(lxcpath: str) -> None:
    r = subprocess.run([sys.executable, "-m", "lxactors", "imc", "--path", lxcpath, "--pool", "2",
                        "--", "sh", "-c", "id -u; exit 4"], cwd=ROOT, capture_output=True,
                       text=True, timeout=120, env={**os.environ, "PYTHONPATH": ROOT})
    assert r.returncode == 4, r.stderr
    assert int(r.stdout) >= imc.NS_UID_LOW
    assert not _imcs(lxcpath)
    r = subprocess.run([sys.executable, "-m", "lxactors", "imc", "--pool", "-1", "--", "true"],
                       cwd=ROOT, capture_output=True, text=True, timeout=60,
                       env={**os.environ, "PYTHONPATH": ROOT})
    assert r.returncode == 2 and "--pool" in r.stderr
