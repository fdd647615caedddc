"""Limits (lxactors._limits): parsing, the host's cgroup layout read from sample mountinfo
texts, and what the limits become as liblxc config on each layout. No cgroup is touched."""

from __future__ import annotations

from typing import Any

import pytest

from lxactors._limits import (
    CgroupLayout,
    Limits,
    detect_layout,
    limit_config,
    parse_events,
    parse_limits,
    parse_size,
)
from lxactors._options import parse_options

# This machine's hybrid layout (Debian with systemd.unified_cgroup_hierarchy=0 looks alike).
HYBRID = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
# A fresh Debian 12: the unified hierarchy only.
UNIFIED = """\
22 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw,errors=remount-ro
26 21 0:22 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate
"""
# Older distributions: cpu and cpuacct in one hierarchy, no unified one.
LEGACY = """\
25 18 0:21 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
30 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:13 - cgroup cgroup rw,cpu,cpuacct
31 25 0:27 / /sys/fs/cgroup/memory rw,nosuid shared:14 - cgroup cgroup rw,memory
"""


def reader(table: dict[str, str]) -> Any:
    return table.get


def test_sizes() -> None:
    assert parse_size("256M", "x") == 256 << 20
    assert parse_size("256MiB", "x") == parse_size("256mb", "x") == 256 << 20
    assert parse_size("1g", "x") == 1 << 30 and parse_size(" 64 K ", "x") == 64 << 10
    assert parse_size(4096, "x") == parse_size("4096", "x") == 4096
    for bad in ("", "M", "1.5G", "-1M", "0", "1e9", "12x"):
        with pytest.raises(ValueError, match="x"):
            parse_size(bad, "x")
    for wrong in (1.5, True, None, b"1M"):
        with pytest.raises(TypeError):
            parse_size(wrong, "x")


def test_limits_normalize_and_refuse() -> None:
    lim = Limits(pids=256, memory="256M", cpu=1, disk="128M")
    assert (lim.pids, lim.memory, lim.cpu, lim.disk) == (256, 256 << 20, 1.0, 128 << 20)
    assert str(lim) == "pids 256, memory 256M, cpu 1, disk 128M"
    assert Limits() == Limits(None, None, None, None) and str(Limits()).count("none") == 4
    assert lim.replace(disk=None) == Limits(pids=256, memory=256 << 20, cpu=1.0)
    assert hash(lim) == hash(Limits(pids=256, memory=256 << 20, cpu=1.0, disk=128 << 20))
    with pytest.raises(AttributeError):
        lim.pids = 3  # type: ignore[misc]
    with pytest.raises(ValueError, match="memory must be at least 4M"):
        Limits(memory="1M")
    with pytest.raises(ValueError, match="cpu must be between"):
        Limits(cpu=0.001)
    with pytest.raises(ValueError, match="pids"):
        Limits(pids=0)
    with pytest.raises(TypeError, match="pids"):
        Limits(pids="64")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="no field"):
        lim.replace(swap=1)


def test_the_limits_option() -> None:
    assert parse_limits(None) is None
    assert parse_limits({"pids": 64, "memory": "64M"}) == Limits(pids=64, memory=64 << 20)
    with pytest.raises(ValueError, match="unknown limits field"):
        parse_limits({"procs": 64})
    with pytest.raises(TypeError, match="limits must be"):
        parse_limits("pids=64")
    o = parse_options("web", {"limits": {"pids": 64}})[2]
    assert o.limits == Limits(pids=64)
    assert parse_options("web", {})[2].limits is None
    # The writable layer's bound is a tmpfs under an unnamed container's overlay clone.
    with pytest.raises(ValueError, match="unnamed container"):
        parse_options("web", {"limits": Limits(disk="64M")})
    with pytest.raises(ValueError, match="unnamed container"):
        parse_options("", {"userns": False, "create": {"template": "busybox"},
                           "limits": Limits(disk="64M")})
    assert parse_options("", {"userns": False, "limits": Limits(disk="64M")})[2].limits.disk


def test_hybrid_layout() -> None:
    layout = detect_layout(HYBRID, reader({
        "/sys/fs/cgroup/unified/cgroup.controllers": "hugetlb\n",
        "/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes": "9223372036854771712\n"}))
    assert layout == CgroupLayout(frozenset({"cpu", "cpuacct", "memory", "pids"}),
                                  frozenset({"hugetlb"}), swap=True)
    assert layout.prefix("pids") == "lxc.cgroup" and layout.prefix("hugetlb") == "lxc.cgroup2"
    assert layout.prefix("io") is None
    # Without swap accounting (swapaccount=0): no memsw file.
    assert not detect_layout(HYBRID, reader({})).swap


def test_unified_layout() -> None:
    table = {"/sys/fs/cgroup/cgroup.controllers": "cpuset cpu io memory hugetlb pids rdma misc\n"}
    layout = detect_layout(UNIFIED, reader(table), "0::/user.slice/user-0.slice/session-1.scope\n")
    assert layout.v1 == frozenset() and {"cpu", "memory", "pids"} <= layout.v2
    assert not layout.swap  # memory.swap.max is nowhere
    table["/sys/fs/cgroup/user.slice/memory.swap.max"] = "max\n"
    assert detect_layout(UNIFIED, reader(table), "0::/user.slice/user-0.slice/session-1.scope\n").swap
    # In the root cgroup (a container's init): looked for beside us.
    table = {"/sys/fs/cgroup/cgroup.controllers": "memory pids",
             "/sys/fs/cgroup/init.scope/memory.swap.max": "max"}
    assert detect_layout(UNIFIED, reader(table), "0::/\n").swap


def test_legacy_layout_with_comounted_controllers() -> None:
    layout = detect_layout(LEGACY, reader({}))
    assert layout.v1 == frozenset({"cpu", "cpuacct", "memory"}) and layout.v2 == frozenset()
    assert layout.prefix("pids") is None


LIMITS = Limits(pids=64, memory="64M", cpu=0.25)


def test_translation_on_cgroup_v1() -> None:
    layout = CgroupLayout(frozenset({"cpu", "memory", "pids"}), frozenset(), swap=True)
    assert limit_config(LIMITS, layout) == [
        ("lxc.cgroup.pids.max", "64"),
        ("lxc.cgroup.memory.limit_in_bytes", str(64 << 20)),
        ("lxc.cgroup.memory.memsw.limit_in_bytes", str(64 << 20)),
        ("lxc.cgroup.cpu.cfs_period_us", "100000"),
        ("lxc.cgroup.cpu.cfs_quota_us", "25000"),
    ]
    no_swap = CgroupLayout(frozenset({"memory"}), frozenset())
    assert limit_config(Limits(memory="64M"), no_swap) == [
        ("lxc.cgroup.memory.limit_in_bytes", str(64 << 20))]


def test_translation_on_cgroup_v2() -> None:
    layout = CgroupLayout(frozenset(), frozenset({"cpu", "memory", "pids"}), swap=True)
    assert limit_config(LIMITS, layout) == [
        ("lxc.cgroup2.pids.max", "64"),
        ("lxc.cgroup2.memory.max", str(64 << 20)),
        ("lxc.cgroup2.memory.swap.max", "0"),
        ("lxc.cgroup2.cpu.max", "25000 100000"),
    ]
    assert limit_config(Limits(cpu=2), layout) == [("lxc.cgroup2.cpu.max", "200000 100000")]


def test_translation_of_nothing_and_of_a_missing_controller() -> None:
    layout = CgroupLayout(frozenset({"memory"}), frozenset())
    assert limit_config(Limits(), layout) == []
    assert limit_config(Limits(disk="64M"), layout) == []  # a tmpfs, not a cgroup's
    with pytest.raises(ValueError, match=r"no pids cgroup controller.*pids=None"):
        limit_config(LIMITS, layout)


def test_events() -> None:
    v1 = CgroupLayout(frozenset({"cpu", "memory", "pids"}), frozenset())
    items = {"pids.events": "max 12\n", "memory.oom_control":
             "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
             "cpu.stat": "nr_periods 40\nnr_throttled 31\nthrottled_time 9\n"}
    assert parse_events(items.get, v1) == {"pids": 12, "oom_kills": 2, "cpu_throttled": 31}
    v2 = CgroupLayout(frozenset(), frozenset({"cpu", "memory", "pids"}))
    items = {"pids.events": "max 0\n", "memory.events": "low 0\nhigh 0\nmax 9\noom 1\noom_kill 1\n"}
    assert parse_events(items.get, v2) == {"pids": 0, "oom_kills": 1, "cpu_throttled": 0}
    assert parse_events(lambda item: None, v2) == {"pids": 0, "oom_kills": 0, "cpu_throttled": 0}
