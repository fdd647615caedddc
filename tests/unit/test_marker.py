"""tcpvm's and imc's markers (lxactors.apps.marker) for an ordinary user: in a directory
of the user's own (root's go in the container's directory, which tests/test_cli.py reads
back through ``lxactors ls``), removed when the container ends or is gone, and never
written through a directory that is not safely the user's."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lxactors.apps import marker


@pytest.fixture
def run_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An ordinary user's view: not root, with a private XDG_RUNTIME_DIR."""
    monkeypatch.setattr(marker.os, "geteuid", lambda: 4242)
    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(run))
    return run / "lxactors-markers"


def test_written_read_removed_in_the_users_own_directory(run_dir: Path) -> None:
    marker.write("/srv/lxc", "lxa-one", "tcpvm", client="127.0.0.1:5")
    got = marker.read("/srv/lxc", "lxa-one")
    assert got is not None and (got["kind"], got["client"], got["pid"]) == (
        "tcpvm", "127.0.0.1:5", os.getpid())
    assert (run_dir.stat().st_mode & 0o777, len(os.listdir(run_dir))) == (0o700, 1)
    assert marker.read("/srv/other", "lxa-one") is None  # one lxcpath's, not another's
    with pytest.raises(FileExistsError):
        marker.write("/srv/lxc", "lxa-one", "imc")  # never overwritten
    marker.remove("/srv/lxc", "lxa-one")
    assert marker.read("/srv/lxc", "lxa-one") is None and os.listdir(run_dir) == []


def test_prune_removes_only_the_gone_containers_of_that_lxcpath(run_dir: Path) -> None:
    for path, name in (("/srv/lxc", "gone"), ("/srv/lxc", "here"), ("/srv/other", "gone")):
        marker.write(path, name, "imc")
    marker.prune("/srv/lxc", ["here"])
    assert marker.read("/srv/lxc", "gone") is None
    assert marker.read("/srv/lxc", "here") is not None
    assert marker.read("/srv/other", "gone") is not None


@pytest.mark.parametrize("unsafe", ["open to others", "a symlink"])
def test_a_directory_not_safely_the_users_is_never_used(run_dir: Path, tmp_path: Path,
                                                         unsafe: str) -> None:
    if unsafe == "a symlink":
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir(mode=0o700)
        run_dir.symlink_to(elsewhere)
    else:
        run_dir.mkdir()
        os.chmod(run_dir, 0o777)
    with pytest.raises(OSError, match="no marker directory"):
        marker.write("/srv/lxc", "lxa-one", "tcpvm")
    assert marker.read("/srv/lxc", "lxa-one") is None
    marker.prune("/srv/lxc", [])  # nothing to do, no error
    assert not any(tmp_path.rglob("*.json"))
