"""What the fuzz modules share: strategies of bad input, guards for one call, the world.

Each call gets wrong types, NUL bytes, huge strings, odd unicode (lone
surrogates, RTL marks, combining marks), negative and huge numbers or
unknown config keys, and must answer TypeError / ValueError / KeyError /
LxcError with a message (never crash, hang, or accept it), changing nothing
on disk (``world``).  Fixed lists of bad arguments are in test_validation.py;
these are drawn by hypothesis, with few examples each, so the modules stay fast.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

import lxactors
from lxactors import liblxc

ALLOWED = (TypeError, ValueError, KeyError, lxactors.LxcError)
FAST = settings(max_examples=100, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow, HealthCheck.data_too_large])
#: Messages that are Python's, not a validator's: they explain nothing to the caller.
UNHELPFUL = re.compile(r"object has no attribute|unsupported operand|not subscriptable|"
                       r"object is not iterable|cannot be interpreted as an integer|'NoneType' object")
#: Seconds any single call may take before it counts as a hang.
HANG = 60.0

_pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="fuzz-call")


def bounded(call: Callable[[], Any]) -> Any:
    """Run *call* (in a worker thread); fail if it takes HANG seconds."""
    future = _pool.submit(call)
    try:
        return future.result(timeout=HANG)
    except concurrent.futures.TimeoutError:
        pytest.fail(f"call hung for {HANG} s")


def rejected(call: Callable[[], Any], what: str = "") -> BaseException:
    """*call* must raise one of ALLOWED, with a helpful message."""
    try:
        result = bounded(call)
    except ALLOWED as exc:
        msg = str(exc)
        assert msg.strip(), f"{what}: {type(exc).__name__} without a message"
        assert not UNHELPFUL.search(msg), f"{what}: unhelpful message {msg[:300]!r}"
        return exc
    pytest.fail(f"{what}: accepted, returned {result!r}")


def settled(call: Callable[[], Any], what: str = "") -> Any:
    """*call* may succeed (odd but valid input) or raise one of ALLOWED; nothing else."""
    try:
        return bounded(call)
    except ALLOWED as exc:
        assert str(exc).strip(), f"{what}: {type(exc).__name__} without a message"
        return exc


# --------------------------------------------------------------------------- strategies

ODD = [
    "\ud800", "a\udfffb", "\udc80",                     # lone surrogates (only some encode)
    "\u202eevil", "a\u200fb", "\u061c",                  # RTL override, RTL mark, ALM
    "e\u0301\u0302\u0303", "\u0300", "\u0489" * 40,      # combining marks
    "\u200b", "\ufeff", "\U0001f600", "\uffff", "\x85",  # zero width, BOM, emoji, NEL
    "\uff41\uff42\uff43", "\u01c5", "\u0130",              # full width, titlecase, dotted I
]
odd_text = st.one_of(st.sampled_from(ODD), st.text(min_size=1, max_size=40),
                     st.lists(st.sampled_from(ODD), min_size=1, max_size=5).map("".join))
huge_text = st.sampled_from(["x" * 100_000, "\u202e" * 50_000, "é" * 70_000, "/" * 4097,
                             "a/" * 3000, "lxc." + "k" * 70_000])
wrong_type = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70),
                       st.floats(allow_nan=True), st.binary(max_size=20),
                       st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=3),
                                                                            st.integers(), max_size=2),
                       st.just(object()), st.just(bytearray(b"x")), st.just(1j))
not_str = wrong_type
with_nul = st.builds(lambda a, b: f"{a}\0{b}", st.text(max_size=10), st.text(max_size=10))
with_newline = st.builds(lambda a, nl, b: f"{a}{nl}{b}", st.text(max_size=10),
                         st.sampled_from(["\n", "\r"]), st.text(max_size=10))
surrogate = st.sampled_from(["\ud800", "a\udbffz", "\ud83d"])  # never encodable


def bad_text(newline_ok: bool = False) -> st.SearchStrategy[Any]:
    """Never acceptable where text is wanted."""
    parts = [not_str, with_nul, surrogate]
    if not newline_ok:
        parts.append(with_newline)
    return st.one_of(*parts)


bad_name = st.one_of(
    bad_text(),
    st.just(""), st.sampled_from([".", "..", ".hidden", "a/b", "../x", "a b", "a\tb", "a\x7f"]),
    st.text(min_size=1, max_size=10).map(lambda s: s + "/" + s),
    st.text(min_size=65, max_size=80).filter(lambda s: len(s.encode("utf-8", "surrogatepass")) > 64),
    huge_text,
)
bad_key = st.one_of(bad_text(), st.just(""), st.sampled_from(["lxc.uts.name = x", "a=b", "a b"]))
bad_value = bad_text()
bad_path = st.one_of(bad_text(), st.just(""), st.binary(min_size=1, max_size=10))
bad_timeout = st.one_of(
    st.none(), st.text(max_size=3), st.booleans(), st.binary(max_size=3),
    st.sampled_from([float("nan"), float("inf"), float("-inf"), -2, -1.5, -(2**40), 2**31, 1e300]),
    st.integers(max_value=-2), st.integers(min_value=2**31),
)


def bad_int(low: int, high: int) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), st.text(max_size=3), st.floats(), st.booleans(), st.binary(max_size=2),
                     st.integers(max_value=low - 1), st.integers(min_value=high + 1),
                     st.sampled_from([low - 1, high + 1, -(2**64), 2**64]))


bad_argv = st.one_of(st.none(), st.integers(), st.text(), st.binary(),
                     st.lists(st.one_of(st.none(), st.integers(), st.binary(max_size=3), with_nul,
                                        surrogate), min_size=1, max_size=3))
not_bool = st.one_of(st.none(), st.integers(), st.text(max_size=3), st.floats(), st.just([]))
unknown_key = st.builds(lambda a, b: f"lxc.{a}.fuzz{b}",
                        st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12),
                        st.integers(0, 10**6))


# --------------------------------------------------------------------------- world


@dataclass(frozen=True)
class World:
    """What a rejected call must not change."""

    listing: tuple[str, ...]
    tree: tuple[tuple[str, int, int], ...]
    config: str
    defined: tuple[str, ...]
    active: tuple[str, ...]


def world(lxcpath: str, name: str | None = None) -> World:
    """The lxcpath's listing, and one container's tree and config file (hash)."""
    tree: list[tuple[str, int, int]] = []
    digest = ""
    if name is not None:
        home = os.path.join(lxcpath, name)
        for d, dirs, files in os.walk(home):
            if os.path.relpath(d, home) == "overlay":
                # overlayfs' work dir is the kernel's scratch space: files come
                # and go there while the container runs (a race, not a change).
                dirs[:] = [x for x in dirs if x != "work"]
            for n in dirs + files:
                p = os.path.join(d, n)
                st_ = os.lstat(p)
                tree.append((os.path.relpath(p, home), st_.st_mode, st_.st_size))
        with open(os.path.join(home, "config"), "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
    return World(tuple(sorted(os.listdir(lxcpath))), tuple(sorted(tree)), digest,
                 tuple(liblxc.list_defined_containers(lxcpath)),
                 tuple(liblxc.list_active_containers(lxcpath)))
