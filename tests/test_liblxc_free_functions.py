"""lxactors.liblxc on real busybox containers: the free functions (version, listings, config, log).

Together the test_liblxc_*.py modules exercise every public function and ``Container``
member at least once, each test checking a result that a broken binding would get wrong.
The containers come from ``make_container`` (overlay snapshots of the session's busybox
``base``); anything else a test makes is registered with ``extra``.
"""

from __future__ import annotations

import subprocess
import sys

from lxactors import liblxc

SEED_STATES = ("STOPPED", "STARTING", "RUNNING", "STOPPING", "ABORTING", "FREEZING", "FROZEN",
               "THAWED")


# --------------------------------------------------------------------------- free functions


def test_get_version() -> None:
    assert liblxc.get_version().startswith("5.0.")
    out = subprocess.run(["lxc-start", "--version"], capture_output=True, text=True).stdout
    assert out.strip() == liblxc.get_version()


def test_list_containers(lxcpath: str, make_container, tmp_path) -> None:
    c = make_container()
    assert {"base", c.name} <= set(liblxc.list_defined_containers(lxcpath))
    assert c.name not in liblxc.list_active_containers(lxcpath)
    assert c.name in liblxc.list_all_containers(lxcpath)

    c.start()
    assert c.name in liblxc.list_active_containers(lxcpath)
    assert "base" not in liblxc.list_active_containers(lxcpath)
    assert {"base", c.name} <= set(liblxc.list_all_containers(lxcpath))
    c.stop()
    assert c.name not in liblxc.list_active_containers(lxcpath)

    assert liblxc.list_defined_containers(tmp_path) == []
    assert liblxc.list_all_containers(str(tmp_path)) == []
    names = liblxc.list_defined_containers(lxcpath)
    assert names == sorted(names)


def test_get_global_config_item() -> None:
    want = subprocess.run(["lxc-config", "lxc.lxcpath"], capture_output=True, text=True,
                          check=True).stdout.strip()
    assert liblxc.get_global_config_item("lxc.lxcpath") == want
    assert liblxc.get_global_config_item("lxc.bogus") is None


def test_config_item_is_supported() -> None:
    assert liblxc.config_item_is_supported("lxc.rootfs.path") is True
    assert liblxc.config_item_is_supported("lxc.uts.name") is True
    assert liblxc.config_item_is_supported("lxc.bogus") is False
    # Keys removed in LXC 3.0 are not "supported" by 5.0.
    assert liblxc.config_item_is_supported("lxc.network.type") is False


def test_has_api_extension() -> None:
    assert liblxc.has_api_extension("mount_injection_file") is True
    assert liblxc.has_api_extension("seccomp_notify") is True
    assert liblxc.has_api_extension("no_such_extension_xyz") is False


def test_get_wait_states() -> None:
    states = liblxc.get_wait_states()
    assert isinstance(states, tuple)
    assert states == SEED_STATES
    assert liblxc.get_wait_states() is states  # cached


def test_log_init_and_close(tmp_path) -> None:
    """lxc_log_init is process-wide (and fixes the level for good): run it in a child."""
    log = tmp_path / "global.log"
    script = f"""
import sys
from lxactors import liblxc
liblxc.log_init(file={str(log)!r}, level="TRACE", prefix="lxactors-test", quiet=True)
liblxc.list_defined_containers({str(tmp_path)!r})
liblxc.Container("absent", {str(tmp_path / "nowhere")!r}).state()
liblxc.log_close()
liblxc.log_close()  # idempotent
"""
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    text = log.read_text()
    assert text, "log_init wrote nothing"
    assert "lxactors-test" in text
    assert "TRACE" in text or "DEBUG" in text or "INFO" in text
