"""spawn(limits=...) on real containers, checked from the host's side: the payload cgroup's
files, the writable layer's tmpfs (ENOSPC at its bound, the host's disk untouched, unmounted
on every way out), the memory bound's OOM kill, limit_events."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable

import pytest

import lxactors
from lxactors import Limits, liblxc
from lxactors._limits import host_layout
from tests.util import cgroup_file, remove_container, wait_for

Spawn = Callable[..., lxactors.ContainerRef]


def sh(ref: lxactors.ContainerRef, script: str, timeout: float = 60) -> liblxc.AttachResult:
    return lxactors.container(ref).attach_run_wait(["/bin/sh", "-c", script], timeout=timeout)


def read(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read().strip()


def layer_mounts(lxcpath: str) -> list[str]:
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        return [line.split()[4] for line in f
                if line.split()[4].startswith(lxcpath + "/") and " - tmpfs " in line]


def test_the_limits_are_in_the_payload_cgroup(spawn: Spawn, lxcpath: str) -> None:
    ref = spawn(limits=Limits(pids=64, memory="64M", cpu=0.5, disk="32M"))
    pid = lxactors.container(ref).init_pid()
    layout = host_layout()
    assert read(cgroup_file(pid, "pids", "pids.max")) == "64"
    if "memory" in layout.v1:
        assert int(read(cgroup_file(pid, "memory", "memory.limit_in_bytes"))) == 64 << 20
        if layout.swap:
            assert int(read(cgroup_file(pid, "memory", "memory.memsw.limit_in_bytes"))) == 64 << 20
    else:
        assert int(read(cgroup_file(pid, "memory", "memory.max"))) == 64 << 20
    if "cpu" in layout.v1:
        assert read(cgroup_file(pid, "cpu", "cpu.cfs_quota_us")) == "50000"
        assert read(cgroup_file(pid, "cpu", "cpu.cfs_period_us")) == "100000"
    else:
        assert read(cgroup_file(pid, "cpu", "cpu.max")) == "50000 100000"
    # The writable layer is a 32 MiB tmpfs, as the container sees it too.
    layer = os.path.join(lxcpath, ref.name, "overlay")
    assert layer in layer_mounts(lxcpath)
    assert os.statvfs(layer).f_blocks * os.statvfs(layer).f_frsize == 32 << 20
    df = sh(ref, "df -k / | tail -1").stdout.split()
    assert int(df[-5]) == 32 * 1024, df
    # Without limits: unbounded (what a broken default would look like).
    free = spawn()
    assert read(cgroup_file(lxactors.container(free).init_pid(), "pids", "pids.max")) == "max"
    assert os.path.join(lxcpath, free.name, "overlay") not in layer_mounts(lxcpath)
    lxactors.exit(ref, "kill")
    assert layer not in layer_mounts(lxcpath)  # released before the destroy
    assert not os.path.exists(os.path.join(lxcpath, ref.name))


def test_writes_past_the_disk_bound_fail_with_enospc_and_spare_the_host(
        spawn: Spawn, lxcpath: str) -> None:
    ref = spawn(limits=Limits(memory="256M", disk="16M"))
    host = os.statvfs(lxcpath)
    free_before = host.f_bavail * host.f_frsize
    r = sh(ref, "dd if=/dev/zero of=/root/fill bs=1M count=64; echo rc=$?; ls -l /root/fill")
    assert b"No space left on device" in r.stderr, r
    assert b"rc=1" in r.stdout
    size = int(r.stdout.split(b"\n")[1].split()[4])
    assert 15 << 20 <= size <= 16 << 20, r.stdout
    # The host's filesystem did not get the 16 MiB (nor the 64 asked for); other
    # writers share it, so allow them a few MiB.
    host = os.statvfs(lxcpath)
    assert free_before - host.f_bavail * host.f_frsize < 8 << 20
    assert sh(ref, "rm /root/fill && echo hi > /root/small && cat /root/small").stdout == b"hi\n"


def test_a_memory_hog_is_oom_killed_inside_and_the_container_lives_on(spawn: Spawn) -> None:
    ref = spawn(limits=Limits(memory="32M"))
    assert lxactors.limit_events(ref)["oom_kills"] == 0
    # busybox dd fills a 256 MiB buffer from /dev/zero: killed at 32 MiB.
    r = sh(ref, "dd if=/dev/zero of=/dev/null bs=256M count=1; echo status=$?")
    assert b"status=137" in r.stdout, r  # SIGKILL
    assert lxactors.limit_events(ref)["oom_kills"] >= 1
    assert sh(ref, "echo alive").stdout == b"alive\n"
    assert ref.alive


def test_a_fork_bomb_stops_at_pids_max(spawn: Spawn) -> None:
    ref = spawn(limits=Limits(pids=32))
    pid = lxactors.container(ref).init_pid()
    # 40 sleepers wanted; at most 32 tasks fit (init and its shell among them).
    r = sh(ref, "i=0; while [ $i -lt 40 ]; do sleep 60 >/dev/null 2>&1 & i=$((i+1)); done")
    assert b"fork" in r.stderr.lower() or b"resource" in r.stderr.lower(), r
    assert int(read(cgroup_file(pid, "pids", "pids.current"))) <= 32
    assert lxactors.limit_events(ref)["pids"] >= 1
    lxactors.exit(ref, "kill")
    assert not os.path.exists(f"/proc/{pid}")


def test_limits_refused_before_anything_is_made(spawn: Spawn, lxcpath: str) -> None:
    before = set(os.listdir(lxcpath))
    with pytest.raises(ValueError, match="unnamed container"):
        spawn("named-disk", limits=Limits(disk="16M"))
    with pytest.raises(TypeError, match="limits must be"):
        spawn(limits="pids=64")
    with pytest.raises(ValueError, match="memory must be"):
        spawn(limits={"memory": "1K"})
    assert set(os.listdir(lxcpath)) == before


OWNER = """
import sys, threading, lxactors
ref = lxactors.spawn(path=sys.argv[1], limits=lxactors.Limits(disk="16M"))
print(ref.name, flush=True)
threading.Event().wait()
"""


def test_the_layer_is_released_when_the_owner_process_is_killed(lxcpath: str) -> None:
    proc = subprocess.Popen([sys.executable, "-c", OWNER, lxcpath], stdout=subprocess.PIPE,
                            text=True)
    name = ""
    try:
        assert proc.stdout is not None
        name = proc.stdout.readline().strip()
        assert name.startswith("lxa-"), name
        layer = os.path.join(lxcpath, name, "overlay")
        assert layer in layer_mounts(lxcpath)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        # The helper sees its socket close, stops the container, releases, destroys.
        wait_for(lambda: not os.path.exists(os.path.join(lxcpath, name)), 20,
                 "the temporary container deleted")
        assert layer_mounts(lxcpath) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
        if name:
            remove_container(name, lxcpath)
