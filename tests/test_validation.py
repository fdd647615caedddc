"""Bad input to the low-level API: TypeError/ValueError before anything reaches C.

Each rejected call must change nothing: the handle's configuration, the
config file on disk, the containers defined or running, the lxcpath's
contents.  One stopped clone of the base serves the whole module (a
rejected call leaves it as it was, which is what is checked).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from lxactors import _validate, liblxc
from tests.util import unique_name

NAME_MAX = _validate.MAX_NAME  # 64 bytes


@pytest.fixture(scope="module")
def victim(lxcpath: str, base: str) -> Iterator[liblxc.Container]:
    """A stopped overlay clone of the base, shared by this module's tests."""
    with liblxc.Container(base, lxcpath) as b:
        c = b.clone(unique_name("victim"), flags=liblxc.CLONE_SNAPSHOT, bdevtype="overlay")
    yield c
    if c.is_running():
        c.stop()
    c.destroy()
    c.close()


KEYS = ("lxc.uts.name", "lxc.rootfs.path", "lxc.init.cmd", "lxc.net.0.type",
        "lxc.environment", "lxc.console.buffer.size", "lxc.log.file")


@dataclass(frozen=True)
class World:
    """What a rejected call must not change."""

    config: tuple[tuple[str, str], ...]
    config_file: str
    listing: frozenset[str]
    tree: frozenset[str]
    defined: tuple[str, ...]
    active: tuple[str, ...]
    state: str
    name: str


def world(c: liblxc.Container, lxcpath: str) -> World:
    cfg = c.config_file_name() or ""
    with open(cfg, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    tree = frozenset(os.path.relpath(os.path.join(d, n), lxcpath)
                     for d, dirs, files in os.walk(os.path.join(lxcpath, c.name))
                     for n in dirs + files)
    return World(
        config=tuple((k, c.get_config_item(k)) for k in KEYS),
        config_file=digest,
        listing=frozenset(os.listdir(lxcpath)),
        tree=tree,
        defined=tuple(liblxc.list_defined_containers(lxcpath)),
        active=tuple(liblxc.list_active_containers(lxcpath)),
        state=c.state(),
        name=c.name,
    )


def rejected(c: liblxc.Container, lxcpath: str, exc: type[Exception],
             call: Callable[[], object], match: str | None = None) -> None:
    before = world(c, lxcpath)
    with pytest.raises(exc, match=match):
        call()
    assert world(c, lxcpath) == before


# --------------------------------------------------------------------------- container names


BAD_NAMES_VALUE = [
    pytest.param("a/b", id="slash"),
    pytest.param("../evil", id="dotdot-slash"),
    pytest.param("..", id="dotdot"),
    pytest.param(".", id="dot"),
    pytest.param(".hidden", id="leading-dot"),
    pytest.param("", id="empty"),
    pytest.param("x" * (NAME_MAX + 1), id="65-bytes"),
    pytest.param("é" * 33, id="66-bytes-utf8"),
    pytest.param("a\0b", id="nul"),
    pytest.param("a\nb", id="newline"),
    pytest.param("a b", id="space"),
    pytest.param("a\tb", id="tab"),
    pytest.param("a\x7fb", id="del"),
    pytest.param("a\x1bb", id="escape"),
]
BAD_NAMES_TYPE = [
    pytest.param(123, id="int"),
    pytest.param(b"bytes", id="bytes"),
    pytest.param(None, id="none"),
    pytest.param(["a"], id="list"),
]


@pytest.mark.parametrize("name", BAD_NAMES_VALUE)
def test_container_bad_name_value(lxcpath: str, name) -> None:
    before = set(os.listdir(lxcpath))
    with pytest.raises(ValueError):
        liblxc.Container(name, lxcpath)
    assert set(os.listdir(lxcpath)) == before
    assert not os.path.exists(os.path.join(os.path.dirname(lxcpath), "evil"))


@pytest.mark.parametrize("name", BAD_NAMES_TYPE)
def test_container_bad_name_type(lxcpath: str, name) -> None:
    before = set(os.listdir(lxcpath))
    with pytest.raises(TypeError):
        liblxc.Container(name, lxcpath)
    assert set(os.listdir(lxcpath)) == before


def test_name_of_64_bytes_is_fine(lxcpath: str) -> None:
    with liblxc.Container("x" * NAME_MAX, lxcpath) as c:
        assert c.is_defined() is False
        assert c.name == "x" * NAME_MAX
    assert "x" * NAME_MAX not in os.listdir(lxcpath)


@pytest.mark.parametrize(("path", "exc"), [
    pytest.param("pa\0th", ValueError, id="nul"),
    pytest.param("/var/tmp/a\nb", ValueError, id="newline"),
    pytest.param("", ValueError, id="empty"),
    pytest.param(b"/var/tmp", TypeError, id="bytes"),
    pytest.param(5, TypeError, id="int"),
])
def test_container_bad_lxcpath(lxcpath: str, path, exc) -> None:
    with pytest.raises(exc):
        liblxc.Container("fine", path)


# --------------------------------------------------------------------------- configuration


CONFIG_CASES = [
    # (id, call, exception)
    ("set-value-newline", lambda c: c.set_config_item("lxc.uts.name", "x\nlxc.init.cmd = /evil"),
     ValueError),
    ("set-value-cr", lambda c: c.set_config_item("lxc.uts.name", "x\rlxc.init.cmd = /evil"),
     ValueError),
    ("set-value-nul", lambda c: c.set_config_item("lxc.uts.name", "x\0y"), ValueError),
    ("set-key-nul", lambda c: c.set_config_item("lxc.uts.name\0", "x"), ValueError),
    ("set-key-newline", lambda c: c.set_config_item("lxc.uts.name\n", "x"), ValueError),
    ("set-key-equals", lambda c: c.set_config_item("lxc.uts.name=x", "x"), ValueError),
    ("set-key-space", lambda c: c.set_config_item("lxc.uts name", "x"), ValueError),
    ("set-key-empty", lambda c: c.set_config_item("", "x"), ValueError),
    ("set-value-int", lambda c: c.set_config_item("lxc.uts.name", 5), TypeError),
    ("set-value-none", lambda c: c.set_config_item("lxc.uts.name", None), TypeError),
    ("set-value-bytes", lambda c: c.set_config_item("lxc.uts.name", b"x"), TypeError),
    ("set-key-bytes", lambda c: c.set_config_item(b"lxc.uts.name", "x"), TypeError),
    ("get-key-int", lambda c: c.get_config_item(1), TypeError),
    ("get-key-nul", lambda c: c.get_config_item("lxc.uts.name\0"), ValueError),
    ("get-unknown-key", lambda c: c.get_config_item("lxc.bogus"), KeyError),
    ("clear-key-nul", lambda c: c.clear_config_item("lxc.uts.name\0"), ValueError),
    ("clear-key-none", lambda c: c.clear_config_item(None), TypeError),
    ("running-key-bytes", lambda c: c.get_running_config_item(b"lxc.uts.name"), TypeError),
    ("keys-nul", lambda c: c.get_keys("lxc.net\0"), ValueError),
    ("keys-int", lambda c: c.get_keys(0), TypeError),
    ("cgroup-set-newline", lambda c: c.set_cgroup_item("pids.max", "10\n20"), ValueError),
    ("cgroup-set-int", lambda c: c.set_cgroup_item("pids.max", 10), TypeError),
    ("cgroup-get-key-space", lambda c: c.get_cgroup_item("pids max"), ValueError),
    ("load-nul", lambda c: c.load_config("/tmp/a\0b"), ValueError),
    ("load-bytes", lambda c: c.load_config(b"/tmp/x"), TypeError),
    ("save-nul", lambda c: c.save_config("/tmp/a\0b"), ValueError),
    ("save-bytes", lambda c: c.save_config(b"/tmp/x"), TypeError),
    ("save-empty", lambda c: c.save_config(""), ValueError),
    ("config-path-empty", lambda c: c.set_config_path(""), ValueError),
    ("config-path-nul", lambda c: c.set_config_path("/var/\0tmp"), ValueError),
    ("config-path-int", lambda c: c.set_config_path(3), TypeError),
    ("daemonize-int", lambda c: c.want_daemonize(1), TypeError),
    ("close-fds-str", lambda c: c.want_close_all_fds("yes"), TypeError),
]


@pytest.mark.parametrize(("call", "exc"), [pytest.param(call, exc, id=i)
                                           for i, call, exc in CONFIG_CASES])
def test_config_rejected_changes_nothing(victim, lxcpath: str, call, exc) -> None:
    rejected(victim, lxcpath, exc, lambda: call(victim))
    assert victim.daemonize is True


def test_newline_value_is_not_written_to_disk(victim, lxcpath: str, tmp_path) -> None:
    with pytest.raises(ValueError):
        victim.set_config_item("lxc.uts.name", "x\nlxc.init.cmd = /bin/evil")
    alt = tmp_path / "saved.conf"
    victim.save_config(str(alt))
    text = alt.read_text()
    assert "/bin/evil" not in text
    assert "lxc.init.cmd" not in text
    assert victim.get_config_item("lxc.uts.name") == victim.name


# --------------------------------------------------------------------------- lifecycle


LIFECYCLE_CASES = [
    ("wait-bogus-state", lambda c: c.wait("BOGUS", 1), ValueError),
    ("wait-state-newline", lambda c: c.wait("RUNNING\n", 1), ValueError),
    ("wait-state-bytes", lambda c: c.wait(b"RUNNING", 1), TypeError),
    ("wait-timeout-nan", lambda c: c.wait("RUNNING", float("nan")), ValueError),
    ("wait-timeout-inf", lambda c: c.wait("RUNNING", float("inf")), ValueError),
    ("wait-timeout-neg", lambda c: c.wait("RUNNING", -5), ValueError),
    ("wait-timeout-str", lambda c: c.wait("RUNNING", "1"), TypeError),
    ("wait-timeout-bool", lambda c: c.wait("RUNNING", True), TypeError),
    ("shutdown-timeout-str", lambda c: c.shutdown("x"), TypeError),
    ("reboot2-timeout-neg", lambda c: c.reboot2(-3), ValueError),
    ("start-useinit-2", lambda c: c.start(2), ValueError),
    ("start-argv-str", lambda c: c.start(False, "/bin/sh"), TypeError),
    ("start-argv-empty", lambda c: c.start(False, []), ValueError),
    ("start-argv-bytes", lambda c: c.start(False, [b"/bin/sh"]), TypeError),
    ("start-argv-nul", lambda c: c.start(False, ["/bin/sh\0"]), ValueError),
    ("start-timeout-nan", lambda c: c.start(timeout=float("nan")), ValueError),
    ("startl-nul", lambda c: c.startl("/bin/sleep", "1\0"), ValueError),
    ("create-exists", lambda c: c.create("busybox"), liblxc.LxcError),
    ("clone-slash", lambda c: c.clone("a/b"), ValueError),
    ("clone-dotdot", lambda c: c.clone("../escaped"), ValueError),
    ("clone-dotdot-only", lambda c: c.clone(".."), ValueError),
    ("clone-65", lambda c: c.clone("y" * (NAME_MAX + 1)), ValueError),
    ("clone-nul", lambda c: c.clone("a\0b"), ValueError),
    ("clone-flags-neg", lambda c: c.clone(unique_name("nf"), flags=-1), ValueError),
    ("clone-flags-big", lambda c: c.clone(unique_name("nf"), flags=1 << 20), ValueError),
    ("clone-flags-str", lambda c: c.clone(unique_name("nf"), flags="1"), TypeError),
    ("clone-lxcpath-nul", lambda c: c.clone(unique_name("nf"), lxcpath="/var\0"), ValueError),
    ("clone-newsize-neg", lambda c: c.clone(unique_name("nf"), newsize=-1), ValueError),
    ("clone-hookargs-str", lambda c: c.clone(unique_name("nf"), hookargs="x"), TypeError),
    ("rename-slash", lambda c: c.rename("a/b"), ValueError),
    ("rename-dotdot", lambda c: c.rename(".."), ValueError),
    ("rename-65", lambda c: c.rename("z" * (NAME_MAX + 1)), ValueError),
    ("rename-int", lambda c: c.rename(7), TypeError),
    ("snapshot-comment-nul", lambda c: c.snapshot("/tmp/a\0b"), ValueError),
    ("snapshot-comment-bytes", lambda c: c.snapshot(b"/tmp/c"), TypeError),
    ("restore-snapname-slash", lambda c: c.snapshot_restore("../snap0"), ValueError),
    ("restore-newname-slash", lambda c: c.snapshot_restore("snap0", "a/b"), ValueError),
    ("snapshot-destroy-slash", lambda c: c.snapshot_destroy("snap0/.."), ValueError),
    ("snapshot-destroy-int", lambda c: c.snapshot_destroy(0), TypeError),
    ("device-nul", lambda c: c.add_device_node("/dev/null\0"), ValueError),
    ("device-dest-int", lambda c: c.remove_device_node("/dev/null", 1), TypeError),
    ("iface-slash", lambda c: c.attach_interface("eth0/x"), ValueError),
    ("iface-dst-dotdot", lambda c: c.detach_interface("eth0", ".."), ValueError),
    ("ips-family", lambda c: c.get_ips(family="inet4"), ValueError),
    ("ips-scope", lambda c: c.get_ips(scope=256), ValueError),
    ("ips-iface", lambda c: c.get_ips("a/b"), ValueError),
    ("mount-target-nul", lambda c: c.mount(None, "/mnt\0x", "tmpfs"), ValueError),
    ("mount-flags-neg", lambda c: c.mount(None, "/mnt/x", "tmpfs", -1), ValueError),
    ("mount-fstype-newline", lambda c: c.mount(None, "/mnt/x", "tmp\nfs"), ValueError),
    ("mount-data-int", lambda c: c.mount(None, "/mnt/x", "tmpfs", 0, 5), TypeError),
    ("umount-flags-str", lambda c: c.umount("/mnt/x", "0"), TypeError),
    ("console-ttynum-low", lambda c: c.console_getfd(-2), ValueError),
    ("console-ttynum-str", lambda c: c.console_getfd("0"), TypeError),
    ("console-escape", lambda c: c.console(0, 0, 1, 2, escape=0), ValueError),
    ("console-fd-neg", lambda c: c.console(0, -1, 1, 2), ValueError),
    ("console-log-max-neg", lambda c: c.console_log(read_max=-1), ValueError),
    ("checkpoint-nul", lambda c: c.checkpoint("/tmp/\0ck"), ValueError),
    ("restore-dir-bytes", lambda c: c.restore(b"/tmp/ck"), TypeError),
    ("migrate-cmd", lambda c: c.migrate(9, "/tmp/ck"), ValueError),
]


@pytest.mark.parametrize(("call", "exc"), [pytest.param(call, exc, id=i)
                                           for i, call, exc in LIFECYCLE_CASES])
def test_lifecycle_rejected_changes_nothing(victim, lxcpath: str, call, exc) -> None:
    rejected(victim, lxcpath, exc, lambda: call(victim))
    assert not os.path.exists(os.path.join(os.path.dirname(lxcpath), "escaped"))


@pytest.mark.parametrize(("field", "value", "exc"), [
    pytest.param("bogus", "x", ValueError, id="unknown-field"),
    pytest.param("dir", "/srv\0x", ValueError, id="dir-nul"),
    pytest.param("fssize", "1G", TypeError, id="fssize-str"),
    pytest.param("fssize", -1, ValueError, id="fssize-neg"),
])
def test_create_bad_bdevspec_creates_nothing(lxcpath: str, base: str, field, value,
                                             exc) -> None:
    name = unique_name("nocreate")
    before = set(os.listdir(lxcpath))
    with liblxc.Container(name, lxcpath) as c:
        with pytest.raises(exc):
            c.create("busybox", "dir", {field: value})
        assert not c.is_defined()
    assert set(os.listdir(lxcpath)) == before


@pytest.mark.parametrize(("kwargs", "exc"), [
    pytest.param({"template": "busy\0box"}, ValueError, id="template-nul"),
    pytest.param({"template": 5}, TypeError, id="template-int"),
    pytest.param({"bdevtype": "dir\n"}, ValueError, id="bdevtype-newline"),
    pytest.param({"bdevspec": [("dir", "/x")]}, TypeError, id="bdevspec-list"),
    pytest.param({"flags": -1}, ValueError, id="flags-neg"),
    pytest.param({"flags": 2}, ValueError, id="flags-unknown"),
    pytest.param({"flags": "0"}, TypeError, id="flags-str"),
    pytest.param({"argv": "-r"}, TypeError, id="argv-str"),
    pytest.param({"argv": ["ok", None]}, TypeError, id="argv-none"),
    pytest.param({"argv": ["a\0"]}, ValueError, id="argv-nul"),
    pytest.param({"timeout": -7}, ValueError, id="timeout-neg"),
])
def test_create_bad_args_creates_nothing(lxcpath: str, base: str, kwargs, exc) -> None:
    name = unique_name("nocreate")
    before = set(os.listdir(lxcpath))
    kwargs = {"template": "busybox", **kwargs}
    with liblxc.Container(name, lxcpath) as c:
        with pytest.raises(exc):
            c.create(**kwargs)
        assert not c.is_defined()
    assert set(os.listdir(lxcpath)) == before
    assert name not in liblxc.list_defined_containers(lxcpath)


# --------------------------------------------------------------------------- attach


ATTACH_CASES = [
    ("argv-str", {"argv": "ls"}, TypeError),
    ("argv-empty", {"argv": []}, ValueError),
    ("argv-bytes", {"argv": [b"ls"]}, TypeError),
    ("argv-nul", {"argv": ["ls\0"]}, ValueError),
    ("env-name-equals", {"env": {"A=B": "x"}}, ValueError),
    ("env-name-empty", {"env": {"": "x"}}, ValueError),
    ("env-name-newline", {"env": {"A\n": "x"}}, ValueError),
    ("env-value-nul", {"env": {"A": "x\0"}}, ValueError),
    ("env-value-int", {"env": {"A": 1}}, TypeError),
    ("uid-neg", {"uid": -1}, ValueError),
    ("uid-str", {"uid": "0"}, TypeError),
    ("gid-huge", {"gid": 2**32}, ValueError),
    ("groups-str", {"groups": ["5"]}, TypeError),
    ("cwd-nul", {"cwd": "/tmp\0"}, ValueError),
    ("namespaces-low", {"namespaces": -2}, ValueError),
    ("flags-neg", {"flags": -1}, ValueError),
]


@pytest.mark.parametrize(("kwargs", "exc"), [pytest.param(kw, exc, id=i)
                                             for i, kw, exc in ATTACH_CASES])
def test_attach_bad_args(victim, lxcpath: str, kwargs, exc) -> None:
    kwargs = {"argv": ["true"], **kwargs}
    argv = kwargs.pop("argv")
    rejected(victim, lxcpath, exc, lambda: victim.attach_run_wait(argv, **kwargs))
    rejected(victim, lxcpath, exc, lambda: victim.attach(argv, **kwargs))


@pytest.mark.parametrize(("kwargs", "exc"), [
    pytest.param({"input": "text"}, TypeError, id="input-str"),
    pytest.param({"timeout": -2}, ValueError, id="timeout-neg"),
    pytest.param({"timeout": float("nan")}, ValueError, id="timeout-nan"),
    pytest.param({"timeout": "5"}, TypeError, id="timeout-str"),
])
def test_attach_run_wait_bad_args(victim, lxcpath: str, kwargs, exc) -> None:
    rejected(victim, lxcpath, exc, lambda: victim.attach_run_wait(["true"], **kwargs))


@pytest.mark.parametrize(("kwargs", "exc"), [
    pytest.param({"stdin": "0"}, TypeError, id="stdin-str"),
    pytest.param({"stdout": -1}, ValueError, id="stdout-neg"),
    pytest.param({"stderr": 1.5}, TypeError, id="stderr-float"),
])
def test_attach_bad_fds(victim, lxcpath: str, kwargs, exc) -> None:
    rejected(victim, lxcpath, exc, lambda: victim.attach(["true"], **kwargs))


# --------------------------------------------------------------------------- running container


def test_rejected_calls_leave_a_running_container_alone(make_container, lxcpath: str) -> None:
    c = make_container(start=True)
    pid = c.init_pid()
    cases: list[tuple[type[Exception], Callable[[], object]]] = [
        (ValueError, lambda: c.set_config_item("lxc.uts.name", "a\nb")),
        (ValueError, lambda: c.set_cgroup_item("pids.max", "1\n")),
        (TypeError, lambda: c.attach_run_wait("reboot")),
        (ValueError, lambda: c.attach_run_wait(["sh", "-c", "reboot"], uid=-1)),
        (ValueError, lambda: c.wait("STOPPED", -3)),
        (ValueError, lambda: c.mount(None, "/mnt\0", "tmpfs")),
        (ValueError, lambda: c.start(3)),
    ]
    max_before = c.get_cgroup_item("pids.max")
    for exc, call in cases:
        with pytest.raises(exc):
            call()
        assert c.init_pid() == pid and c.state() == "RUNNING"
    assert c.get_cgroup_item("pids.max") == max_before
    assert c.get_config_item("lxc.uts.name") == c.name
