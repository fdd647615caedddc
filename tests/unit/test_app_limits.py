"""The limit and session flags of ``lxactors tcpvm`` and ``lxactors imc``, parsed (no container)."""

from __future__ import annotations

import pytest

from lxactors import Limits
from lxactors.apps import imc, tcpvm
from lxactors.apps.cli import parser
from lxactors.apps.command import UsageError, limits_from, size_text


def test_tcpvm_defaults_are_the_bounds_of_the_issue() -> None:
    args = parser().parse_args(["tcpvm"])
    assert limits_from(args) == tcpvm.DEFAULT_LIMITS == Limits(256, "256M", 1.0, "128M")
    assert (args.idle_timeout, args.max_session, args.max_per_address) == (None, None, 8)


def test_each_bound_is_settable_and_none_turns_it_off() -> None:
    args = parser().parse_args(["tcpvm", "--pids-max", "none", "--memory", "1G", "--cpus", "0.5",
                                "--disk", "NONE", "--idle-timeout", "600", "--max-session",
                                "3600", "--max-per-address", "none"])
    assert limits_from(args) == Limits(pids=None, memory=1 << 30, cpu=0.5, disk=None)
    assert (args.idle_timeout, args.max_session, args.max_per_address) == (600.0, 3600.0, None)
    assert limits_from(parser().parse_args(["tcpvm", "--no-limits"])) is None
    args = parser().parse_args(["imc", "--memory", "none", "--", "true"])
    assert limits_from(args) == imc.DEFAULT_LIMITS.replace(memory=None)
    assert not hasattr(args, "disk")  # imc's writable space is its tmpfs


@pytest.mark.parametrize("argv", [
    ["tcpvm", "--cpus", "fast"], ["tcpvm", "--idle-timeout", "0"], ["tcpvm", "--max-session", "-5"],
    ["tcpvm", "--max-per-address", "1.5"], ["tcpvm", "--pids-max", "many"],
])
def test_bad_values_are_usage_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        parser().parse_args(argv)
    assert e.value.code == 2
    assert "'none' turns it off" in capsys.readouterr().err


def test_values_the_limits_refuse() -> None:
    with pytest.raises(UsageError, match="memory"):
        limits_from(parser().parse_args(["tcpvm", "--memory", "12x"]))
    with pytest.raises(UsageError, match="cpu"):
        limits_from(parser().parse_args(["tcpvm", "--cpus", "0"]))


def test_sizes_shown() -> None:
    assert [size_text(n) for n in (None, 256 << 20, 1 << 30, 1536, 1000)] == [
        "none", "256M", "1G", "1536", "1000"]
