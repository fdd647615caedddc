"""lxactors.cluster on a real 3-node Ray cluster: placement, console, policies across hosts, failures."""

from __future__ import annotations

import os
import signal
import time

import pytest

from lxactors import ContainerExited, liblxc
from tests.cluster.conftest import Cluster
from tests.cluster.harness import RemoteError
from tests.util import wait_for

pytestmark = pytest.mark.cluster

_n = iter(range(10_000))


def unique(prefix: str) -> str:
    return f"{prefix}{os.getpid() % 10000}-{next(_n)}"


def state(c: Cluster, node: str, name: str) -> str:
    """RUNNING / STOPPED as liblxc sees it on the node, or 'gone' once the container is deleted."""
    return c.net.nodes[int(node[1:])].state(name)


def remove(c: Cluster, node: str, name: str) -> None:
    c.net.nodes[int(node[1:])].remove(name)


def test_placement_on_each_node_by_id_label_resource_and_any(ray_cluster: Cluster) -> None:
    c, d = ray_cluster, ray_cluster.driver
    for node, node_id in c.ids.items():
        got = d.call("spawn", "p", node=node_id)
        assert got["node"] == node_id and got["path"] == c.path(node)
        assert state(c, node, got["name"]) == "RUNNING"
        d.call("exit", "p")
        assert state(c, node, got["name"]) == "gone"
    got = d.call("spawn", "p", label={"lxactors-test-node": "n2"})
    assert got["node"] == c.ids["n2"]
    d.call("exit", "p")
    got = d.call("spawn", "p", resource="node1")
    assert got["node"] == c.ids["n1"]
    d.call("exit", "p")
    placed = set()
    for _ in range(3):
        placed.add(d.call("spawn", "p")["node"])
        d.call("exit", "p")
    assert placed == set(c.ids.values())  # spread over every node
    with pytest.raises(RemoteError, match="no alive node matches"):
        d.call("spawn", "p", label={"lxactors-test-node": "nowhere"})
    with pytest.raises(RemoteError, match="ValueError: type must be"):  # lxactors' own check, on n1
        d.call("spawn", "p", node=c.ids["n1"], type="forever")
    with pytest.raises(RemoteError, match="TypeError: node must be"):
        d.call("spawn", "p", node=5)
    # A call the agent cannot even start yields no first item: its failure is raised, at once.
    raised, took = d.call("spawn_call_failing_at_once", c.ids["n1"])
    assert raised.startswith("TypeError") and "argument" in raised and took < 10, (raised, took)


def test_console_round_trip_across_nodes_in_order(ray_cluster: Cluster) -> None:
    c, d = ray_cluster, ray_cluster.driver
    d.call("spawn", "con", node=c.ids["n2"])  # the driver is on n0
    d.call("send", "con", "echo hi-$((6*7))\n")
    assert b"hi-42" in d.call("read_until", "con", b"hi-42")
    got = d.call("console_bytes", "con", 2_000_000)
    lines = [ln for ln in got["data"].split(b"\r\n") if len(ln) == 7 and ln.isdigit()]
    assert [int(x) for x in lines] == list(range(1, 250_001))  # every line, in order
    exited = d.call("exit", "con", "normal")
    assert isinstance(exited, ContainerExited) and exited.reason == "normal"


def test_a_stalled_owner_holds_the_writer_back_and_loses_nothing(ray_cluster: Cluster) -> None:
    """Flow control end to end: the owner reads nothing, the container's writer stops
    (its window, the agent's batch and the connection's buffers full: a few MiB, not
    the 128 MiB it has to write); then every block arrives, in order."""
    c, d = ray_cluster, ray_cluster.driver
    d.call("spawn", "flow", node=c.ids["n1"])
    d.call("read_until", "flow", b"#")
    got = d.call("stalled_owner", "flow", 2000, timeout=300)
    assert 0 < got["held at"] < 200, got["held at"]  # 200 blocks: 14 MiB on the console
    assert got["blocks"] == list(range(1, 2001))
    assert got["complete blocks"] == 2000, (got["held at"], got["bytes"])
    d.call("exit", "flow", "kill")


def test_the_agent_gives_a_stream_only_to_its_token(ray_cluster: Cluster) -> None:
    c, d = ray_cluster, ray_cluster.driver
    d.call("spawn", "tok", node=c.ids["n2"])
    assert d.call("stranger_reads", "tok") == b""
    d.call("send", "tok", "echo still-$((6*7))\n")
    assert b"still-42" in d.call("read_until", "tok", b"still-42")
    d.call("exit", "tok", "kill")


def test_type_and_container_calls_on_a_remote_node(ray_cluster: Cluster) -> None:
    c, d = ray_cluster, ray_cluster.driver
    name = unique("ty")
    d.call("spawn", "ty", name, node=c.ids["n1"])
    try:
        assert d.call("type", "ty") == "transient"
        assert d.call("type", "ty", "permanent") == "permanent"
        assert d.call("type", "ty") == "permanent"
        assert d.call("call", "ty", "state") == "RUNNING"
        assert d.call("call", "ty", "get_config_item", "lxc.uts.name") == name
        assert d.call("call", "ty", "init_pid") > 1
        with pytest.raises(RemoteError, match="ValueError"):
            d.call("type", "ty", "forever")
        d.call("exit", "ty")
        assert state(c, "n1", name) == "STOPPED"  # transient-born: kept
    finally:
        remove(c, "n1", name)


def containers(c: Cluster, node: str) -> set[str]:
    """The containers on *node* (not the cached base of unnamed clones, which stays)."""
    return {n for n in liblxc.list_defined_containers(c.path(node)) if not n.startswith("lxactors-base-")}


def pool_full(c: Cluster, node: str) -> set[str]:
    """Wait until *node*'s agent pool is full; the containers on *node* then."""
    wait_for(lambda: (lambda i: i["pooled"] == i["pool"])(c.driver.call("agent_info", c.ids[node])),
             timeout=30, what=f"{node}'s pool refilled")
    return containers(c, node)


def test_pool_hands_over_a_booted_container_and_refills(ray_cluster: Cluster) -> None:
    c, d = ray_cluster, ray_cluster.driver
    assert d.call("agent_info", c.ids["n1"])["pool"] == 2
    pooled = pool_full(c, "n1")
    assert len(pooled) >= 2
    got = d.call("spawn", "pl", node=c.ids["n1"], window=128 * 1024)  # window: still from the pool
    assert got["name"] in pooled and state(c, "n1", got["name"]) == "RUNNING"
    d.call("send", "pl", "echo pooled-$((6*7))\n")
    assert b"pooled-42" in d.call("read_until", "pl", b"pooled-42")
    assert d.call("type", "pl") == "temporary"
    after = pool_full(c, "n1")  # refilled: a new one booted in its place
    assert got["name"] in after and len(after - pooled) == 1
    d.call("exit", "pl")
    assert state(c, "n1", got["name"]) == "gone"
    cold = d.call("spawn", "cold", node=c.ids["n1"], pool=False)
    assert cold["name"] not in after and state(c, "n1", cold["name"]) == "RUNNING"
    d.call("exit", "cold")
    assert state(c, "n1", cold["name"]) == "gone"
    with pytest.raises(RemoteError, match="TypeError: pool must be a bool"):
        d.call("spawn", "p", node=c.ids["n1"], pool="yes")


def test_imc_runs_on_a_chosen_node(ray_cluster: Cluster) -> None:
    c, d = ray_cluster, ray_cluster.driver
    before = pool_full(c, "n2")  # not a pooled container booting meanwhile
    status, out, err = d.call("imc_run", ["sh", "-c", "echo out-$((6*7)); echo err >&2; exit 3"],
                              node=c.ids["n2"])
    assert (status, out, err) == (3, b"out-42\n", b"err\n")
    # Nothing left behind (imc.run returns as the container ends: see imc.Exited).
    wait_for(lambda: containers(c, "n2") == before, what="the imc container gone")
    status, out, _ = d.call("imc_run", ["id", "-u"])
    assert status == 0 and int(out) > 0


def _spawn_three(spawner, c: Cluster, nodes: tuple[str, str, str]) -> dict[str, tuple[str, str]]:  # type: ignore[no-untyped-def]
    """A temporary, a transient and a permanent container, on *nodes*: type -> (node, name)."""
    made = {}
    for type_, node in zip(("temporary", "transient", "permanent"), nodes, strict=True):
        name = "" if type_ == "temporary" else unique(type_[:4])
        opts = {"type": "permanent"} if type_ == "permanent" else {}
        made[type_] = (node, spawner(type_, name, node=c.ids[node], **opts))
    for type_, (node, name) in made.items():
        assert state(c, node, name) == "RUNNING", type_
    return made


def _assert_policies(c: Cluster, made: dict[str, tuple[str, str]], since: float,
                     within: float = 10.0) -> float:
    """The policy table held on every node; returns seconds until it was seen applied."""
    want = {"temporary": "gone", "transient": "STOPPED", "permanent": "RUNNING"}
    wait_for(lambda: all(state(c, n, name) == want[t] for t, (n, name) in made.items()),
             timeout=within, what="the policies applied", interval=0.01)
    return time.monotonic() - since


def test_policies_after_driver_sigkill_then_adoption_from_another_driver(ray_cluster: Cluster) -> None:
    c = ray_cluster
    victim = c.net.driver(1)  # a driver on n1
    # The temporary one booted for it (the other tests' come from the agents' pools).
    made = _spawn_three(lambda k, n, **o: victim.call("spawn", k, n, pool=False, **o)["name"], c,
                        ("n2", "n0", "n1"))
    try:
        victim.kill()
        took = _assert_policies(c, made, time.monotonic())
        assert took < 5.0, took
        # Adopted by name from another driver: the same running container, its console works.
        node, name = made["permanent"]
        pid = c.net.nodes[int(node[1:])].init_pid(name)
        d = c.driver
        got = d.call("spawn", "adopted", name, node=c.ids[node])
        assert got["name"] == name and d.call("call", "adopted", "init_pid") == pid
        d.call("send", "adopted", "echo adopted-$((6*7))\n")
        d.call("read_until", "adopted", b"adopted-42")
        assert d.call("type", "adopted") == "transient"  # a named spawn's default type
        d.call("exit", "adopted")
    finally:
        for node, name in made.values():
            remove(c, node, name)


def test_policies_after_owner_actor_sigkill(ray_cluster: Cluster) -> None:
    c, d = ray_cluster, ray_cluster.driver
    pid = d.call("make_owner", "o1")
    made = _spawn_three(lambda k, n, **o: d.call("owner_call", "o1", "spawn", k, n, **o), c,
                        ("n1", "n2", "n0"))
    try:
        os.kill(pid, signal.SIGKILL)
        took = _assert_policies(c, made, time.monotonic())
        assert took < 5.0, took
    finally:
        for node, name in made.values():
            remove(c, node, name)


def test_pykka_owners_in_a_driver_and_in_a_ray_actor(ray_cluster: Cluster) -> None:
    c, d = ray_cluster, ray_cluster.driver
    # In the driver: console reaches on_receive; the actor stops; its temporary container goes.
    name = d.call("pykka_owner_here", c.ids["n1"])["name"]
    wait_for(lambda: state(c, "n1", name) == "gone", timeout=10, what="the temporary removed")
    # In a Ray actor: the same, and the Ray actor's SIGKILL applies the policy too.
    pid = d.call("make_owner", "o2")
    name = d.call("owner_call", "o2", "spawn_pykka", node=c.ids["n2"])
    wait_for(lambda: d.call("owner_call", "o2", "pykka_seen", b"pykka-42"), timeout=20,
             what="console output in the pykka actor")
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: state(c, "n2", name) == "gone", timeout=10, what="the temporary removed")


def test_agent_sigkill_applies_policies_and_owner_sees_lost(ray_cluster: Cluster) -> None:
    c, d = ray_cluster, ray_cluster.driver
    keys = {"temporary": "", "transient": unique("atr"), "permanent": unique("ape")}
    made = {}
    for t, name in keys.items():
        opts = {"type": "permanent"} if t == "permanent" else {}
        made[t] = ("n2", d.call("spawn", f"ag-{t}", name, node=c.ids["n2"], **opts)["name"])
    try:
        pooled = pool_full(c, "n2") - {name for _, name in made.values()}
        assert pooled
        agent_pid = d.call("agent_info", c.ids["n2"])["pid"]
        os.kill(agent_pid, signal.SIGKILL)
        for t in keys:
            exited, _ = d.call("next_exit", f"ag-{t}")
            assert exited.reason == "lost", exited
        _assert_policies(c, made, time.monotonic())
        # The killed agent's pooled containers were temporary and its own: destroyed.
        wait_for(lambda: not pooled & containers(c, "n2"),
                 timeout=10, what="the killed agent's pooled containers destroyed")
        # Ray restarts the agent on its node; the permanent container is adoptable through it.
        info = d.call("agent_info", c.ids["n2"])
        assert info["pid"] != agent_pid and info["containers"] == 0
        name = made["permanent"][1]
        d.call("spawn", "ag-again", name, node=c.ids["n2"])
        assert d.call("call", "ag-again", "state") == "RUNNING"
        d.call("exit", "ag-again")
    finally:
        for node, name in made.values():
            remove(c, node, name)


def test_node_lost_owner_told_within_2s(ray_cluster: Cluster) -> None:
    c, d = ray_cluster, ray_cluster.driver
    node = c.net.nodes[1]
    got = d.call("spawn", "lost", node=c.ids["n1"])
    raylet = node.raylet_pid()
    assert raylet is not None
    try:
        killed = time.monotonic()
        os.kill(raylet, signal.SIGKILL)
        exited, at = d.call("next_exit", "lost")
        assert exited == ContainerExited(got["name"], "lost")
        assert at - killed < 2.0, at - killed
        # The node's own lxactors (its helper) removed the temporary container.
        wait_for(lambda: state(c, "n1", got["name"]) == "gone", timeout=15,
                 what="the lost node's temporary container removed")
    finally:
        remove(c, "n1", got["name"])
        _restart(c, "n1")


def test_node_frozen_owner_told_lost_without_a_reset(ray_cluster: Cluster) -> None:
    """A node that stops without closing anything (every process of it SIGSTOPped, as a
    frozen VM or a cut cable: its kernel still holds the connections open, no reset
    comes): the spawn's Ray call failing is what tells the owner."""
    c, d = ray_cluster, ray_cluster.driver
    node = c.net.nodes[1]
    got = d.call("spawn", "frozen", node=c.ids["n1"])
    pids = node.pids()
    try:
        frozen = time.monotonic()
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        exited, at = d.call("next_exit", "frozen", 30.0)
        assert exited == ContainerExited(got["name"], "lost")
        assert at - frozen < 10.0, at - frozen  # the health checks' ~1.2 s, on a loaded machine
    finally:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        remove(c, "n1", got["name"])
        _restart(c, "n1")


def _kill_node(c: Cluster, node: str) -> None:
    """SIGKILL every process of *node* (by pid: all of those in its network namespace)."""
    for pid in c.net.nodes[int(node[1:])].pids():
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _restart(c: Cluster, node: str) -> None:
    """The node back, for whatever runs next: its processes ended by pid, then started again."""
    n = c.net.nodes[int(node[1:])]
    _kill_node(c, node)
    wait_for(lambda: not n.pids(), timeout=15, what=f"{node}'s processes gone")
    c.net.start_node(n)
    wait_for(lambda: node in c.driver.call("node_map"), timeout=30, what=f"{node} back")
    c.refresh()


def test_driver_node_lost_other_nodes_apply_the_policies(ray_cluster: Cluster) -> None:
    """The node a driver runs on dies with it (raylet, driver, everything SIGKILLed): the
    containers it owned on the other nodes get their policies there."""
    c = ray_cluster
    victim = c.net.driver(1)  # a driver on n1
    made = _spawn_three(lambda k, n, **o: victim.call("spawn", k, n, **o)["name"], c, ("n2", "n0", "n2"))
    try:
        killed = time.monotonic()
        _kill_node(c, "n1")
        victim.kill()  # reaped
        took = _assert_policies(c, made, killed, within=15.0)
        assert took < 5.0, took
        # Still adoptable by name from a driver on a live node.
        node, name = made["permanent"]
        c.driver.call("spawn", "adopted-after-loss", name, node=c.ids[node])
        assert c.driver.call("call", "adopted-after-loss", "state") == "RUNNING"
        c.driver.call("exit", "adopted-after-loss")
    finally:
        for node, name in made.values():
            remove(c, node, name)
        _restart(c, "n1")
