"""Faults: processes killed under lxactors' feet, starts that fail, chroot writes that fail.

Each test says what is killed or broken, then what lxactors must do about it:
tell the owner, apply the container's policy, lose no container, leave
nothing half-made.  See docs/RELIABILITY.md for the table.
"""

from __future__ import annotations

import glob
import os
import queue
import select
import shutil
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
from lxactors import _errlog, liblxc
from lxactors._helper import protocol
from lxactors._helperclient import helper
from tests import leaks
from tests.util import pid_gone, read_console_until, remove_container, unique_name, wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# --------------------------------------------------------------------------- helpers


def wait_pid_gone(pid: int, timeout: float = 10.0) -> None:
    """Wait on a pidfd (no polling) until *pid* has exited."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        ready, _, _ = select.select([fd], [], [], timeout)
        assert ready, f"pid {pid} still running after {timeout} s"
    finally:
        os.close(fd)


def monitors_of(lxcpath: str, name: str) -> list[int]:
    """Pids of ``[lxc monitor] LXCPATH NAME`` processes (cmdline words, exact)."""
    found = []
    for pid in leaks.monitor_pids(lxcpath):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                words = f.read().replace(b"\0", b" ").split()
        except FileNotFoundError:
            continue
        if words[:2] == [b"[lxc", b"monitor]"] and lxcpath.encode() in words and name.encode() in words:
            found.append(pid)
    return found


def monitor_pid(lxcpath: str, name: str) -> int:
    """The monitor of a running container."""
    found = monitors_of(lxcpath, name)
    assert len(found) == 1, f"monitors of {name}: {found}"
    return found[0]


def state_of(lxcpath: str, name: str) -> tuple[bool, str]:
    """(defined, state), read with a fresh handle."""
    try:
        with liblxc.Container(name, lxcpath) as c:
            return c.is_defined(), c.state()
    except lxactors.LxcError:
        return False, "being destroyed"


def cgroup_dirs_of(name: str) -> list[str]:
    """lxc.monitor.NAME / lxc.payload.NAME directories (any hierarchy, any -N suffix)."""
    out = []
    for hierarchy in os.listdir(leaks.CGROUP_ROOT):
        d = os.path.join(leaks.CGROUP_ROOT, hierarchy)
        try:
            names = os.listdir(d)
        except OSError:
            continue
        for n in names:
            for kind in ("lxc.monitor.", "lxc.payload."):
                rest = n[len(kind):] if n.startswith(kind) else None
                if rest is not None and (rest == name or (rest.startswith(name + "-")
                                                          and rest[len(name) + 1:].isdigit())):
                    out.append(os.path.join(d, n))
    return sorted(out)


def remove_empty_cgroups(name: str) -> None:
    """Remove what a killed monitor could not: the container's empty cgroups."""
    for top in cgroup_dirs_of(name):
        for d, _dirs, _files in os.walk(top, topdown=False):
            try:
                os.rmdir(d)
            except OSError:
                pass


def messages(ref: lxactors.ContainerRef, until: type, timeout: float = 10.0) -> list[Any]:
    """A plain-code owner's messages up to and including the first *until*."""
    got: list[Any] = []
    deadline = time.monotonic() + timeout
    while not (got and isinstance(got[-1], until)):
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no {until.__name__} within {timeout} s; got {got}"
        try:
            got.append(ref.receive(timeout=remaining))
        except queue.Empty:
            continue
    return got


class Recorder(pykka.ThreadingActor):
    """An owner actor that spawns on request and records its messages."""

    def __init__(self) -> None:
        super().__init__()
        self.got: list[Any] = []
        self.exited = threading.Event()

    def spawn(self, **options: Any) -> lxactors.ContainerRef:
        return lxactors.spawn(**options)

    def on_receive(self, message: Any) -> Any:
        self.got.append(message)
        if isinstance(message, lxactors.ContainerExited):
            self.exited.set()
        return None

    def received(self) -> list[Any]:
        return list(self.got)


@pytest.fixture
def recorder() -> Iterator[pykka.ActorProxy[Recorder]]:
    ref = Recorder.start()
    yield ref.proxy()
    if ref.is_alive():
        ref.stop()


@pytest.fixture
def named(lxcpath: str) -> Iterator[Callable[[str], str]]:
    """Names for containers a test makes; whatever is left of them is removed after."""
    names: list[str] = []

    def make(prefix: str) -> str:
        names.append(unique_name(prefix))
        return names[-1]

    yield make
    for name in names:
        remove_container(name, lxcpath)
        remove_empty_cgroups(name)


# --------------------------------------------------------------------------- init killed


def test_init_sigkilled_owner_told_signal_9_and_temporary_deleted(lxcpath: str, recorder) -> None:
    ref = recorder.spawn(path=lxcpath).get(timeout=120)
    pid = lxactors.container(ref).init_pid()
    assert pid and os.path.isdir(os.path.join(lxcpath, ref.name))
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not ref.alive, 10, "the container's actor to end")
    exited = [m for m in recorder.received().get() if isinstance(m, lxactors.ContainerExited)]
    assert len(exited) == 1, exited
    assert (exited[0].container, exited[0].reason, exited[0].signal) == (ref.name, "signal", 9)
    assert not exited[0].normal
    assert ref.name not in liblxc.list_all_containers(lxcpath)
    assert ref.name not in os.listdir(lxcpath)


# --------------------------------------------------------------------------- monitor killed
#
# What happens (liblxc 5.0.2): init has the monitor as parent and SIGKILL as
# its parent-death signal, so it dies with it at once; the actor sees init
# end through its pidfd.  The monitor never logs init's status, and its own
# teardown (cgroup removal) never runs: the container's lxc.monitor.* /
# lxc.payload.* cgroups stay behind.  That is how lxactors tells it from a
# normal end (lxactors._monitor): the owner is told ContainerExited "lost",
# the leftover cgroups are removed, and the policy runs as for an abnormal
# end: temporary deleted, transient and permanent restarted.


@pytest.mark.parametrize("type_", ["temporary", "transient", "permanent"])
def test_monitor_sigkilled_owner_told_and_policy_applied(type_: str, spawn: Any,
                                                         lxcpath: str) -> None:
    ref = spawn(type=type_)
    try:
        init = lxactors.container(ref).init_pid()
        assert init is not None
        monitor = monitor_pid(lxcpath, ref.name)
        t0 = time.monotonic()
        os.kill(monitor, signal.SIGKILL)
        got = messages(ref, lxactors.ContainerExited)
        noticed = time.monotonic() - t0
        assert noticed < 5, f"noticed after {noticed:.1f} s"
        assert got[-1].container == ref.name
        wait_pid_gone(init, 5)  # the container's processes went with the monitor
        if type_ == "temporary":
            wait_for(lambda: not ref.alive, 10, "the actor to end")
            assert ref.name not in liblxc.list_all_containers(lxcpath)
            assert ref.name not in os.listdir(lxcpath)
        else:  # transient and permanent: an abnormal end, restarted
            restarted = messages(ref, lxactors.ContainerRestarted)[-1]
            assert restarted.restarts == 1
            new_init = lxactors.container(ref).init_pid()
            assert new_init not in (None, init)
            assert monitor_pid(lxcpath, ref.name) != monitor
            lxactors.send(ref, "\necho back-$((40+2))\n")
            read_console_until(ref, b"back-42")
            lxactors.exit(ref, "kill")
        assert state_of(lxcpath, ref.name)[1] == "STOPPED"
    finally:
        if ref.alive:
            lxactors.exit(ref, "kill")
        wait_for(lambda: not monitors_of(lxcpath, ref.name), 10, "the monitor to go")
        remove_empty_cgroups(ref.name)


def test_monitor_sigkilled_is_not_reported_as_a_normal_exit(spawn: Any, lxcpath: str) -> None:
    """liblxc logs init's status from the monitor only: with no cause found, the end was
    taken for a normal one (status 0), and a transient was not restarted."""
    ref = spawn(type="transient")
    try:
        os.kill(monitor_pid(lxcpath, ref.name), signal.SIGKILL)
        exited = messages(ref, lxactors.ContainerExited)[-1]
        assert not exited.normal, exited
        assert exited.reason == "lost", exited
        assert messages(ref, lxactors.ContainerRestarted)[-1].exited == exited
    finally:
        if ref.alive:
            lxactors.exit(ref, "kill")
        wait_for(lambda: state_of(lxcpath, ref.name)[1] == "STOPPED", 10, "STOPPED")
        remove_empty_cgroups(ref.name)


def test_monitor_sigkilled_leaves_no_cgroups(spawn: Any, lxcpath: str) -> None:
    """Removing them is the monitor's teardown, which a killed monitor never runs."""
    ref = spawn()
    try:
        assert cgroup_dirs_of(ref.name)
        os.kill(monitor_pid(lxcpath, ref.name), signal.SIGKILL)
        messages(ref, lxactors.ContainerExited)
        wait_for(lambda: not ref.alive, 10, "the actor to end")
        left: list[str] = []
        try:
            wait_for(lambda: not cgroup_dirs_of(ref.name), 3, "the cgroups to go")
        except AssertionError:
            left = cgroup_dirs_of(ref.name)
        assert not left, f"left behind: {left}"
    finally:
        remove_empty_cgroups(ref.name)


def test_remove_stale_cgroups_takes_a_stopped_containers_leftovers_only(make_container,
                                                                       lxcpath: str) -> None:
    """The helper op behind "lost": it counts and removes the empty payload/monitor cgroups
    of a stopped container (a killed monitor's), and leaves a running one's alone."""
    c = make_container()
    req = protocol.RemoveStaleCgroups(name=c.name, path=lxcpath, log=None)
    assert helper().call(req, container=c.name) == 0  # none: how a normal end looks
    made: list[str] = []
    try:
        for hierarchy in os.listdir(leaks.CGROUP_ROOT):
            for kind in ("lxc.payload.", "lxc.monitor."):
                d = os.path.join(leaks.CGROUP_ROOT, hierarchy, kind + c.name)
                try:
                    os.makedirs(os.path.join(d, "init"))
                except OSError:
                    continue  # not a cgroup hierarchy
                made.append(d)
        payloads = sum(os.path.basename(d).startswith("lxc.payload.") for d in made)
        assert payloads
        assert helper().call(req, container=c.name) == payloads
        assert cgroup_dirs_of(c.name) == []
        c.start()
        running = cgroup_dirs_of(c.name)
        assert running
        assert helper().call(req, container=c.name) == 0
        assert cgroup_dirs_of(c.name) == running
        c.stop()
    finally:
        remove_empty_cgroups(c.name)


# --------------------------------------------------------------------------- helper killed


def kill_helper() -> int:
    """SIGKILL this process's helper; return its pid once it has exited."""
    pid = helper().pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    wait_pid_gone(pid)
    return pid


def test_helper_sigkilled_is_replaced_and_loses_no_container(spawn: Any, lxcpath: str) -> None:
    temp = [spawn() for _ in range(2)]
    trans = spawn(type="transient")
    refs = [*temp, trans]
    inits = [lxactors.container(r).init_pid() for r in refs]
    old = kill_helper()
    # The containers do not depend on the helper: their monitors are daemons.
    assert all(not pid_gone(p) for p in inits if p)
    assert sorted(liblxc.list_active_containers(lxcpath)) == sorted(r.name for r in refs)
    # The next call that needs a helper gets a new one, transparently.
    r = lxactors.container(temp[0]).attach_run_wait(["echo", "after"])
    assert (r.status, r.stdout) == (0, b"after\n")
    new = helper().pid
    assert new is not None and new != old and not pid_gone(new)
    assert [lxactors.container(r).init_pid() for r in refs] == inits
    # ...and the consoles and the policies still work.
    lxactors.send(trans, "\necho still-$((6*7))\n")
    read_console_until(trans, b"still-42")
    extra = spawn()
    for ref in [*refs, extra]:
        exited = lxactors.exit(ref, "kill")
        assert exited is not None and exited.reason == "kill"
    for ref in [*temp, extra]:
        assert ref.name not in liblxc.list_all_containers(lxcpath)
    assert state_of(lxcpath, trans.name) == (True, "STOPPED")


def shared_ids(pid: int | str) -> dict[tuple[int, int], str]:
    """(st_dev, st_ino) -> target of *pid*'s sockets, pipes and files.  Left out: ptys (the
    console is shared with the monitor on purpose), anon inodes (one inode for all), /dev/null,
    and the container's liblxc log (the same file, opened by each process on its own)."""
    logs = _errlog.log_dir()
    out = {}
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except FileNotFoundError:
        return out
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            st = os.stat(f"/proc/{pid}/fd/{fd}")
        except (FileNotFoundError, ProcessLookupError):
            continue
        if target.startswith(("socket:", "pipe:", "/")) and not target.startswith(
                ("/dev/null", "/dev/pts/", "/dev/ptmx", "/dev/console", "/dev/tty", logs)):
            out[(st.st_dev, st.st_ino)] = target
    return out


def test_containers_hold_no_socket_or_pipe_of_the_owner_or_the_helper(spawn: Any,
                                                                      lxcpath: str) -> None:
    """A gap next to test_isolation.py's fd test (low level, the user's process only): with
    several consoles open, a container spawned through the high-level API, its monitor and
    an attached command hold nothing of the owner's process nor of the helper (whose
    socket to the owner is how owner death is seen: a container holding it could fake it)."""
    others = [spawn() for _ in range(2)]
    ref = spawn(type="transient")
    h = lxactors.container(ref)
    for r in [*others, ref]:
        lxactors.send(r, "\necho up\n")
        read_console_until(r, b"up")
    hpid = helper().pid
    assert hpid is not None
    theirs = {**shared_ids("self"), **shared_ids(hpid)}
    assert any(t.startswith("socket:") for t in shared_ids(hpid).values())  # the owner's socket
    init = h.init_pid()
    assert init is not None
    attached = h.attach(["sleep", "30"])
    try:
        pids = [monitor_pid(lxcpath, ref.name), init, attached.pid]
        with open(f"/proc/{init}/task/{init}/children", encoding="utf-8") as f:
            pids += [int(p) for p in f.read().split()]
        assert any(t.startswith("socket:") for t in shared_ids(pids[0]).values())  # the monitor's
        for pid in pids:
            leaked = {k: v for k, v in shared_ids(pid).items() if k in theirs}
            assert not leaked, f"pid {pid} holds {leaked}"
    finally:
        os.kill(attached.pid, signal.SIGKILL)
        attached.wait(10)


# The owner process: spawns a temporary and a transient container, SIGKILLs its
# own helper, then (CALL=1) makes a call that needs the helper or (CALL=0) makes
# none and waits for the runtime to replace the helper by itself; prints
# "ready" and the names, then exits or waits to be killed.
OWNER = r"""
import os, select, signal, sys, threading, time, lxactors
from lxactors._helperclient import helper
path, call, end = sys.argv[1], sys.argv[2] == "1", sys.argv[3]
refs = [lxactors.spawn(path=path), lxactors.spawn(path=path, type="transient")]
old = helper().pid
fd = os.pidfd_open(old)
os.kill(old, signal.SIGKILL)
select.select([fd], [], [], 10)
if call:
    assert lxactors.container(refs[0]).attach_run_wait(["true"]).status == 0
else:  # no call: the runtime must replace the helper on its own (the registry is
    deadline = time.monotonic() + 5  # replayed under the helper's lock: once free, it is done)
    while time.monotonic() < deadline:
        with helper()._lock:
            if helper().pid != old:
                break
        time.sleep(0.01)
print("ready", old, *[r.name for r in refs], flush=True)
if end == "wait":
    threading.Event().wait()
"""


def readline_within(proc: subprocess.Popen[str], timeout: float) -> str:
    """The next line of *proc*'s stdout, or '' after *timeout* seconds."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    return proc.stdout.readline() if ready else ""


def helper_children(pid: int) -> set[int]:
    """Helper processes (``lxactors._helper``) whose parent is *pid*."""
    out = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read()
            with open(f"/proc/{entry}/stat", encoding="utf-8") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if ppid == pid and b"lxactors._helper" in cmd:
            out.add(int(entry))
    return out


def expect_policies(lxcpath: str, temporary: str, transient: str, timeout: float = 10.0) -> None:
    wait_for(lambda: state_of(lxcpath, temporary) == (False, "STOPPED")
             and state_of(lxcpath, transient) == (True, "STOPPED"), timeout,
             f"the policies: {temporary} deleted, {transient} stopped "
             f"(now {state_of(lxcpath, temporary)}, {state_of(lxcpath, transient)})")
    assert temporary not in os.listdir(lxcpath)


@pytest.mark.parametrize(("call", "end"), [
    pytest.param("1", "exit", id="call-then-interpreter-exit"),
    pytest.param("1", "kill", id="call-then-sigkill"),
    pytest.param("0", "exit", id="no-call-then-interpreter-exit"),
    pytest.param("0", "kill", id="no-call-then-sigkill"),
])
def test_helper_sigkilled_policies_still_apply_when_the_owner_process_dies(
        call: str, end: str, lxcpath: str) -> None:
    proc = subprocess.Popen([sys.executable, "-c", OWNER, lxcpath, call,
                             "exit" if end == "exit" else "wait"],
                            cwd=ROOT, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    names: list[str] = []
    try:
        line = readline_within(proc, 60).split()
        assert line and line[0] == "ready", f"the owner process did not get ready: {line}"
        old, temporary, transient = int(line[1]), line[2], line[3]
        names += [temporary, transient]
        if end == "kill":
            assert state_of(lxcpath, temporary) == (True, "RUNNING")
            # The runtime has a new helper (so someone will apply the policies)...
            wait_for(lambda: helper_children(proc.pid) - {old}, 5, "a new helper, without a call")
            proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        # ...and it applies them when the owner process is gone.
        expect_policies(lxcpath, temporary, transient)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        # A SIGKILLed process cannot remove its per-process liblxc log directory.
        for d in glob.glob(os.path.join(tempfile.gettempdir(), f"lxactors-{proc.pid}-*")):
            shutil.rmtree(d, ignore_errors=True)
        for name in names:
            if state_of(lxcpath, name)[0]:
                with liblxc.Container(name, lxcpath) as c:
                    if c.is_running():
                        c.stop()
                    c.destroy()


# --------------------------------------------------------------------------- failed starts


def test_start_fails_on_a_missing_init_binary(lxcpath: str) -> None:
    before = sorted(os.listdir(lxcpath))
    with pytest.raises(lxactors.LxcError) as info:
        lxactors.spawn(path=lxcpath, config=[("lxc.init.cmd", "/no/such/init")])
    err = info.value
    assert err.container and err.container.startswith("lxa-")
    assert err.operation == "start"
    assert any("/no/such/init" in line for line in err.log), err.log
    assert err.container in str(err) and "start" in str(err) and "/no/such/init" in str(err)
    # The unnamed container was a temporary clone: nothing of it is left.
    assert sorted(os.listdir(lxcpath)) == before
    assert err.container not in liblxc.list_all_containers(lxcpath)


def test_start_fails_on_a_missing_rootfs_and_keeps_the_named_container(
        lxcpath: str, make_container, tmp_path: Any) -> None:
    c = make_container()
    cfg = c.config_file_name()
    assert cfg
    with open(cfg, "rb") as f:
        config = f.read()
    missing = str(tmp_path / "no-such-rootfs")
    with pytest.raises(lxactors.LxcError) as info:
        lxactors.spawn(c.name, path=lxcpath, config=[("lxc.rootfs.path", f"dir:{missing}")])
    err = info.value
    assert (err.container, err.operation) == (c.name, "start")
    assert any(missing in line for line in err.log), err.log
    # The named container existed before: it is left as it was.
    assert state_of(lxcpath, c.name) == (True, "STOPPED")
    with open(cfg, "rb") as f:
        assert f.read() == config
    assert not os.path.exists(missing)


def test_start_fails_for_a_new_named_container_which_is_removed(lxcpath: str, named: Any) -> None:
    name = named("badinit")
    with pytest.raises(lxactors.LxcError) as info:
        lxactors.spawn(name, path=lxcpath, config=[("lxc.init.cmd", "/no/such/init")])
    assert (info.value.container, info.value.operation) == (name, "start")
    assert any("/no/such/init" in line for line in info.value.log)
    assert name not in liblxc.list_all_containers(lxcpath)
    assert name not in os.listdir(lxcpath)


def test_unknown_config_key_fails_before_start(lxcpath: str, make_container) -> None:
    c = make_container()
    cfg = c.config_file_name()
    assert cfg
    with open(cfg, "rb") as f:
        config = f.read()
    with pytest.raises(lxactors.LxcError) as info:
        lxactors.spawn(c.name, path=lxcpath, config=[("lxc.uts.name", "changed"),
                                                     ("lxc.no.such.key", "1")])
    assert info.value.container == c.name
    assert "lxc.no.such.key" in info.value.operation
    with open(cfg, "rb") as f:
        assert f.read() == config
    assert state_of(lxcpath, c.name) == (True, "STOPPED")


# --------------------------------------------------------------------------- chroot writes that fail


def rootfs_of(c: liblxc.Container) -> str:
    from lxactors._chroot import rootfs_dir

    return rootfs_dir(c.get_config_item("lxc.rootfs.path"))


def temp_files(rootfs: str) -> list[str]:
    """The chroot writer's temporary files (``.NAME.lxactors-XXXXXXXX``) anywhere in *rootfs*."""
    out = []
    for d, _dirs, files in os.walk(rootfs):
        out.extend(os.path.join(d, f) for f in files if ".lxactors-" in f)
    return out


@pytest.fixture
def sources(tmp_path: Any) -> Iterator[dict[str, str]]:
    """Copy sources that cannot be copied: missing, dangling, a directory, a FIFO, a device."""
    (tmp_path / "a-directory").mkdir()
    os.symlink(tmp_path / "nowhere", tmp_path / "dangling")
    os.mkfifo(tmp_path / "fifo")
    yield {"missing": str(tmp_path / "missing"), "dangling": str(tmp_path / "dangling"),
           "directory": str(tmp_path / "a-directory"), "fifo": str(tmp_path / "fifo"),
           "device": "/dev/zero"}


# (spec, text the error must carry).  The obstacles are made by the specs
# themselves, so the same case fails on an overlay clone (whose upper layer,
# where specs are written, starts empty) and on a dir rootfs.
BAD_SPECS: dict[str, tuple[dict[str, list[Any]], str]] = {
    "parent-is-a-file": ({"file": [("/srv/plain", b"p"), ("/srv/plain/x", b"data")]},
                         "FileSpec /srv/plain/x: a symlink or non-directory is in the way"),
    "dir-under-a-file": ({"file": [("/srv/plain", b"p")], "dir": ["/srv/plain/sub"]},
                         "DirSpec /srv/plain/sub: a symlink or non-directory is in the way"),
    "file-over-a-directory": ({"dir": ["/srv/adir/sub"], "file": [("/srv/adir", b"x" * 100_000)]},
                              "FileSpec /srv/adir: Is a directory"),
    "copy-missing-source": ({"copy": [("missing", "/srv/x")]}, "CopySpec /srv/x: No such file"),
    "copy-dangling-symlink": ({"copy": [("dangling", "/srv/x")]}, "CopySpec /srv/x: No such file"),
    "copy-a-directory": ({"copy": [("directory", "/srv/x")]}, "is not a regular file"),
    "copy-a-fifo": ({"copy": [("fifo", "/srv/x")]}, "is not a regular file"),
    "copy-a-device": ({"copy": [("device", "/srv/x")]}, "is not a regular file"),
}


def bad_spec(case: str, sources: dict[str, str]) -> tuple[dict[str, list[Any]], str]:
    spec, text = BAD_SPECS[case]
    if "copy" in spec:
        spec = {"copy": [(sources[src], dst) for src, dst in spec["copy"]]}
    return spec, text


@pytest.mark.parametrize("case", list(BAD_SPECS))
def test_chroot_failure_unnamed_leaves_no_container(case: str, lxcpath: str,
                                                    sources: dict[str, str]) -> None:
    spec, text = bad_spec(case, sources)
    before = sorted(os.listdir(lxcpath))
    t0 = time.monotonic()
    with pytest.raises(lxactors.LxcError) as info:
        lxactors.spawn(path=lxcpath, chroot=spec, timeout=30)
    assert time.monotonic() - t0 < 30  # a FIFO source used to hang here for ever
    err = info.value
    assert err.operation == "chroot" and err.container and err.container.startswith("lxa-")
    assert text in str(err), str(err)
    assert sorted(os.listdir(lxcpath)) == before


@pytest.mark.parametrize("case", list(BAD_SPECS))
def test_chroot_failure_named_leaves_nothing_half_made(case: str, lxcpath: str, make_container,
                                                       sources: dict[str, str]) -> None:
    spec, text = bad_spec(case, sources)
    c = make_container()
    rootfs = rootfs_of(c)
    cfg = c.config_file_name()
    assert cfg
    with open(cfg, "rb") as f:
        config = f.read()
    # A good spec first: it is made whole; the failing one not at all.
    specs = [("file", [("/srv/first", b"first\n" * 1000)]), *spec.items()]
    with pytest.raises(lxactors.LxcError) as info:
        lxactors.spawn(c.name, path=lxcpath, chroot=specs, timeout=30)
    assert (info.value.container, info.value.operation) == (c.name, "chroot")
    assert text in str(info.value), str(info.value)
    assert temp_files(rootfs) == []
    with open(os.path.join(rootfs, "srv", "first"), "rb") as f:
        assert f.read() == b"first\n" * 1000
    assert not os.path.exists(os.path.join(rootfs, "srv", "x"))
    if case == "file-over-a-directory":
        assert os.path.isdir(os.path.join(rootfs, "srv", "adir", "sub"))
    if case == "parent-is-a-file":
        with open(os.path.join(rootfs, "srv", "plain"), "rb") as f:
            assert f.read() == b"p"
    with open(cfg, "rb") as f:
        assert f.read() == config
    assert state_of(lxcpath, c.name) == (True, "STOPPED")


def test_chroot_write_failure_midway_removes_the_temporary_file(make_container) -> None:
    """The rename of a written temporary file fails: the temporary file goes too."""
    from lxactors._chroot import FileSpec, apply_chroot

    c = make_container()
    rootfs = rootfs_of(c)
    os.makedirs(os.path.join(rootfs, "srv", "full"))
    with open(os.path.join(rootfs, "srv", "full", "inside"), "wb") as f:
        f.write(b"keep")
    with pytest.raises(lxactors.LxcError, match="/srv/full: Is a directory"):
        apply_chroot(c.name, rootfs, [FileSpec(("srv", "ok"), b"ok", None),
                                      FileSpec(("srv", "full"), b"x" * 100_000, 0o644)])
    assert temp_files(rootfs) == []
    with open(os.path.join(rootfs, "srv", "full", "inside"), "rb") as f:
        assert f.read() == b"keep"
    with open(os.path.join(rootfs, "srv", "ok"), "rb") as f:
        assert f.read() == b"ok"
