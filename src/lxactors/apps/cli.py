"""The ``lxactors`` command: the top parser, logging, and exit statuses.

Each subcommand is a module named in :data:`APPS` whose
``register(subparsers)`` adds its parser with ``set_defaults(run=...)``
(``run(args) -> int``, the exit status) and optionally ``log=`` (the
loggers to show at INFO; given at all, warnings go to stderr) and
``root=False`` (it runs as any user: the ``connect`` client).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from lxactors.apps.command import PROG, UsageError, first_line, say

if TYPE_CHECKING:
    from lxactors.apps.command import Subparsers

__all__ = ["APPS", "main", "parser"]

#: Where an admin lets ordinary users run lxactors (``lxactors setup-user``).
ACCESS_CONF = "/etc/lxactors/access.conf"

#: The subcommands' modules, in ``--help`` order.
APPS: tuple[str, ...] = (
    "lxactors.apps.demo",
    "lxactors.apps.tcpvm",
    "lxactors.apps.imc",
    "lxactors.apps.ls",
    "lxactors.apps.connect",
    "lxactors.apps.setup_user",
)


def parser(apps: Sequence[str] = APPS) -> argparse.ArgumentParser:
    """The command's parser, each of *apps* adding its subcommand."""
    top = argparse.ArgumentParser(prog=PROG, description="Linux containers as Pykka actors.")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in apps:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            _unavailable(sub, name, exc)
        else:
            module.register(sub)
    return top


def _unavailable(sub: Subparsers, module: str, exc: ImportError) -> None:
    """A subcommand whose module cannot be imported (liblxc or pykka missing):
    it reports why when used, and the others still work (``connect`` needs neither)."""

    def run(args: argparse.Namespace) -> int:
        raise exc

    p = sub.add_parser(module.rsplit(".", 1)[-1], add_help=False,
                       help=f"(unavailable: {first_line(exc)})")
    p.add_argument("args", nargs=argparse.REMAINDER)
    p.set_defaults(run=run, root=False)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        # (Inside: an app that cannot be imported is one line, status 1.)
        args = parser().parse_args(argv)
        if getattr(args, "root", True) and os.geteuid() != 0 and not os.path.exists(ACCESS_CONF):
            say("must run as root (liblxc creates and starts containers), or be set up for "
                "unprivileged use: 'lxactors setup-user USER' as root")
            return 1
        loggers = getattr(args, "log", None)
        if loggers is not None:
            logging.basicConfig(format="%(name)s: %(message)s", level=logging.WARNING)
            for name in loggers:
                logging.getLogger(name).setLevel(logging.INFO)
        return int(args.run(args))
    except UsageError as exc:
        say(str(exc))
        return 2
    except ImportError as exc:
        # The cffi extension, or the liblxc it links, is missing.
        say(first_line(exc))
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from lxactors import LxcError

        if isinstance(exc, (LxcError, OSError)):
            say(first_line(exc))
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
