"""``lxactors.tcpvm``: the import path of :mod:`lxactors.apps.tcpvm` (a re-export shim).

The server lives in the applications' folder; this keeps ``from
lxactors.tcpvm import TcpVm, serve`` working, and adds :func:`main`,
``lxactors tcpvm`` as a function (examples/tcpvm runs it).
"""

from __future__ import annotations

from lxactors.apps.tcpvm import (
    DEFAULT_LIMITS,
    DEFAULT_LISTEN,
    DEFAULT_MAX_CLIENTS,
    DEFAULT_MAX_PER_ADDRESS,
    DEFAULT_POOL,
    Client,
    TcpVm,
    format_address,
    parse_listen,
    register,
    serve,
)

__all__ = [
    "DEFAULT_LIMITS",
    "DEFAULT_LISTEN",
    "DEFAULT_MAX_CLIENTS",
    "DEFAULT_MAX_PER_ADDRESS",
    "DEFAULT_POOL",
    "Client",
    "TcpVm",
    "format_address",
    "main",
    "parse_listen",
    "register",
    "serve",
]


def main(argv: list[str] | None = None) -> int:
    """``lxactors tcpvm`` (the same options; *argv* defaults to ``sys.argv[1:]``)."""
    import sys

    from lxactors.apps.cli import main as cli

    return cli(["tcpvm", *(sys.argv[1:] if argv is None else argv)])
