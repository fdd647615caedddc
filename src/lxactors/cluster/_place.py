"""Placement: which node a container goes to (a node id, a label, a custom resource, or any)."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import ray

from lxactors import LxcError

__all__ = ["NodeInfo", "choose", "nodes"]

#: How long a read of the node table is reused for label / resource / any placement.
NODES_TTL = 1.0


@dataclass(frozen=True)
class NodeInfo:
    """An alive node of the Ray cluster."""

    id: str
    address: str
    labels: Mapping[str, str] = field(default_factory=dict)
    resources: Mapping[str, float] = field(default_factory=dict)


_lock = threading.Lock()
_cache: tuple[float, list[NodeInfo]] = (0.0, [])
_turn = itertools.count()


def nodes(refresh: bool = True) -> list[NodeInfo]:
    """The alive nodes, from the GCS (*refresh* False: a read at most ``NODES_TTL`` old)."""
    global _cache
    with _lock:
        if not refresh and time.monotonic() - _cache[0] < NODES_TTL:
            return _cache[1]
    found = sorted(
        (NodeInfo(n["NodeID"], n["NodeManagerAddress"], dict(n.get("Labels") or {}),
                  dict(n.get("Resources") or {}))
         for n in ray.nodes() if n.get("Alive")),  # type: ignore[no-untyped-call]
        key=lambda n: n.id,
    )
    with _lock:
        _cache = (time.monotonic(), found)
    return found


def choose(name: str, node: str | None = None, label: Mapping[str, str] | None = None,
           resource: str | None = None) -> str:
    """The id of the node a container goes to.

    An explicit *node* id is used as given (a dead one fails at the agent);
    otherwise the alive nodes carrying every *label* and the *resource* are
    taken in turn, spreading the containers.
    """
    if node is not None:
        if not isinstance(node, str) or not node:
            raise TypeError(f"node must be a node id (str), not {node!r}")
        if label is not None or resource is not None:
            raise ValueError("give a node id, or labels and a resource, not both")
        return node
    if label is not None and (not isinstance(label, Mapping)
                              or not all(isinstance(k, str) and isinstance(v, str)
                                         for k, v in label.items())):
        raise TypeError(f"label must be a mapping of str to str, not {label!r}")
    if resource is not None and (not isinstance(resource, str) or not resource):
        raise TypeError(f"resource must be a resource name (str), not {resource!r}")
    for refresh in (False, True):
        fits = [n for n in nodes(refresh)
                if all(n.labels.get(k) == v for k, v in (label or {}).items())
                and (resource is None or n.resources.get(resource, 0) > 0)]
        if fits:
            return fits[next(_turn) % len(fits)].id
    want = ", ".join([*(f"{k}={v}" for k, v in (label or {}).items()),
                      *([f"resource {resource}"] if resource else [])]) or "any"
    raise LxcError(name or None, "spawn", f"no alive node matches ({want})")
