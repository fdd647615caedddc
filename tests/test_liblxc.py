"""The low-level API (lxactors.liblxc) against real busybox containers.

Every public function and ``Container`` member is exercised at least once,
each test checking a result that a broken binding would get wrong.  The
containers come from ``make_container`` (overlay snapshots of the session's
busybox ``base``); anything else a test makes is registered with ``extra``.
"""

from __future__ import annotations

import glob
import os
import pty
import select
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from lxactors import liblxc
from lxactors._errors import ContainerClosedError, LxcError
from tests.util import unique_name, wait_for

MS_BIND = 4096
SEED_STATES = ("STOPPED", "STARTING", "RUNNING", "STOPPING", "ABORTING", "FREEZING", "FROZEN",
               "THAWED")


# --------------------------------------------------------------------------- helpers


def sh(c: liblxc.Container, script: str, **kw) -> liblxc.AttachResult:
    return c.attach_run_wait(["/bin/sh", "-c", script], timeout=30, **kw)


def proc_status(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status", encoding="utf-8") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def pid_gone(pid: int) -> bool:
    try:
        return proc_status(pid).get("State", "").startswith(("Z", "X"))
    except FileNotFoundError:
        return True


def configs_under(path: str) -> list[str]:
    return glob.glob(os.path.join(path, "**", "config"), recursive=True)


def assert_no_private_log_line(path: str) -> None:
    """No config file in *path* names one of lxactors' private per-handle logs."""
    for cfg in configs_under(path):
        with open(cfg, encoding="utf-8", errors="replace") as f:
            bad = [ln for ln in f if ln.startswith("lxc.log.file") and "lxactors-" in ln]
        assert not bad, f"{cfg} keeps lxactors' private log: {bad}"


def host_cgroup_dir(pid: int, controller: str) -> str:
    with open(f"/proc/{pid}/cgroup", encoding="utf-8") as f:
        for line in f:
            _, ctrls, rel = line.rstrip("\n").split(":", 2)
            if controller in ctrls.split(","):
                return os.path.join("/sys/fs/cgroup", controller, rel.lstrip("/"))
    raise AssertionError(f"pid {pid} is in no {controller} cgroup")


def read_until(fd: int, want: bytes, timeout: float = 15.0,
               poke: Callable[[bytes], None] | None = None) -> bytes:
    """Read *fd* until *want* shows up; *poke(buffer)* runs between reads."""
    buf = b""
    deadline = time.monotonic() + timeout
    while want not in buf:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"{want!r} not seen within {timeout} s; got {buf[-400:]!r}")
        r, _, _ = select.select([fd], [], [], min(remaining, 0.1))
        if r:
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            buf += chunk
        if poke is not None:
            poke(buf)
    assert want in buf, buf
    return buf


class ShellDriver:
    """Drives busybox's askfirst console shell: Enter until a prompt, then one command."""

    def __init__(self, fd: int, command: bytes) -> None:
        self.fd, self.command = fd, command
        self.sent = False
        self.next_enter = 0.0

    def __call__(self, buf: bytes) -> None:
        if self.sent:
            return
        if b"# " in buf:
            os.write(self.fd, self.command + b"\r")
            self.sent = True
        elif time.monotonic() >= self.next_enter:
            os.write(self.fd, b"\r")
            self.next_enter = time.monotonic() + 0.5


@pytest.fixture
def extra(lxcpath: str) -> Iterator[list[str]]:
    """Names of further containers a test makes: stopped and destroyed afterwards."""
    names: list[str] = []
    yield names
    for name in reversed(names):
        with liblxc.Container(name, lxcpath) as c:
            if c.is_running():
                c.stop()
            if c.is_defined():
                if c.snapshot_list():
                    c.destroy_with_snapshots()
                else:
                    c.destroy()


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


# --------------------------------------------------------------------------- free functions


def test_get_version() -> None:
    assert liblxc.get_version().startswith("5.0.")
    out = subprocess.run(["lxc-start", "--version"], capture_output=True, text=True).stdout
    assert out.strip() == liblxc.get_version()


def test_list_containers(lxcpath: str, make_container, tmp_path) -> None:
    c = make_container()
    assert {"base", c.name} <= set(liblxc.list_defined_containers(lxcpath))
    assert c.name not in liblxc.list_active_containers(lxcpath)
    assert c.name in liblxc.list_all_containers(lxcpath)

    c.start()
    assert c.name in liblxc.list_active_containers(lxcpath)
    assert "base" not in liblxc.list_active_containers(lxcpath)
    assert {"base", c.name} <= set(liblxc.list_all_containers(lxcpath))
    c.stop()
    assert c.name not in liblxc.list_active_containers(lxcpath)

    assert liblxc.list_defined_containers(tmp_path) == []
    assert liblxc.list_all_containers(str(tmp_path)) == []
    names = liblxc.list_defined_containers(lxcpath)
    assert names == sorted(names)


def test_get_global_config_item() -> None:
    want = subprocess.run(["lxc-config", "lxc.lxcpath"], capture_output=True, text=True,
                          check=True).stdout.strip()
    assert liblxc.get_global_config_item("lxc.lxcpath") == want
    assert liblxc.get_global_config_item("lxc.bogus") is None


def test_config_item_is_supported() -> None:
    assert liblxc.config_item_is_supported("lxc.rootfs.path") is True
    assert liblxc.config_item_is_supported("lxc.uts.name") is True
    assert liblxc.config_item_is_supported("lxc.bogus") is False
    # Keys removed in LXC 3.0 are not "supported" by 5.0.
    assert liblxc.config_item_is_supported("lxc.network.type") is False


def test_has_api_extension() -> None:
    assert liblxc.has_api_extension("mount_injection_file") is True
    assert liblxc.has_api_extension("seccomp_notify") is True
    assert liblxc.has_api_extension("no_such_extension_xyz") is False


def test_get_wait_states() -> None:
    states = liblxc.get_wait_states()
    assert isinstance(states, tuple)
    assert states == SEED_STATES
    assert liblxc.get_wait_states() is states  # cached


def test_log_init_and_close(tmp_path) -> None:
    """lxc_log_init is process-wide (and fixes the level for good): run it in a child."""
    log = tmp_path / "global.log"
    script = f"""
import sys
from lxactors import liblxc
liblxc.log_init(file={str(log)!r}, level="TRACE", prefix="lxactors-test", quiet=True)
liblxc.list_defined_containers({str(tmp_path)!r})
liblxc.Container("absent", {str(tmp_path / "nowhere")!r}).state()
liblxc.log_close()
liblxc.log_close()  # idempotent
"""
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    text = log.read_text()
    assert text, "log_init wrote nothing"
    assert "lxactors-test" in text
    assert "TRACE" in text or "DEBUG" in text or "INFO" in text


# --------------------------------------------------------------------------- identity and state


def test_name_defined_running_state(lxcpath: str, make_container) -> None:
    name = unique_name("ids")
    c = make_container(name)
    assert c.name == name
    assert c.is_defined() is True and c.defined() is True
    assert c.is_running() is False and c.running() is False
    assert c.state() == "STOPPED"
    assert c.init_pid() is None
    assert c.closed is False
    assert name in repr(c) and lxcpath in repr(c)

    c.start()
    assert c.is_running() is True and c.running() is True
    assert c.state() == "RUNNING"

    with liblxc.Container(unique_name("absent"), lxcpath) as absent:
        assert absent.is_defined() is False
        assert absent.is_running() is False
        assert absent.state() == "STOPPED"
        assert absent.init_pid() is None
    assert not os.path.exists(os.path.join(lxcpath, absent.name))


def test_error_fields_and_daemonize(make_container) -> None:
    c = make_container()
    assert c.error_string is None  # liblxc 5.0 never sets it
    assert isinstance(c.error_num, int)
    assert c.daemonize is True


def test_init_pid(make_container) -> None:
    c = make_container(start=True)
    pid = c.init_pid()
    assert pid is not None and pid > 1 and pid != os.getpid()
    assert os.path.isdir(f"/proc/{pid}")
    status = proc_status(pid)
    assert status["Name"] == "init"
    assert status["NSpid"].split()[-1] == "1"  # pid 1 in its own pid namespace
    assert os.readlink(f"/proc/{pid}/ns/pid") != os.readlink("/proc/self/ns/pid")
    ppid = int(status["PPid"])
    with open(f"/proc/{ppid}/cmdline", "rb") as f:
        assert f.read().startswith(b"[lxc monitor]")

    c.stop()
    assert c.init_pid() is None
    wait_for(lambda: pid_gone(pid), what=f"init {pid} to go")


def test_init_pidfd(make_container) -> None:
    c = make_container(start=True)
    fd = c.init_pidfd()
    try:
        with open(f"/proc/self/fdinfo/{fd}", encoding="utf-8") as f:
            info = dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
        assert int(info["Pid"]) == c.init_pid()
        assert int(info["flags"], 8) & os.O_CLOEXEC
        r, _, _ = select.select([fd], [], [], 0)
        assert not r, "pidfd readable while init runs"
        c.stop()
        r, _, _ = select.select([fd], [], [], 10)
        assert r, "pidfd did not become readable when init exited"
    finally:
        os.close(fd)
    with pytest.raises(LxcError) as e:
        c.init_pidfd()
    assert e.value.operation == "init_pidfd"


def test_wait(lxcpath: str, make_container) -> None:
    c = make_container(start=True)
    assert c.wait("RUNNING", 5) is True
    t = time.monotonic()
    assert c.wait("FROZEN", 0) is False  # 0: check once, never "forever"
    assert c.wait("FROZEN", 0.2) is False
    assert time.monotonic() - t < 5

    stopper = threading.Thread(target=lambda: liblxc.Container(c.name, lxcpath).stop())
    stopper.start()
    try:
        assert c.wait("STOPPED", 30) is True
    finally:
        stopper.join(30)
    assert c.state() == "STOPPED"
    assert c.wait("STOPPED", 0) is True


def test_freeze_unfreeze(make_container) -> None:
    c = make_container(start=True)
    c.freeze()
    assert c.state() == "FROZEN"
    assert c.get_cgroup_item("freezer.state").strip() == "FROZEN"
    assert proc_status(c.init_pid())["State"].startswith(("D", "S"))
    c.unfreeze()
    assert c.state() == "RUNNING"
    assert c.get_cgroup_item("freezer.state").strip() == "THAWED"
    assert sh(c, "echo thawed").stdout == b"thawed\n"


def test_may_control(make_container) -> None:
    c = make_container()
    assert c.may_control() is True


# --------------------------------------------------------------------------- configuration


def test_config_file_name_and_path(lxcpath: str, make_container, tmp_path) -> None:
    c = make_container()
    assert c.config_file_name() == os.path.join(lxcpath, c.name, "config")
    assert c.get_config_path() == lxcpath
    try:
        c.set_config_path(str(tmp_path))
        assert c.get_config_path() == str(tmp_path)
        assert c.config_file_name() == os.path.join(str(tmp_path), c.name, "config")
        assert c.is_defined() is False  # nothing of that name there
    finally:
        c.set_config_path(lxcpath)
    assert c.is_defined() is True
    assert os.listdir(tmp_path) == []


def test_get_set_clear_config_item(make_container) -> None:
    c = make_container()
    assert c.get_config_item("lxc.uts.name") == c.name
    assert c.get_config_item("lxc.net.0.type") == "empty"
    # liblxc hands the path back without its "overlay:" type prefix.
    assert c.get_config_item("lxc.rootfs.path").endswith(f"/{c.name}/overlay/delta")

    c.set_config_item("lxc.uts.name", "other-host")
    assert c.get_config_item("lxc.uts.name") == "other-host"

    c.set_config_item("lxc.environment", "A=1")
    assert c.get_config_item("lxc.environment") == "A=1"
    c.set_config_item("lxc.environment", "B=2")
    assert c.get_config_item("lxc.environment") == "A=1\nB=2"
    c.clear_config_item("lxc.environment")
    assert c.get_config_item("lxc.environment") == ""

    with pytest.raises(KeyError):
        c.get_config_item("lxc.bogus")
    with pytest.raises(LxcError) as e:
        c.set_config_item("lxc.bogus", "1")
    assert e.value.container == c.name
    assert "lxc.bogus" in e.value.operation

    # Nothing was written to disk by set_config_item.
    with open(c.config_file_name(), encoding="utf-8") as f:
        assert "other-host" not in f.read()


def test_get_keys(make_container) -> None:
    c = make_container()
    net = c.get_keys("lxc.net.0")
    assert "type" in net
    top = c.get_keys()
    assert "lxc.rootfs.path" in top and "lxc.uts.name" in top
    assert all(k.startswith("lxc.") for k in top)


def test_clear_config_and_load_config(make_container) -> None:
    c = make_container()
    c.clear_config()
    assert c.get_config_item("lxc.uts.name") == ""
    assert c.get_config_item("lxc.rootfs.path") == ""
    c.load_config()  # from the container's config file again
    assert c.get_config_item("lxc.uts.name") == c.name
    assert c.get_config_item("lxc.rootfs.path").endswith(f"/{c.name}/overlay/delta")


def test_save_config_to_alt_file(lxcpath: str, make_container, tmp_path) -> None:
    c = make_container()
    c.set_config_item("lxc.uts.name", "saved-host")
    c.set_config_item("lxc.environment", "SAVED=yes")
    alt = tmp_path / "alt.conf"
    c.save_config(str(alt))
    text = alt.read_text()
    assert "lxc.uts.name = saved-host" in text
    assert "lxc.environment = SAVED=yes" in text
    assert not [ln for ln in text.splitlines()
                if ln.startswith("lxc.log.file") and "/tmp/lxactors-" in ln], text

    # The container's own file is untouched until saved there.
    with open(c.config_file_name(), encoding="utf-8") as f:
        assert "saved-host" not in f.read()

    with liblxc.Container(unique_name("alt"), lxcpath) as other:
        other.clear_config()
        other.load_config(alt)
        assert other.get_config_item("lxc.uts.name") == "saved-host"
        assert other.get_config_item("lxc.environment") == "SAVED=yes"

    c.save_config()
    with open(c.config_file_name(), encoding="utf-8") as f:
        text = f.read()
    assert "lxc.uts.name = saved-host" in text
    assert_no_private_log_line(lxcpath)


def test_get_running_config_item(make_container) -> None:
    c = make_container()
    assert c.get_running_config_item("lxc.uts.name") is None  # not running
    c.start()
    assert c.get_running_config_item("lxc.uts.name") == c.name
    c.set_config_item("lxc.uts.name", "not-applied")
    # The running value comes from the monitor, not from this handle.
    assert c.get_running_config_item("lxc.uts.name") == c.name
    assert sh(c, "hostname").stdout.decode().strip() == c.name


def test_cgroup_items(make_container) -> None:
    c = make_container(start=True)
    pid = c.init_pid()
    assert c.get_cgroup_item("pids.max").strip() == "max"
    c.set_cgroup_item("pids.max", "100")
    assert c.get_cgroup_item("pids.max").strip() == "100"
    with open(os.path.join(host_cgroup_dir(pid, "pids"), "pids.max"), encoding="utf-8") as f:
        assert f.read().strip() == "100"

    c.set_cgroup_item("memory.limit_in_bytes", "256M")
    assert int(c.get_cgroup_item("memory.limit_in_bytes")) == 256 << 20
    with open(os.path.join(host_cgroup_dir(pid, "memory"), "memory.limit_in_bytes"),
              encoding="utf-8") as f:
        assert int(f.read()) == 256 << 20

    with pytest.raises(LxcError) as e:
        c.set_cgroup_item("pids.max", "not-a-number")
    assert e.value.operation == "set_cgroup_item pids.max"
    assert c.get_cgroup_item("pids.max").strip() == "100"

    c.stop()
    with pytest.raises(LxcError):
        c.get_cgroup_item("pids.max")


# --------------------------------------------------------------------------- network


def test_get_interfaces_and_ips(make_container) -> None:
    c = make_container(start=True)
    assert c.get_interfaces() == ["lo"]
    assert c.get_ips() == []  # loopback is left out unless asked for
    assert sh(c, "ip link set lo up").status == 0
    assert c.get_ips("lo", "inet") == ["127.0.0.1"]
    assert c.get_ips("lo", "inet6") == ["::1"]
    assert set(c.get_ips("lo")) == {"127.0.0.1", "::1"}
    assert c.get_ips() == []


@pytest.fixture
def veth() -> Iterator[tuple[str, str]]:
    """A veth pair on the host (this kernel has no dummy links), removed afterwards."""
    tag = os.urandom(3).hex()
    a, b = f"lxa{tag}a", f"lxa{tag}b"
    subprocess.run(["ip", "link", "add", a, "type", "veth", "peer", "name", b], check=True)
    yield a, b
    for dev in (a, b):
        subprocess.run(["ip", "link", "del", dev], capture_output=True)


def host_has_link(dev: str) -> bool:
    return subprocess.run(["ip", "link", "show", dev], capture_output=True).returncode == 0


def test_attach_detach_interface(make_container, veth) -> None:
    dev, _peer = veth
    c = make_container(start=True)
    c.attach_interface(dev, "eth5")
    assert sorted(c.get_interfaces()) == ["eth5", "lo"]
    assert not host_has_link(dev)
    assert sh(c, "ip link show eth5").status == 0

    c.detach_interface("eth5", dev)
    assert c.get_interfaces() == ["lo"]
    assert host_has_link(dev)
    assert sh(c, "ip link show eth5").status != 0

    with pytest.raises(LxcError) as e:
        c.attach_interface("lxanosuchdev0")
    assert e.value.operation == "attach_interface"


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


# --------------------------------------------------------------------------- console


def test_console_getfd(make_container) -> None:
    c = make_container(start=True)
    with c.console_getfd(0) as con:
        assert isinstance(con, liblxc.ConsoleFd)
        assert con.ttynum == 0 and con.fd >= 0 and con.ptx >= 0
        assert not os.get_inheritable(con.ptx) and not os.get_inheritable(con.fd)
        os.write(con.ptx, b"\r")
        buf = read_until(con.ptx, b"hi-42", poke=ShellDriver(con.ptx, b"echo hi-$((6*7))"))
        assert b"echo hi-$((6*7))" in buf  # the echoed command, then its output
    assert con.fd == -1 and con.ptx == -1
    con.close()  # idempotent

    with c.console_getfd() as tty:  # the next free tty (lxc.tty.max = 5)
        assert 1 <= tty.ttynum <= 5
    c.stop()
    with pytest.raises(LxcError) as e:
        c.console_getfd(0)
    assert e.value.operation == "console_getfd"


def test_console_interactive(make_container) -> None:
    """console() relays a pty to the container's console until Ctrl-a q."""
    c = make_container(start=True)
    ptx, pts = pty.openpty()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            c.console(0, pts, pts, pts, 1)
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    try:
        read_until(ptx, b"hi-42", poke=ShellDriver(ptx, b"echo hi-$((6*7))"))
        os.write(ptx, b"\x01q")  # the escape: Ctrl-a q
        t.join(15)
        assert not t.is_alive(), "console() did not return after Ctrl-a q"
        assert not errors, errors
    finally:
        if t.is_alive():
            c.stop()
            t.join(15)
        os.close(ptx)
        os.close(pts)
    assert c.is_running()


def test_console_log(make_container) -> None:
    c = make_container()
    c.set_config_item("lxc.console.buffer.size", "auto")
    c.start()
    assert c.get_running_config_item("lxc.console.buffer.size") not in (None, "", "0")
    # Reading moves the ring buffer's read position: collect what each read returns.
    seen = bytearray()

    def collect(want: bytes) -> bool:
        seen.extend(c.console_log())
        return want in seen

    wait_for(lambda: collect(b"Please press Enter to activate this console."),
             what="busybox's console greeting in the ring buffer")
    assert c.console_log() == b""  # all read: an empty buffer is not an error

    assert sh(c, "echo marker-$((6*7)) > /dev/console").status == 0
    seen.clear()
    wait_for(lambda: collect(b"marker-42"), what="the marker in the console ring buffer")
    assert b"marker-$((6*7))" not in seen  # the output, not the command

    # read_max bounds one read; the rest stays for the next.
    assert sh(c, "echo 0123456789 > /dev/console").status == 0
    first = wait_for(lambda: c.console_log(read_max=4), what="console output")
    assert first == b"0123"
    seen[:] = first
    wait_for(lambda: collect(b"0123456789"), what="the rest of the line")

    # clear drops what is unread.
    assert sh(c, "echo cleared > /dev/console").status == 0
    assert wait_for(lambda: c.console_log(read_max=1), what="console output") == b"c"
    assert c.console_log(clear=True, read=False) == b""
    assert c.console_log() == b""


def test_console_log_without_buffer_fails(make_container) -> None:
    c = make_container(start=True)
    with pytest.raises(LxcError) as e:
        c.console_log()
    assert e.value.operation == "console_log"


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
    assert b"_helper.py" in cmd
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


# --------------------------------------------------------------------------- copies


def test_clone_snapshot(lxcpath: str, make_container) -> None:
    c = make_container(start=True)
    rootfs = c.get_config_item("lxc.rootfs.path")
    assert rootfs == f"{lxcpath}/base/rootfs:{lxcpath}/{c.name}/overlay/delta"
    with open(c.config_file_name(), encoding="utf-8") as f:
        assert f"lxc.rootfs.path = overlay:{rootfs}\n" in f.read()
    assert c.get_config_item("lxc.uts.name") == c.name
    sh(c, "echo only-here > /clone-marker")
    assert not os.path.exists(os.path.join(lxcpath, "base", "rootfs", "clone-marker"))
    assert os.path.exists(os.path.join(lxcpath, c.name, "overlay", "delta", "clone-marker"))
    assert_no_private_log_line(lxcpath)


def test_clone_copy(lxcpath: str, base: str, extra) -> None:
    name = unique_name("copy")
    extra.append(name)
    with liblxc.Container(base, lxcpath) as b:
        c = b.clone(name)
    with c:
        assert c.name == name and c.is_defined()
        assert c.get_config_item("lxc.rootfs.path") == f"{lxcpath}/{name}/rootfs"
        assert c.get_config_item("lxc.uts.name") == name
        assert os.path.isfile(os.path.join(lxcpath, name, "rootfs", "bin", "busybox"))
        c.start()
        sh(c, "echo copy > /copy-marker")
        c.stop()
        assert not os.path.exists(os.path.join(lxcpath, base, "rootfs", "copy-marker"))

    keep = unique_name("keep")
    extra.append(keep)
    with liblxc.Container(base, lxcpath) as b, \
            b.clone(keep, flags=liblxc.CLONE_SNAPSHOT | liblxc.CLONE_KEEPNAME,
                    bdevtype="overlay") as k:
        assert k.get_config_item("lxc.uts.name") == base
    with liblxc.Container(base, lxcpath) as b, pytest.raises(LxcError) as e:
        b.clone(name)  # exists
    assert e.value.operation == "clone"
    assert_no_private_log_line(lxcpath)


def test_rename(lxcpath: str, base: str, extra) -> None:
    old, new = unique_name("old"), unique_name("new")
    extra += [old, new]
    with liblxc.Container(base, lxcpath) as b:
        c = b.clone(old)  # liblxc renames only full copies (not overlay snapshots)
    with c:
        c.rename(new)
        assert c.name == new
        assert c.is_defined()
        assert c.config_file_name() == os.path.join(lxcpath, new, "config")
        assert old not in liblxc.list_defined_containers(lxcpath)
        assert new in liblxc.list_defined_containers(lxcpath)
        assert not os.path.exists(os.path.join(lxcpath, old))
        assert c.get_config_item("lxc.uts.name") == new
        c.start()
        assert sh(c, "hostname").stdout == f"{new}\n".encode()
        c.stop()
    assert_no_private_log_line(lxcpath)


def test_snapshots(lxcpath: str, make_container, extra, tmp_path) -> None:
    c = make_container()
    c.start()
    sh(c, "echo v1 > /etc/marker")
    c.stop()
    comment = tmp_path / "comment"
    comment.write_text("the first one\n")
    assert c.snapshot(str(comment)) == 0
    c.start()
    sh(c, "echo v2 > /etc/marker")
    c.stop()
    assert c.snapshot() == 1

    snaps = c.snapshot_list()
    assert [s.name for s in snaps] == ["snap0", "snap1"]
    s0 = snaps[0]
    assert isinstance(s0, liblxc.Snapshot)
    assert s0.lxcpath == os.path.join(lxcpath, c.name, "snaps")
    assert s0.comment_pathname is not None
    with open(s0.comment_pathname, encoding="utf-8") as f:
        assert f.read() == "the first one\n"
    assert s0.timestamp and s0.timestamp[:4].isdigit()
    assert_no_private_log_line(lxcpath)

    with pytest.raises(LxcError) as e:
        c.destroy()  # has snapshots
    assert e.value.operation == "destroy"
    assert c.is_defined()

    c.snapshot_restore("snap0")
    c.start()
    assert sh(c, "cat /etc/marker").stdout == b"v1\n"
    c.stop()

    other = unique_name("restored")
    extra.append(other)
    c.snapshot_restore("snap1", other)
    with liblxc.Container(other, lxcpath) as o:
        assert o.is_defined()
        o.start()
        assert sh(o, "cat /etc/marker").stdout == b"v2\n"
        o.stop()
        with pytest.raises(LxcError) as e:
            c.snapshot_destroy("snap1")  # the restored copy is an overlay on it
        assert any("has snapshots" in line for line in e.value.log), e.value.log
        o.destroy()

    c.snapshot_destroy("snap0")
    assert [s.name for s in c.snapshot_list()] == ["snap1"]
    with pytest.raises(LxcError) as e:
        c.snapshot_destroy("snap0")
    assert e.value.log
    c.snapshot()
    assert len(c.snapshot_list()) == 2
    c.snapshot_destroy_all()
    assert c.snapshot_list() == []
    assert_no_private_log_line(lxcpath)


def test_destroy_with_snapshots(lxcpath: str, make_container) -> None:
    c = make_container()
    c.snapshot()
    c.snapshot()
    assert len(c.snapshot_list()) == 2
    c.destroy_with_snapshots()
    assert not c.is_defined()
    assert not os.path.exists(os.path.join(lxcpath, c.name))
    assert c.name not in liblxc.list_defined_containers(lxcpath)


# --------------------------------------------------------------------------- devices, mounts


def test_add_remove_device_node(make_container) -> None:
    if not os.path.exists("/dev/net/tun"):
        pytest.skip("no /dev/net/tun on this host")
    c = make_container(start=True)
    assert sh(c, "test -e /dev/net/tun").status != 0
    c.add_device_node("/dev/net/tun")
    r = sh(c, "test -c /dev/net/tun && ls -l /dev/net/tun")
    assert r.status == 0, r
    assert b"10, 200" in r.stdout
    c.remove_device_node("/dev/net/tun")
    assert sh(c, "test -e /dev/net/tun").status != 0

    # liblxc checks dest_path on the host: a destination that exists nowhere fails.
    with pytest.raises(LxcError) as e:
        c.add_device_node("/dev/null", "/dev/lxactors-no-such-node")
    assert e.value.operation == "add_device_node"


@pytest.fixture
def shmounts(tmp_path) -> Iterator[str]:
    """A shared tmpfs on the host for lxc.mount.auto = shmounts: (mount injection)."""
    d = tmp_path / "shmounts"
    d.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "lxactors-shmounts", str(d)],
                   check=True)
    try:
        subprocess.run(["mount", "--make-shared", str(d)], check=True)
        yield str(d)
    finally:
        subprocess.run(["umount", "-l", str(d)], check=True)


def test_mount_umount(shmounts: str, make_container, tmp_path) -> None:
    c = make_container()
    c.set_config_item("lxc.mount.auto", f"shmounts:{shmounts}")
    c.start()
    try:
        c.mount(None, "/mnt/lxactors-tmpfs", "tmpfs", 0, "size=1m,mode=0700")
        mounts = sh(c, "cat /proc/mounts").stdout.decode().splitlines()
        line = [m for m in mounts if m.split()[1] == "/mnt/lxactors-tmpfs"]
        assert line and line[0].split()[2] == "tmpfs", mounts
        assert sh(c, "echo data > /mnt/lxactors-tmpfs/f && cat /mnt/lxactors-tmpfs/f").stdout \
            == b"data\n"
        c.umount("/mnt/lxactors-tmpfs")
        mounts = sh(c, "cat /proc/mounts").stdout.decode().splitlines()
        assert not [m for m in mounts if m.split()[1] == "/mnt/lxactors-tmpfs"]

        share = tmp_path / "share"
        share.mkdir()
        (share / "hello").write_text("from the host\n")
        c.mount(str(share), "/mnt/share", None, MS_BIND)
        assert sh(c, "cat /mnt/share/hello").stdout == b"from the host\n"
        c.umount("/mnt/share")
        assert sh(c, "test -e /mnt/share/hello").status != 0
    finally:
        c.stop()


def test_mount_without_shmounts_fails_with_reason(make_container) -> None:
    c = make_container(start=True)
    with pytest.raises(LxcError) as e:
        c.mount(None, "/mnt/x", "tmpfs")
    assert e.value.operation == "mount"
    assert any("shared mountpoint" in line for line in e.value.log), e.value.log


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


# --------------------------------------------------------------------------- criu (not installed)

needs_no_criu = pytest.mark.skipif(shutil.which("criu") is not None,
                                   reason="criu is installed: these check its absence")


@needs_no_criu
def test_checkpoint_restore_migrate_without_criu(make_container, tmp_path) -> None:
    """criu is not installed here: the calls must fail cleanly, never crash or hang."""
    c = make_container(start=True)
    d = str(tmp_path / "ck")
    with pytest.raises(LxcError) as e:
        c.checkpoint(d, stop=False, verbose=False)
    assert e.value.operation == "checkpoint"
    assert any("criu" in line for line in e.value.log), e.value.log
    with pytest.raises(LxcError) as e:
        c.migrate(1, d)  # MIGRATE_DUMP
    assert e.value.operation == "migrate"
    with pytest.raises(LxcError):
        c.migrate(3, d, features_to_check=1)  # FEATURE_CHECK of mem tracking
    assert c.is_running()
    c.stop()
    with pytest.raises(LxcError) as e:
        c.restore(d)
    assert any("criu" in line for line in e.value.log), e.value.log
    assert c.state() == "STOPPED"


# --------------------------------------------------------------------------- handles


def test_close_and_context_manager(lxcpath: str, make_container) -> None:
    c = make_container()
    with liblxc.Container(c.name, lxcpath) as h:
        assert h.is_defined()
    assert h.closed
    with pytest.raises(ContainerClosedError):
        h.state()

    h = liblxc.Container(c.name, lxcpath)
    h.close()
    h.close()  # idempotent
    assert h.closed and "closed" in repr(h)
    calls: list[Callable[[], object]] = [
        h.is_defined, h.is_running, h.state, h.init_pid, h.config_file_name,
        lambda: h.get_config_item("lxc.uts.name"),
        lambda: h.set_config_item("lxc.uts.name", "x"),
        lambda: h.start(), lambda: h.stop(), lambda: h.destroy(),
        lambda: h.attach_run_wait(["true"]), lambda: h.console_getfd(0),
        lambda: h.snapshot_list(), lambda: h.get_interfaces(),
    ]
    for call in calls:
        with pytest.raises(ContainerClosedError) as e:
            call()
        assert isinstance(e.value, LxcError) and e.value.container == c.name
    assert c.is_defined()  # the other handle is unaffected


def test_rejected_calls_on_closed_handle_leave_container_alone(lxcpath: str,
                                                               make_container) -> None:
    c = make_container(start=True)
    h = liblxc.Container(c.name, lxcpath)
    h.close()
    with pytest.raises(ContainerClosedError):
        h.stop()
    assert c.is_running()


def test_set_helper(make_container) -> None:
    from lxactors._helperclient import Helper

    c = make_container()
    own = Helper()
    try:
        c.set_helper(own)
        c.start()
        assert own.pid is not None
        assert c.attach_run_wait(["true"]).status == 0
        c.stop()
    finally:
        c.set_helper(None)
        own.close()



def test_attach_no_new_privs_flag(make_container) -> None:
    c = make_container(start=True)
    plain = sh(c, "grep NoNewPrivs /proc/self/status").stdout.split()
    nnp = sh(c, "grep NoNewPrivs /proc/self/status",
             flags=liblxc.ATTACH_NO_NEW_PRIVS).stdout.split()
    assert plain == [b"NoNewPrivs:", b"0"]
    assert nnp == [b"NoNewPrivs:", b"1"]


def test_clone_of_a_running_container(lxcpath: str, make_container, extra) -> None:
    c = make_container(start=True)
    sh(c, "echo running > /etc/marker")
    name = unique_name("hot")
    extra.append(name)
    with pytest.raises(LxcError) as e:
        c.clone(name, flags=liblxc.CLONE_SNAPSHOT, bdevtype="overlay")
    assert any("is running" in line for line in e.value.log), e.value.log
    assert name not in liblxc.list_defined_containers(lxcpath)
    with c.clone(name, flags=liblxc.CLONE_SNAPSHOT | liblxc.CLONE_ALLOW_RUNNING,
                 bdevtype="overlay") as hot:
        assert hot.is_defined() and not hot.is_running()
        hot.start()
        assert sh(hot, "cat /etc/marker").stdout == b"running\n"
        hot.stop()
