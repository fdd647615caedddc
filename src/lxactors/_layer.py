"""``Limits.disk`` on the library's side: the helper bounds a fresh clone's writable layer.

The mount is privileged work, so it is the helper's (``_helper.layer``),
as is its release before every destroy.
"""

from __future__ import annotations

from lxactors._helper import protocol
from lxactors.liblxc import Container

__all__ = ["bound_layer"]


def bound_layer(container: Container, size: int) -> None:
    """Put *container*'s overlay upper directory on a tmpfs of *size* bytes (before its start)."""
    gate = getattr(container, "_gate", None)
    if gate is not None:  # unprivileged: the gate checks the container is the caller's
        gate.call(protocol.BoundLayer(name=container.name, path=container.get_config_path(), log=None,
                                  size=size), container=container.name, timeout=60)
        return
    container._via_helper(protocol.BoundLayer, size=size)
