"""Bad input, fuzzed: every public function of ``lxactors`` (spawn and its options, and
the calls on a live container); see tests/fuzzing.py for what counts as an answer.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

import pykka
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lxactors
from tests.fuzzing import (
    ALLOWED,
    FAST,
    bad_argv,
    bad_int,
    bad_key,
    bad_name,
    bad_path,
    bad_timeout,
    bad_value,
    bounded,
    huge_text,
    not_bool,
    not_str,
    odd_text,
    rejected,
    surrogate,
    unknown_key,
    with_nul,
    world,
    wrong_type,
)
from tests.util import read_console_until, unique_name

# --------------------------------------------------------------------------- the high-level API


def test_public_names_are_the_ones_fuzzed() -> None:
    assert {n for n in lxactors.__all__ if n[0].islower()} == {
        "spawn", "exit", "send", "type", "container", "console",
        # for applications; fuzzed in test_fuzz_helpers.py
        "spawn_options", "ensure_base", "base_name", "random_name", "resolve_userns", "as_owner",
        "limit_events"}


#: ints are not bad values for config/cgroup items: spawn turns them into text.
bad_item_value = bad_value.filter(lambda v: not (isinstance(v, int) and not isinstance(v, bool)))
bad_mode = bad_int(0, 0o7777).filter(lambda m: m is not None)  # None: the default mode

BAD_OPTIONS: dict[str, st.SearchStrategy[Any]] = {
    "path": bad_path.filter(lambda p: p is not None),
    "verbose": bad_int(0, 100),
    "config": st.one_of(
        st.text(min_size=1), st.integers(), st.none(),
        st.lists(st.one_of(st.tuples(bad_key, st.text(max_size=5)),
                           st.tuples(st.just("lxc.uts.name"), bad_item_value),
                           st.tuples(st.just("load"), bad_path),
                           bad_key.filter(lambda k: k != ""),
                           st.tuples(st.text(max_size=3)), st.integers(), st.none()),
                 min_size=1, max_size=3)),
    "cgroup": st.one_of(
        st.text(min_size=1), st.integers(),
        st.lists(st.one_of(st.tuples(bad_key, st.just("1")), st.tuples(st.just("pids.max"), bad_item_value),
                           st.text(max_size=3), st.tuples(st.just("a"))), min_size=1, max_size=3)),
    "chroot": st.one_of(
        st.text(min_size=1), st.integers(),
        st.fixed_dictionaries({"dir": st.lists(st.one_of(
            st.sampled_from(["..", "/a/../..", "a/..", "/", "", "."]), not_str.filter(
                lambda x: not isinstance(x, (list, tuple, str)) and x is not None),
            st.tuples(st.just("/srv/x"), bad_mode)), min_size=1, max_size=3)}),
        st.fixed_dictionaries({"file": st.lists(st.one_of(
            st.tuples(st.sampled_from(["../x", "/x/../../y"]), st.just(b"x")),
            st.tuples(st.just("/srv/f"), wrong_type.filter(
                lambda x: not isinstance(x, (bytes, bytearray, str)))),
            st.tuples(with_nul, st.just(b"x")), st.tuples(st.just("/srv/f")),
            st.tuples(st.just("/srv/f"), st.just(b""), bad_mode)), min_size=1, max_size=3)}),
        st.fixed_dictionaries({"copy": st.lists(st.one_of(
            st.tuples(st.sampled_from(["", "a\0b"]), st.just("/srv/c")),
            st.tuples(st.just("/etc/hostname"), st.sampled_from(["..", "/../x", "a/../../b"])),
            st.tuples(not_str.filter(lambda x: not isinstance(x, str)), st.just("/srv/c"))),
            min_size=1, max_size=3)}),
        st.dictionaries(st.text(max_size=5).filter(lambda k: k not in ("dir", "file", "copy")),
                        st.just(["/srv/x"]), min_size=1, max_size=2)),
    "create": st.one_of(
        st.text(min_size=1), st.integers(),
        st.dictionaries(st.text(max_size=8).filter(
            lambda k: k not in ("template", "bdevtype", "bdevspec", "flags", "argv")),
            st.just(1), min_size=1, max_size=2),
        st.fixed_dictionaries({"argv": bad_argv})),
    "start": st.one_of(
        st.text(min_size=1), st.integers(),
        st.dictionaries(st.text(max_size=8).filter(lambda k: k not in ("useinit", "argv")),
                        st.just(1), min_size=1, max_size=2),
        st.fixed_dictionaries({"argv": bad_argv}),
        st.fixed_dictionaries({"useinit": st.one_of(st.integers(min_value=2), st.text(min_size=1),
                                                    st.just(-1))})),
    "type": st.one_of(odd_text.filter(lambda t: t not in ("temporary", "transient", "permanent")),
                      st.integers(), st.just(["temporary"])),
    "window": bad_int(1, 1 << 30),
    "nodaemonize": not_bool,
    "nocloseallfds": not_bool,
    "console": st.one_of(st.integers(max_value=-1), st.integers(min_value=1025), st.text(max_size=3),
                         st.floats()),
    "exec": st.one_of(st.integers(), st.lists(st.one_of(st.none(), st.integers(), with_nul, surrogate),
                                              min_size=1, max_size=3)),
    "timeout": bad_timeout,
    "restarts": st.one_of(st.integers(max_value=-1), st.booleans(), st.text(max_size=3), st.floats()),
    "restart_period": st.one_of(st.sampled_from([0, -1, 0.0, float("nan"), float("-inf")]),
                                st.booleans(), st.text(max_size=3), st.none()),
    "owner": st.one_of(st.integers(), st.text(max_size=3), st.just(object()), st.just(threading.Event())),
    "limits": st.one_of(
        st.text(min_size=1), st.integers(), st.lists(st.integers(), min_size=1, max_size=2),
        st.dictionaries(st.text(max_size=8).filter(
            lambda k: k not in ("pids", "memory", "cpu", "disk")), st.just(1), min_size=1, max_size=2),
        st.fixed_dictionaries({"pids": bad_int(1, 1 << 22).filter(lambda n: n is not None)}),
        st.fixed_dictionaries({"memory": st.one_of(
            st.sampled_from(["", "12x", "-1M", "0", "1K", "3M", "1.5G", "M", "1e9"]),
            st.booleans(), st.floats(), st.integers(max_value=(4 << 20) - 1), st.just([1]))}),
        st.fixed_dictionaries({"cpu": st.one_of(
            st.sampled_from([0, 0.001, -1, 5000, float("nan"), float("inf"), True, "1", b"1"]),
            st.floats(max_value=0.0099))}),
        st.fixed_dictionaries({"disk": st.one_of(
            st.sampled_from(["0", "1K", "x", -5, True, 1.5, "1 M B", "\0"]),
            st.integers(max_value=(1 << 20) - 1))})),
}


@FAST
@given(name=st.one_of(st.just(""), odd_text.filter(lambda t: "\0" not in t)), bad=st.data(),
       unknown=st.booleans())
def test_spawn_rejects_bad_options_and_changes_nothing(lxcpath: str, name: str, bad: Any,
                                                       unknown: bool) -> None:
    """spawn(name, **options) with at least one bad option: refused, nothing made."""
    keys = bad.draw(st.lists(st.sampled_from(sorted(BAD_OPTIONS)), min_size=1, max_size=3,
                             unique=True))
    options = {k: bad.draw(BAD_OPTIONS[k], label=k) for k in keys}
    if unknown:
        options[bad.draw(st.sampled_from(["bogus", "Path", "owner_", "chroots", "\u202epath"]))] = 1
    options.setdefault("path", lxcpath)
    before = world(lxcpath)
    actors = len(pykka.ActorRegistry.get_all())
    rejected(lambda: lxactors.spawn(name, **options), f"spawn({name!r}, {options!r:.300})")
    assert world(lxcpath) == before
    deadline = time.monotonic() + 10
    while len(pykka.ActorRegistry.get_all()) > actors and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(pykka.ActorRegistry.get_all()) == actors, "an actor outlived a refused spawn"


@FAST
@given(name=bad_name.filter(lambda n: n != ""))  # "": a random name
def test_spawn_rejects_bad_names(lxcpath: str, name: Any) -> None:
    before = world(lxcpath)
    err = rejected(lambda: lxactors.spawn(name, path=lxcpath), f"spawn({name!r:.100})")
    assert isinstance(err, (TypeError, ValueError))
    assert world(lxcpath) == before
    assert not os.path.exists(os.path.join(os.path.dirname(lxcpath), "x"))


@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=unknown_key, named=st.booleans())
def test_spawn_unknown_config_key_fails_and_leaves_nothing(lxcpath: str, key: str,
                                                           named: bool) -> None:
    """Unknown keys pass validation (liblxc decides) and fail in the boot: nothing is left."""
    name = unique_name("fzkey") if named else ""
    before = world(lxcpath)
    err = rejected(lambda: lxactors.spawn(name, path=lxcpath, config=[("lxc.uts.name", "x"),
                                                                      (key, "1")]))
    assert isinstance(err, lxactors.LxcError)
    assert err.container and (err.container == name or not named)
    assert key in err.operation
    assert world(lxcpath) == before


def test_api_on_a_live_container_rejects_bad_arguments_and_keeps_it(spawn: Any, lxcpath: str) -> None:
    """exit / send / type / container(ref).* with bad arguments, on one running container:
    each is refused, and the container, its console and its type are as before."""
    ref = spawn()
    h = lxactors.container(ref)
    init = h.init_pid()
    before = world(lxcpath, ref.name)
    calls = st.one_of(
        st.tuples(st.just("exit reason"), st.one_of(odd_text, wrong_type, huge_text).filter(
            lambda r: r not in ("normal", "kill")).map(lambda r: lambda: lxactors.exit(ref, r))),
        st.tuples(st.just("exit timeout"), st.tuples(st.sampled_from(["normal", "kill"]), bad_timeout)
                  .map(lambda a: lambda: lxactors.exit(ref, *a))),
        st.tuples(st.just("send data"), wrong_type.filter(
            lambda d: not isinstance(d, (bytes, bytearray, str))).map(
                lambda d: lambda: lxactors.send(ref, d))),
        st.tuples(st.just("send surrogate"), surrogate.map(lambda d: lambda: lxactors.send(ref, d))),
        st.tuples(st.just("send timeout"), bad_timeout.map(
            lambda t: lambda: lxactors.send(ref, b"", t))),
        st.tuples(st.just("type"), st.one_of(odd_text, wrong_type.filter(lambda t: t is not None))
                  .filter(lambda t: t not in ("temporary", "transient", "permanent"))
                  .map(lambda t: lambda: lxactors.type(ref, t))),
        st.tuples(st.just("handle set"), st.tuples(bad_key, st.text(max_size=3)).map(
            lambda a: lambda: h.set_config_item(*a))),
        st.tuples(st.just("handle cgroup"), st.tuples(st.just("pids.max"), bad_value).map(
            lambda a: lambda: h.set_cgroup_item(*a))),
        st.tuples(st.just("handle attach"), bad_argv.map(lambda a: lambda: h.attach_run_wait(a))),
        st.tuples(st.just("handle start"), bad_argv.filter(lambda a: a is not None).map(
            lambda a: lambda: h.start(False, a))),
        st.tuples(st.just("handle wait"), bad_timeout.map(lambda t: lambda: h.wait("STOPPED", t))),
        st.tuples(st.just("handle private"), st.sampled_from(["_c", "_call", "__class__", "nope"])
                  .map(lambda m: lambda: getattr(h, m)())),
    )

    @settings(max_examples=80, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(call=calls)
    def fuzz(call: tuple[str, Callable[[], Any]]) -> None:
        what, fn = call
        try:
            bounded(fn)
        except (*ALLOWED, AttributeError) as exc:
            assert str(exc).strip(), what
        else:
            pytest.fail(f"{what}: accepted")
        assert ref.alive, f"{what} ended the container"

    fuzz()
    assert h.init_pid() == init and h.state() == "RUNNING"
    assert lxactors.type(ref) == "temporary"
    assert world(lxcpath, ref.name).config == before.config
    lxactors.send(ref, "\necho fine-$((6*7))\n")
    read_console_until(ref, b"fine-42")
    exited = lxactors.exit(ref, "kill")
    assert exited is not None and exited.reason == "kill"
