"""The signal state the helper's children start from: a program's defaults.

An ignored signal stays ignored across fork and exec.  The helper ignores the
user's ^C, hangups and SIGTERM, Python ignores SIGPIPE and SIGXFSZ, and
whoever started the user's process may have ignored more (a shell's `&`
ignores SIGINT and SIGQUIT).  A container's init, its monitor and an attached
command inherit none of it (csrc/launcher.c's lxa_default_signals does the
same for the launcher's children).
"""

from __future__ import annotations

import signal

__all__ = ["ignored"]

_UNCHANGEABLE = (signal.SIGKILL, signal.SIGSTOP)


def ignored() -> set[int]:
    """The signals this process ignores now: what a child would inherit."""
    return {int(sig) for sig in signal.valid_signals()
            if sig not in _UNCHANGEABLE and signal.getsignal(sig) == signal.SIG_IGN}
