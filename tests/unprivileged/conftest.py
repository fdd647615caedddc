"""The unprivileged suite: run as an ordinary user through the gate (issue 16).

``tests/test_privsep.py`` makes a test user and a root-owned install, then
runs this directory as that user; a root run of the suite skips it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from lxactors import liblxc

collect_ignore_glob = ["test_*.py"] if os.geteuid() == 0 else []


@pytest.fixture
def names() -> Iterator[list[str]]:
    """Container names the test makes in the user's lxcpath; destroyed after it."""
    made: list[str] = []
    yield made
    for name in reversed(made):  # clones before what they were cloned from
        with liblxc.Container(name) as c:
            if c.is_running():
                c.stop()
            if c.is_defined():
                c.destroy()
