"""What every subcommand shares: its error type, its one-line messages, signals.

Apps import this, never :mod:`lxactors.apps.cli` (which imports them).
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Any

__all__ = ["PROG", "Subparsers", "UsageError", "first_line", "key_value", "say", "signals"]

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
