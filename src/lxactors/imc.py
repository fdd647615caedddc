"""``lxactors.imc``: the import path of :mod:`lxactors.apps.imc` (a re-export shim).

imc lives in the applications' folder; this keeps ``from lxactors import
imc; imc.run([...])`` working, and adds :func:`main`, ``lxactors imc`` as
a function (examples/imc runs it).
"""

from __future__ import annotations

from lxactors.apps.imc import (
    ALLOWED_DEVICES,
    DEFAULT_BINDS,
    DEFAULT_LIMITS,
    DEFAULT_POOL,
    DEFAULT_WINDOW,
    NS_UID_LOW,
    POOL_OPTIONS,
    REFILL_DELAY,
    UID_HIGH,
    UID_LOW,
    Exited,
    Imc,
    ImcMessage,
    ImcTimeoutError,
    Pool,
    Result,
    Stderr,
    Stdout,
    register,
    run,
    spawn,
)

__all__ = [
    "ALLOWED_DEVICES",
    "DEFAULT_BINDS",
    "DEFAULT_LIMITS",
    "DEFAULT_POOL",
    "DEFAULT_WINDOW",
    "Exited",
    "Imc",
    "ImcMessage",
    "ImcTimeoutError",
    "NS_UID_LOW",
    "POOL_OPTIONS",
    "Pool",
    "REFILL_DELAY",
    "Result",
    "Stderr",
    "Stdout",
    "UID_HIGH",
    "UID_LOW",
    "main",
    "register",
    "run",
    "spawn",
]


def main(argv: list[str] | None = None) -> int:
    """``lxactors imc`` (the same options; *argv* defaults to ``sys.argv[1:]``)."""
    import sys

    from lxactors.apps.cli import main as cli

    return cli(["imc", *(sys.argv[1:] if argv is None else argv)])
