"""lxactors.liblxc on real busybox containers: config items and files, cgroup items, network interfaces.

Together the test_liblxc_*.py modules exercise every public function and ``Container``
member at least once, each test checking a result that a broken binding would get wrong.
The containers come from ``make_container`` (overlay snapshots of the session's busybox
``base``); anything else a test makes is registered with ``extra``.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest

from lxactors import liblxc
from lxactors._errors import LxcError
from tests.util import assert_no_private_log_line, sh, unique_name


def host_cgroup_dir(pid: int, controller: str) -> str:
    with open(f"/proc/{pid}/cgroup", encoding="utf-8") as f:
        for line in f:
            _, ctrls, rel = line.rstrip("\n").split(":", 2)
            if controller in ctrls.split(","):
                return os.path.join("/sys/fs/cgroup", controller, rel.lstrip("/"))
    raise AssertionError(f"pid {pid} is in no {controller} cgroup")


# --------------------------------------------------------------------------- configuration


def test_config_file_name_and_path(lxcpath: str, make_container, tmp_path) -> None:
    c = make_container()
    assert c.config_file_name() == os.path.join(lxcpath, c.name, "config")
    assert c.get_config_path() == lxcpath
    try:
        c.set_config_path(str(tmp_path))
        assert c.get_config_path() == str(tmp_path)
        assert c.config_file_name() == os.path.join(str(tmp_path), c.name, "config")
        assert c.is_defined() is False  # nothing of that name there
    finally:
        c.set_config_path(lxcpath)
    assert c.is_defined() is True
    assert os.listdir(tmp_path) == []


def test_get_set_clear_config_item(make_container) -> None:
    c = make_container()
    assert c.get_config_item("lxc.uts.name") == c.name
    assert c.get_config_item("lxc.net.0.type") == "empty"
    # liblxc hands the path back without its "overlay:" type prefix.
    assert c.get_config_item("lxc.rootfs.path").endswith(f"/{c.name}/overlay/delta")

    c.set_config_item("lxc.uts.name", "other-host")
    assert c.get_config_item("lxc.uts.name") == "other-host"

    c.set_config_item("lxc.environment", "A=1")
    assert c.get_config_item("lxc.environment") == "A=1"
    c.set_config_item("lxc.environment", "B=2")
    assert c.get_config_item("lxc.environment") == "A=1\nB=2"
    c.clear_config_item("lxc.environment")
    assert c.get_config_item("lxc.environment") == ""

    with pytest.raises(KeyError):
        c.get_config_item("lxc.bogus")
    with pytest.raises(LxcError) as e:
        c.set_config_item("lxc.bogus", "1")
    assert e.value.container == c.name
    assert "lxc.bogus" in e.value.operation

    # Nothing was written to disk by set_config_item.
    with open(c.config_file_name(), encoding="utf-8") as f:
        assert "other-host" not in f.read()


def test_get_keys(make_container) -> None:
    c = make_container()
    net = c.get_keys("lxc.net.0")
    assert "type" in net
    top = c.get_keys()
    assert "lxc.rootfs.path" in top and "lxc.uts.name" in top
    assert all(k.startswith("lxc.") for k in top)


def test_clear_config_and_load_config(make_container) -> None:
    c = make_container()
    c.clear_config()
    assert c.get_config_item("lxc.uts.name") == ""
    assert c.get_config_item("lxc.rootfs.path") == ""
    c.load_config()  # from the container's config file again
    assert c.get_config_item("lxc.uts.name") == c.name
    assert c.get_config_item("lxc.rootfs.path").endswith(f"/{c.name}/overlay/delta")


def test_save_config_to_alt_file(lxcpath: str, make_container, tmp_path) -> None:
    c = make_container()
    c.set_config_item("lxc.uts.name", "saved-host")
    c.set_config_item("lxc.environment", "SAVED=yes")
    alt = tmp_path / "alt.conf"
    c.save_config(str(alt))
    text = alt.read_text()
    assert "lxc.uts.name = saved-host" in text
    assert "lxc.environment = SAVED=yes" in text
    assert not [ln for ln in text.splitlines()
                if ln.startswith("lxc.log.file") and "/tmp/lxactors-" in ln], text

    # The container's own file is untouched until saved there.
    with open(c.config_file_name(), encoding="utf-8") as f:
        assert "saved-host" not in f.read()

    with liblxc.Container(unique_name("alt"), lxcpath) as other:
        other.clear_config()
        other.load_config(alt)
        assert other.get_config_item("lxc.uts.name") == "saved-host"
        assert other.get_config_item("lxc.environment") == "SAVED=yes"

    c.save_config()
    with open(c.config_file_name(), encoding="utf-8") as f:
        text = f.read()
    assert "lxc.uts.name = saved-host" in text
    assert_no_private_log_line(lxcpath)


def test_get_running_config_item(make_container) -> None:
    c = make_container()
    assert c.get_running_config_item("lxc.uts.name") is None  # not running
    c.start()
    assert c.get_running_config_item("lxc.uts.name") == c.name
    c.set_config_item("lxc.uts.name", "not-applied")
    # The running value comes from the monitor, not from this handle.
    assert c.get_running_config_item("lxc.uts.name") == c.name
    assert sh(c, "hostname").stdout.decode().strip() == c.name


def test_cgroup_items(make_container) -> None:
    c = make_container(start=True)
    pid = c.init_pid()
    assert c.get_cgroup_item("pids.max").strip() == "max"
    c.set_cgroup_item("pids.max", "100")
    assert c.get_cgroup_item("pids.max").strip() == "100"
    with open(os.path.join(host_cgroup_dir(pid, "pids"), "pids.max"), encoding="utf-8") as f:
        assert f.read().strip() == "100"

    c.set_cgroup_item("memory.limit_in_bytes", "256M")
    assert int(c.get_cgroup_item("memory.limit_in_bytes")) == 256 << 20
    with open(os.path.join(host_cgroup_dir(pid, "memory"), "memory.limit_in_bytes"),
              encoding="utf-8") as f:
        assert int(f.read()) == 256 << 20

    with pytest.raises(LxcError) as e:
        c.set_cgroup_item("pids.max", "not-a-number")
    assert e.value.operation == "set_cgroup_item pids.max"
    assert c.get_cgroup_item("pids.max").strip() == "100"

    c.stop()
    with pytest.raises(LxcError):
        c.get_cgroup_item("pids.max")


# --------------------------------------------------------------------------- network


def test_get_interfaces_and_ips(make_container) -> None:
    c = make_container(start=True)
    assert c.get_interfaces() == ["lo"]
    assert c.get_ips() == []  # loopback is left out unless asked for
    assert sh(c, "ip link set lo up").status == 0
    assert c.get_ips("lo", "inet") == ["127.0.0.1"]
    assert c.get_ips("lo", "inet6") == ["::1"]
    assert set(c.get_ips("lo")) == {"127.0.0.1", "::1"}
    assert c.get_ips() == []


@pytest.fixture
def veth() -> Iterator[tuple[str, str]]:
    """A veth pair on the host (this kernel has no dummy links), removed afterwards."""
    tag = os.urandom(3).hex()
    a, b = f"lxa{tag}a", f"lxa{tag}b"
    subprocess.run(["ip", "link", "add", a, "type", "veth", "peer", "name", b], check=True)
    yield a, b
    for dev in (a, b):
        subprocess.run(["ip", "link", "del", dev], capture_output=True)


def host_has_link(dev: str) -> bool:
    return subprocess.run(["ip", "link", "show", dev], capture_output=True).returncode == 0


def test_attach_detach_interface(make_container, veth) -> None:
    dev, _peer = veth
    c = make_container(start=True)
    c.attach_interface(dev, "eth5")
    assert sorted(c.get_interfaces()) == ["eth5", "lo"]
    assert not host_has_link(dev)
    assert sh(c, "ip link show eth5").status == 0

    c.detach_interface("eth5", dev)
    assert c.get_interfaces() == ["lo"]
    assert host_has_link(dev)
    assert sh(c, "ip link show eth5").status != 0

    with pytest.raises(LxcError) as e:
        c.attach_interface("lxanosuchdev0")
    assert e.value.operation == "attach_interface"
