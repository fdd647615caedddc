"""tcpvm's clients bounded (issue 14), checked from the host's side: the default limits in
each client's payload cgroup, a fork bomb held at pids.max while another client answers, a
memory hog OOM-killed inside with the server and the others unaffected, ENOSPC at the
writable layer's bound with the host's disk spared, CPU quotas holding two busy clients,
and the session bounds (idle, session time, per address) with their log lines."""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from lxactors import Limits, liblxc
from lxactors._limits import host_layout
from lxactors.apps import tcpvm
from tests.test_tcpvm import Server, hostname_of, read_to_eof, read_until
from tests.util import cgroup_file, pid_gone, pids_in_pidns_of, seconds_until, wait_for


@pytest.fixture
def server(lxcpath: str) -> Iterator[Callable[..., Server]]:
    made: list[Server] = []

    def make(max_clients: int = 4, **bounds: Any) -> Server:
        s = Server(lxcpath, max_clients, {}, bounds)
        made.append(s)
        return s

    yield make
    for s in made:
        s.stop()


@pytest.fixture
def tcpvm_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger=tcpvm.log.name)
    return caplog


def init_of(name: str, lxcpath: str) -> int:
    with liblxc.Container(name, lxcpath) as c:
        pid = c.init_pid()
    assert pid is not None
    return pid


def read(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read().strip()


def answers_within(sock: socket.socket, seconds: float, tag: str) -> float:
    """Seconds until the shell on *sock* echoes a computed line (at most *seconds*)."""
    t0 = time.monotonic()
    sock.sendall(f"echo {tag}-$((40+2))\n".encode())
    read_until(sock, f"{tag}-42".encode(), timeout=seconds)
    return time.monotonic() - t0


def session_lines(log: pytest.LogCaptureFixture, name: str) -> list[str]:
    return [r.getMessage() for r in log.records if f"container {name}," in r.getMessage()]


def test_default_limits_are_in_each_clients_cgroup(server: Callable[..., Server],
                                                   lxcpath: str) -> None:
    srv = server()
    assert srv.vm.limits == tcpvm.DEFAULT_LIMITS == Limits(256, "256M", 1.0, "128M")
    s = srv.connect()
    name = hostname_of(s)
    pid = init_of(name, lxcpath)
    layout = host_layout()
    assert read(cgroup_file(pid, "pids", "pids.max")) == "256"
    memory = "memory.limit_in_bytes" if "memory" in layout.v1 else "memory.max"
    assert int(read(cgroup_file(pid, "memory", memory))) == 256 << 20
    if "cpu" in layout.v1:
        assert read(cgroup_file(pid, "cpu", "cpu.cfs_quota_us")) == "100000"
    else:
        assert read(cgroup_file(pid, "cpu", "cpu.max")) == "100000 100000"
    # The writable layer, as the client sees it (an overlay's size is its upper layer's;
    # the host path is root's: an ordinary user's server cannot look there).
    s.sendall(b"df -kP / | tail -n 1; echo end-$((3+4))\n")
    (line,) = [ln for ln in read_until(s, b"end-7").splitlines() if ln.endswith(b" /")]
    assert int(line.split()[-5]) == 128 << 10, line  # (1K-blocks: the first number)
    # limits=None: what a client got before (unbounded).
    free = server(limits=None)
    pid = init_of(hostname_of(free.connect()), lxcpath)
    assert read(cgroup_file(pid, "pids", "pids.max")) == "max"


def test_a_fork_bomb_stops_at_its_limit_and_the_next_client_still_answers(
        server: Callable[..., Server], lxcpath: str) -> None:
    srv = server(limits=Limits(pids=64, memory="128M", cpu=0.5, disk="16M"))
    bomb, other = srv.connect(), srv.connect()
    name = hostname_of(bomb)
    hostname_of(other)
    pid = init_of(name, lxcpath)
    tasks_before = len(os.listdir("/proc"))
    bomb.sendall(b"b(){ b|b& }; b\n")
    pids_max = cgroup_file(pid, "pids", "pids.current")
    events = cgroup_file(pid, "pids", "pids.events")
    wait_for(lambda: int(read(events).split()[-1]) > 0, 60, "forks refused at pids.max")
    # While it keeps forking: bounded, and the other client's shell answers within a second.
    for i in range(3):
        assert int(read(pids_max)) <= 64
        assert len(pids_in_pidns_of(pid)) <= 64
        assert len(os.listdir("/proc")) - tasks_before < 64 + 100  # others' tests run too
        assert answers_within(other, 1.0, f"alive{i}") < 1.0
    bombers = pids_in_pidns_of(pid)
    bomb.close()
    wait_for(lambda: all(pid_gone(p) for p in bombers), 10, "every bomb process gone")
    wait_for(lambda: name not in liblxc.list_all_containers(lxcpath), 10, "its container gone")
    assert answers_within(other, 1.0, "still") < 1.0


def test_a_memory_hog_is_oom_killed_inside_its_container(
        server: Callable[..., Server], lxcpath: str, tcpvm_log: pytest.LogCaptureFixture) -> None:
    srv = server(limits=Limits(pids=64, memory="48M", disk="16M"))
    hog, other = srv.connect(), srv.connect()
    name = hostname_of(hog)
    hostname_of(other)
    # busybox dd fills a 256 MiB buffer: the kernel kills it at 48 MiB, inside the container.
    hog.sendall(b"dd if=/dev/zero of=/dev/null bs=256M count=1; echo hog=$?=\n")
    read_until(hog, b"hog=137=")
    assert answers_within(hog, 5.0, "shell") < 5.0  # its own shell lived on
    assert answers_within(other, 1.0, "other") < 1.0
    hostname_of(srv.connect())  # the server still serves new clients
    hog.close()
    wait_for(lambda: session_lines(tcpvm_log, name), 10, "the client's log line")
    (line,) = session_lines(tcpvm_log, name)
    assert "ended: client left" in line
    assert "killed at the memory bound (OOM)" in line, line


def test_the_writable_layer_stops_at_its_bound(server: Callable[..., Server],
                                               lxcpath: str) -> None:
    srv = server(limits=Limits(memory="256M", disk="24M"))
    s = srv.connect()
    hostname_of(s)
    host = os.statvfs(lxcpath)
    free_before = host.f_bavail * host.f_frsize
    # (Markers the shell computes: the terminal's echo of the line does not match them.)
    s.sendall(b"dd if=/dev/zero of=/fill bs=1M count=200; echo dd=$?=; ls -l /fill; "
              b"echo end-$((3+4))\n")
    out = read_until(s, b"end-7")
    assert b"No space left on device" in out and b"dd=1=" in out, out  # dd failed...
    (listing,) = [ln for ln in out.splitlines() if ln.endswith(b" /fill")]
    assert 23 << 20 <= int(listing.split()[4]) <= 24 << 20, listing  # ...at the bound
    host = os.statvfs(lxcpath)
    assert free_before - host.f_bavail * host.f_frsize < 8 << 20  # the host's disk spared


def cpu_seconds(pid: int) -> float:
    if "cpuacct" in host_layout().v1:
        return int(read(cgroup_file(pid, "cpuacct", "cpuacct.usage"))) / 1e9
    stat = dict(line.split() for line in read(cgroup_file(pid, "cpu", "cpu.stat")).splitlines())
    return int(stat["usage_usec"]) / 1e6


def test_the_cpu_bound_holds_two_busy_clients(server: Callable[..., Server],
                                              lxcpath: str) -> None:
    srv = server(limits=Limits(pids=64, memory="64M", cpu=0.2, disk="16M"))
    socks = [srv.connect(), srv.connect()]
    pids = [init_of(hostname_of(s), lxcpath) for s in socks]
    for s in socks:  # two busy loops each: more than the quota could give
        s.sendall(b"while :; do :; done & while :; do :; done &\n")
    wait_for(lambda: all(cpu_seconds(p) > 0.05 for p in pids), 10, "both busy")
    before = [cpu_seconds(p) for p in pids]
    # 0.4 CPU-seconds take 2 s at 0.2 CPU (unbounded, a loop pair would use them in 0.2 s).
    took = seconds_until(lambda: cpu_seconds(pids[0]) - before[0] >= 0.4, 30,
                         "the first client using 0.4 CPU-seconds")
    other = cpu_seconds(pids[1]) - before[1]
    assert took >= 0.4 / (0.2 * 1.3), took
    assert 0.02 * took <= other <= 0.2 * took * 1.3 + 0.05, (other, took)  # busy, and held too


def test_an_idle_session_ends(server: Callable[..., Server],
                              tcpvm_log: pytest.LogCaptureFixture) -> None:
    srv = server(idle_timeout=1.0)
    s = srv.connect()
    name = hostname_of(s)
    t0 = time.monotonic()
    out = read_to_eof(s, timeout=10)
    assert b"lxactors tcpvm: idle for 1 s; disconnecting" in out
    assert time.monotonic() - t0 < 5
    wait_for(lambda: session_lines(tcpvm_log, name), 10, "the client's log line")
    assert "ended: idle for 1 s" in session_lines(tcpvm_log, name)[0]


def test_a_busy_session_ends_at_its_time_limit(server: Callable[..., Server],
                                               tcpvm_log: pytest.LogCaptureFixture) -> None:
    srv = server(max_session=2.0, idle_timeout=30)
    s = srv.connect()
    name = hostname_of(s)
    s.sendall(b"while :; do echo tick; sleep 0.1; done\n")  # never idle
    out = read_to_eof(s, timeout=10)
    assert b"tick" in out and b"session time limit (2 s); disconnecting" in out
    wait_for(lambda: session_lines(tcpvm_log, name), 10, "the client's log line")
    line = session_lines(tcpvm_log, name)[0]
    assert "ended: session time limit (2 s)" in line
    took = float(line.split(", ")[1].split()[0])
    assert 2.0 <= took < 5.0, line


def test_sessions_per_address_are_bounded(server: Callable[..., Server]) -> None:
    srv = server(max_clients=8, max_per_address=2)
    a, b = srv.connect(), srv.connect()
    hostname_of(a)
    hostname_of(b)
    third = srv.connect()
    assert read_to_eof(third) == (b"lxactors tcpvm: too many sessions from your address "
                                  b"(at most 2); try again later\r\n")
    # Another address is served; a slot frees when a session ends.
    other = socket.create_connection(srv.address, timeout=20, source_address=("127.0.0.2", 0))
    srv.socks.append(other)
    hostname_of(other)
    a.close()
    wait_for(lambda: len(srv.vm.clients) == 2, 5)
    hostname_of(srv.connect())


def test_bad_bounds() -> None:
    for bad in ({"max_per_address": 0}, {"idle_timeout": -1}, {"max_session": "1"},
                {"idle_timeout": True}):
        with pytest.raises(ValueError):
            tcpvm.TcpVm(**bad)
    with pytest.raises(TypeError, match="limits must be"):
        tcpvm.TcpVm(limits={"pids": 1})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="TcpVm\\(limits="):
        tcpvm.TcpVm(spawn_options={"limits": Limits(pids=1)})
