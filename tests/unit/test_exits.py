"""How a container ended, from liblxc's log lines (no container needed)."""

from __future__ import annotations

import signal

from lxactors import ContainerExited
from lxactors._exits import exit_message

PREFIX = "lxc 20261201080000.123 INFO     start - ../src/lxc/start.c:lxc_end:985 - "
ERR = PREFIX + "Child <{}> ended on error ({})"
SIG = PREFIX + "Child <{}> ended on signal Killed ({})"


def test_status_and_signal_of_this_init() -> None:
    assert exit_message("c", [ERR.format(42, 3)], 42) == ContainerExited("c", "error", 3, None)
    assert exit_message("c", [SIG.format(42, 9)], 42) == ContainerExited("c", "signal", None, 9)


def test_status_zero_and_no_line_are_normal() -> None:
    assert exit_message("c", [ERR.format(42, 0)], 42) == ContainerExited("c", "normal", 0, None)
    assert exit_message("c", ["unrelated"], 42) == ContainerExited("c", "normal", 0, None)


def test_sigint_is_a_pid_namespace_poweroff() -> None:
    assert exit_message("c", [SIG.format(7, signal.SIGINT)], 7).reason == "normal"


def test_another_init_is_ignored_unless_the_pid_is_unknown() -> None:
    # An earlier boot's line (a restart) must not be read as this one's end.
    assert exit_message("c", [ERR.format(41, 5)], 42) == ContainerExited("c", "normal", 0, None)
    # pid 0: init ended before its pid was known; any line is its own.
    assert exit_message("c", [ERR.format(41, 5)], 0) == ContainerExited("c", "error", 5, None)


def test_the_last_line_wins_and_a_requested_reason_wins_over_all() -> None:
    lines = [ERR.format(42, 1), SIG.format(42, 15)]
    assert exit_message("c", lines, 42) == ContainerExited("c", "signal", 1, 15)
    assert exit_message("c", lines, 42, "kill").reason == "kill"
