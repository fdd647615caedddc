"""tcpvm on real containers and real sockets."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from lxactors import liblxc
from lxactors._userns import resolve_userns
from lxactors.apps import tcpvm
from tests.util import AS_USER, host_uid, made_bridge, pids_in_pidns_of, status_field, wait_for

HOST = re.compile(rb"host=([A-Za-z0-9-]+)=")


class Server:
    """A TcpVm on a free port, served from a thread."""

    def __init__(self, lxcpath: str, max_clients: int, options: dict[str, Any],
                 bounds: dict[str, Any] | None = None) -> None:
        self.vm = tcpvm.TcpVm(("127.0.0.1", 0), max_clients, {"path": lxcpath, **options},
                              **(bounds or {}))
        self.address = self.vm.bind()
        self.thread = threading.Thread(target=self.vm.serve_forever, daemon=True)
        self.thread.start()
        self.socks: list[socket.socket] = []

    def connect(self) -> socket.socket:
        s = socket.create_connection(self.address, timeout=20)
        self.socks.append(s)
        return s

    def stop(self) -> None:
        self.vm.shutdown()
        self.thread.join(10)
        self.vm.close()
        for s in self.socks:
            s.close()


@pytest.fixture
def server(lxcpath: str) -> Iterator[Callable[..., Server]]:
    made: list[Server] = []

    def make(max_clients: int = 4, *, bounds: dict[str, Any] | None = None,
             **options: Any) -> Server:
        s = Server(lxcpath, max_clients, options, bounds)
        made.append(s)
        return s

    yield make
    for s in made:
        s.stop()


def read_until(sock: socket.socket, pattern: bytes | re.Pattern[bytes],
               timeout: float = 20.0) -> bytes:
    deadline = time.monotonic() + timeout
    buf = b""
    while not (pattern.search(buf) if isinstance(pattern, re.Pattern) else pattern in buf):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"{pattern!r} not seen; got {buf[-300:]!r}")
        sock.settimeout(remaining)
        data = sock.recv(65536)
        if not data:
            raise AssertionError(f"connection closed before {pattern!r}; got {buf[-300:]!r}")
        buf += data
    return buf


def read_to_eof(sock: socket.socket, timeout: float = 10.0) -> bytes:
    deadline = time.monotonic() + timeout
    buf = b""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"no end of file; got {buf[-300:]!r}")
        sock.settimeout(remaining)
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            return buf
        if not data:
            return buf
        buf += data


def hostname_of(sock: socket.socket) -> str:
    sock.sendall(b"\necho host=$(hostname)=\n")
    m = HOST.search(read_until(sock, HOST))
    assert m is not None
    return m.group(1).decode()


def ours(lxcpath: str) -> set[str]:
    return {n for n in liblxc.list_all_containers(lxcpath) if n.startswith("lxa-")}


def test_client_gets_a_shell(server: Callable[..., Server]) -> None:
    s = server().connect()
    s.sendall(b"\n")
    s.sendall(b"echo hi-$((6*7))\n")
    read_until(s, b"hi-42")


def test_sixteen_clients_each_get_their_own_container(server: Callable[..., Server],
                                                      lxcpath: str) -> None:
    srv = server(max_clients=16, bounds={"max_per_address": None})  # all from 127.0.0.1
    socks = [srv.connect() for _ in range(16)]
    for s in socks:
        s.sendall(b"\necho host=$(hostname)=\n")
    names = []
    for s in socks:
        m = HOST.search(read_until(s, HOST))
        assert m is not None
        names.append(m.group(1).decode())
    assert len(set(names)) == 16
    assert set(names) <= set(liblxc.list_active_containers(lxcpath))
    assert len(srv.vm.clients) == 16


def test_disconnect_leaves_nothing_within_2s(server: Callable[..., Server],
                                             lxcpath: str) -> None:
    srv = server()
    s = srv.connect()
    name = hostname_of(s)
    assert name in liblxc.list_active_containers(lxcpath)
    s.close()
    t0 = time.monotonic()
    wait_for(lambda: name not in liblxc.list_all_containers(lxcpath), 2.0)
    wait_for(lambda: not srv.vm.clients, 2.0)
    assert time.monotonic() - t0 < 2.0


def test_extra_client_is_refused_with_one_line(server: Callable[..., Server],
                                               lxcpath: str) -> None:
    srv = server(max_clients=2)
    a, b = srv.connect(), srv.connect()
    hostname_of(a)
    hostname_of(b)
    c = srv.connect()
    assert read_to_eof(c) == b"lxactors tcpvm: too many clients (at most 2); try again later\r\n"
    assert len(ours(lxcpath)) == 2
    # A slot frees when a client leaves.
    a.close()
    wait_for(lambda: len(srv.vm.clients) == 1, 2.0)
    d = srv.connect()
    hostname_of(d)
    hostname_of(b)  # still served


def test_default_cap_is_32(server: Callable[..., Server], lxcpath: str) -> None:
    srv = server(max_clients=tcpvm.DEFAULT_MAX_CLIENTS, bounds={"max_per_address": None})
    assert srv.vm.max_clients == 32
    socks = [srv.connect() for _ in range(32)]
    wait_for(lambda: len(srv.vm.clients) == 32, 5.0)
    extra = srv.connect()
    assert b"too many clients (at most 32)" in read_to_eof(extra)
    for s in socks:
        s.sendall(b"\necho host=$(hostname)=\n")
    assert len({HOST.search(read_until(s, HOST)).group(1) for s in socks}) == 32  # type: ignore[union-attr]


def test_container_stop_disconnects_the_client(server: Callable[..., Server],
                                               lxcpath: str) -> None:
    s = server().connect()
    name = hostname_of(s)
    s.sendall(b"poweroff -f\n")
    read_to_eof(s)
    wait_for(lambda: name not in liblxc.list_all_containers(lxcpath), 2.0)


def test_config_passes_through(server: Callable[..., Server]) -> None:
    s = server(config=[("lxc.uts.name", "tcpvm-box")]).connect()
    assert hostname_of(s) == "tcpvm-box"


def test_failed_spawn_tells_the_client(server: Callable[..., Server], lxcpath: str) -> None:
    srv = server(create={"template": "no-such-template"})
    line = read_to_eof(srv.connect())
    assert line.startswith(b"lxactors tcpvm: cannot start a container: ")
    assert line.endswith(b"\r\n") and line.count(b"\n") == 1
    wait_for(lambda: not srv.vm.clients, 2.0)
    assert not ours(lxcpath)


def test_shutdown_exits_every_container(server: Callable[..., Server], lxcpath: str) -> None:
    srv = server()
    socks = [srv.connect() for _ in range(3)]
    for s in socks:
        hostname_of(s)
    assert len(ours(lxcpath)) == 3
    srv.vm.shutdown()
    srv.thread.join(5)
    assert not srv.thread.is_alive()
    assert srv.vm.close() == 3
    assert not ours(lxcpath)
    for s in socks:
        read_to_eof(s)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        tcpvm.TcpVm(max_clients=0)
    with pytest.raises(ValueError, match="owner"):
        tcpvm.TcpVm(spawn_options={"owner": None})
    with pytest.raises(TypeError):
        tcpvm.TcpVm(spawn_options={"no_such_option": 1})
    assert tcpvm.parse_listen("0.0.0.0:2323") == ("0.0.0.0", 2323)
    assert tcpvm.parse_listen(":2323") == ("0.0.0.0", 2323)
    assert tcpvm.parse_listen("2323") == ("127.0.0.1", 2323)
    assert tcpvm.parse_listen("[::1]:2323") == ("::1", 2323)
    for bad in ("host:", "host:70000", "a:b"):
        with pytest.raises(ValueError):
            tcpvm.parse_listen(bad)


@pytest.fixture
def bridge() -> Iterator[str]:
    if shutil.which("ip") is None:
        pytest.skip("needs iproute2")
    with made_bridge("lxatcp") as name:
        yield name


def _ports(bridge: str) -> str:
    return subprocess.run(["ip", "-o", "link", "show", "master", bridge], capture_output=True,
                          text=True, check=True).stdout


def test_network_config_passes_through(server: Callable[..., Server], lxcpath: str,
                                       bridge: str) -> None:
    # The CLI's `--config lxc.net.0.link=BR` implies type veth and flags up.
    from lxactors.apps.tcpvm import _with_veth_defaults

    config = _with_veth_defaults([("lxc.net.0.link", bridge)])
    assert sorted(config) == sorted([("lxc.net.0.type", "veth"), ("lxc.net.0.flags", "up"),
                                     ("lxc.net.0.link", bridge)])
    srv = server(config=config)
    s = srv.connect()
    # (The busybox base waits for DHCP before its shell: look from outside.)
    wait_for(lambda: bool(srv.vm.clients and srv.vm.clients[0].container), 10.0)
    wait_for(lambda: _ports(bridge) != "", 10.0)
    s.close()
    wait_for(lambda: not ours(lxcpath), 2.0)
    wait_for(lambda: _ports(bridge) == "", 2.0)


def test_client_is_root_inside_and_a_mapped_uid_on_the_host(server: Callable[..., Server],
                                                            lxcpath: str) -> None:
    idmap = resolve_userns(True)
    s = server().connect()
    s.sendall(b"\necho ids=$(id -u)=$(id -g)=$$=host=$(hostname)=\n")
    m = re.search(rb"ids=(\d+)=(\d+)=(\d+)=host=([A-Za-z0-9-]+)=", read_until(s, HOST))
    assert m is not None
    uid, gid, shell_pid, name = int(m[1]), int(m[2]), int(m[3]), m[4].decode()
    assert (uid, gid) == (0, 0)
    # The host's view of that very shell (found by its pid inside: NSpid).
    with liblxc.Container(name, lxcpath) as c:
        init = c.init_pid()
    assert init is not None
    shells = [p for p in pids_in_pidns_of(init) if _pid_inside(p) == shell_pid]
    assert len(shells) == 1
    assert host_uid(shells[0]) == idmap.uid != 0


def test_userns_false_gives_the_client_the_hosts_root(server: Callable[..., Server],
                                                      lxcpath: str) -> None:
    if AS_USER:  # the gate refuses it, naming its rule, and the client is told in one line
        line = read_to_eof(server(userns=False).connect())
        assert line.startswith(b"lxactors tcpvm: cannot start a container: ") \
            and line.endswith(b"(refused by rule userns)\r\n"), line
        assert not ours(lxcpath)
        return
    s = server(userns=False).connect()
    name = hostname_of(s)
    with liblxc.Container(name, lxcpath) as c:
        init = c.init_pid()
    assert init is not None and host_uid(init) == 0


def _pid_inside(pid: int) -> int:
    return int(status_field(pid, "NSpid").split()[-1])
