"""lxactors.liblxc on real busybox containers: copies: clones, renames, snapshots.

Together the test_liblxc_*.py modules exercise every public function and ``Container``
member at least once, each test checking a result that a broken binding would get wrong.
The containers come from ``make_container`` (overlay snapshots of the session's busybox
``base``); anything else a test makes is registered with ``extra``.
"""

from __future__ import annotations

import os

import pytest

from lxactors import liblxc
from lxactors._errors import LxcError
from tests.util import assert_no_private_log_line, sh, unique_name

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
