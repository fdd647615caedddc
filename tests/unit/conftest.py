"""Keeps the unit folder root-free: a test here that asks for a real container fails."""

from __future__ import annotations

import pytest

#: Fixtures of tests/conftest.py that make or need real containers (and root).
_REAL = ("lxcpath", "base", "make_container", "spawn", "extra")


@pytest.fixture(autouse=True)
def no_real_containers(request: pytest.FixtureRequest) -> None:
    used = [f for f in _REAL if f in request.fixturenames]
    if used:
        pytest.fail(f"tests/unit must not use {used}: real containers belong beside tests/unit")


@pytest.fixture(autouse=True)
def root_semantics(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests check root's logic (as nobody): not unprivileged mode's (issue 16),
    which tests/unprivileged covers as a real user."""
    monkeypatch.setattr("lxactors._userns.unprivileged", lambda: False)
    monkeypatch.setattr("lxactors._options.unprivileged", lambda: False)
