"""One 3-node Ray cluster for the whole session, in network namespaces of its own (see harness)."""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Iterator

import pytest

from tests.cluster.harness import Driver, NetCluster


class Cluster:
    """The running cluster, its main driver, and where each test node keeps its containers."""

    def __init__(self, net: NetCluster) -> None:
        self.net = net
        self.driver: Driver = net.driver(0)
        self.refresh()

    def refresh(self) -> None:
        self.ids: dict[str, str] = self.driver.call("node_map")

    def path(self, node: str) -> str:
        return self.net.nodes[int(node[1:])].lxcpath


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[Cluster]:
    if os.geteuid() != 0:
        pytest.skip("real containers and network namespaces need root")
    if importlib.util.find_spec("ray") is None:
        pytest.skip("the ray extra is not installed (pip install -e '.[ray]')")
    if shutil.which("nsenter") is None or shutil.which("ip") is None:
        pytest.skip("needs nsenter and ip")
    net = NetCluster(3)
    net.start()
    try:
        c = Cluster(net)
        assert sorted(c.ids) == ["n0", "n1", "n2"], c.ids
        # Warm each node: its agent, and the cached bases of unnamed containers.
        for node in c.ids:
            c.driver.call("spawn", "warm", node=c.ids[node])
            c.driver.call("exit", "warm")
        yield c
    finally:
        net.stop()
