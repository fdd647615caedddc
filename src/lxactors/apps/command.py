"""What every subcommand shares: its error type, its one-line messages, signals.

Apps import this, never :mod:`lxactors.apps.cli` (which imports them).
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Any, TypeVar

import lxactors

__all__ = ["PROG", "Subparsers", "UsageError", "add_limit_arguments", "count", "first_line",
           "key_value", "limits_from", "or_none", "say", "seconds", "signals", "size_text"]

PROG = "lxactors"

if TYPE_CHECKING:
    #: What ``register(subparsers)`` gets: ``add_subparsers()``'s result.
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]


class UsageError(Exception):
    """A bad argument found after parsing: one line, exit status 2."""


def say(text: str) -> None:
    """One line on stderr, after the program's name."""
    print(f"{PROG}: {text}", file=sys.stderr, flush=True)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def key_value(text: str) -> tuple[str, str]:
    """``KEY=VALUE`` as an argparse type."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, not {text!r}")
    return key.strip(), value


T = TypeVar("T")


def or_none(convert: Callable[[str], T], what: str) -> Callable[[str], T | None]:
    """An argparse type: *convert*(text), or None for ``none`` (that bound off)."""

    def parse(text: str) -> T | None:
        if text.strip().lower() == "none":
            return None
        try:
            return convert(text)
        except (TypeError, ValueError) as exc:
            raise argparse.ArgumentTypeError(f"{what}: {exc} ('none' turns it off)") from None

    parse.__name__ = what
    return parse


def _positive(convert: Callable[[str], Any]) -> Callable[[str], Any]:
    def check(text: str) -> Any:
        value = convert(text)
        if not value > 0:
            raise ValueError(f"must be positive, not {text!r}")
        return value

    return check


seconds = or_none(_positive(float), "seconds")
count = or_none(_positive(int), "count")


def size_text(n: int | None) -> str:
    """``256M`` for 256 MiB; ``none`` for None."""
    if n is None:
        return "none"
    for unit, shift in (("T", 40), ("G", 30), ("M", 20), ("K", 10)):
        if n % (1 << shift) == 0:
            return f"{n >> shift}{unit}"
    return str(n)


def add_limit_arguments(p: argparse.ArgumentParser, defaults: lxactors.Limits,
                        disk: bool = True) -> None:
    """``--pids-max --memory --cpus [--disk]`` and ``--no-limits``; ``none`` turns one off."""
    d = defaults
    g = p.add_argument_group("limits of each container ('none' turns one off)")
    g.add_argument("--pids-max", type=or_none(int, "--pids-max"), default=d.pids, metavar="N",
                   help=f"processes and threads at once (default {d.pids or 'none'})")
    g.add_argument("--memory", type=or_none(str, "--memory"), default=d.memory, metavar="SIZE",
                   help=f"RAM, page cache and tmpfs included, e.g. 512M "
                   f"(default {size_text(d.memory)})")
    g.add_argument("--cpus", type=or_none(float, "--cpus"), default=d.cpu, metavar="N",
                   help=f"CPU time, in CPUs, e.g. 0.5 (default {d.cpu or 'none'})")
    if disk:
        g.add_argument("--disk", type=or_none(str, "--disk"), default=d.disk, metavar="SIZE",
                       help="the writable layer's size, a tmpfs counted in --memory "
                       f"(default {size_text(d.disk)})")
    g.add_argument("--no-limits", action="store_true",
                   help="none of these bounds (read the README's security section first)")


def limits_from(args: argparse.Namespace) -> lxactors.Limits | None:
    """The limits asked on the command line (UsageError if a value is refused)."""
    if args.no_limits:
        return None
    try:
        return lxactors.Limits(pids=args.pids_max, memory=args.memory, cpu=args.cpus,
                               disk=getattr(args, "disk", None))
    except (TypeError, ValueError) as exc:
        raise UsageError(str(exc)) from exc


class signals:
    """Run *action(signum)* on SIGINT/SIGTERM while in the block (main thread only)."""

    def __init__(self, action: Callable[[int], None]) -> None:
        self.action = action
        self.saved: dict[int, Any] = {}

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        self.action(signum)

    def __enter__(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self.saved[sig] = signal.signal(sig, self._handler)

    def __exit__(self, *exc: object) -> None:
        for sig, old in self.saved.items():
            signal.signal(sig, old)
