"""lxactors on every node of a Ray cluster: the same API, the same policies across hosts.

``pip install lxactors[ray]``.  :func:`spawn` places a container on a node
(by node id, label or custom resource, or any) and returns a
:class:`RemoteRef` that :func:`exit`, :func:`send`, :func:`type` and
:func:`container` take, as lxactors' own functions take a local reference;
console output arrives in order, flow controlled.  :func:`run` is imc on a
node.  One detached agent per node runs lxactors there; a lease per owner
and node tells it when the owner (a driver, a Ray actor, a pykka actor in
either) is gone, and lxactors on that node applies the policies.  If a node
is lost, its containers' owners get ``ContainerExited(reason="lost")``.
See docs/CLUSTER.md.
"""

from __future__ import annotations

try:
    import ray  # noqa: F401
except ImportError as exc:  # pragma: no cover - without the extra
    raise ImportError("lxactors.cluster needs Ray: pip install 'lxactors[ray]'") from exc

from lxactors.cluster._agent import AGENT_NAMESPACE, agent
from lxactors.cluster._imc import run
from lxactors.cluster._place import NodeInfo, nodes
from lxactors.cluster._ref import RemoteRef, container, exit, send, spawn, type

__all__ = [
    "AGENT_NAMESPACE",
    "NodeInfo",
    "RemoteRef",
    "agent",
    "container",
    "exit",
    "nodes",
    "run",
    "send",
    "spawn",
    "type",
]
