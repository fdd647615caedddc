"""The low-level API against sequences other projects run on liblxc.

python3-lxc's API example, liblxc's own ``src/tests`` (clonetest.c,
snapshot.c) and erlxc's tests call liblxc in orders the rest of the suite
does not: each test here is one such sequence, checked for what liblxc
itself does.
"""

from __future__ import annotations

import os

import pytest

from lxactors import liblxc
from lxactors._errors import LxcError
from tests.conftest import unique_name
from tests.util import remove_container


@pytest.fixture
def fresh(lxcpath: str):
    """A handle on a container name nobody has used yet; whatever it made is removed after."""
    name = unique_name("fid")
    c = liblxc.Container(name, lxcpath)
    yield c
    c.close()
    remove_container(name, lxcpath)


def test_create_after_save_config_makes_the_rootfs(fresh: liblxc.Container, lxcpath: str) -> None:
    """clonetest.c / python3-lxc: save_config() on a new handle, then create(): liblxc refuses
    only a container whose rootfs exists, so a defined container without one is created."""
    fresh.save_config()
    assert fresh.is_defined()
    assert not os.path.exists(os.path.join(lxcpath, fresh.name, "rootfs"))
    fresh.create("busybox")
    assert os.path.isfile(os.path.join(lxcpath, fresh.name, "rootfs", "bin", "busybox"))
    assert fresh.get_config_item("lxc.rootfs.path").endswith(f"/{fresh.name}/rootfs")
    # ...and once the rootfs exists, a second create is refused, the rootfs left alone.
    with pytest.raises(LxcError, match="already exists") as info:
        fresh.create("busybox")
    assert (info.value.container, info.value.operation) == (fresh.name, "create")
    assert os.path.isfile(os.path.join(lxcpath, fresh.name, "rootfs", "bin", "busybox"))


def test_error_log_carries_only_the_failed_calls_lines(fresh: liblxc.Container) -> None:
    """A direct call's LxcError.log holds what liblxc wrote for that call, not earlier lines."""
    with pytest.raises(KeyError):
        fresh.get_config_item("lxc.seccomp")  # liblxc logs an error line for it
    assert any("lxc.seccomp" in line for line in fresh.log_lines_since(0))
    with pytest.raises(LxcError) as info:
        fresh.set_config_item("lxc.notakey", "x")
    assert info.value.log, "liblxc's own reason is reported"
    assert any("lxc.notakey" in line for line in info.value.log), info.value.log
    assert not any("lxc.seccomp" in line for line in info.value.log), info.value.log
    # The same for a cgroup call on a stopped container after a failed config call.
    with pytest.raises(LxcError) as info:
        fresh.set_cgroup_item("pids.max", "10")
    assert not any("lxc.notakey" in line for line in info.value.log), info.value.log


@pytest.mark.parametrize("script, code", [("exit 3", 3), ("sleep 0.5; exit 4", 4), ("exit 0", 0)],
                         ids=["at-once", "after-running", "zero"])
def test_foreground_start_leaves_inits_exit_status_in_error_num(make_container, script: str,
                                                                 code: int) -> None:
    """lxc-execute: with want_daemonize(False), liblxc leaves init's wait status in error_num."""
    c = make_container()
    c.want_daemonize(False)
    c.start(True, ["/bin/sh", "-c", script], timeout=60)
    assert c.wait("STOPPED", 30)
    assert os.waitstatus_to_exitcode(c.error_num) == code, c.error_num
    # ...and a daemonized start afterwards does not report the old status.
    c.want_daemonize(True)
    c.start()
    assert c.error_num == 0
    c.stop()
