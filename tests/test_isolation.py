"""The user's process is kept out of liblxc's forks (the helper process's job).

liblxc's daemonized start forks its caller into the ``[lxc monitor]``;
attach changes the caller's signal handling; on this cgroup v1 host start
moves the caller into ``lxc.monitor.<name>``.  None of it may reach the
process that uses lxactors.
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import socket
import struct
import threading
import time

import pytest

from lxactors import liblxc
from lxactors._helper import launcher
from lxactors._helperclient import helper
from tests.util import status_field, wait_for

MIB = 1 << 20


def rss_bytes(pid: int | str) -> int:
    value, unit = status_field(pid, "VmRSS").split()
    assert unit == "kB"
    return int(value) * 1024


def monitor_of(c: liblxc.Container, lxcpath: str) -> int:
    """The ``[lxc monitor] <lxcpath> <name>`` process of a running container."""
    pid = c.init_pid()
    assert pid is not None
    ppid = int(status_field(pid, "PPid"))
    with open(f"/proc/{ppid}/cmdline", "rb") as f:
        cmd = f.read()
    assert cmd.startswith(b"[lxc monitor]"), cmd
    assert lxcpath.encode() in cmd and c.name.encode() in cmd, cmd
    return ppid


def fd_targets(pid: int) -> dict[int, str]:
    """fd -> what it points at; {} for a process that has just ended."""
    out: dict[int, str] = {}
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except FileNotFoundError:
        return out
    for fd in fds:
        try:
            out[int(fd)] = os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:
            continue
    return out


def container_pids(init: int) -> list[int]:
    """init and everything under it (from /proc/*/stat parent links)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            ppid = int(status_field(entry, "PPid"))
        except (FileNotFoundError, KeyError, ProcessLookupError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [init]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def own_cgroups() -> str:
    with open("/proc/self/cgroup", encoding="utf-8") as f:
        return f.read()


# --------------------------------------------------------------------------- (1) monitor memory


def test_monitor_is_small_although_the_process_is_big(lxcpath: str, make_container) -> None:
    big = bytearray(1 << 30)
    for i in range(0, len(big), 4096):
        big[i] = 1
    try:
        assert rss_bytes("self") > 1024 * MIB
        c = make_container(start=True)
        monitor = monitor_of(c, lxcpath)
        assert rss_bytes(monitor) < 20 * MIB, f"monitor VmRSS {rss_bytes(monitor) // 1024} kB"
        # Nor is the monitor (or its parent chain) a fork of this process.
        assert int(status_field(monitor, "PPid")) != os.getpid()
        assert rss_bytes(c.init_pid()) < 20 * MIB
    finally:
        del big


# --------------------------------------------------------------------------- (2) threads


class CountingHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.format(record)
        self.count += 1


@pytest.mark.slow
def test_start_stop_cycles_with_busy_threads(make_container) -> None:
    """500 start/stop cycles while 8 threads allocate and log: no hang."""
    cycles, threads_n = 500, 8
    log = logging.getLogger("lxactors.test.noise")
    handler = CountingHandler()
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    stop = threading.Event()
    allocations = [0] * threads_n

    def noise(i: int) -> None:
        while not stop.is_set():
            junk = [bytearray(4096) for _ in range(64)]
            allocations[i] += len(junk)
            log.info("thread %d allocated %d buffers", i, allocations[i])

    workers = [threading.Thread(target=noise, args=(i,), daemon=True) for i in range(threads_n)]
    c = make_container()
    done: list[float] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            for _ in range(cycles):
                pid = c.start(timeout=60)
                assert pid is not None and c.state() == "RUNNING"
                c.stop()
                assert c.state() == "STOPPED"
                done.append(time.monotonic())
        except BaseException as exc:
            failure.append(exc)

    for w in workers:
        w.start()
    t0 = time.monotonic()
    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    try:
        runner.join(timeout=900)
    finally:
        stop.set()
        for w in workers:
            w.join(30)
        log.removeHandler(handler)
    elapsed = time.monotonic() - t0
    print(f"\n{len(done)} start/stop cycles with {threads_n} busy threads: {elapsed:.1f} s "
          f"({elapsed / max(1, len(done)) * 1000:.0f} ms/cycle); {handler.count} log records")
    assert not runner.is_alive(), f"hung after {len(done)} cycles ({elapsed:.0f} s)"
    assert not failure, failure
    assert len(done) == cycles
    assert handler.count > 0 and all(allocations)


# --------------------------------------------------------------------------- (3) fds


def test_no_fd_of_the_process_reaches_the_container(lxcpath: str, make_container,
                                                    tmp_path) -> None:
    f = open(tmp_path / "secret", "w+")
    a, b = socket.socketpair()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    r, w = os.pipe()
    ours = [f.fileno(), a.fileno(), b.fileno(), listener.fileno(), r, w]
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        for fd in ours:
            os.set_inheritable(fd, True)
        inodes = {os.fstat(fd).st_ino for fd in ours}
        mine = {os.readlink(f"/proc/self/fd/{fd}") for fd in ours}

        c = make_container(start=True)
        init = c.init_pid()
        assert init is not None
        targets = fd_targets(init)
        allowed = {"/dev/null", "/dev/console"}
        assert all(t in allowed or t.startswith(("/dev/pts/", "/dev/tty")) for t in
                   targets.values()), targets

        # Nowhere in the container, nor in its monitor, is any of ours open.
        for pid in [*container_pids(init), monitor_of(c, lxcpath)]:
            for fd, target in fd_targets(pid).items():
                assert target not in mine, f"pid {pid} fd {fd} -> {target}"
                assert str(tmp_path) not in target
                try:
                    ino = os.stat(f"/proc/{pid}/fd/{fd}").st_ino
                except FileNotFoundError:
                    continue
                if target.startswith(("socket:", "pipe:")):
                    assert ino not in inodes, f"pid {pid} fd {fd} -> {target}"

        # An attached command gets its three pipes, nothing else (fd 3 is ls's
        # own handle on the directory it lists).
        res = c.attach_run_wait(["/bin/ls", "-l", "/proc/self/fd/"])
        fds = {int(ln.split()[8]): ln.split("->")[-1].strip() if "->" in ln else None
               for ln in res.stdout.decode().splitlines()[1:]}
        assert set(fds) == {0, 1, 2, 3}, res.stdout
        assert fds[3] is None and all(fds[i].startswith("pipe:") for i in (0, 1, 2)), fds
    finally:
        f.close()
        a.close()
        b.close()
        listener.close()
        os.close(r)
        os.close(w)


def test_attached_command_cannot_forge_the_reply(make_container) -> None:
    """The helper's reply pipe must not leak into attached commands (no fd 3..9)."""
    c = make_container(start=True)
    data = pickle.dumps(("ok", {"status": 99, "stdout": b"forged", "stderr": b"",
                                "timed_out": False}), protocol=2)
    esc = "".join(f"\\{x:03o}" for x in struct.pack("!I", len(data)) + data)
    script = "; ".join(f"printf '{esc}' >&{fd} 2>/dev/null" for fd in range(3, 10))
    res = c.attach_run_wait(["/bin/sh", "-c", f"{script}; echo real"])
    assert res.stdout == b"real\n" and res.status == 0, res


# --------------------------------------------------------------------------- (4) signals


def test_sigint_still_works_after_attach(make_container) -> None:
    c = make_container(start=True)
    seen: list[int] = []

    def handler(signum, frame) -> None:
        seen.append(signum)

    with open("/proc/self/status", encoding="utf-8") as f:
        sig_before = [ln for ln in f if ln.startswith(("SigBlk", "SigIgn"))]
    old = signal.signal(signal.SIGINT, handler)
    try:
        assert c.attach_run_wait(["true"]).status == 0
        a = c.attach(["true"])
        assert a.wait(30) == 0
        assert signal.getsignal(signal.SIGINT) is handler
        os.kill(os.getpid(), signal.SIGINT)
        wait_for(lambda: seen, what="the SIGINT handler to run")
        assert seen == [signal.SIGINT]

        signal.signal(signal.SIGINT, signal.default_int_handler)
        assert c.attach_run_wait(["true"]).status == 0
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            wait_for(lambda: False, timeout=5, what="KeyboardInterrupt")
    finally:
        signal.signal(signal.SIGINT, old)
    with open("/proc/self/status", encoding="utf-8") as f:
        assert [ln for ln in f if ln.startswith(("SigBlk", "SigIgn"))] == sig_before


# --------------------------------------------------------------------------- (5) cgroups


def test_process_cgroups_do_not_change_on_start(make_container) -> None:
    before = own_cgroups()
    helper_pid = helper().pid
    assert helper_pid is not None
    with open(f"/proc/{helper_pid}/cgroup", encoding="utf-8") as f:
        helper_before = f.read()

    c = make_container(start=True)
    assert own_cgroups() == before
    assert "lxc.monitor" not in own_cgroups() and "lxc.payload" not in own_cgroups()
    assert c.attach_run_wait(["true"]).status == 0
    assert own_cgroups() == before
    # Nor is this process listed in the container's cgroups.
    for d in os.listdir("/sys/fs/cgroup"):
        for kind in ("monitor", "payload"):
            procs = os.path.join("/sys/fs/cgroup", d, f"lxc.{kind}.{c.name}", "cgroup.procs")
            if os.path.exists(procs):
                with open(procs, encoding="utf-8") as f:
                    assert str(os.getpid()) not in f.read().split()
    c.stop()
    assert own_cgroups() == before
    with open(f"/proc/{helper_pid}/cgroup", encoding="utf-8") as f:
        assert f.read() == helper_before  # the helper's workers absorb the move


def test_the_launcher_is_a_program_of_its_own_holding_none_of_the_helpers_fds(
        make_container, lxcpath) -> None:
    """The helper execs its launcher: each start's caller and each [lxc monitor] are forks
    of that small C program, not of the Python helper (its pages and page tables), and
    none of the helper's fds (the client's socket, the owner's pidfd) reach them."""
    c = make_container(start=True)
    helper_pid = helper().pid
    assert helper_pid is not None
    program = os.path.realpath(launcher.PROGRAM)
    assert os.readlink(f"/proc/{monitor_of(c, lxcpath)}/exe") == program
    launchers = [p for p in _children(helper_pid) if os.readlink(f"/proc/{p}/exe") == program]
    assert len(launchers) == 1
    theirs, ours = fd_targets(launchers[0]), fd_targets(helper_pid)
    held = {t for fd, t in theirs.items() if fd > 2}
    assert sum(t.startswith("socket:") for t in held) == 1  # its end of the pair
    assert not held & {t for fd, t in ours.items() if fd > 2}
    c.stop()


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and int(status_field(entry, "PPid")) == pid:
                found.append(int(entry))
        except (FileNotFoundError, KeyError, ProcessLookupError):
            continue  # ended while listed
    return found


# --------------------------------------------------------------------------- the owner's terminal

# An owner whose stdio is a terminal: spawns a container started by lxc-start,
# one started in-process (a custom init), one with its monitor in the
# foreground, attaches a command to the first; writes what to look at as JSON to
# the pipe OUT, then waits for the pipe GO's end of file.
TERMINAL_OWNER = r"""
import json, os, sys, lxactors
from lxactors._helperclient import helper
path, out, go = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
refs = [lxactors.spawn(path=path),
        lxactors.spawn(path=path, start={"useinit": True, "argv": ["sleep", "600"]}),
        lxactors.spawn(path=path, nodaemonize=True)]
inits = [lxactors.container(r).init_pid() for r in refs]
attached = lxactors.container(refs[0]).attach(["sleep", "600"])
os.write(out, json.dumps({"helper": helper().pid, "inits": inits,
                          "attached": attached.pid}).encode() + b"\n")
os.close(out)
os.read(go, 1)
os.kill(attached.pid, 9)
attached.wait(10)
"""


def test_no_process_of_the_helper_or_a_container_holds_the_owners_terminal(lxcpath: str) -> None:
    """The helper is started by the user's process: what it inherits, its workers, lxc-start,
    the monitors and init may inherit.  None of them may hold the owner's terminal (a process
    holding it can inject input, TIOCSTI) nor its stderr file (pytest's capture file, seen
    held by a container-side process in a full run)."""
    import json
    import pty
    import subprocess
    import sys

    ptx, pts = pty.openpty()
    out_r, out_w = os.pipe()
    go_r, go_w = os.pipe()
    st = os.fstat(pts)
    terminal = (st.st_dev, st.st_ino)  # not st_rdev: each container has a pts 0 of its own
    env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.abspath(__file__)))}
    owner = subprocess.Popen([sys.executable, "-c", TERMINAL_OWNER, lxcpath, str(out_w),
                              str(go_r)], stdin=pts, stdout=pts, stderr=pts,
                             pass_fds=(out_w, go_r), env=env, start_new_session=True)
    os.close(pts)
    os.close(out_w)
    os.close(go_r)
    try:
        with os.fdopen(out_r, "rb") as f:
            line = f.readline()
        assert line, f"the owner ended early: {os.read(ptx, 4096)!r}"
        seen = json.loads(line)
        pids = [seen["helper"], *container_pids(seen["helper"]), seen["attached"]]
        for init in seen["inits"]:
            pids += [int(status_field(init, "PPid")), *container_pids(init)]
        held = {}
        for pid in pids:
            for fd, target in fd_targets(pid).items():
                try:
                    st = os.stat(f"/proc/{pid}/fd/{fd}")
                except FileNotFoundError:
                    continue
                if (st.st_dev, st.st_ino) == terminal:
                    held[(pid, fd)] = target
        assert not held, f"the owner's terminal is held by {held}"
    finally:
        os.close(go_w)
        try:
            owner.wait(60)
        finally:
            os.close(ptx)
    assert owner.returncode == 0


def test_what_the_helper_writes_to_stderr_still_reaches_ours(capfd: pytest.CaptureFixture[str]) -> None:
    """The helper's stderr is a pipe relayed to ours (a wrapper's or a crash's words are kept)."""
    from lxactors._helperclient import Helper

    h = Helper(["sh", "-c", 'echo "from the helper $$" >&2; exec "$@"', "sh"])
    try:
        h._ensure()
        pid = h.pid
        seen = ""

        def relayed() -> bool:
            nonlocal seen
            seen += capfd.readouterr().err
            return f"from the helper {pid}" in seen

        wait_for(relayed, 10, "the helper's stderr line")
        assert os.readlink(f"/proc/{pid}/fd/2").startswith("pipe:")
    finally:
        h.close()


def test_an_attached_pid_is_reported_once_it_runs_the_command(make_container) -> None:
    """Before exec, an attached process is a fork of the helper's worker holding all its fds
    (the reply pipe to this process, the helper's stderr) inside the container: the one a
    full run caught holding pytest's capture file.  attach() returns after the exec."""
    c = make_container(start=True)
    for _ in range(20):
        attached = c.attach(["sleep", "30"])
        try:
            exe, fds = os.readlink(f"/proc/{attached.pid}/exe"), fd_targets(attached.pid)
        finally:
            os.kill(attached.pid, signal.SIGKILL)
            attached.wait(10)
        assert exe.endswith("busybox"), exe
        assert set(fds) == {0, 1, 2} and set(fds.values()) == {"/dev/null"}, fds
