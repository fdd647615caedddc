"""Every spawn option of the erlxc seed, on real containers."""

from __future__ import annotations

import os
from typing import Any

import pytest

import lxactors
from lxactors import liblxc
from tests.util import read_console_until, status_field


def _sh(ref: lxactors.ContainerRef, script: str) -> str:
    r = lxactors.container(ref).attach_run_wait(["sh", "-c", script])
    assert r.status == 0, r
    return r.stdout.decode()


def test_path_puts_the_container_in_that_lxcpath(spawn: Any, lxcpath: str) -> None:
    ref = spawn()
    assert ref.path == lxcpath
    assert ref.name in liblxc.list_active_containers(lxcpath)


def test_verbose_sets_the_liblxc_log_level(spawn: Any) -> None:
    ref = spawn(verbose=4)
    assert lxactors.container(ref).get_config_item("lxc.log.level") in ("DEBUG", "4")


def test_config_steps_in_order(spawn: Any, lxcpath: str, tmp_path: Any) -> None:
    extra = tmp_path / "extra.conf"
    extra.write_text("lxc.environment = FROM_FILE=yes\n")
    ref = spawn("cfgsteps", config=[
        ("lxc.environment", "DROPPED=1"),
        "lxc.environment",                       # a bare key clears it
        ("load", str(extra)),                    # load a file
        ("lxc.uts.name", "set-by-config"),       # set
    ])
    h = lxactors.container(ref)
    assert h.get_config_item("lxc.uts.name") == "set-by-config"
    env = _sh(ref, "cat /proc/1/environ | tr '\\0' '\\n'")
    assert "FROM_FILE=yes" in env and "DROPPED=1" not in env
    assert _sh(ref, "hostname").strip() == "set-by-config"


def test_config_empty_string_clears_the_config(spawn: Any, lxcpath: str,
                                               tmp_path: Any) -> None:
    with liblxc.Container("cleared", lxcpath) as c:
        c.create("busybox")
        alt = tmp_path / "alt.conf"
        c.save_config(str(alt))  # the config as created...
        c.set_config_item("lxc.environment", "ON_DISK=1")
        c.save_config()  # ...and on disk, one item more
    ref = spawn("cleared", config=["", ("load", str(alt))])
    env = _sh(ref, "cat /proc/1/environ | tr '\\0' '\\n'")
    assert "ON_DISK=1" not in env
    assert lxactors.container(ref).state() == "RUNNING"


def test_cgroup_items_are_applied_once_running(spawn: Any) -> None:
    ref = spawn(cgroup=[("pids.max", "77")])
    assert lxactors.container(ref).get_cgroup_item("pids.max").strip() == "77"


def test_create_with_template_and_argv(spawn: Any, lxcpath: str) -> None:
    ref = spawn("created", create={"template": "busybox", "argv": []})
    h = lxactors.container(ref)
    assert h.get_config_item("lxc.rootfs.path") == os.path.join(lxcpath, "created", "rootfs")
    assert h.state() == "RUNNING"


def test_create_unknown_template_fails_cleanly(lxcpath: str) -> None:
    with pytest.raises(lxactors.LxcError) as info:
        lxactors.spawn("notemplate", path=lxcpath, create={"template": "no-such-template"})
    assert info.value.container == "notemplate" and info.value.operation == "create"
    assert "notemplate" not in liblxc.list_all_containers(lxcpath)


def test_start_argv_runs_as_init_on_the_console(spawn: Any) -> None:
    # A custom init's stdio is /dev/null (liblxc, daemonized); what it writes
    # to /dev/console is what the console (tty 0 then) reads.
    script = "exec >/dev/console; while :; do echo tick-$((5*5)); sleep 0.2; done"
    ref = spawn(start={"argv": ["/bin/sh", "-c", script]})
    read_console_until(ref, b"tick-25")
    assert _sh(ref, "cat /proc/1/cmdline | tr '\\0' ' '").startswith("/bin/sh -c exec")


def test_start_useinit_puts_init_lxc_first(spawn: Any) -> None:
    ref = spawn(start={"useinit": True, "argv": ["/bin/sleep", "1000"]})
    # With useinit, liblxc's own init is pid 1 and the command its child.
    assert _sh(ref, "cat /proc/1/comm").strip() != "sleep"
    assert "sleep 1000" in _sh(ref, "ps")


def test_nodaemonize_keeps_the_monitor_in_the_helper(spawn: Any) -> None:
    ref = spawn(nodaemonize=True)
    lxactors.send(ref, "\necho fg-$((3*3))\n")
    read_console_until(ref, b"fg-9")
    exited = lxactors.exit(ref, "kill")
    assert exited is not None and exited.reason == "kill"


def test_nocloseallfds_still_starts(spawn: Any) -> None:
    ref = spawn(nocloseallfds=True)
    assert lxactors.container(ref).state() == "RUNNING"


def test_exec_wraps_the_helper_process(spawn: Any) -> None:
    ref = spawn(exec=["env", "LXACTORS_WRAPPED=yes"])
    pid = lxactors.container(ref).init_pid()
    assert pid
    # The monitor forks from the wrapped helper: it inherits its environment.
    ppid = int(status_field(pid, "PPid"))
    with open(f"/proc/{ppid}/environ", "rb") as f:
        assert b"LXACTORS_WRAPPED=yes" in f.read().split(b"\0")


def test_chroot_specs_are_made_inside_the_rootfs(spawn: Any, tmp_path: Any) -> None:
    src = tmp_path / "src.txt"
    src.write_bytes(b"copied\n")
    ref = spawn(chroot={
        "dir": ["/srv/a/b", ("/srv/private", 0o700)],
        "file": [("/etc/motd", b"hello motd\n"), ("/srv/run.sh", "#!/bin/sh\necho run\n", 0o755)],
        "copy": [(str(src), "/srv/copy.txt", 0o600)],
    })
    out = _sh(ref, "stat -c '%a %n' /srv/a/b /srv/private /srv/run.sh /srv/copy.txt; "
                   "cat /etc/motd /srv/copy.txt; /srv/run.sh")
    assert "755 /srv/a/b" in out and "700 /srv/private" in out
    assert "755 /srv/run.sh" in out and "600 /srv/copy.txt" in out
    assert "hello motd" in out and "copied" in out and "run" in out


@pytest.mark.parametrize("spec", [
    {"dir": ["../escape"]},
    {"dir": ["/srv/../../escape"]},
    {"file": [("/../../tmp/escape", b"x")]},
    {"copy": [("/etc/hostname", "../../escape")]},
])
def test_chroot_dotdot_is_rejected_before_anything(spec: dict[str, Any], lxcpath: str) -> None:
    before = set(liblxc.list_all_containers(lxcpath))
    with pytest.raises(ValueError, match=r"\.\."):
        lxactors.spawn(path=lxcpath, chroot=spec)
    assert set(liblxc.list_all_containers(lxcpath)) == before


def test_chroot_absolute_path_lands_inside_not_on_the_host(spawn: Any, tmp_path: Any) -> None:
    host_target = tmp_path / "host-file"
    ref = spawn(chroot={"file": [(str(host_target), b"inside\n")]})
    assert not host_target.exists()
    assert _sh(ref, f"cat {host_target}") == "inside\n"


def test_chroot_planted_symlink_is_not_followed(lxcpath: str, tmp_path: Any) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    with liblxc.Container("planted", lxcpath) as c:
        c.create("busybox")
        rootfs = c.get_config_item("lxc.rootfs.path")
    try:
        os.symlink(str(outside), os.path.join(rootfs, "srv-link"))
        os.symlink(str(outside / "f"), os.path.join(rootfs, "file-link"))
        for spec in ({"dir": ["/srv-link/sub"]}, {"file": [("/srv-link/f", b"x")]}):
            with pytest.raises(lxactors.LxcError, match="symlink"):
                lxactors.spawn("planted", path=lxcpath, chroot=spec)
        # A symlink as the file itself is replaced, not written through.
        ref = lxactors.spawn("planted", path=lxcpath, chroot={"file": [("/file-link", b"y")]})
        lxactors.exit(ref, "kill")
        assert os.listdir(outside) == []
        assert not os.path.islink(os.path.join(rootfs, "file-link"))
    finally:
        with liblxc.Container("planted", lxcpath) as c:
            if c.is_running():
                c.stop()
            c.destroy()
