"""imc on real containers: immutable root, random unprivileged user, output as messages."""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pykka
import pytest

from lxactors import AccessRefused, Limits, LxcError, liblxc
from lxactors._limits import host_layout
from lxactors._userns import resolve_userns
from lxactors.apps import imc
from tests.util import (
    AS_USER,
    cgroup_file,
    dirs_left,
    host_uids_in_pidns_of,
    made_bridge,
    wait_for,
)


class Runner:
    """imc.spawn and imc.run cold, or from an imc.Pool of the command's shape.

    Every imc promise is checked both ways (``imcs`` is parametrized): a
    pooled command must be as sealed as a cold one.  The pool's options
    (path, userns, limits, bridge...) go to a pool of 2 made for them and
    filled; ``spawn`` waits for the refill and checks its container was
    booted ahead (``run`` from many threads at once takes what is there).
    """

    def __init__(self, pooled: bool) -> None:
        self.pooled = pooled
        self.pools: dict[str, imc.Pool] = {}
        self.lock = threading.Lock()

    def _pool(self, options: dict[str, Any]) -> imc.Pool:
        shape = {k: options.pop(k) for k in list(options) if k in imc.POOL_OPTIONS}
        key = repr(sorted(shape.items()))
        with self.lock:
            if key not in self.pools:
                p = self.pools[key] = imc.Pool(2, **shape)
                wait_for(lambda: p.ready == 2, timeout=120, what="containers booted ahead")
        return self.pools[key]

    def spawn(self, cmd: list[str], **options: Any) -> imc.Imc:
        if not self.pooled:
            return imc.spawn(cmd, **options)
        p = self._pool(options)
        wait_for(lambda: p.ready == 2, timeout=120, what="the pool refilled")
        ahead = _imc_dirs(p.options["path"])
        run = imc.spawn(cmd, pool=p, **options)
        assert run.name in ahead  # handed over, not booted for the command
        return run

    def run(self, cmd: list[str], **options: Any) -> imc.Result:
        if not self.pooled:
            return imc.run(cmd, **options)
        return imc.run(cmd, pool=self._pool(options), **options)

    def close(self) -> None:
        for p in self.pools.values():
            p.close()


def _imc_dirs(lxcpath: str) -> set[str]:
    """imc containers in *lxcpath*: defined, or their directory left (seen as root)."""
    defined = {n for n in liblxc.list_all_containers(lxcpath) if n.startswith("imc-")}
    return defined | set(dirs_left(lxcpath, "imc-"))


@pytest.fixture(params=["cold", "pool"])
def imcs(request: pytest.FixtureRequest, lxcpath: str) -> Iterator[Runner]:
    before = _imc_dirs(lxcpath)
    r = Runner(request.param == "pool")
    try:
        yield r
    finally:
        r.close()
    # The pool's containers went with it (a container's directory goes last).
    wait_for(lambda: _imc_dirs(lxcpath) == before, timeout=30, what="no imc container left")


def _gone(lxcpath: str, name: str) -> bool:
    return name not in liblxc.list_all_containers(lxcpath) and not os.path.exists(
        os.path.join(lxcpath, name))


def _messages(run: imc.Imc, timeout: float = 30.0) -> list[imc.ImcMessage]:
    out: list[imc.ImcMessage] = []
    deadline = time.monotonic() + timeout
    while not out or not isinstance(out[-1], imc.Exited):
        out.append(run.receive(timeout=max(0.0, deadline - time.monotonic())))
    return out


def test_runs_as_random_unprivileged_user(lxcpath: str, imcs: Runner) -> None:
    idmap = resolve_userns(True)
    with imcs.spawn(["sh", "-c", "id -u; sleep 30"], path=lxcpath) as run:
        first = run.receive(timeout=30)
        assert isinstance(first, imc.Stdout)
        uid = int(first.data)
        # Inside the user namespace, below nobody (65534); outside, mapped.
        assert imc.NS_UID_LOW <= uid < 65534 and uid == run.uid
        assert run.host_uid == idmap.uid + uid
        assert _host_uids_in(run, lxcpath) == {run.host_uid}
        run.kill()
    # Each run draws its own uid; groups are only the (random) primary group.
    status, out, _ = imcs.run(["sh", "-c", "id -u; id -g; id -G"], path=lxcpath)
    u, g, groups = out.decode().split("\n")[:3]
    assert status == 0 and int(u) != uid and groups == g


def test_without_userns_the_random_uid_is_a_host_uid(lxcpath: str, imcs: Runner) -> None:
    if AS_USER:  # the gate refuses it, naming its rule; nothing is left
        with pytest.raises(AccessRefused, match=r"rule userns"):
            imc.spawn(["id"], path=lxcpath, userns=False)
        assert not [n for n in liblxc.list_all_containers(lxcpath) if n.startswith("imc-")]
        return
    with imcs.spawn(["sh", "-c", "id -u; sleep 30"], path=lxcpath, userns=False) as run:
        first = run.receive(timeout=30)
        assert isinstance(first, imc.Stdout)
        uid = int(first.data)
        assert imc.UID_LOW <= uid < imc.UID_HIGH and uid == run.host_uid == run.uid
        # The host sees the command as that uid.
        assert _host_uids_in(run, lxcpath) == {uid}
        run.kill()


def _host_uids_in(run: imc.Imc, lxcpath: str) -> set[int]:
    """The real uids, as the host sees them, of the command's processes."""
    with liblxc.Container(run.name, lxcpath) as h:
        init = h.init_pid()
    assert init is not None
    return {uid for pid, uid in host_uids_in_pidns_of(init).items() if pid != init}


def test_root_and_system_directories_are_read_only(lxcpath: str, imcs: Runner) -> None:
    script = ("for d in /bin /usr /lib /etc /; do touch $d/x 2>/dev/null && echo wrote $d; done;"
              "touch /tmp/ok /home/imc/ok && echo tmp-home-ok; touch /bin/x")
    status, out, err = imcs.run(["sh", "-c", script], path=lxcpath)
    assert out == b"tmp-home-ok\n"
    assert status != 0 and b"Read-only file system" in err


def test_stdout_and_stderr_arrive_separately(lxcpath: str, imcs: Runner) -> None:
    with imcs.spawn(["sh", "-c", "echo to-out; echo to-err >&2; echo more-out"],
                   path=lxcpath) as run:
        msgs = _messages(run)
    out = b"".join(m.data for m in msgs if isinstance(m, imc.Stdout))
    err = b"".join(m.data for m in msgs if isinstance(m, imc.Stderr))
    assert (out, err) == (b"to-out\nmore-out\n", b"to-err\n")
    assert msgs[-1] == imc.Exited(run.name, 0)
    assert sum(isinstance(m, imc.Exited) for m in msgs) == 1


def test_exit_status_is_reported(lxcpath: str, imcs: Runner) -> None:
    assert imcs.run(["sh", "-c", "exit 3"], path=lxcpath) == (3, b"", b"")
    assert imcs.run(["no-such-command"], path=lxcpath).status == 127


def test_no_capabilities_no_new_privs(lxcpath: str, imcs: Runner) -> None:
    status, out, _ = imcs.run(["grep", "-E", "^(CapEff|CapBnd|CapPrm|NoNewPrivs):",
                              "/proc/self/status"], path=lxcpath)
    fields = dict(line.split(":\t") for line in out.decode().splitlines())
    assert status == 0
    assert fields == {"CapEff": "0000000000000000", "CapPrm": "0000000000000000",
                      "CapBnd": "0000000000000000", "NoNewPrivs": "1"}


def test_only_the_usual_devices(lxcpath: str, imcs: Runner) -> None:
    status, out, _ = imcs.run(["sh", "-c", "ls /dev; cat /dev/null && echo null-ok"],
                             path=lxcpath)
    names = set(out.decode().split())
    assert status == 0 and "null-ok" in names
    assert {"null", "zero", "full", "random", "urandom", "tty", "pts"} <= names
    assert not names & {"vda", "sda", "mem", "kmsg", "loop0"}
    # And the device cgroup refuses the others, even were they there.
    with imcs.spawn(["sleep", "30"], path=lxcpath) as run:
        assert run.ref is not None
        from lxactors import container

        allowed = container(run.ref).get_cgroup_item("devices.list").split("\n")
        run.kill()
    assert "a *:* rwm" not in allowed and "c 1:3 rwm" in allowed
    assert not [d for d in allowed if d and d.startswith("b ")]


def test_nothing_left_behind(lxcpath: str, imcs: Runner) -> None:
    run = imcs.spawn(["sh", "-c", "sleep 100 & echo started"], path=lxcpath)
    rootfs = os.path.join(lxcpath, run.name, "rootfs")
    assert os.path.isdir(rootfs)
    msgs = _messages(run)
    assert msgs[-1] == imc.Exited(run.name, 0)
    # The background sleep holds the output: Exited comes once everything is
    # gone, the sleep included.
    assert _gone(lxcpath, run.name)
    assert run.done and run.wait(0) == 0
    # A detached one does not: Exited comes first, the container's end after
    # it, and the detached process dies with it.
    run = imcs.spawn(["sh", "-c", "sleep 100 </dev/null >/dev/null 2>&1 & echo $!"],
                     path=lxcpath)
    msgs = _messages(run)
    assert msgs[-1] == imc.Exited(run.name, 0)
    assert run.wait(30) == 0 and run.done
    assert _gone(lxcpath, run.name)
    assert not [p for p in os.listdir("/proc") if p.isdigit() and _is_sleep_100(p)]


def _is_sleep_100(pid: str) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read() == b"sleep\x00100\x00"
    except OSError:
        return False


_EXIT_RIGHT_AFTER = """
import sys
from lxactors import imc
r = imc.run(["sh", "-c", "echo bye; exit 5"], path=sys.argv[1])
print(r.status, r.stdout.decode().strip(), flush=True)
"""


def test_an_interpreter_exiting_right_after_run_leaves_nothing(lxcpath: str) -> None:
    # run() returns before the container's end: the exit waits for it.
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    before = _imc_dirs(lxcpath)
    r = subprocess.run([sys.executable, "-c", _EXIT_RIGHT_AFTER, lxcpath], cwd=root,
                       capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": root})
    # (No warning either: the exit waits before lxactors' own exit handlers run.)
    assert (r.returncode, r.stdout, r.stderr) == (0, "5 bye\n", "")
    assert _imc_dirs(lxcpath) == before


def test_timeout_kills_and_reports_output(lxcpath: str, imcs: Runner) -> None:
    t0 = time.monotonic()
    with pytest.raises(imc.ImcTimeoutError) as info:
        imcs.run(["sh", "-c", "echo early; sleep 30"], path=lxcpath, timeout=0.5)
    assert time.monotonic() - t0 < 10
    assert info.value.stdout == b"early\n"


def test_kill(lxcpath: str, imcs: Runner) -> None:
    run = imcs.spawn(["sleep", "30"], path=lxcpath)
    run.kill()
    assert run.wait(10) == -9
    assert run.exited is not None and run.exited.signal == 9
    assert _gone(lxcpath, run.name)


def test_input_environment_and_cwd(lxcpath: str) -> None:
    status, out, _ = imc.run(
        ["sh", "-c", "cat; echo \"$GREETING $HOME $(pwd) $(hostname)\""],
        path=lxcpath, input=b"from-stdin\n", env={"GREETING": "hello world"},
        hostname="sealed")
    assert status == 0
    assert out == b"from-stdin\nhello world /home/imc /home/imc sealed\n"


def test_large_output_is_flow_controlled_and_complete(lxcpath: str, imcs: Runner) -> None:
    n = 3 * 1024 * 1024
    status, out, _ = imcs.run(["head", "-c", str(n), "/dev/zero"], path=lxcpath)
    assert status == 0 and len(out) == n


def test_many_at_once(lxcpath: str, imcs: Runner) -> None:
    results: dict[int, imc.Result] = {}

    def one(i: int) -> None:
        results[i] = imcs.run(["sh", "-c", f"echo {i}; id -u"], path=lxcpath)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(results) == list(range(8))
    uids = set()
    for i, r in results.items():
        first, uid = r.stdout.decode().split()
        assert r.status == 0 and first == str(i)
        uids.add(uid)
    assert len(uids) == 8


class _Collector(pykka.ThreadingActor):
    def __init__(self, done: threading.Event) -> None:
        super().__init__()
        self.got: list[Any] = []
        self.done = done

    def on_receive(self, message: Any) -> Any:
        self.got.append(message)
        if isinstance(message, imc.Exited):
            self.done.set()
        return None

    def messages(self) -> list[Any]:
        return self.got


def test_messages_to_an_owner_actor(lxcpath: str, imcs: Runner) -> None:
    done = threading.Event()
    actor = _Collector.start(done)
    try:
        run = imcs.spawn(["sh", "-c", "echo hi; echo oops >&2; exit 7"], owner=actor,
                        path=lxcpath)
        assert done.wait(30)
        got = actor.proxy().messages().get(timeout=5)
    finally:
        actor.stop()
    assert b"".join(m.data for m in got if isinstance(m, imc.Stdout)) == b"hi\n"
    assert b"".join(m.data for m in got if isinstance(m, imc.Stderr)) == b"oops\n"
    assert got[-1] == imc.Exited(run.name, 7)
    with pytest.raises(Exception, match="owner"):
        run.receive(0)


def test_bad_arguments_fail_before_anything_runs(lxcpath: str) -> None:
    before = liblxc.list_all_containers(lxcpath)
    with pytest.raises(TypeError):
        imc.spawn("id", path=lxcpath)
    with pytest.raises(ValueError, match="absolute"):
        imc.spawn(["id"], path=lxcpath, binds=["usr"])
    with pytest.raises(ValueError, match="not root"):
        imc.spawn(["id"], path=lxcpath, uid=0)
    with pytest.raises(ValueError, match="bridge"):
        imc.spawn(["id"], path=lxcpath, address="10.0.0.2/24")
    with pytest.raises(ValueError):
        imc.spawn(["id"], path=lxcpath, env={"A=B": "c"})
    with pytest.raises(ValueError, match="hostname"):
        imc.spawn(["id"], path=lxcpath, hostname="bad\nname")
    # liblxc itself refuses this one: nothing is left either.
    with pytest.raises(LxcError, match=r"lxc\.no-such-key"):
        imc.spawn(["id"], path=lxcpath, config=[("lxc.no-such-key", "1")])
    assert liblxc.list_all_containers(lxcpath) == before
    assert not dirs_left(lxcpath, "imc-")


@pytest.fixture
def bridge() -> Iterator[str]:
    if shutil.which("ip") is None:
        pytest.skip("needs iproute2")
    with made_bridge("lxaimc", "10.213.7.1/24") as name:
        yield name


def test_network_on_a_bridge(lxcpath: str, bridge: str, imcs: Runner) -> None:
    if imcs.pooled:
        # A pool's containers run at once (the refill boots while a command
        # runs): they cannot share an address.
        with pytest.raises(ValueError, match="address"):
            imc.Pool(1, path=lxcpath, bridge=bridge, address="10.213.7.2/24")
        status, out, err = imcs.run(["ip", "-o", "link", "show", "eth0"], path=lxcpath,
                                    bridge=bridge)
        assert status == 0 and b"eth0" in out, err
        imcs.close()
    else:
        status, out, err = imcs.run(["ip", "-4", "-o", "addr", "show", "eth0"], path=lxcpath,
                                    bridge=bridge, address="10.213.7.2/24")
        assert status == 0, err
        assert b"10.213.7.2/24" in out
    # The veth goes with the container (run returns as it ends).
    def links() -> str:
        return subprocess.run(["ip", "-o", "link", "show", "master", bridge],
                              capture_output=True, text=True, check=True).stdout

    wait_for(lambda: links() == "", what="the veth gone with the container")


def test_receive_times_out_with_queue_empty(lxcpath: str, imcs: Runner) -> None:
    with imcs.spawn(["sleep", "30"], path=lxcpath) as run:
        with pytest.raises(queue.Empty):
            run.receive(timeout=0.05)
        run.kill()
        assert isinstance(_messages(run)[-1], imc.Exited)


def test_commands_are_bounded_by_default(lxcpath: str, imcs: Runner) -> None:
    def read(path: str) -> str:
        with open(path, encoding="utf-8") as f:
            return f.read().strip()

    with imcs.spawn(["sleep", "30"], path=lxcpath) as run:
        with liblxc.Container(run.name, lxcpath) as h:
            init = h.init_pid()
        assert read(cgroup_file(init, "pids", "pids.max")) == "256"
        memory = "memory.limit_in_bytes" if "memory" in host_layout().v1 else "memory.max"
        assert int(read(cgroup_file(init, "memory", memory))) == 256 << 20
        run.kill()
    # A memory hog is killed at its bound (SIGKILL: -9); a fork loop meets pids.max.
    status, _, _ = imcs.run(["dd", "if=/dev/zero", "of=/dev/null", "bs=256M", "count=1"],
                           path=lxcpath, limits=Limits(memory="32M"))
    assert status == -9
    status, _, err = imcs.run(["sh", "-c", "i=0; while [ $i -lt 40 ]; do sleep 5 & "
                              "i=$((i+1)); done; exit 0"], path=lxcpath,
                             limits=Limits(pids=16), timeout=60)
    assert b"fork" in err.lower() or b"resource" in err.lower(), err
    with pytest.raises(ValueError, match="tmpfs_size"):
        imcs.spawn(["true"], path=lxcpath, limits=Limits(disk="1G"))
