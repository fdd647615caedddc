"""What the gate refuses an ordinary user, each with its rule, and that nothing changed."""

from __future__ import annotations

import array
import os
import socket
import subprocess

import pytest

from lxactors import AccessRefused, LxcError, liblxc
from lxactors._chroot import CopySpec, FileSpec
from lxactors._gatecall import send
from lxactors._helper import protocol
from lxactors._helper.calls import Call, Open
from lxactors._helperclient import helper
from lxactors._launcher import own_lxcpath
from lxactors._proxy import ProxyContainer
from lxactors._userns import own_idmap
from tests.test_cli import lxactors, one_line
from tests.util import unique_name

#: (key, value, rule): every refused key of issue 16.
REFUSED_ITEMS = [
    ("lxc.hook.pre-start", "/bin/touch /tmp/pwned", "lxc.hook"),
    ("lxc.hook.start-host", "/bin/true", "lxc.hook"),
    ("lxc.mount.entry", "/etc etc none bind 0 0", "lxc.mount.entry"),
    ("lxc.mount.entry", "/root root none rbind,ro 0 0", "lxc.mount.entry"),
    ("lxc.mount.entry", "/dev/sda1 mnt ext4 defaults 0 0", "lxc.mount.entry"),
    ("lxc.mount.entry", "tmpfs ../../escape tmpfs defaults 0 0", "lxc.mount.entry"),
    ("lxc.mount.fstab", "/etc/fstab", "lxc.mount.fstab"),
    ("lxc.cap.keep", "sys_admin", "lxc.cap.keep"),
    ("lxc.apparmor.profile", "unconfined", "lxc.apparmor.profile"),
    ("lxc.seccomp.profile", "", "lxc.seccomp.profile"),
    ("lxc.seccomp.profile", "/etc/shadow", "lxc.seccomp.profile"),
    ("lxc.idmap", "u 0 0 65536", "lxc.idmap"),
    ("lxc.idmap", "g 0 100000 65536", "lxc.idmap"),
    ("lxc.rootfs.path", "dir:/", "lxc.rootfs.path"),
    ("lxc.rootfs.path", "/etc", "lxc.rootfs.path"),
    ("lxc.rootfs.path", "overlay:/usr:/tmp/upper", "lxc.rootfs.path"),
    ("lxc.include", "/usr/share/lxc/config/nesting.conf", "lxc.include"),
    ("lxc.net.0.script.up", "/bin/touch /tmp/pwned", "lxc.net.script"),
    ("lxc.net.0.script.down", "/bin/true", "lxc.net.script"),
    ("lxc.init.cmd", "../../bin/sh", "lxc.init.cmd"),
    ("lxc.init.cmd", "/../../usr/bin/id", "lxc.init.cmd"),
    ("lxc.log.file", "/etc/lxactors-pwned", "host files"),
    ("lxc.console.logfile", "/etc/lxactors-pwned", "host files"),
    ("lxc.console.path", "/dev/tty1", "host files"),
    ("lxc.namespace.share.net", "1", "lxc.namespace"),
    ("lxc.namespace.keep", "user net", "lxc.namespace"),
    ("lxc.cgroup.dir", "../../..", "lxc.cgroup"),
    ("lxc.cgroup2.devices.allow", "b 8:* rwm", "lxc.cgroup.devices"),
    ("lxc.net.0.type", "phys", "lxc.net.type"),
    ("lxc.net.0.link", "eth0", "lxc.net.link"),
    ("lxc.prlimit.nofile", "unlimited", "allowlist"),
    ("lxc.rootfs.mount", "/etc", "allowlist"),
]


@pytest.fixture
def box(names: list[str]) -> liblxc.Container:
    name = unique_name("ref")
    names.append(name)
    c = liblxc.Container(name)
    for key, value in own_idmap().config:
        c.set_config_item(key, value)
    c.create("busybox")
    return c


def _saved(c: liblxc.Container, tmp_path: object) -> bytes:
    path = os.path.join(str(tmp_path), "saved.conf")
    c.save_config(path)
    with open(path, "rb") as f:
        return f.read()


@pytest.mark.parametrize(("key", "value", "rule"), REFUSED_ITEMS)
def test_refused_items_name_their_rule_and_change_nothing(
        box: liblxc.Container, tmp_path: object, key: str, value: str, rule: str) -> None:
    before = _saved(box, tmp_path)
    with pytest.raises(AccessRefused, match=f"rule {rule}") as err:
        box.set_config_item(key, value)
    assert box.name in str(err.value) and "set_config_item" in str(err.value)
    assert _saved(box, tmp_path) == before
    assert not os.path.exists("/etc/lxactors-pwned") and not os.path.exists("/tmp/pwned")


def test_refused_load_config_changes_nothing(box: liblxc.Container, tmp_path: object) -> None:
    cfg = os.path.join(str(tmp_path), "hostile.conf")
    with open(cfg, "w") as f:
        f.write("lxc.uts.name = fine\nlxc.hook.pre-start = /bin/touch /tmp/pwned\n")
    before = _saved(box, tmp_path)
    with pytest.raises(AccessRefused, match=r"rule lxc\.hook"):
        box.load_config(cfg)
    assert _saved(box, tmp_path) == before
    with open(cfg, "w") as f:
        f.write("lxc.uts.name = loaded\n")
    box.load_config(cfg)  # a harmless file is read (by us) and loaded
    assert box.get_config_item("lxc.uts.name") == "loaded"


def test_start_refuses_a_container_without_a_user_namespace(names: list[str]) -> None:
    name = unique_name("nons")
    names.append(name)
    with liblxc.Container(name) as c:
        with pytest.raises(AccessRefused, match="rule userns"):
            c.create("busybox")  # no lxc.idmap: refused before the template runs
        assert not c.is_defined()


def test_other_templates_and_storage_are_refused(names: list[str]) -> None:
    name = unique_name("tpl")
    names.append(name)
    with liblxc.Container(name) as c:
        for key, value in own_idmap().config:
            c.set_config_item(key, value)
        with pytest.raises(AccessRefused, match="rule templates"):
            c.create("download")
        with pytest.raises(AccessRefused, match="rule create"):
            c.create("busybox", bdevspec={"dir": "/etc"})
        with pytest.raises(AccessRefused, match="rule create"):
            c.create("busybox", argv=["--rootfs", "/etc"])
        assert not c.is_defined()


@pytest.mark.parametrize(("call", "rule"), [
    (lambda c: c.add_device_node("/dev/sda"), "devices"),
    (lambda c: c.mount("/etc", "/mnt"), "host mounts"),
    (lambda c: c.attach_interface("lo"), "host network"),
    (lambda c: c.checkpoint("/tmp/ck"), "criu"),
    (lambda c: c.seccomp_notify_fd(), "seccomp"),
    (lambda c: c.devpts_fd(), "devpts"),
    (lambda c: c.snapshot("/etc/shadow"), "host files"),
    (lambda c: c.set_cgroup_item("cgroup.procs", "1"), "cgroup"),
    (lambda c: c.attach_run_wait(["id"], namespaces=0x20000), "userns"),
    (lambda c: c.clone("x", lxcpath="/var/lib/lxc"), "lxcpath"),
    (lambda c: c.set_config_path("/var/lib/lxc"), "lxcpath"),
    (lambda c: c.save_config("/etc/lxactors-pwned"), None),
])
def test_refused_members(box: liblxc.Container, call: object, rule: str | None) -> None:
    with pytest.raises(LxcError if rule is None else AccessRefused,
                       match=None if rule is None else f"rule {rule}"):
        call(box)  # type: ignore[operator]
    assert not os.path.exists("/etc/lxactors-pwned")
    assert box.get_config_path() == own_lxcpath()


@pytest.mark.parametrize("path", ["/var/lib/lxc", "/tmp", "/", "/var/lib/lxactors/users/0",
                                  "/var/lib/lxactors/users"])
def test_foreign_lxcpaths_are_refused(path: str) -> None:
    with pytest.raises(AccessRefused, match="rule lxcpath"):
        liblxc.Container("x", path)
    with pytest.raises(AccessRefused, match="rule lxcpath"):
        liblxc.list_defined_containers(path)


def test_a_symlink_to_a_foreign_lxcpath_is_refused(tmp_path: object) -> None:
    link = os.path.join(str(tmp_path), "link")
    os.symlink("/var/lib/lxc", link)
    with pytest.raises(AccessRefused, match="rule lxcpath"):
        liblxc.Container("x", link)


def test_hostile_files_are_read_and_written_with_the_users_rights(
        box: liblxc.Container, tmp_path: object) -> None:
    with pytest.raises(LxcError, match="Permission denied"):
        box.load_config("/etc/shadow")
    with pytest.raises(LxcError, match="Permission denied"):
        box.save_config("/etc/lxactors-pwned")
    assert not os.path.exists("/etc/lxactors-pwned")
    assert isinstance(box, ProxyContainer)
    with pytest.raises(LxcError, match="Permission denied"):
        box.apply_chroot([CopySpec("/etc/shadow", ("x",))])


def test_a_symlink_planted_in_the_rootfs_leads_nowhere(box: liblxc.Container) -> None:
    box.start()
    assert box.attach_run_wait(["ln", "-s", "/etc", "/evil"]).status == 0
    box.stop()
    assert isinstance(box, ProxyContainer)
    with pytest.raises(LxcError, match="symlink"):
        box.apply_chroot([FileSpec(("evil", "lxactors-pwned"), b"x")])
    assert not os.path.exists("/etc/lxactors-pwned")


def _raw(req: protocol.Request, fds: list[int] | None = None) -> object:
    with send(helper(), req, fds or []) as reply:
        return reply.frame(30)


def test_hostile_calls_get_answers_not_actions(box: liblxc.Container) -> None:
    assert isinstance(box, ProxyContainer)
    hid = box._hid
    assert hid is not None
    for member in ("_call", "__init__", "_via_helper", "_helper_args", "close", "set_helper",
                   "startl", "__class__"):
        with pytest.raises(AccessRefused, match="rule member"):
            _raw(Call(handle=hid, member=member, args=[], kwargs={}, fd_args={}))
    with pytest.raises(LxcError, match="no open handle"):
        _raw(Call(handle=987654, member="state", args=[], kwargs={}, fd_args={}))
    with pytest.raises(TypeError):
        _raw(Call(handle=hid, member="state", args=[1, 2, 3], kwargs={}, fd_args={}))
    with pytest.raises(TypeError, match="no fd parameter"):
        _raw(Call(handle=hid, member="console_getfd", args=[], kwargs={},
                  fd_args={"ttynum": 5}))
    with pytest.raises(AccessRefused, match="rule lxcpath"):
        _raw(Open(name="x", path="/etc"))
    # ops of root's own helper are not the gate's
    start = protocol.Start(name=box.name, path=own_lxcpath(), log="/etc/lxactors-pwned",
                       config="/etc/shadow", argv=None, useinit=False, daemonize=True,
                       close_all_fds=True)
    with pytest.raises(AccessRefused, match="rule operation"):
        _raw(start)
    with pytest.raises(AccessRefused, match="rule lxcpath"):
        helper().call(protocol.Register(path="/var/lib/lxc", name="x", type="temporary"))
    # a frame that is not a request at all
    sock = helper()._ensure()
    mine, theirs = socket.socketpair()
    try:
        sock.sendmsg([b"\x80\x05garbage"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                             array.array("i", [theirs.fileno()]))])
        theirs.close()
        mine.settimeout(30)
        assert b"bad request" in mine.recv(65536)
    finally:
        mine.close()
    assert not box.is_running() and box.state() == "STOPPED"
    assert not os.path.exists("/etc/lxactors-pwned")


@pytest.mark.parametrize("args, rule", [
    (["tcpvm", "--listen", "127.0.0.1:0", "--config", "lxc.net.0.link=lxanotgranted"],
     "lxc.net.link"),
    (["tcpvm", "--listen", "127.0.0.1:0", "--path", "/var/tmp"], "lxcpath"),
    (["imc", "--path", "/var/tmp", "--", "true"], "lxcpath"),
    (["imc", "--bind", "/root", "--", "true"], "lxc.mount.entry"),
    (["imc", "--bridge", "lxanotgranted", "--address", "10.213.9.2/24", "--", "true"],
     "lxc.net.link"),
], ids=["tcpvm-bridge", "tcpvm-path", "imc-path", "imc-bind", "imc-bridge"])
def test_the_commands_refusals_are_one_line_naming_the_rule(args: list[str], rule: str) -> None:
    before = liblxc.list_all_containers()
    r = lxactors(*args, check_rc=1, timeout=120, stdin=subprocess.DEVNULL)
    assert one_line(r).endswith(f"(refused by rule {rule})"), r.stderr
    assert "listening" not in r.stdout
    assert liblxc.list_all_containers() == before
