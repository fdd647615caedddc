"""chroot specs, without a container: parsing, the rootfs a spec writes into, and
apply_chroot on a temporary directory (never outside it, whole files or none)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lxactors
from lxactors import _chroot
from lxactors._chroot import CopySpec, DirSpec, FileSpec, apply_chroot, lower_dir, parse_chroot, rootfs_dir
from tests.util import assert_untouched

# --------------------------------------------------------------------------- parsing


def test_the_three_kinds_parse_to_specs() -> None:
    specs = parse_chroot({
        "dir": ["/srv/a", ("srv/b/", 0o700), Path("/srv/./c")],
        "file": [("/etc/motd", "hi\n"), ("/etc/key", b"\x00\xff", 0o600)],
        "copy": [("/etc/hostname", "/etc/copied"), (Path("/etc/passwd"), "//x//y", 0o444)],
    })
    assert specs == (
        DirSpec(("srv", "a")), DirSpec(("srv", "b"), 0o700), DirSpec(("srv", "c")),
        FileSpec(("etc", "motd"), b"hi\n"), FileSpec(("etc", "key"), b"\x00\xff", 0o600),
        CopySpec("/etc/hostname", ("etc", "copied")), CopySpec("/etc/passwd", ("x", "y"), 0o444),
    )


def test_a_list_of_pairs_keeps_its_order() -> None:
    specs = parse_chroot([("file", [("/a", b"1")]), ("dir", ["/b"]), ("file", [("/c", b"2")])])
    assert [s.path for s in specs] == [("a",), ("b",), ("c",)]
    assert parse_chroot(None) == () and parse_chroot({}) == ()


@pytest.mark.parametrize(("spec", "error", "match"), [
    ({"dir": ["/srv/../etc"]}, ValueError, r"must not contain '\.\.'"),
    ({"dir": [".."]}, ValueError, r"'\.\.'"),
    ({"file": [("a/../../b", b"")]}, ValueError, r"'\.\.'"),
    ({"copy": [("/etc/hostname", "../x")]}, ValueError, r"'\.\.'"),
    ({"dir": ["/"]}, ValueError, "names the rootfs itself"),
    ({"dir": ["/./."]}, ValueError, "names the rootfs itself"),
    ({"dir": ["/a\0b"]}, ValueError, "NUL"),
    ({"dir": [b"/srv"]}, TypeError, "dir spec must be path or"),
    ({"dir": [(b"/srv", 0o755)]}, TypeError, "path must be str, not bytes"),
    ({"dir": [("/srv", True)]}, TypeError, "mode must be an int"),
    ({"dir": [("/srv", "755")]}, TypeError, "mode must be an int"),
    ({"dir": [("/srv", 0o10000)]}, ValueError, "mode out of range"),
    ({"dir": [("/srv", -1)]}, ValueError, "mode out of range"),
    ({"file": [("/f",)]}, TypeError, r"\(path, content\[, mode\]\)"),
    ({"file": [("/f", 5)]}, TypeError, "content must be bytes or str"),
    ({"file": "/f"}, TypeError, "specs must be a list"),
    ({"copy": [("", "/x")]}, ValueError, "copy source must be a host path"),
    ({"copy": [("/a\0", "/x")]}, ValueError, "copy source must be a host path"),
    ({"link": ["/x"]}, ValueError, "unknown chroot kind 'link'"),
    ("dir", TypeError, "chroot must be a mapping"),
    ([("dir",)], TypeError, r"entry must be \(kind, specs\)"),
])
def test_bad_specs_are_refused(spec: Any, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        parse_chroot(spec)


def test_content_over_the_limit_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_chroot, "MAX_CONTENT", 8)
    assert parse_chroot({"file": [("/f", b"x" * 8)]})[0].content == b"x" * 8  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="over 8 bytes"):
        parse_chroot({"file": [("/f", b"x" * 9)]})


@pytest.mark.parametrize(("rootfs_path", "where", "lower"), [
    ("dir:/var/lib/lxc/c/rootfs", "/var/lib/lxc/c/rootfs", None),
    ("/var/lib/lxc/c/rootfs", "/var/lib/lxc/c/rootfs", None),
    ("overlay:/base/rootfs:/c/overlay/delta", "/c/overlay/delta", "/base/rootfs"),
    ("overlayfs:/base/rootfs:/c/delta", "/c/delta", "/base/rootfs"),
    ("/base/rootfs:/c/overlay/delta", "/c/overlay/delta", "/base/rootfs"),  # as liblxc reads it back
])
def test_where_specs_are_written(rootfs_path: str, where: str, lower: str | None) -> None:
    assert rootfs_dir(rootfs_path) == where
    assert lower_dir(rootfs_path) == lower


def test_other_storage_is_refused() -> None:
    with pytest.raises(ValueError, match="need a dir or overlay rootfs"):
        rootfs_dir("lvm:/dev/vg/c")


# --------------------------------------------------------------------------- applying, on a temporary rootfs


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_specs_are_made_with_their_modes(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    root.mkdir()
    source = tmp_path / "source"
    source.write_bytes(b"copied")
    os.chmod(source, 0o640)
    apply_chroot("c1", str(root), parse_chroot({
        "dir": ["/srv/a/b", ("/srv/private", 0o700)],
        "file": [("/etc/motd", "hello\n"), ("/etc/secret", b"s", 0o600)],
        "copy": [(str(source), "/etc/copied"), (str(source), "/etc/copied-ro", 0o444)],
    }))
    assert (root / "etc" / "motd").read_bytes() == b"hello\n"
    assert (root / "etc" / "copied").read_bytes() == b"copied"
    assert {p: mode_of(root / p) for p in ("srv", "srv/a/b", "srv/private", "etc/motd", "etc/secret",
                                           "etc/copied", "etc/copied-ro")} == {
        "srv": 0o755, "srv/a/b": 0o755, "srv/private": 0o700, "etc/motd": 0o644,
        "etc/secret": 0o600, "etc/copied": 0o640, "etc/copied-ro": 0o444}
    # A directory that is there keeps its mode unless the spec gives one.
    os.chmod(root / "srv" / "a", 0o711)
    apply_chroot("c1", str(root), parse_chroot({"dir": ["/srv/a", ("/srv/a/b", 0o750)]}))
    assert mode_of(root / "srv" / "a") == 0o711 and mode_of(root / "srv" / "a" / "b") == 0o750


def test_an_upper_layer_copies_the_lower_layers_directories(tmp_path: Path) -> None:
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    (lower / "tmp").mkdir(parents=True)
    os.chmod(lower / "tmp", 0o1777)
    upper.mkdir()
    apply_chroot("c1", str(upper), parse_chroot({"file": [("/tmp/new/f", b"x")]}), lower=str(lower))
    assert mode_of(upper / "tmp") == 0o1777          # as the lower layer has it
    assert mode_of(upper / "tmp" / "new") == 0o755    # new: the default


def test_a_file_replaces_a_symlink_and_never_writes_through_it(tmp_path: Path, outside: str) -> None:
    root = tmp_path / "rootfs"
    root.mkdir()
    victim = tmp_path / "victim"
    victim.write_bytes(b"original")
    os.symlink(victim, root / "f")
    apply_chroot("c1", str(root), parse_chroot({"file": [("/f", b"new")]}))
    assert victim.read_bytes() == b"original"
    assert not os.path.islink(root / "f") and (root / "f").read_bytes() == b"new"
    os.symlink(outside, root / "out")
    with pytest.raises(lxactors.LxcError, match="symlink") as info:
        apply_chroot("c1", str(root), parse_chroot({"file": [("/out/f", b"x")]}))
    assert (info.value.container, info.value.operation) == ("c1", "chroot")
    assert "FileSpec /out/f" in info.value.message
    assert_untouched(outside)


def test_a_fifo_or_directory_as_copy_source_fails_without_hanging(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    root.mkdir()
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for source in (fifo, tmp_path):
        with pytest.raises(lxactors.LxcError, match="not a regular file"):
            apply_chroot("c1", str(root), parse_chroot({"copy": [(str(source), "/c")]}))
    assert os.listdir(root) == []


def test_a_failed_write_leaves_no_temporary_file(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    (root / "d" / "taken").mkdir(parents=True)
    (root / "d" / "taken" / "inside").write_bytes(b"kept")
    # Written whole to a temporary name, then renamed over a directory: that fails.
    with pytest.raises(lxactors.LxcError, match="FileSpec /d/taken"):
        apply_chroot("c1", str(root), parse_chroot({"file": [("/d/taken", b"new")]}))
    assert os.listdir(root / "d") == ["taken"]
    assert (root / "d" / "taken" / "inside").read_bytes() == b"kept"


def test_a_missing_rootfs_is_an_lxc_error(tmp_path: Path) -> None:
    with pytest.raises(lxactors.LxcError, match="cannot open rootfs") as info:
        apply_chroot("c1", str(tmp_path / "absent"), parse_chroot({"dir": ["/a"]}))
    assert info.value.operation == "chroot"


# --------------------------------------------------------------------------- path safety, fuzzed


@pytest.fixture
def rootfs(tmp_path: Any, outside: str) -> Iterator[str]:
    """A rootfs directory with symlinks pointing out of it, planted beforehand."""
    r = tmp_path / "rootfs"
    (r / "srv").mkdir(parents=True)
    (r / "etc").mkdir()
    os.symlink(outside, r / "abs-out")                              # absolute, to outside
    os.symlink("../../../../../../../../" + outside.lstrip("/"), r / "rel-out")  # relative, climbs out
    os.symlink(outside, r / "srv" / "deep-out")                     # deeper down
    os.symlink("/", r / "root-link")                                # to the host's /
    os.symlink(os.path.join(outside, "file"), r / "file-out")       # a file outside (dangling)
    yield str(r)


PART_NAMES = ["..", ".", "", "a", "b", "srv", "etc", "abs-out", "rel-out", "deep-out",
              "root-link", "file-out", "tmp", "x\u202ey", "e\u0301", "\u2024\u2024", "...", ". ."]
#: Where an escape through root-link (a link to /) would land: none of these may appear.
CANARIES = [os.path.join(d, n) for d in ("/", "/srv", "/etc", "/tmp", "/var/tmp")
            for n in PART_NAMES if n not in ("..", ".", "")]
PRESENT = {p for p in CANARIES if os.path.lexists(p)}
PART = st.sampled_from(PART_NAMES)


@settings(max_examples=200, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=st.lists(st.lists(PART, min_size=1, max_size=5), min_size=1, max_size=4),
       kinds=st.lists(st.sampled_from(["dir", "file", "copy"]), min_size=4, max_size=4),
       absolute=st.booleans())
def test_chroot_paths_never_leave_the_rootfs(rootfs: str, outside: str, tmp_path: Any,
                                             parts: list[list[str]], kinds: list[str],
                                             absolute: bool) -> None:
    """Any mix of '..', '.', '', absolute paths and planted symlinks: refused before anything
    (ValueError for '..'), or an LxcError (a symlink in the way), or made inside."""
    source = tmp_path / "source"
    source.write_bytes(b"copied")
    paths = [("/" if absolute else "") + "/".join(p) for p in parts]
    spec: dict[str, list[Any]] = {}
    for path, kind in zip(paths, kinds, strict=False):
        entry: Any = {"dir": (path, 0o700), "file": (path, b"data", 0o600),
                      "copy": (str(source), path, 0o600)}[kind]
        spec.setdefault(kind, []).append(entry)
    try:
        specs = parse_chroot(spec)
    except ValueError as exc:
        assert ".." in str(exc) or "rootfs itself" in str(exc)
        return
    try:
        apply_chroot("fuzz", rootfs, specs)
    except lxactors.LxcError as exc:
        assert exc.operation == "chroot" and "Spec /" in exc.message
    assert_untouched(outside)
    assert {p for p in CANARIES if os.path.lexists(p)} == PRESENT, "written on the host"
    for _d, _dirs, files in os.walk(rootfs):
        assert not [f for f in files if ".lxactors-" in f], "temporary file left"
