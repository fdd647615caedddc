"""tcpvm with a pool (--pool N): clients get a container booted ahead."""

from __future__ import annotations

import socket
import threading

import pytest

from lxactors.apps import tcpvm
from tests.test_tcpvm import hostname_of, ours
from tests.util import wait_for


def test_clients_are_served_from_the_pool_and_nothing_outlives_the_server(lxcpath: str) -> None:
    vm = tcpvm.TcpVm(("127.0.0.1", 0), 4, {"path": lxcpath}, pool=2)
    address = vm.bind()
    thread = threading.Thread(target=vm.serve_forever, daemon=True)
    socks: list[socket.socket] = []
    try:
        pool = vm._pool
        assert pool is not None
        wait_for(lambda: pool.ready == 2, timeout=60, what="two containers booted ahead")
        ahead = ours(lxcpath)
        assert len(ahead) == 2
        thread.start()
        socks.append(socket.create_connection(address, timeout=20))
        assert hostname_of(socks[0]) in ahead  # handed over, not spawned for the client
        wait_for(lambda: pool.ready == 2, timeout=60, what="the pool to refill")
    finally:
        vm.shutdown()
        if thread.is_alive():
            thread.join(10)
        vm.close()
        for s in socks:
            s.close()
    wait_for(lambda: not ours(lxcpath), timeout=30, what="every container gone")


def test_a_negative_pool_is_refused() -> None:
    with pytest.raises(ValueError, match="pool"):
        tcpvm.TcpVm(("127.0.0.1", 0), 4, {}, pool=-1)
