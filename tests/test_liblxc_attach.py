"""lxactors.liblxc on real busybox containers: running programs in a container, and its fds.

Together the test_liblxc_*.py modules exercise every public function and ``Container``
member at least once, each test checking a result that a broken binding would get wrong.
The containers come from ``make_container`` (overlay snapshots of the session's busybox
``base``); anything else a test makes is registered with ``extra``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from lxactors import liblxc
from lxactors._errors import LxcError
from lxactors._helper import launcher
from tests.util import proc_status, read_until, sh

# --------------------------------------------------------------------------- attach


def test_attach_run_wait(make_container) -> None:
    c = make_container(start=True)
    r = sh(c, "echo out; echo err >&2; cat; exit 3", input=b"fed to stdin\n")
    assert r == liblxc.AttachResult(status=3, stdout=b"out\nfed to stdin\n", stderr=b"err\n",
                                    timed_out=False)

    r = c.attach_run_wait(["id"], uid=1000, gid=1000, groups=[5, 6])
    assert r.status == 0
    assert r.stdout.decode().split() == ["uid=1000", "gid=1000", "groups=5,6"]

    r = sh(c, 'echo "$FOO"; pwd', env={"FOO": "bar baz"}, cwd="/tmp")
    assert r.stdout == b"bar baz\n/tmp\n"
    r = c.attach_run_wait(["env"], clear_env=True, env={"ONLY": "this"})
    assert b"ONLY=this" in r.stdout.splitlines()
    assert not [ln for ln in r.stdout.splitlines() if ln.startswith(b"PYTEST_")]

    # Runs in the container: its hostname, its pid namespace.
    r = sh(c, "hostname; echo $$")
    host, pid = r.stdout.decode().split()
    assert host == c.name and int(pid) > 1

    big = os.urandom(64 << 10)
    r = c.attach_run_wait(["cat"], input=big, timeout=30)
    assert r.status == 0 and r.stdout == big
    r = c.attach_run_wait(["/bin/sh", "-c", "head -c 3000000 /dev/zero"], timeout=30)
    assert r.status == 0 and r.stdout == bytes(3000000)

    r = c.attach_run_wait(["/bin/no-such-program"])
    assert r.status == 127


def test_attach_run_wait_input_too_large_keeps_the_helper(make_container) -> None:
    """Input travels in the request message (SOCK_SEQPACKET, ~200 KB at most)."""
    from lxactors._helperclient import helper

    c = make_container(start=True)
    before = helper().pid
    with pytest.raises(LxcError) as e:
        c.attach_run_wait(["cat"], input=bytes(1 << 20))
    assert "too large" in e.value.message
    assert helper().pid == before  # not restarted (that would apply owner-death policies)
    assert c.attach_run_wait(["true"]).status == 0


def test_attach_run_wait_timeout_kills(make_container) -> None:
    c = make_container(start=True)
    t = time.monotonic()
    r = c.attach_run_wait(["sleep", "60"], timeout=0.5)
    assert time.monotonic() - t < 20
    assert r.timed_out is True
    assert r.status == -9
    assert "sleep" not in sh(c, "ps").stdout.decode()


def test_attach_run_waitl(make_container) -> None:
    c = make_container(start=True)
    r = c.attach_run_waitl("/bin/echo", "a", "b c")
    assert r.status == 0 and r.stdout == b"a b c\n" and r.stderr == b""
    r = c.attach_run_waitl("/bin/sh", "-c", "exit 9")
    assert r.status == 9


def test_attach(make_container) -> None:
    c = make_container(start=True)
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    try:
        a = c.attach(["/bin/sh", "-c", "echo started; read line; echo got-$line; exit 7"],
                     stdin=in_r, stdout=out_w)
        os.close(in_r)
        os.close(out_w)
        in_r = out_w = -1
        assert isinstance(a, liblxc.Attached)
        assert a.pid > 0
        read_until(out_r, b"started\n")
        # a.pid is the host's view of a process inside the container.
        assert os.readlink(f"/proc/{a.pid}/ns/pid") == os.readlink(f"/proc/{c.init_pid()}/ns/pid")
        assert int(proc_status(a.pid)["NSpid"].split()[-1]) > 1
        os.write(in_w, b"x\n")
        assert a.wait(30) == 7
        assert a.wait() == 7  # the result is kept
        assert read_until(out_r, b"got-x\n").endswith(b"got-x\n")
        a.close()
    finally:
        for fd in (in_r, in_w, out_r, out_w):
            if fd >= 0:
                os.close(fd)


def test_attach_default_stdio_is_devnull(make_container) -> None:
    c = make_container(start=True)
    a = c.attach(["/bin/sh", "-c", "read x; test -z \"$x\" && readlink /proc/self/fd/0 | "
                  "grep -q null"])
    assert a.wait(30) == 0


def test_input_the_command_does_not_read_is_dropped_not_fatal(make_container) -> None:
    """The capture writes *input* to a command that ends, or closes its stdin, first:
    its status and output still come back."""
    c = make_container(start=True)
    big = b"x" * 150_000  # more than a pipe holds
    assert c.attach_run_wait(["/bin/true"], input=big).status == 0
    r = sh(c, "head -c 10 >/dev/null; exec <&-; echo read-10; exit 4", input=big)
    assert (r.status, r.stdout) == (4, b"read-10\n")


def test_an_attached_command_gets_default_signals_in_a_session_of_its_own(
        make_container) -> None:
    """The helper ignores the user's ^C, hangups and broken pipes; its attached
    commands must not (a `yes | head` inside would never end), nor be in the
    user's session (the terminal's ^C is not for them).  attach() runs in a
    fork of the launcher program; attach_run_wait's capture in a Python worker."""
    c = make_container(start=True)
    out_r, out_w = os.pipe()
    try:
        a = c.attach(["/bin/sh", "-c", "echo up; exec sleep 60"], stdout=out_w)
        os.close(out_w)
        out_w = -1
        read_until(out_r, b"up\n")
        assert proc_status(a.pid)["SigIgn"] == "0000000000000000"
        assert proc_status(a.pid)["SigBlk"] == "0000000000000000"
        assert os.getsid(a.pid) != os.getsid(0)
        parent = int(proc_status(a.pid)["PPid"])
        assert os.readlink(f"/proc/{parent}/exe") == os.path.realpath(launcher.PROGRAM)
        os.kill(a.pid, 15)
        assert a.wait(30) == -15
    finally:
        for fd in (out_r, out_w):
            if fd >= 0:
                os.close(fd)
    r = c.attach_run_wait(["/bin/sh", "-c", "grep -E 'SigIgn|SigBlk' /proc/self/status; "
                           "yes | head -n 2"])
    assert r.status == 0
    assert r.stdout == b"SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\ny\ny\n"


#: A user's process that ignores what a shell's `&` makes it ignore (and a
#: signal of its own choosing), then starts a container and runs commands in
#: it by every path: lxc-start, in-process start, attach() in the launcher,
#: attach_run_wait in a worker.  It prints what each of them ignores.
_IGNORING_USER = """
import os, signal, sys
for sig in (signal.SIGINT, signal.SIGQUIT, signal.SIGUSR1):
    signal.signal(sig, signal.SIG_IGN)
from lxactors import liblxc
def ignored(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(ln.split()[1] for ln in f if ln.startswith("SigIgn:"))
with liblxc.Container(sys.argv[1], sys.argv[2]) as c:
    for close_all_fds in (True, False):
        c.want_close_all_fds(close_all_fds)
        c.start(argv=["/bin/sleep", "1000"])
        print("init", ignored(c.init_pid()))
        a = c.attach(["/bin/sleep", "1000"])
        print("attach", ignored(a.pid))
        os.kill(a.pid, 9)
        a.wait(30)
        # busybox sh ignores SIGQUIT itself, and restores what it inherited for
        # a command it forks, or one it is told to exec.
        r = c.attach_run_wait(["/bin/sh", "-c", "exec grep SigIgn /proc/self/status"])
        print("attach_run_wait", r.stdout.split()[1].decode())
        c.stop()
"""


def test_no_child_inherits_what_the_users_process_ignores(make_container) -> None:
    """An ignored signal stays ignored across fork and exec: were the helper to
    pass on its user's (a shell's `&` ignores SIGINT and SIGQUIT), a container's
    init or command could not be stopped as its own programs expect."""
    c = make_container()
    r = subprocess.run([sys.executable, "-c", _IGNORING_USER, c.name, c.get_config_path()],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    zero = "0000000000000000"
    assert r.stdout.split("\n") == [f"{what} {zero}" for what in ("init", "attach",
                                     "attach_run_wait") * 2] + [""], r.stdout
    assert not c.is_running()


def test_attached_stdout_ends_when_the_command_closes_it(make_container) -> None:
    """Only the command holds the fds it was given: its reader sees end of file
    when it closes them, while it still runs (not when it ends)."""
    c = make_container(start=True)
    out_r, out_w = os.pipe()
    a = c.attach(["/bin/sh", "-c", "echo bye; exec >&- 2>&-; exec sleep 30"], stdout=out_w)
    os.close(out_w)
    try:
        got = b""
        while chunk := os.read(out_r, 100):  # returns b"" at end of file
            got += chunk
        assert got == b"bye\n"
        assert os.path.exists(f"/proc/{a.pid}")  # still running
        os.kill(a.pid, 9)
        assert a.wait(30) == -9
    finally:
        os.close(out_r)


# --------------------------------------------------------------------------- fds


def test_devpts_fd(make_container) -> None:
    c = make_container(start=True)
    fd = c.devpts_fd()
    try:
        st = os.fstat(fd)
        assert st.st_mode & 0o170000 == 0o040000  # a directory: the devpts root
        assert st.st_dev != os.stat("/dev/pts").st_dev  # the container's own instance
        assert "ptmx" in os.listdir(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)


def test_seccomp_notify_fd_without_policy(make_container) -> None:
    c = make_container(start=True)
    with pytest.raises(LxcError) as e:
        c.seccomp_notify_fd()
    assert e.value.container == c.name and e.value.operation == "seccomp_notify_fd"
    with pytest.raises(LxcError) as e:
        c.seccomp_notify_fd_active()
    assert e.value.operation == "seccomp_notify_fd_active"


def test_attach_no_new_privs_flag(make_container) -> None:
    c = make_container(start=True)
    plain = sh(c, "grep NoNewPrivs /proc/self/status").stdout.split()
    nnp = sh(c, "grep NoNewPrivs /proc/self/status",
             flags=liblxc.ATTACH_NO_NEW_PRIVS).stdout.split()
    assert plain == [b"NoNewPrivs:", b"0"]
    assert nnp == [b"NoNewPrivs:", b"1"]
