"""The checks that run before anything reaches C (lxactors._validate), and the free
functions of lxactors.liblxc that refuse bad input with them."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from lxactors import _validate as v
from lxactors import liblxc

# --------------------------------------------------------------------------- names


@pytest.mark.parametrize("name", ["a", "web-1", "x" * v.MAX_NAME, "é" * 32, "a.b", "A_b~c"])
def test_good_names_are_returned_encoded(name: str) -> None:
    assert v.check_name(name) == name.encode()


@pytest.mark.parametrize(("name", "match"), [
    ("", "must not be empty"),
    ("a/b", "without '/' or leading '.'"),
    ("..", "without '/'"),
    (".", "without '/'"),
    (".hidden", "leading '.'"),
    ("x" * (v.MAX_NAME + 1), "longer than 64 bytes"),
    ("é" * 33, "longer than 64 bytes"),        # 33 characters, 66 bytes
    ("a b", "spaces or control characters"),
    ("a\tb", "spaces or control characters"),
    ("a\x7fb", "spaces or control characters"),
    ("a\x1bb", "spaces or control characters"),
    ("a\nb", "newline"),
    ("a\0b", "NUL"),
    ("\ud800", "not encodable"),
])
def test_bad_names_are_value_errors_that_say_why(name: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        v.check_name(name, "container name")


@pytest.mark.parametrize("name", [None, 5, b"web", ["web"]])
def test_names_must_be_str(name: object) -> None:
    with pytest.raises(TypeError, match=r"clone name must be str, not"):
        v.check_name(name, "clone name")


# --------------------------------------------------------------------------- keys, values, paths


def test_keys_and_values() -> None:
    assert v.check_key("lxc.uts.name") == b"lxc.uts.name"
    for bad in ("", "a=b", "a b", "lxc.uts.name = x"):
        with pytest.raises(ValueError, match="without spaces or '='"):
            v.check_key(bad)
    with pytest.raises(ValueError, match="newline"):
        v.check_key("lxc.uts.name\n")
    # Values may hold spaces and '=' but never a line break: one item, one line.
    assert v.check_value("a = b c") == b"a = b c"
    for bad in ("x\nlxc.init.cmd = /evil", "x\ry"):
        with pytest.raises(ValueError, match="must not contain a newline"):
            v.check_value(bad, "value of lxc.uts.name")
    with pytest.raises(TypeError, match=r"value of lxc\.uts\.name must be str, not int"):
        v.check_value(5, "value of lxc.uts.name")


def test_text_keeps_surrogate_escapes_of_undecodable_bytes() -> None:
    # os.fsdecode() of a non-UTF-8 file name gives surrogate escapes: they go back as the bytes.
    assert v.check_text("caf\udce9", "path") == b"caf\xe9"
    assert v.encode("\udcff") == b"\xff"


def test_paths() -> None:
    assert v.check_path("/var/lib/lxc") == b"/var/lib/lxc"
    assert v.check_path(Path("/var/tmp")) == b"/var/tmp"
    with pytest.raises(TypeError, match=r"path must be str or os\.PathLike"):
        v.check_path(b"/var/tmp")
    with pytest.raises(ValueError, match="must not be empty"):
        v.check_path("")
    with pytest.raises(ValueError, match="NUL"):
        v.check_path("/var/\0tmp")


def test_argv() -> None:
    assert v.check_argv(["/bin/sh", "-c", ""]) == [b"/bin/sh", b"-c", b""]
    assert v.check_argv(("a", "b")) == [b"a", b"b"]
    for bad in ("/bin/sh", b"/bin/sh", 5, None):
        with pytest.raises(TypeError, match="argv must be a list of str"):
            v.check_argv(bad)
    with pytest.raises(TypeError, match="argv item must be str, not bytes"):
        v.check_argv(["ok", b"no"])
    with pytest.raises(ValueError, match="argv item must not contain NUL"):
        v.check_argv(["a\0b"])


# --------------------------------------------------------------------------- numbers


def test_ints_are_bounded_and_never_bools() -> None:
    assert v.check_int(0, "flags", low=0, high=3) == 0
    assert v.check_int(3, "flags", low=0, high=3) == 3
    for bad in (-1, 4):
        with pytest.raises(ValueError, match="flags must be between 0 and 3"):
            v.check_int(bad, "flags", low=0, high=3)
    for wrong in (True, 1.0, "1", None):
        with pytest.raises(TypeError, match="flags must be int"):
            v.check_int(wrong, "flags", low=0, high=3)


@pytest.mark.parametrize(("timeout", "seconds"), [(0, 0.0), (1, 1.0), (2.5, 2.5), (-1, -1.0),
                                                  (2**31 - 1, float(2**31 - 1))])
def test_good_timeouts(timeout: float, seconds: float) -> None:
    got = v.check_timeout(timeout)
    assert got == seconds and isinstance(got, float)


@pytest.mark.parametrize(("timeout", "error", "match"), [
    (math.nan, ValueError, "must be finite"),
    (math.inf, ValueError, "must be finite"),
    (-math.inf, ValueError, "must be finite"),
    (-2, ValueError, r"must be >= 0 \(or -1"),
    (-0.5, ValueError, r"must be >= 0"),
    (2**31, ValueError, "is too large"),
    (True, TypeError, "must be a number of seconds"),
    ("1", TypeError, "must be a number of seconds"),
    (None, TypeError, "must be a number of seconds"),
])
def test_bad_timeouts(timeout: object, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=f"wait timeout {match}"):
        v.check_timeout(timeout, "wait timeout")


# --------------------------------------------------------------------------- liblxc, before C


@pytest.mark.parametrize(("name", "error"), [("a/b", ValueError), ("..", ValueError), ("", ValueError),
                                             ("a\0b", ValueError), (b"x", TypeError), (None, TypeError)])
def test_a_handle_with_a_bad_name_is_refused_before_anything_is_made(
        tmp_path: Path, name: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="container name"):
        liblxc.Container(name, str(tmp_path))  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fn", [liblxc.list_defined_containers, liblxc.list_active_containers,
                                liblxc.list_all_containers])
def test_list_bad_path(fn) -> None:
    with pytest.raises(TypeError):
        fn(b"/var/tmp")
    with pytest.raises(TypeError):
        fn(42)
    with pytest.raises(ValueError):
        fn("/var/\0tmp")


def test_free_functions_bad_input() -> None:
    with pytest.raises(TypeError):
        liblxc.get_global_config_item(5)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        liblxc.get_global_config_item("lxc.lxcpath\0x")
    with pytest.raises(TypeError):
        liblxc.config_item_is_supported(None)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        liblxc.config_item_is_supported("lxc.uts.name = x")
    with pytest.raises(ValueError):
        liblxc.has_api_extension("mount_injection_file\nx")
    with pytest.raises(TypeError):
        liblxc.has_api_extension(b"seccomp_notify")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        liblxc.log_init(level="LOUD")
    with pytest.raises(ValueError):
        liblxc.log_init(file="/tmp/a\0b")
