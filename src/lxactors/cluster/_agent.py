"""The agent: one detached, named Ray actor per node, running lxactors there.

The policies must be applied by something that outlives the owner: Ray
kills a non-detached actor's process at once when its owner dies (no atexit,
no ``__del__``) and SIGKILLs a dying worker's children, so lxactors cannot
run inside the owner.  It runs here, in a detached actor pinned to its node
(hard node affinity), restarted by Ray if it dies.  Each container is
spawned with an :class:`~lxactors.cluster._outbox.Outbox` of its own as owner; when
the owner's lease ends (see ``_lease``) the agent closes those outboxes, and
lxactors' supervisor applies each container's policy.  If the agent itself
is killed, lxactors' helper on this node sees its end and applies the same
table, as it does for any process.

A spawn is one streaming call: its one item is the container's id and where
to read its messages (see ``_relay``: a connection of the owner's own, the
console bytes merged into batches of up to ``BATCH`` bytes by ``_outbox``,
TCP's flow control the backpressure, so a stalled owner stops the pty:
memory bounded, nothing dropped); the call stays open until the stream ends,
and its failure tells the owner that the node or agent is lost.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

import lxactors
from lxactors.cluster import _relay
from lxactors.cluster._outbox import Outbox

__all__ = ["Agent", "agent", "AGENT_NAMESPACE", "BATCH", "PATH_ENV", "POOL_ENV", "POOL_SIZE",
           "WINDOW"]

log = logging.getLogger("lxactors")

#: Ray namespace of the agents (named ``lxactors-agent-<node id>``).
AGENT_NAMESPACE = "lxactors"
#: Console bytes per batch the outbox gathers before it wakes the stream (a batch
#: taken after the owner was behind may hold up to the whole window).
BATCH = 512 * 1024
#: The console window of the agent's own containers, unless the spawn sets ``window``:
#: large enough for a batch to fill before the pty is paused.
WINDOW = 2 * BATCH
#: The node's default lxcpath, if set in the environment the node was started with.
PATH_ENV = "LXACTORS_LXCPATH"
#: Containers each agent keeps booted for unnamed spawns without options (an
#: ``lxactors.Pool`` in the agent), unless the node's environment sets ``POOL_ENV`` (0: none).
POOL_SIZE = 2
POOL_ENV = "LXACTORS_CLUSTER_POOL"
#: What an unnamed spawn served from the pool may still choose (the rest is the pool's).
POOL_OPTIONS = frozenset({"window"})
#: Threads for calls (spawn, exit, send, ...) and for message streams, per agent.
CALL_THREADS = 64
STREAM_THREADS = 1024
#: How often an idle stream checks that its container and owner still exist.
IDLE_CHECK = 0.5
#: A console read at least this large means bulk output: the batch waits up to
#: ``LINGER`` s for more (a pty gives about 4 KiB per read); smaller reads (typing,
#: prompts) go at once.
BULK = 2048
LINGER = 0.002


@dataclass(eq=False)
class _Held:
    ref: lxactors.ContainerRef
    outbox: Outbox
    lease: str
    token: bytes = b""  # of its message connection (see _relay)
    writer: _relay.Writer | None = None


class _AgentOwner(lxactors.Owner):
    """The owner of the agent's pool: alive as long as the agent's process (when that
    ends, lxactors' helper destroys the pooled containers: they are temporary)."""

    def deliver(self, message: lxactors.Message, done: Callable[[], None] | None = None) -> bool:
        if done is not None:
            done()
        return True

    def alive(self) -> bool:
        return True

    def describe(self) -> str:
        return "the node's cluster agent"


@dataclass(eq=False)
class _LeaseWatch:
    containers: set[str] = field(default_factory=set)
    ended: bool = False


class Agent:
    """Runs lxactors on one node for every owner in the cluster."""

    def __init__(self) -> None:
        self.node_id = ray.get_runtime_context().get_node_id()
        self.path = os.environ.get(PATH_ENV) or None
        self._lock = threading.Lock()
        self._held: dict[str, _Held] = {}
        self._leases: dict[str, _LeaseWatch] = {}
        address = next(n["NodeManagerAddress"] for n in ray.nodes()  # type: ignore[no-untyped-call]
                       if n["NodeID"] == self.node_id)
        self._listener = _relay.Listener(address)
        size = int(os.environ.get(POOL_ENV) or POOL_SIZE)
        where: dict[str, Any] = {"path": self.path} if self.path else {}
        self._pool = None if size <= 0 else lxactors.Pool(
            size, refill=1, owner=_AgentOwner(), window=WINDOW, **where)

    # ------------------------------------------------------------------ owners

    def _watch(self, lease_id: str, lease: Any) -> _LeaseWatch:
        with self._lock:
            watch = self._leases.get(lease_id)
            if watch is not None:
                return watch
            watch = self._leases[lease_id] = _LeaseWatch()
        hold = lease.hold.remote()
        hold.future().add_done_callback(lambda _: self._lease_ended(lease_id))
        return watch

    def _lease_ended(self, lease_id: str) -> None:
        """The owner is gone: close its outboxes, so that lxactors applies the policies."""
        with self._lock:
            watch = self._leases.pop(lease_id, None)
            if watch is None:
                return
            watch.ended = True
            held = [self._held[c] for c in watch.containers if c in self._held]
        if held:
            log.info("owner lease %s ended: applying the policies of %s", lease_id,
                     ", ".join(h.ref.name for h in held))
        for h in held:
            self._close(h)

    def _get(self, cid: str, operation: str) -> _Held:
        with self._lock:
            held = self._held.get(cid)
        if held is None:
            raise lxactors.LxcError(None, operation, f"no container {cid} on node {self.node_id}")
        return held

    def _forget(self, cid: str) -> None:
        with self._lock:
            held = self._held.pop(cid, None)
            if held is not None and held.lease in self._leases:
                self._leases[held.lease].containers.discard(cid)

    # ------------------------------------------------------------------ calls

    def info(self) -> dict[str, Any]:
        """Node id, pid, lxcpath, how many containers and owners this agent holds, its pool's
        size and how many of its containers are ready."""
        with self._lock:
            return {"node": self.node_id, "pid": os.getpid(), "path": self.path,
                    "containers": len(self._held), "owners": len(self._leases),
                    "pool": 0 if self._pool is None else self._pool.size,
                    "pooled": 0 if self._pool is None else self._pool.ready}

    def _spawn(self, lease_id: str, lease: Any, name: str, options: dict[str, Any],
               pooled: bool) -> tuple[str, _Held]:
        """``lxactors.spawn`` here, owned by the lease's owner: its id, and what is held of it.

        An unnamed spawn with no option but ``window`` is served by the pool
        if *pooled* (a running container handed over: no boot on the way).
        """
        watch = self._watch(lease_id, lease)
        pool = self._pool if pooled and not name and set(options) <= POOL_OPTIONS else None
        if self.path is not None and options.get("path") is None:
            options = {**options, "path": self.path}
        options = {"window": WINDOW, **options}
        window = options["window"]
        outbox = Outbox(min(BATCH, window // 2) if isinstance(window, int) else BATCH, BULK, LINGER)
        if pool is not None:
            ref = pool.spawn(owner=outbox, window=window)
        else:
            ref = lxactors.spawn(name, owner=outbox, **options)
        cid = secrets.token_hex(8)
        held = _Held(ref, outbox, lease_id)
        with self._lock:
            self._held[cid] = held
            watch.containers.add(cid)
            ended = watch.ended
        if ended:  # the owner died while this spawn ran
            outbox.close()
        return cid, held

    def close_pool(self) -> None:
        """Stop refilling the pool and destroy its containers (a node being drained);
        unnamed spawns are then booted on the way."""
        if self._pool is not None:
            self._pool.close()

    def release(self, cid: str) -> None:
        """The owner (a pykka actor) stopped: apply the container's policy."""
        with self._lock:
            held = self._held.get(cid)
        if held is not None:
            self._close(held)

    def _close(self, held: _Held) -> None:
        """No more messages to the owner: lxactors applies the container's policy; the
        stream's thread, waiting for the owner's connection or its reading, returns."""
        held.outbox.close()
        self._listener.discard(held.token)
        writer = held.writer
        if writer is not None:
            writer.interrupt()

    def exit(self, cid: str, reason: str, timeout: float) -> lxactors.ContainerExited | None:
        return lxactors.exit(self._get(cid, "exit").ref, reason, timeout)

    def send(self, cid: str, data: bytes, timeout: float) -> None:
        lxactors.send(self._get(cid, "send").ref, data, timeout)

    def type(self, cid: str, new: str | None) -> str:
        return lxactors.type(self._get(cid, "type").ref, new)  # type: ignore[arg-type]

    def call(self, cid: str, method: str, args: Sequence[Any], kwargs: dict[str, Any]) -> Any:
        """A low-level handle method (``lxactors.container(ref).method``)."""
        return getattr(lxactors.container(self._get(cid, method).ref), method)(*args, **kwargs)

    def alive(self, cid: str) -> bool:
        with self._lock:
            held = self._held.get(cid)
        return held is not None and held.ref.alive

    def imc_run(self, cmd: Sequence[str], options: dict[str, Any]) -> tuple[int, bytes, bytes]:
        """``lxactors.imc.run`` on this node."""
        from lxactors import imc

        if self.path is not None and options.get("path") is None:
            options = {**options, "path": self.path}
        status, out, err = imc.run(cmd, **options)
        return status, out, err

    # ------------------------------------------------------------------ messages

    @ray.method(num_returns="streaming", concurrency_group="stream")
    def spawn(self, lease_id: str, lease: Any, name: str, options: dict[str, Any],
              pooled: bool = True) -> Iterator[tuple[str, str, str, str, tuple[str, int], bytes]]:
        """``lxactors.spawn`` here; its messages go to the connection the owner opens.

        The one item is ``(PROTOCOL, id, name, lxcpath, address, token)`` (or
        the spawn's exception); the call then runs until the container or its
        owner ends, writing the container's messages, in order, in batches.
        It fails if the owner never connects.  One call, not a spawn call and
        then a stream call: an empty agent call costs the caller about 0.4 ms
        of CPU and 7 thread wake-ups, the agent 0.5 ms and 10.
        """
        cid, held = self._spawn(lease_id, lease, name, options, pooled)
        ref = held.ref
        held.token = token = self._listener.expect()
        try:
            yield _relay.PROTOCOL, cid, ref.name, ref.path, self._listener.address, token
            conn = self._listener.connection(token)
            if conn is None:
                raise lxactors.LxcError(ref.name, "spawn", "its owner did not connect for its "
                                        "messages (gone, or it cannot reach this node's agent)")
            self._stream(held, conn)
        except BaseException:
            self._close(held)  # the owner does not get the messages: its policy applies
            raise
        finally:
            self._listener.discard(token)
            if not ref.alive or not held.outbox.alive():
                self._forget(cid)

    def _stream(self, held: _Held, conn: Any) -> None:
        """Write the container's messages to the owner's connection until one of them ends."""
        outbox, ref = held.outbox, held.ref
        try:
            held.writer = writer = _relay.Writer(conn)
            if not outbox.alive():  # the owner went while it connected
                return
            while True:
                batch = outbox.take(IDLE_CHECK)
                if batch:
                    writer.send(batch)
                elif not (outbox.alive() and ref.alive):
                    rest = outbox.take(0)
                    if rest:
                        writer.send(rest)
                    writer.end()
                    return
        except OSError:  # the owner's process closed its end: it takes no more messages
            self._close(held)
        finally:
            conn.close()


_AgentActor: Any = ray.remote(  # type: ignore[call-overload]
    num_cpus=0, max_restarts=-1, concurrency_groups={"stream": STREAM_THREADS},
    max_concurrency=CALL_THREADS,
)(Agent)

_lock = threading.Lock()
_agents: dict[str, Any] = {}


def agent(node_id: str) -> Any:
    """The handle of *node_id*'s agent, started there (detached, pinned) if none runs."""
    with _lock:
        handle = _agents.get(node_id)
        if handle is None:
            handle = _agents[node_id] = _AgentActor.options(
                name=f"lxactors-agent-{node_id}", namespace=AGENT_NAMESPACE,
                lifetime="detached", get_if_exists=True,
                # Ray kills a worker's children when it exits: not lxactors' helper, which
                # must outlive the agent to apply the policies (it ignores the SIGTERM Ray
                # sends to a dead worker's process group).
                runtime_env={"env_vars": {"RAY_kill_child_processes_on_worker_exit": "0"}},
                scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
            ).remote()
        return handle
