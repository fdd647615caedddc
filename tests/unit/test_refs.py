"""Functions of the high-level API that take a ContainerRef refuse anything else,
with a TypeError naming ContainerRef, before any actor or container is involved."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

import lxactors
from tests.fuzzing import FAST, rejected, wrong_type


class NotARef:
    name = "fake"
    path = "/var/tmp"


@FAST
@given(ref=st.one_of(wrong_type, st.text(max_size=5), st.just(NotARef())), data=st.data())
def test_functions_taking_a_ref_reject_anything_else(ref: Any, data: Any) -> None:
    calls: list[tuple[str, Callable[[], Any]]] = [
        ("exit", lambda: lxactors.exit(ref)),
        ("exit kill", lambda: lxactors.exit(ref, "kill")),
        ("send", lambda: lxactors.send(ref, b"x")),
        ("type", lambda: lxactors.type(ref)),
        ("type set", lambda: lxactors.type(ref, "temporary")),
        ("container", lambda: lxactors.container(ref)),
        ("console", lambda: lxactors.console(ref)),
    ]
    what, call = data.draw(st.sampled_from(calls))
    err = rejected(call, what)
    assert isinstance(err, TypeError) and "ContainerRef" in str(err)
