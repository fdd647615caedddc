"""spawn's options parsed (lxactors._options.parse_options): what each becomes, and the
values refused before anything is made (named containers here: an unnamed one would
read or delegate root's range in /etc/subuid)."""

from __future__ import annotations

import os
import re
from typing import Any

import pytest

from lxactors._chroot import DirSpec
from lxactors._options import parse_options, random_name


def parsed(**options: Any) -> Any:
    name, named, opts = parse_options("web", options)
    assert (name, named) == ("web", True)
    return opts


def test_defaults_of_a_named_container() -> None:
    o = parsed()
    assert (o.path, o.verbose, o.config, o.cgroup, o.chroot, o.create, o.type) == (
        None, 0, (), (), (), None, None)
    assert o.userns is None  # erlxc's behaviour: named containers share the host's ids
    assert o.console_tty == 1 and o.log_level == "ERROR"


def test_an_unnamed_container_gets_a_random_name() -> None:
    names = {parse_options("", {"userns": False})[0] for _ in range(20)}
    assert len(names) == 20
    assert all(re.fullmatch(r"lxa-[a-z0-9]{8}", n) for n in names), names
    assert parse_options("", {"userns": False})[1] is False
    assert re.fullmatch(r"x-[a-z0-9]{8}", random_name("x-"))


def test_what_the_options_become() -> None:
    o = parsed(path="rel/lxc", verbose=100,
               config=["", ("load", "/etc/lxc/x.conf"), ("lxc.environment", "A=b c"),
                       ("lxc.console.buffer.size", 4096), "lxc.cap.drop"],
               cgroup={"pids.max": 64}, chroot={"dir": ["/srv"]},
               create=[("template", "busybox")], start={"useinit": 1, "argv": ("/bin/sh",)},
               exec="valgrind --log-file=/tmp/v.log", console=3, timeout=5, window=1)
    assert o.path == os.path.join(os.getcwd(), "rel/lxc")
    assert o.log_level == "TRACE"
    assert o.config == (("clear",), ("load", "/etc/lxc/x.conf"), ("set", "lxc.environment", "A=b c"),
                        ("set", "lxc.console.buffer.size", "4096"), ("clear_item", "lxc.cap.drop"))
    assert o.cgroup == (("pids.max", "64"),)
    assert o.chroot == (DirSpec(("srv",)),)
    assert o.create == {"template": "busybox"}
    assert o.start == {"useinit": 1, "argv": ["/bin/sh"]}
    assert o.exec == ("valgrind", "--log-file=/tmp/v.log")
    assert (o.console_tty, o.timeout, o.window) == (3, 5.0, 1)
    # A custom init writes to /dev/console (tty 0); console=False reads none.
    assert parsed(start={"argv": ["/bin/true"]}).console_tty == 0
    assert parsed(console=False).console_tty is None


@pytest.mark.parametrize(("name", "error", "match"), [
    (5, TypeError, "container name must be str, not int"),
    (None, TypeError, "container name must be str"),
    ("a/b", ValueError, "without '/'"),
    ("..", ValueError, "without '/'"),
    ("x" * 65, ValueError, "longer than 64 bytes"),
    ("a b", ValueError, "spaces"),
])
def test_bad_names(name: object, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        parse_options(name, {})


@pytest.mark.parametrize(("options", "error", "match"), [
    ({"bogus": 1, "Path": "/x"}, TypeError, r"unknown option\(s\) \['Path', 'bogus'\]"),
    ({"path": "/var/\0lib"}, ValueError, "path must not contain NUL"),
    ({"path": ""}, ValueError, "path must not be empty"),
    ({"path": b"/var/lib/lxc"}, TypeError, "path must be str or os.PathLike"),
    ({"verbose": 101}, ValueError, "verbose must be between 0 and 100"),
    ({"verbose": True}, TypeError, "verbose must be int"),
    ({"config": "lxc.uts.name"}, TypeError, "config must be a list"),
    ({"config": [("lxc.uts.name", "a\nlxc.init.cmd = /evil")]}, ValueError, "newline"),
    ({"config": [("lxc.uts name", "x")]}, ValueError, "without spaces or '='"),
    ({"config": [("load", "")]}, ValueError, "config file must not be empty"),
    ({"config": [("a", "b", "c")]}, TypeError, "config step must be"),
    ({"config": [5]}, TypeError, "config step must be"),
    ({"cgroup": "pids.max=5"}, TypeError, "cgroup must be a list of"),
    ({"cgroup": [("pids.max",)]}, TypeError, r"cgroup entry must be \(key, value\)"),
    ({"cgroup": [("pids.max", "1\n")]}, ValueError, "cgroup value of pids.max must not contain a newline"),
    ({"chroot": {"dir": ["../x"]}}, ValueError, "'..'"),
    ({"create": "busybox"}, TypeError, "create must be a mapping"),
    ({"create": {"template": "busybox", "release": "x"}}, ValueError, r"unknown create option\(s\)"),
    ({"create": {"argv": "-r x"}}, TypeError, "create argv must be a list of str"),
    ({"start": {"useinit": 2}}, ValueError, "useinit must be true, false, 0 or 1"),
    ({"start": {"init": True}}, ValueError, r"unknown start option\(s\) \['init'\]"),
    ({"start": {"argv": ["/bin/sh", None]}}, TypeError, "start argv item must be str"),
    ({"type": "temp"}, ValueError, "type must be one of"),
    ({"window": 0}, ValueError, "window must be between 1"),
    ({"nodaemonize": 1}, TypeError, "nodaemonize must be a bool"),
    ({"nocloseallfds": "no"}, TypeError, "nocloseallfds must be a bool"),
    ({"console": 1025}, ValueError, "console tty number must be between 0 and 1024"),
    ({"console": "1"}, TypeError, "console tty number must be int"),
    ({"exec": ["valgrind", 5]}, TypeError, "exec item must be str"),
    ({"timeout": float("nan")}, ValueError, "timeout must be finite"),
    ({"timeout": -3}, ValueError, "timeout must be >= 0"),
    ({"userns": "yes"}, TypeError, "userns must be True, False, a range"),
    ({"userns": range(100000, 165536, 2)}, ValueError, "step 1"),
    ({"userns": True, "config": [("lxc.idmap", "u 0 100000 10")]}, ValueError,
     r"either as userns or as lxc\.idmap"),
])
def test_bad_options_are_refused(options: dict[str, Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        parse_options("web", options)


def test_an_unnamed_clone_cannot_take_its_own_idmap() -> None:
    """Refused before root's range is looked up: the base is made for one mapping."""
    with pytest.raises(ValueError, match=r"choose the mapping with userns, not lxc\.idmap"):
        parse_options("", {"config": [("lxc.idmap", "u 0 100000 10")]})
    with pytest.raises(ValueError, match="choose the mapping with userns"):
        parse_options("", {"config": ["lxc.idmap"], "userns": False})


def test_own_idmap_items_turn_the_user_namespace_off() -> None:
    own = [("lxc.idmap", "u 0 100000 10"), ("lxc.idmap", "g 0 100000 10")]
    assert parsed(config=own).userns is None
    assert parse_options("", {"config": own, "create": {"template": "busybox"}})[2].userns is None
