"""``Limits.disk`` on the library's side: the helper bounds a fresh clone's writable layer.

The mount is privileged work, so it is the helper's (``_helper.layer``),
as is its release before every destroy.
"""

from __future__ import annotations

from lxactors._helper import wire
from lxactors.liblxc import Container

__all__ = ["bound_layer"]


def bound_layer(container: Container, size: int) -> None:
    """Put *container*'s overlay upper directory on a tmpfs of *size* bytes (before its start)."""
    container._via_helper(wire.BoundLayer, size=size)
