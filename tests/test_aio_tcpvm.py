"""The same client checks against both tcpvm servers: threads (lxactors.tcpvm) and asyncio
(examples/tcpvm/aio_tcpvm.py, on lxactors.aio)."""

from __future__ import annotations

import asyncio
import importlib.util
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lxactors import liblxc
from lxactors.tcpvm import TcpVm
from tests.test_tcpvm import hostname_of, ours, read_to_eof, read_until
from tests.util import wait_for

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "tcpvm" / "aio_tcpvm.py"


def _example() -> Any:
    spec = importlib.util.spec_from_file_location("aio_tcpvm", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


aio_tcpvm = _example()


class ThreadServer:
    """lxactors.tcpvm.TcpVm on a free port, served from a thread."""

    def __init__(self, max_clients: int, options: dict[str, Any]) -> None:
        self.vm = TcpVm(("127.0.0.1", 0), max_clients, options)
        self.address = self.vm.bind()
        self.thread = threading.Thread(target=self.vm.serve_forever, daemon=True)
        self.thread.start()

    @property
    def clients(self) -> int:
        return len(self.vm.clients)

    def close(self) -> int:
        self.vm.shutdown()
        self.thread.join(10)
        return self.vm.close()


class AioServer:
    """The asyncio example on a free port, its event loop in a thread."""

    def __init__(self, max_clients: int, options: dict[str, Any]) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.vm = aio_tcpvm.AioTcpVm(("127.0.0.1", 0), max_clients, options)
        self.address = self._run(self.vm.start())
        self._closed: int | None = None

    def _run(self, coro: Any, timeout: float = 60.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    @property
    def clients(self) -> int:
        return int(self.vm.clients)

    def close(self) -> int:
        if self._closed is None:
            self._closed = int(self._run(self.vm.close()))
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()
        return self._closed


Server = ThreadServer | AioServer


@pytest.fixture(params=["threads", "asyncio"])
def server(request: pytest.FixtureRequest, lxcpath: str) -> Iterator[Callable[..., Server]]:
    made: list[tuple[Server, list[socket.socket]]] = []

    def make(max_clients: int = 4, **options: Any) -> Server:
        kind = ThreadServer if request.param == "threads" else AioServer
        s = kind(max_clients, {"path": lxcpath, **options})
        made.append((s, []))
        return s

    yield make
    for s, _ in made:
        s.close()


def connect(srv: Server) -> socket.socket:
    return socket.create_connection(srv.address, timeout=20)


def test_client_gets_a_shell(server: Callable[..., Server]) -> None:
    with connect(server()) as s:
        s.sendall(b"\necho hi-$((6*7))\n")
        read_until(s, b"hi-42")


def test_clients_each_get_their_own_container(server: Callable[..., Server],
                                              lxcpath: str) -> None:
    srv = server(max_clients=8)
    socks = [connect(srv) for _ in range(8)]
    try:
        names = {hostname_of(s) for s in socks}
        assert len(names) == 8
        assert names <= set(liblxc.list_active_containers(lxcpath))
        assert srv.clients == 8
    finally:
        for s in socks:
            s.close()


def test_disconnect_leaves_nothing_within_2s(server: Callable[..., Server],
                                             lxcpath: str) -> None:
    srv = server()
    s = connect(srv)
    name = hostname_of(s)
    s.close()
    wait_for(lambda: name not in liblxc.list_all_containers(lxcpath), 2.0)
    wait_for(lambda: srv.clients == 0, 2.0)


def test_extra_client_is_refused_with_one_line(server: Callable[..., Server],
                                               lxcpath: str) -> None:
    srv = server(max_clients=2)
    a, b = connect(srv), connect(srv)
    with b:
        hostname_of(a)
        hostname_of(b)
        with connect(srv) as c:
            assert read_to_eof(c) == (b"lxactors tcpvm: too many clients (at most 2); "
                                      b"try again later\r\n")
        assert len(ours(lxcpath)) == 2
        a.close()  # a slot frees when a client leaves
        wait_for(lambda: srv.clients == 1, 2.0)
        with connect(srv) as d:
            hostname_of(d)
            hostname_of(b)


def test_container_stop_disconnects_the_client(server: Callable[..., Server],
                                               lxcpath: str) -> None:
    with connect(server()) as s:
        name = hostname_of(s)
        s.sendall(b"poweroff -f\n")
        read_to_eof(s)
    wait_for(lambda: name not in liblxc.list_all_containers(lxcpath), 2.0)


def test_config_passes_through(server: Callable[..., Server]) -> None:
    with connect(server(config=[("lxc.uts.name", "tcpvm-box")])) as s:
        assert hostname_of(s) == "tcpvm-box"


def test_failed_spawn_tells_the_client(server: Callable[..., Server], lxcpath: str) -> None:
    srv = server(create={"template": "no-such-template"})
    with connect(srv) as s:
        line = read_to_eof(s)
    assert line.startswith(b"lxactors tcpvm: cannot start a container: ")
    assert line.endswith(b"\r\n") and line.count(b"\n") == 1
    wait_for(lambda: srv.clients == 0, 2.0)
    assert not ours(lxcpath)


def test_output_through_a_small_receive_window_arrives_whole(
        server: Callable[..., Server]) -> None:
    count = 100000  # ~590 KB through a 4 KB TCP window: the server waits on the client
    srv = server()
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(20)
        s.connect(srv.address)
        hostname_of(s)
        s.sendall(f"seq 1 {count}; echo END-$((6*7))\n".encode())
        out = bytearray()
        deadline = time.monotonic() + 60
        while b"END-42" not in out[-4096:]:
            assert time.monotonic() < deadline, f"END-42 not seen; got {bytes(out[-300:])!r}"
            data = s.recv(4096)
            assert data, "connection closed"
            out += data
    numbers = [int(n) for n in re.findall(rb"^(\d+)\r?$", out, re.M)]
    assert numbers == list(range(1, count + 1))


def test_close_exits_every_container(server: Callable[..., Server], lxcpath: str) -> None:
    srv = server()
    socks = [connect(srv) for _ in range(3)]
    try:
        for s in socks:
            hostname_of(s)
        assert len(ours(lxcpath)) == 3
        assert srv.close() == 3
        assert not ours(lxcpath)
        for s in socks:
            read_to_eof(s)
    finally:
        for s in socks:
            s.close()
