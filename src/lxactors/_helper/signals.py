"""The signal state the helper's children start from: a program's defaults.

An ignored signal stays ignored across fork and exec.  The helper ignores the
user's ^C, hangups and SIGTERM, Python ignores SIGPIPE and SIGXFSZ, and
whoever started the user's process may have ignored more (a shell's `&`
ignores SIGINT and SIGQUIT).  A container's init, its monitor and an attached
command inherit none of it, nor a blocked signal, and they are in a session
of their own, so the terminal's ^C reaches nothing a start half done or a
command began (csrc/launcher.c's lxa_default_signals does the same for the
launcher's children).
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from typing import Any

__all__ = ["defaults", "ignored", "to_defaults"]

_UNCHANGEABLE = (signal.SIGKILL, signal.SIGSTOP)


def ignored() -> set[int]:
    """The signals this process ignores now: what a child would inherit."""
    return {int(sig) for sig in signal.valid_signals()
            if sig not in _UNCHANGEABLE and signal.getsignal(sig) == signal.SIG_IGN}


def to_defaults() -> tuple[dict[int, Any], set[int | signal.Signals]]:
    """This process to a program's signal state, in a session of its own (for a
    worker that forks the container and ends); returns what it replaced: the
    dispositions and the mask."""
    with contextlib.suppress(OSError):  # already a session's leader
        os.setsid()
    saved = {sig: signal.signal(sig, signal.SIG_DFL) for sig in ignored()}
    return saved, signal.pthread_sigmask(signal.SIG_SETMASK, [])


@contextlib.contextmanager
def defaults() -> Iterator[None]:
    """Around a call that forks a child (liblxc's attach): the defaults while it
    forks, this process's own dispositions and mask back after (the session
    stays the new one)."""
    saved, mask = to_defaults()
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        for sig, handler in saved.items():
            signal.signal(sig, handler)
