"""lxactors.liblxc on real busybox containers: device nodes, mounts, and checkpoints (without criu).

Together the test_liblxc_*.py modules exercise every public function and ``Container``
member at least once, each test checking a result that a broken binding would get wrong.
The containers come from ``make_container`` (overlay snapshots of the session's busybox
``base``); anything else a test makes is registered with ``extra``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from lxactors._errors import LxcError
from tests.util import sh

MS_BIND = 4096


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
