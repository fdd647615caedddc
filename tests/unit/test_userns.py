"""The userns option without root: id maps, subuid/subgid files (temporary ones, never
/etc), the range picked for root, and which directories the mapped root can reach."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

from lxactors import IdMap
from lxactors._userns import (
    check_delegated,
    default_idmap,
    delegated_line,
    idmap_of,
    reach_problem,
    resolve_userns,
    unreachable_dir,
)

# --------------------------------------------------------------------------- IdMap


def test_an_idmap_says_where_container_ids_are_on_the_host() -> None:
    m = IdMap(100000, 200000, 65536)
    assert m.config == [("lxc.idmap", "u 0 100000 65536"), ("lxc.idmap", "g 0 200000 65536")]
    assert m.tag == "100000-200000-65536" and IdMap(5, 5, 10).tag == "5-10"
    assert (m.host_uid(0), m.host_uid(65535), m.host_gid(1000)) == (100000, 165535, 201000)
    for bad in (-1, 65536):
        with pytest.raises(ValueError, match="outside the container's 65536 mapped ids"):
            m.host_uid(bad)
        with pytest.raises(ValueError, match="outside"):
            m.host_gid(bad)


@pytest.mark.parametrize(("args", "error", "match"), [
    (("100000", 1, 1), TypeError, "uid must be an int, not str"),
    ((1, True, 1), TypeError, "gid must be an int, not bool"),
    ((1, 1, 1.0), TypeError, "count must be an int"),
    ((1, 1, 0), ValueError, "at least one id"),
    ((0, 1, 10), ValueError, "uid range must not include the host's root"),
    ((1, 0, 10), ValueError, "gid range must not include the host's root"),
    ((2**32 - 10, 1, 10), ValueError, "passes the largest id"),
])
def test_bad_idmaps_are_refused(args: tuple[Any, Any, Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        IdMap(*args)


@pytest.mark.parametrize(("value", "error", "match"), [
    ("yes", TypeError, "userns must be True, False, a range"),
    ([100000, 65536], TypeError, "userns must be"),
    ((100000,), TypeError, "userns must be"),
    (("100000", 65536), TypeError, "uid must be an int"),
    (range(100000, 165536, 2), ValueError, "step 1"),
    (range(0, 65536), ValueError, "must not include the host's root"),
    ((5, 0), ValueError, "at least one id"),
    (IdMap(7_000_000, 7_000_000, 65536), ValueError, "not delegated to root in /etc/subuid"),
])
def test_bad_userns_values(value: object, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        resolve_userns(value)


def test_no_user_namespace() -> None:
    assert resolve_userns(False) is None and resolve_userns(None) is None


# --------------------------------------------------------------------------- subuid and subgid files


@pytest.fixture
def subid(tmp_path: Any) -> Iterator[tuple[str, str, str]]:
    uid, gid = tmp_path / "subuid", tmp_path / "subgid"
    uid.write_text("")
    gid.write_text("")
    yield str(uid), str(gid), str(tmp_path / "lock")


def test_a_range_is_delegated_to_root_when_absent(subid: tuple[str, str, str]) -> None:
    uid, gid, lock = subid
    with open(uid, "w") as f:
        f.write("alice:100000:65536\nbob:165536:65536")  # no newline at the end
    with open(gid, "w") as f:
        f.write("alice:100000:65536\n")
    got = default_idmap(uid, gid, lock)
    # The first start from 100000 free in both files, the same for uids and gids.
    assert got == IdMap(231072, 231072, 65536)
    with open(uid) as f:
        assert f.read() == "alice:100000:65536\nbob:165536:65536\nroot:231072:65536\n"
    with open(gid) as f:
        assert f.read() == "alice:100000:65536\nroot:231072:65536\n"
    # Asked again, nothing more is written.
    assert default_idmap(uid, gid, lock) == got
    with open(uid) as f:
        assert f.read().count("root:") == 1


def test_roots_own_ranges_are_used_as_they_are(subid: tuple[str, str, str]) -> None:
    uid, gid, lock = subid
    with open(uid, "w") as f:
        f.write("root:5000:10\n0:300000:70000\n")
    with open(gid, "w") as f:
        f.write("root:400000:65536\n")
    assert default_idmap(uid, gid, lock) == IdMap(300000, 400000, 65536)
    with open(uid) as f:
        assert f.read() == "root:5000:10\n0:300000:70000\n"


def test_an_empty_pair_of_files_gets_the_usual_range(subid: tuple[str, str, str]) -> None:
    uid, gid, lock = subid
    assert default_idmap(uid, gid, lock) == IdMap(100000, 100000, 65536)


def test_idmap_items_are_read_back() -> None:
    assert idmap_of(["u 0 100000 65536", "g 0 200000 1000"]) == IdMap(100000, 200000, 1000)
    assert idmap_of(["u 0 100000 65536"]) is None
    assert idmap_of([]) is None
    assert idmap_of(["u 1000 100000 1", "u 0 5000 1", "g 0 6000 1"]) == IdMap(5000, 6000, 1)


def test_an_unwritable_subid_file_is_a_clear_error(subid: tuple[str, str, str],
                                                   tmp_path: Any) -> None:
    uid, _gid, lock = subid
    gid_dir = tmp_path / "subgid-is-a-directory"
    gid_dir.mkdir()
    with pytest.raises(OSError, match=r"cannot read or delegate root's ids in .*subgid-is-a-dir"
                                      r".*'root:100000:65536'.*userns=False"):
        default_idmap(uid, str(gid_dir), lock)


def write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def read(path: str) -> str:
    with open(path) as f:
        return f.read()


def test_a_fresh_range_skips_every_taken_one(subid: tuple[str, str, str]) -> None:
    uid, gid, lock = subid
    # 165536.. would overlap bob's ten ids at 200000: the range starts after them.
    write(uid, "alice:100000:65536\nbob:200000:10\n")
    assert default_idmap(uid, gid, lock) == IdMap(200010, 200010, 65536)
    assert read(gid) == "root:200010:65536\n"


def test_malformed_lines_are_ignored_and_kept(subid: tuple[str, str, str]) -> None:
    uid, gid, lock = subid
    junk = "# a comment\nroot:abc:65536\nroot:1:2:3\n\nroot:-5:65536\n"
    write(uid, junk)
    assert default_idmap(uid, gid, lock) == IdMap(100000, 100000, 65536)
    assert read(uid) == junk + "root:100000:65536\n"


def test_a_small_range_of_roots_is_not_enough(subid: tuple[str, str, str]) -> None:
    uid, gid, lock = subid
    write(uid, "root:100000:1000\n")
    write(gid, "root:100000:1000\n")
    assert default_idmap(uid, gid, lock) == IdMap(101000, 101000, 65536)
    assert read(uid) == "root:100000:1000\nroot:101000:65536\n"


def test_only_the_file_without_a_range_gets_one(subid: tuple[str, str, str]) -> None:
    uid, gid, lock = subid
    write(uid, "root:300000:65536\n")
    # The new gid range is free in both files (300000.. is taken in subuid).
    assert default_idmap(uid, gid, lock) == IdMap(300000, 100000, 65536)
    assert read(uid) == "root:300000:65536\n"
    assert read(gid) == "root:100000:65536\n"


def test_delegated_lines_are_what_newuidmap_would_allow(subid: tuple[str, str, str]) -> None:
    uid, gid, _lock = subid
    write(uid, "root:100000:65536\nalice:300000:65536\n")
    write(gid, "0:200000:1000\n")
    assert delegated_line("u 0 100000 65536", uid, gid)
    assert delegated_line("u 1000 101000 10", uid, gid)
    assert not delegated_line("u 0 100000 65537", uid, gid)      # one id too many
    assert not delegated_line("u 0 300000 10", uid, gid)         # alice's, not root's
    assert delegated_line("g 0 200000 1000", uid, gid)            # "0" is root too
    assert not delegated_line("g 0 100000 10", uid, gid)          # gids come from subgid
    for bad in ("x 0 100000 10", "u 0 100000", "u 0 a 10", "u 0 100000 10 1", ""):
        assert not delegated_line(bad, uid, gid), bad


def test_an_undelegated_map_is_refused_with_the_line_to_add(subid: tuple[str, str, str]) -> None:
    uid, gid, _lock = subid
    write(uid, "root:100000:65536\n")
    write(gid, "root:100000:65536\n")
    check_delegated(IdMap(100000, 100000, 65536), uid, gid)
    check_delegated(IdMap(100010, 100000, 10), uid, gid)
    with pytest.raises(ValueError, match=rf"gid range 7000000-7000009 is not delegated to root in "
                                         rf"{gid}; add the line 'root:7000000:10'"):
        check_delegated(IdMap(100000, 7_000_000, 10), uid, gid)


# --------------------------------------------------------------------------- reaching the lxcpath


@pytest.fixture
def open_dir() -> Iterator[str]:
    """A directory every user can search (pytest's own temporary base is private)."""
    d = tempfile.mkdtemp(prefix="lxactors-unit-", dir="/var/tmp")
    os.chmod(d, 0o711)
    yield d
    shutil.rmtree(d)


def test_a_closed_directory_on_the_way_is_named(open_dir: str) -> None:
    idmap = IdMap(7_000_000, 7_000_000, 65536)
    closed = os.path.join(open_dir, "closed")
    os.mkdir(closed, 0o700)
    inner = os.path.join(closed, "a", "lxcpath")
    assert unreachable_dir(inner, idmap) == closed
    problem = reach_problem(inner, idmap)
    assert problem is not None and f"{closed} is closed to the container's root (host uid 7000000)" \
        in problem and f"chmod o+x {closed}" in problem
    os.chmod(closed, 0o711)
    assert unreachable_dir(inner, idmap) is None  # what does not exist yet is made by lxactors
    assert reach_problem(inner, idmap) is None
    os.chmod(closed, 0o744)  # readable is not searchable
    assert unreachable_dir(inner, idmap) == closed
