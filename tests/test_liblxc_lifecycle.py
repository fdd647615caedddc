"""lxactors.liblxc on real busybox containers: create, start, stop, reboot, daemonize, failure logs.

Together the test_liblxc_*.py modules exercise every public function and ``Container``
member at least once, each test checking a result that a broken binding would get wrong.
The containers come from ``make_container`` (overlay snapshots of the session's busybox
``base``); anything else a test makes is registered with ``extra``.
"""

from __future__ import annotations

import os
import shutil

import pytest

from lxactors import liblxc
from lxactors._errors import LxcError
from tests.util import assert_no_private_log_line, pid_gone, proc_status, sh, unique_name, wait_for

# --------------------------------------------------------------------------- the seed's example


def test_seed_low_level_example(lxcpath: str, base: str) -> None:
    """erlxc's low-level example: define, create busybox, start, shutdown, destroy."""
    name = unique_name("seed")
    c = liblxc.Container(name, lxcpath)
    try:
        c.set_config_item("lxc.net.0.type", "empty")
        assert not c.is_defined()
        assert c.state() == "STOPPED"

        c.create("busybox")
        assert c.is_defined()
        assert c.state() == "STOPPED"
        assert name in liblxc.list_defined_containers(lxcpath)
        assert os.path.isfile(os.path.join(lxcpath, name, "rootfs", "bin", "busybox"))
        assert c.get_config_item("lxc.net.0.type") == "empty"

        pid = c.start()
        assert c.state() == "RUNNING"
        assert c.init_pid() == pid
        assert name in liblxc.list_active_containers(lxcpath)

        assert c.shutdown(30) is True
        assert c.state() == "STOPPED"
        assert c.init_pid() is None

        c.destroy()
        assert not c.is_defined()
        assert name not in liblxc.list_defined_containers(lxcpath)
        assert not os.path.exists(os.path.join(lxcpath, name))
    finally:
        if c.is_running():
            c.stop()
        if c.is_defined():
            c.destroy()
        c.close()


# --------------------------------------------------------------------------- lifecycle


def test_create_and_createl(lxcpath: str, base: str, extra) -> None:
    a, b = unique_name("cr"), unique_name("crl")
    extra += [a, b]
    with liblxc.Container(a, lxcpath) as c:
        c.create("busybox", flags=liblxc.CREATE_QUIET)
        assert c.is_defined()
        assert c.get_config_item("lxc.rootfs.path") == f"{lxcpath}/{a}/rootfs"
        with pytest.raises(LxcError) as e:
            c.create("busybox")
        assert "already exists" in e.value.message
    with liblxc.Container(b, lxcpath) as c:
        c.createl("busybox")
        assert c.is_defined()
        assert c.get_config_item("lxc.uts.name") == b
        assert os.access(os.path.join(lxcpath, b, "rootfs", "bin", "busybox"), os.X_OK)
    assert_no_private_log_line(lxcpath)


def test_create_failure_carries_template_output(lxcpath: str, base: str) -> None:
    name = unique_name("bad")
    with liblxc.Container(name, lxcpath) as c:
        with pytest.raises(LxcError) as e:
            c.create("no-such-template-xyz")
        assert e.value.container == name and e.value.operation == "create"
        assert e.value.log
        assert not c.is_defined()
    assert name not in liblxc.list_defined_containers(lxcpath)
    assert not os.path.exists(os.path.join(lxcpath, name, "rootfs"))
    shutil.rmtree(os.path.join(lxcpath, name), ignore_errors=True)


def test_start_with_argv_startl_and_useinit(make_container) -> None:
    c = make_container()
    pid = c.startl("/bin/sleep", "1000")
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        assert f.read() == b"/bin/sleep\x001000\x00"
    c.stop()

    pid = c.start(True, ["/bin/sleep", "1000"])  # lxc-init as pid 1, sleep under it
    assert c.init_pid() == pid
    ps = sh(c, "ps -o pid,args").stdout.decode()
    assert "/bin/sleep 1000" in ps
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        assert b"sleep" not in f.read()


def test_shutdown(make_container) -> None:
    c = make_container(start=True)
    pid = c.init_pid()
    assert c.shutdown(30) is True
    assert c.state() == "STOPPED"
    assert c.init_pid() is None
    wait_for(lambda: pid_gone(pid), what="init to go")
    assert c.shutdown(5) is True  # already stopped


def test_shutdown_reaches_an_init_that_was_not_listening_yet(make_container) -> None:
    # sh as init ignores the halt signal (the busybox base's lxc.signal.halt,
    # SIGUSR1) for 2 s: a pid namespace's init ignores a signal it has no
    # handler for. Then it traps it. liblxc signals once; shutdown asks again.
    c = make_container()
    assert c.get_config_item("lxc.signal.halt") == "10"  # SIGUSR1
    pid = c.start(False, ["/bin/sh", "-c", "sleep 2; trap 'exit 0' USR1; while :; do sleep 1; done"])
    assert pid is not None
    assert c.shutdown(15) is True
    assert c.state() == "STOPPED"
    wait_for(lambda: pid_gone(pid), what="init to go")


def test_stop(make_container) -> None:
    c = make_container(start=True)
    pid = c.init_pid()
    c.stop()
    assert c.state() == "STOPPED" and not c.is_running()
    wait_for(lambda: pid_gone(pid), what="init to go")
    c.stop()  # liblxc: stopping a stopped container succeeds
    assert c.state() == "STOPPED"


def test_reboot(make_container) -> None:
    c = make_container(start=True)
    first = c.init_pid()
    c.reboot()
    second = wait_for(lambda: (lambda p: p if p not in (None, first) and c.state() == "RUNNING"
                               else None)(c.init_pid()), what="a new init after reboot")
    assert second != first
    assert sh(c, "echo up").stdout == b"up\n"

    assert c.reboot2(30) is True
    third = c.init_pid()
    assert third not in (None, first, second)
    assert c.state() == "RUNNING"


def test_want_daemonize_false(make_container) -> None:
    """nodaemonize: the helper's worker stays in the foreground as the monitor."""
    c = make_container()
    c.want_daemonize(False)
    assert c.daemonize is False
    pid = c.start()
    assert c.state() == "RUNNING" and c.init_pid() == pid
    ppid = int(proc_status(pid)["PPid"])
    with open(f"/proc/{ppid}/cmdline", "rb") as f:
        cmd = f.read()
    assert not cmd.startswith(b"[lxc monitor]")
    assert b"lxactors._helper" in cmd
    c.stop()
    wait_for(lambda: pid_gone(ppid), what="the foreground monitor to exit")
    c.want_daemonize(True)
    assert c.daemonize is True
    pid = c.start()
    with open(f"/proc/{proc_status(pid)['PPid']}/cmdline", "rb") as f:
        assert f.read().startswith(b"[lxc monitor]")


def test_want_daemonize_false_failed_start_reports(make_container) -> None:
    c = make_container()
    c.want_daemonize(False)
    c.set_config_item("lxc.init.cmd", "/no/such/init")
    with pytest.raises(LxcError) as e:
        c.start(timeout=60)
    assert e.value.operation == "start"
    assert any("/no/such/init" in line for line in e.value.log), e.value.log
    assert c.state() == "STOPPED"


@pytest.mark.parametrize("close_all", [True, False])
def test_want_close_all_fds(make_container, close_all: bool) -> None:
    """Either way init gets only /dev/null or its console (the helper passes on
    no fds to liblxc to begin with, so the flag has nothing visible to close)."""
    c = make_container()
    c.want_close_all_fds(close_all)
    pid = c.start()
    assert c.state() == "RUNNING"
    targets = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
    assert all(t in ("/dev/null", "/dev/console") or t.startswith("/dev/pts/")
               for t in targets), targets


def test_failed_start_raises_with_log(make_container) -> None:
    c = make_container()
    c.set_config_item("lxc.init.cmd", "/no/such/init")
    with pytest.raises(LxcError) as e:
        c.start()
    err = e.value
    assert err.container == c.name
    assert err.operation == "start"
    assert any("/no/such/init" in line for line in err.log), err.log
    assert any("ERROR" in line for line in err.log)
    assert c.name in str(err) and "start" in str(err)
    assert c.state() == "STOPPED"

    c.set_config_item("lxc.init.cmd", "/sbin/init")
    c.set_config_item("lxc.rootfs.path", "dir:/no/such/rootfs")
    with pytest.raises(LxcError) as e:
        c.start()
    assert any("/no/such/rootfs" in line for line in e.value.log), e.value.log
    assert not any("/no/such/init" in line for line in e.value.log)  # only this call's lines
    assert c.state() == "STOPPED"


def test_errors_from_helper_calls_carry_the_log(make_container) -> None:
    c = make_container(start=True)
    with pytest.raises(LxcError) as e:
        c.destroy()  # running
    assert e.value.container == c.name and e.value.operation == "destroy"
    assert any("not stopped" in line for line in e.value.log), e.value.log
    assert c.is_defined()


def test_log_size_and_lines_since(make_container) -> None:
    c = make_container()
    before = c.log_size()
    c.set_config_item("lxc.init.cmd", "/no/such/init")
    with pytest.raises(LxcError):
        c.start()
    assert c.log_size() > before
    assert any("/no/such/init" in line for line in c.log_lines_since(before))
