"""``lxactors setup-user USER [--remove]`` (as root): the command face of :mod:`lxactors.admin`."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

from lxactors.admin import remove_user, setup_user

if TYPE_CHECKING:
    from lxactors.apps.command import Subparsers

__all__ = ["register"]


def run(args: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        print("lxactors setup-user: run as root", file=sys.stderr)
        return 1
    try:
        print(remove_user(args.user) if args.remove else setup_user(args.user, args.python))
    except KeyError:
        print(f"lxactors setup-user: no user {args.user!r}", file=sys.stderr)
        return 1
    return 0


def register(subparsers: Subparsers) -> None:
    """Add ``setup-user USER [--python P] [--remove]`` to the ``lxactors`` command."""
    p = subparsers.add_parser(
        "setup-user", help="let a user run lxactors without root (run as root)",
        description="Write the sudoers drop-in, access.conf's section and the id ranges "
        "that let USER use lxactors through its privileged helper.")
    p.add_argument("user", metavar="USER")
    p.add_argument("--python", default=sys.executable,
                   help="the root-owned interpreter that runs the helper (default: this one)")
    p.add_argument("--remove", action="store_true",
                   help="undo it, destroying USER's containers")
    p.set_defaults(run=run)
