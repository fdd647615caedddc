"""The policy table and the restart intensity, without containers (no root needed)."""

from __future__ import annotations

import pytest

from lxactors._policy import TYPES, Action, Intensity, check_type, on_container_end, on_owner_exit

# The DESIGN.md table, written out: (type, owner exits, ends normally, ends abnormally).
TABLE = [
    ("temporary", Action(stop=True, destroy=True), Action(destroy=True), Action(destroy=True)),
    ("transient", Action(stop=True), Action(), Action(restart=True)),
    ("permanent", Action(), Action(restart=True), Action(restart=True)),
]


def test_table_covers_every_type() -> None:
    assert tuple(row[0] for row in TABLE) == TYPES


@pytest.mark.parametrize(("type_", "owner_exit", "normal", "abnormal"), TABLE)
def test_table(type_: str, owner_exit: Action, normal: Action, abnormal: Action) -> None:
    t = check_type(type_)
    assert on_owner_exit(t) == owner_exit
    assert on_container_end(t, normal=True) == normal
    assert on_container_end(t, normal=False) == abnormal


@pytest.mark.parametrize("type_", TYPES)
@pytest.mark.parametrize("normal", [True, False])
def test_requested_end_never_restarts(type_: str, normal: bool) -> None:
    """exit() or an owner's kill: the container is not brought back, whatever its type."""
    action = on_container_end(check_type(type_), normal, requested=True)
    assert not action.restart and not action.stop
    assert action.destroy == (type_ == "temporary")


@pytest.mark.parametrize("value", ["", "Temporary", "permanent ", None, 1, b"transient"])
def test_check_type_refuses(value: object) -> None:
    with pytest.raises(ValueError, match="type must be one of temporary, transient, permanent"):
        check_type(value)


@pytest.mark.parametrize("type_", TYPES)
def test_check_type_accepts(type_: str) -> None:
    assert check_type(type_) == type_


def test_intensity_refuses_past_the_limit() -> None:
    i = Intensity(restarts=3, period=5.0)
    assert [i.allow(now=t) for t in (0.0, 1.0, 2.0, 3.0)] == [True, True, True, False]
    assert i.count == 3  # a refused restart is not counted


def test_intensity_forgets_restarts_older_than_the_period() -> None:
    i = Intensity(restarts=2, period=5.0)
    assert i.allow(now=0.0) and i.allow(now=4.0)
    assert not i.allow(now=5.0)  # 0.0 is exactly one period old: still within it
    assert i.allow(now=5.5)  # 0.0 has left the window; 4.0 and 5.5 remain
    assert not i.allow(now=6.0)
    assert i.allow(now=9.5)  # 4.0 has left too
    assert i.count == 4


def test_intensity_zero_never_allows() -> None:
    i = Intensity(restarts=0, period=1.0)
    assert not i.allow(now=0.0)
    assert not i.allow(now=100.0)
    assert i.count == 0


def test_intensity_defaults_to_three_in_five_seconds() -> None:
    i = Intensity()
    assert (i.restarts, i.period) == (3, 5.0)
    assert all(i.allow(now=0.1 * k) for k in range(3))
    assert not i.allow(now=4.9)
    assert i.allow(now=5.2)  # the first (0.0) is now more than 5 s old
