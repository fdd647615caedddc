"""What the cluster tests run inside a driver process (see ``driver.py``).

References live here, in the driver, under keys the test chooses; the test
gets back names, node ids and messages.
"""

from __future__ import annotations

import builtins
import os
import queue
import time
from typing import Any

import pykka
import ray

import lxactors
from lxactors import cluster

REFS: dict[str, cluster.RemoteRef] = {}
LABEL = "lxactors-test-node"


def ready() -> int:
    return os.getpid()


def node_map() -> dict[str, str]:
    """Test node name (n0, n1, ...) -> Ray node id."""
    return {n.labels[LABEL]: n.id for n in cluster.nodes() if LABEL in n.labels}


def agent_info(node: str, timeout: float = 60.0) -> dict[str, Any]:
    """The agent's info; while Ray restarts a killed agent, asked again until *timeout*."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return ray.get(cluster.agent(node).info.remote(), timeout=timeout)  # type: ignore[no-any-return]
        except ray.exceptions.ActorUnavailableError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def close_pools() -> None:
    """Every agent's pool closed (before teardown: a pool refills what is destroyed)."""
    ray.get([cluster.agent(n.id).close_pool.remote() for n in cluster.nodes()], timeout=60)


def spawn(key: str, name: str = "", **options: Any) -> dict[str, str]:
    ref = cluster.spawn(name, **options)
    REFS[key] = ref
    return {"name": ref.name, "path": ref.path, "node": ref.node}


def spawn_call_failing_at_once(node: str) -> tuple[str, float]:
    """An agent call that fails before its generator runs (wrong arguments, as from an agent
    of another version): what the spawn raised, and how long it took."""
    from lxactors.cluster._ref import _first

    t0 = time.monotonic()
    try:
        _first(None, cluster.agent(node).spawn.remote("too", "few"), 60.0)
    except Exception as exc:
        return f"{builtins.type(exc).__name__}: {exc}", time.monotonic() - t0
    return "nothing raised", time.monotonic() - t0


def send(key: str, data: bytes | str) -> None:
    cluster.send(REFS[key], data)


def exit(key: str, reason: str = "kill") -> Any:
    return cluster.exit(REFS[key], reason)


def type(key: str, new: str | None = None) -> str:
    return cluster.type(REFS[key], new)


def call(key: str, method: str, *args: Any) -> Any:
    return getattr(cluster.container(REFS[key]), method)(*args)


def alive(key: str) -> bool:
    return REFS[key].alive


def read_until(key: str, needle: bytes, timeout: float = 20.0) -> bytes:
    ref = REFS[key]
    buf = b""
    deadline = time.monotonic() + timeout
    while needle not in buf:
        m = ref.receive(timeout=max(0.0, deadline - time.monotonic()))
        if isinstance(m, lxactors.ConsoleOutput):
            buf += m.data
    return buf


def next_exit(key: str, timeout: float = 20.0) -> tuple[Any, float]:
    """The next ContainerExited (or GaveUp, ContainerRestarted) and when it came (monotonic)."""
    ref = REFS[key]
    deadline = time.monotonic() + timeout
    while True:
        m = ref.receive(timeout=max(0.0, deadline - time.monotonic()))
        if not isinstance(m, lxactors.ConsoleOutput):
            return m, time.monotonic()


def console_bytes(key: str, count: int, timeout: float = 60.0) -> dict[str, Any]:
    """Make the container write *count* bytes (numbered lines) and read them all, in order."""
    ref = REFS[key]
    lines = count // 8
    send(key, f"seq -w 1 {lines} | sed 's/^/0/' | cut -c1-7; echo DONE-$((40+2))\n")
    buf = bytearray()
    t0 = time.monotonic()
    deadline = t0 + timeout
    while b"DONE-42" not in buf[-200:]:
        m = ref.receive(timeout=max(0.0, deadline - time.monotonic()))
        if isinstance(m, lxactors.ConsoleOutput):
            buf += m.data
    return {"bytes": len(buf), "seconds": time.monotonic() - t0, "data": bytes(buf)}


def _count(key: str) -> int:
    r = call(key, "attach_run_wait", ["/bin/cat", "/tmp/count"])
    return int(r.stdout or b"0")


def stalled_owner(key: str, blocks: int = 2000, timeout: float = 120.0) -> dict[str, Any]:
    """The container writes *blocks* numbered 64 KiB blocks while its owner reads nothing:
    how far the writer got before it was held back, then everything read, in order."""
    send(key, f"seq -w 1 8192 > /tmp/blk; i=0; while [ $i -lt {blocks} ]; do i=$((i+1)); "
              "echo $i > /tmp/count; echo B$i; cat /tmp/blk; done; echo END-$((40+2))\n")
    deadline = time.monotonic() + timeout
    last, held = -1, -2
    while held != last:  # the writer's count stands still for a second: it is held back
        if time.monotonic() > deadline:
            raise AssertionError(f"the writer was never held back (at block {last} of {blocks})")
        held, last = last, _count(key)
        time.sleep(0.5)
    ref = REFS[key]
    buf = bytearray()
    while b"END-42" not in buf[-200:]:
        m = ref.receive(timeout=max(0.0, deadline - time.monotonic()))
        if isinstance(m, lxactors.ConsoleOutput):
            buf += m.data
    numbers = [int(ln[1:]) for ln in buf.split(b"\r\n") if ln[:1] == b"B" and ln[1:].isdigit()]
    return {"held at": held, "blocks": numbers, "bytes": len(buf),
            "complete blocks": buf.count(b"8191\r\n8192\r\n")}


def stranger_reads(key: str) -> bytes:
    """What a connection to the container's agent gets without its stream's token."""
    import socket

    peer = REFS[key]._reader._conn.getpeername()
    with socket.create_connection(peer[:2], timeout=10) as s:
        s.sendall(os.urandom(16))
        s.settimeout(10)
        got = b""
        while chunk := s.recv(4096):
            got += chunk
    return got


def imc_run(cmd: list[str], **options: Any) -> tuple[int, bytes, bytes]:
    r = cluster.run(cmd, **options)
    return r.status, r.stdout, r.stderr


# ---------------------------------------------------------------------- other owners

@ray.remote(num_cpus=0)
class OwnerActor:
    """A Ray actor that owns containers (plain code in it, or a pykka actor inside it)."""

    def __init__(self) -> None:
        self.refs: dict[str, cluster.RemoteRef] = {}
        self.pykka: pykka.ActorRef[Any] | None = None

    def pid(self) -> int:
        return os.getpid()

    def spawn(self, key: str, name: str = "", **options: Any) -> str:
        ref = cluster.spawn(name, **options)
        self.refs[key] = ref
        return ref.name

    def spawn_pykka(self, name: str = "", **options: Any) -> str:
        if self.pykka is None:
            self.pykka = PykkaOwner.start()
        return self.pykka.proxy().spawn(name, options).get(timeout=120)  # type: ignore[no-any-return]

    def pykka_seen(self, needle: bytes, timeout: float = 20.0) -> bool:
        assert self.pykka is not None
        return self.pykka.proxy().wait_for(needle, timeout).get(timeout=timeout + 5)  # type: ignore[no-any-return]

    def stop_pykka(self) -> None:
        if self.pykka is not None:
            self.pykka.stop()


class PykkaOwner(pykka.ThreadingActor):
    """A pykka actor owning remote containers: messages arrive in on_receive."""

    def __init__(self) -> None:
        super().__init__()
        self.seen = bytearray()
        self.messages: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.refs: list[cluster.RemoteRef] = []

    def spawn(self, name: str, options: dict[str, Any]) -> str:
        ref = cluster.spawn(name, **options)  # owner: this actor
        self.refs.append(ref)
        cluster.send(ref, "echo pykka-$((6*7))\n")
        return ref.name

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, lxactors.ConsoleOutput):
            self.seen += message.data
        self.messages.put(message)
        return None

    def wait_for(self, needle: bytes, timeout: float) -> bool:
        return needle in self.seen


def pykka_owner_here(node: str) -> dict[str, Any]:
    """A pykka actor in this driver owns a container on *node*; it stops; the policy applies."""
    actor = PykkaOwner.start()
    name = actor.proxy().spawn("", {"node": node}).get(timeout=120)
    deadline = time.monotonic() + 20
    while b"pykka-42" not in actor.proxy().seen.get():
        if time.monotonic() > deadline:
            raise AssertionError("no console output reached the pykka owner")
        time.sleep(0.05)
    actor.stop()
    return {"name": name}


def make_owner(key: str) -> int:
    """A Ray actor owner, kept under *key* (its pid returned)."""
    a = OwnerActor.remote()
    OWNERS[key] = a
    return ray.get(a.pid.remote(), timeout=120)  # type: ignore[no-any-return]


def owner_call(key: str, method: str, *args: Any, **kwargs: Any) -> Any:
    return ray.get(getattr(OWNERS[key], method).remote(*args, **kwargs), timeout=120)


OWNERS: dict[str, Any] = {}
