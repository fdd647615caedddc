"""imc across the cluster: run a command in an immutable container on a chosen or any node."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from lxactors.cluster._agent import agent
from lxactors.cluster._place import choose
from lxactors.cluster._ref import CALL_TIMEOUT, remote_call

__all__ = ["run"]


def run(cmd: Sequence[str], *, node: str | None = None, label: Mapping[str, str] | None = None,
        resource: str | None = None, timeout: float | None = None, **options: Any) -> Any:
    """:func:`lxactors.imc.run` on a node: ``Result(status, stdout, stderr)``.

    Placement as for :func:`lxactors.cluster.spawn`; *options* are imc's.
    The command runs to its end (or *timeout*) even if the caller dies: the
    container is removed either way.
    """
    from lxactors import imc

    if isinstance(cmd, (str, bytes)) or not all(isinstance(a, str) for a in cmd):
        raise TypeError("cmd must be a sequence of str (an argv)")
    node_id = choose(cmd[0] if cmd else "", node, label, resource)
    wait = CALL_TIMEOUT + (timeout or 3600.0)
    status, out, err = remote_call(None, "imc", agent(node_id).imc_run, list(cmd),
                                   {**options, "timeout": timeout}, timeout=wait)
    return imc.Result(status, out, err)
