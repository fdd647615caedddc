"""The ``lxactors.json`` marker: which application a container is for.

tcpvm and imc write it into the container's directory (so it goes with the
container); ``lxactors ls`` reads it.  Both ends are here.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

__all__ = ["FILE", "read", "write"]

FILE = "lxactors.json"


def write(container_dir: str, kind: str, **fields: Any) -> None:
    """Mark the container in *container_dir* as *kind*'s, from this process (OSError if gone)."""
    marker = {"by": "lxactors", "kind": kind, "pid": os.getpid(), **fields, "since": time.time()}
    with open(os.path.join(container_dir, FILE), "x", encoding="utf-8") as f:
        json.dump(marker, f)


def read(container_dir: str) -> dict[str, Any] | None:
    """The marker of the container in *container_dir* (None: none, or not ours)."""
    try:
        with open(os.path.join(container_dir, FILE), encoding="utf-8") as f:
            marker = json.load(f)
    except (OSError, ValueError):
        return None
    if isinstance(marker, dict) and marker.get("by") == "lxactors":
        return marker
    return None
