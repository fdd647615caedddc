"""Fuzzing the public names made for applications: bad input is TypeError/ValueError.

(The high-level API's fuzzing is in test_fuzz_api; the helpers used here in tests/fuzzing.)
Only wrong input is drawn: nothing here may build a base or write /etc/subuid.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

import lxactors
from tests.fuzzing import FAST, rejected, wrong_type
from tests.test_fuzz_api import BAD_OPTIONS

not_str = wrong_type.filter(lambda x: not isinstance(x, str))
not_idmap = wrong_type.filter(lambda x: x is not None)


@FAST
@given(st.data())
def test_spawn_options_refuses_what_spawn_refuses(data: st.DataObject) -> None:
    keys = data.draw(st.lists(st.sampled_from(sorted(BAD_OPTIONS)), min_size=1, max_size=3,
                              unique=True))
    options = {k: data.draw(BAD_OPTIONS[k], label=k) for k in keys}
    rejected(lambda: lxactors.spawn_options(**options), f"spawn_options({options!r})")


def test_spawn_options_refuses_unknown_and_owner() -> None:
    rejected(lambda: lxactors.spawn_options(no_such_option=1), "unknown option")
    rejected(lambda: lxactors.spawn_options(owner=None), "owner is not an option")


@FAST
@given(st.one_of(not_str, st.just("a/"), st.just("x\0"), st.just("." * 3),
                 st.just("p" * 70)))
def test_random_name_prefix(prefix: Any) -> None:
    rejected(lambda: lxactors.random_name(prefix), f"random_name({prefix!r})")


def test_random_name_is_a_valid_random_name() -> None:
    names = {lxactors.random_name("imc-") for _ in range(50)}
    assert len(names) == 50 and all(n.startswith("imc-") and len(n) == 12 for n in names)


@FAST
@given(st.one_of(wrong_type.filter(lambda x: x not in (None, False, True)),
                 st.just(range(100000, 100010, 2)), st.just((0, 10)), st.just((1, 0)),
                 st.just(("a", 1))))
def test_resolve_userns(value: Any) -> None:
    rejected(lambda: lxactors.resolve_userns(value), f"resolve_userns({value!r})")


@FAST
@given(not_idmap)
def test_as_owner(owner: Any) -> None:
    rejected(lambda: lxactors.as_owner(owner), f"as_owner({owner!r})")


@FAST
@given(not_idmap)
def test_base_name(idmap: Any) -> None:
    rejected(lambda: lxactors.base_name(idmap), f"base_name({idmap!r})")


@FAST
@given(st.one_of(st.tuples(st.one_of(not_str.filter(lambda x: x is not None),
                                     st.just(""), st.just("a\0b")), st.none(), st.just("busybox")),
                 st.tuples(st.none(), not_idmap, st.just("busybox")),
                 st.tuples(st.none(), st.none(), st.one_of(not_str, st.just("a\nb")))))
def test_ensure_base(args: tuple[Any, Any, Any]) -> None:
    path, idmap, template = args
    rejected(lambda: lxactors.ensure_base(path, idmap, template), f"ensure_base{args!r}")


@FAST
@given(wrong_type)
def test_limit_events(ref: Any) -> None:
    rejected(lambda: lxactors.limit_events(ref), f"limit_events({ref!r})")


not_number = st.one_of(st.booleans(), st.binary(max_size=5), st.lists(st.integers(), max_size=2),
                       st.just(object()), st.just(1j), st.text(max_size=3))
not_size = st.one_of(not_number.filter(lambda x: not isinstance(x, str)), st.floats(),
                     st.integers(max_value=0), st.integers(min_value=1 << 62),
                     st.text(alphabet="xyz-.+ ", max_size=4), st.sampled_from(["1.5G", "1e9", "M"]))


@FAST
@given(st.one_of(
    st.tuples(st.just("pids"), st.one_of(not_number, st.floats(), st.integers(max_value=0),
                                         st.integers(min_value=(1 << 22) + 1))),
    st.tuples(st.just("cpu"), st.one_of(not_number, st.floats().filter(
        lambda c: not 0.01 <= c <= 4096))),
    st.tuples(st.sampled_from(["memory", "disk"]), not_size),
    st.tuples(st.just("nope"), st.integers())))
def test_limits(field: tuple[str, Any]) -> None:
    name, value = field
    rejected(lambda: lxactors.Limits(**{name: value}), f"Limits({name}={value!r})")
