"""What the cluster tests run inside a driver process (see ``driver.py``)."""

from __future__ import annotations

import os
from typing import Any

import ray


def ready() -> int:
    return os.getpid()


def nodes() -> list[dict[str, Any]]:
    return [{"id": n["NodeID"], "ip": n["NodeManagerAddress"], "alive": n["Alive"],
             "labels": n.get("Labels", {})} for n in ray.nodes()]
