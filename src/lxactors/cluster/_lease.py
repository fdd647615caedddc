"""Leases: how an agent learns that an owner (a driver or a Ray actor) is gone.

Ray kills a non-detached actor with the process that created it, on every
path (exit, failure, SIGKILL, its node lost), and runs none of its cleanup.
So each owner process creates, on each node it uses, one small lease actor
that does nothing; the node's agent holds a call on it that never returns.
When that call fails, the owner is gone: the agent closes the owner's
mailboxes and lxactors, which outlives the owner, applies the policies.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import threading
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

__all__ = ["Lease", "lease"]


class Lease:
    """The lease actor (async: any number of agents' holds cost no thread)."""

    async def hold(self) -> None:
        """Never returns: its failure is the news that the owner is gone."""
        await asyncio.Event().wait()

    async def pid(self) -> int:
        return os.getpid()


_LeaseActor: Any = ray.remote(num_cpus=0, max_restarts=0)(Lease)

_lock = threading.Lock()
_leases: dict[str, tuple[str, Any]] = {}
_pid = 0


def lease(node_id: str) -> tuple[str, Any]:
    """This process's lease on *node_id*: ``(lease id, actor handle)``, made on first use."""
    global _pid
    with _lock:
        if _pid != os.getpid():  # a forked child owns nothing of its parent's
            _leases.clear()
            _pid = os.getpid()
        found = _leases.get(node_id)
        if found is None:
            handle = _LeaseActor.options(
                scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
            ).remote()
            found = _leases[node_id] = (secrets.token_hex(8), handle)
        return found


def forget(node_id: str) -> None:
    """Drop a lease whose node or actor is gone (the next spawn there makes a new one)."""
    with _lock:
        _leases.pop(node_id, None)
