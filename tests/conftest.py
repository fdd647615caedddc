"""Real containers in a temporary lxcpath, and a check that nothing is left behind."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import lxactors
from lxactors import _base, liblxc
from lxactors._console import hub
from lxactors._helperclient import helper
from lxactors._supervisor import supervisor
from lxactors._userns import resolve_userns
from tests import leaks
from tests.util import AS_USER, unique_name


@pytest.fixture(scope="session")
def lxcpath() -> Iterator[str]:
    """A private lxcpath for the whole run, removed at the end.

    As an ordinary user (``tests/test_privsep.py`` runs some of root's modules
    as its test user, through the gate: :data:`tests.util.AS_USER`), the
    user's own lxcpath, emptied at the end (the gate made it; it is root's).
    """
    if os.geteuid() != 0 and not AS_USER:
        pytest.skip("real containers need root (tests/test_privsep.py runs some modules as "
                    "an ordinary user)")
    if AS_USER:
        from lxactors._launcher import own_lxcpath

        path = own_lxcpath()
    else:
        path = tempfile.mkdtemp(prefix="lxactors-test-", dir="/var/tmp")
        # Searchable by the mapped root of user-namespaced containers.
        os.chmod(path, 0o711)
    # Made before any leak snapshot: the cached base of unnamed containers and
    # the process-wide singletons (helper process, console thread, supervisor).
    if not AS_USER:  # (the gate refuses a container outside a user namespace)
        _base.ensure_base(path)
    _base.ensure_base(path, resolve_userns(True))
    helper()._ensure()
    hub()
    supervisor()
    yield path
    for name in liblxc.list_active_containers(path):
        with liblxc.Container(name, path) as c:
            c.stop()
    for name in liblxc.list_defined_containers(path):
        with liblxc.Container(name, path) as c:
            c.destroy()
    if not AS_USER:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def base(lxcpath: str) -> str:
    """Name of a stopped busybox container, made once, to clone from."""
    name = "base"
    with liblxc.Container(name, lxcpath) as c:
        if not c.is_defined():
            c.create("busybox")
    return name


@pytest.fixture
def make_container(lxcpath: str, base: str) -> Iterator[Callable[..., liblxc.Container]]:
    """Make a container (an overlay snapshot of the base) that is destroyed after the test."""
    made: list[liblxc.Container] = []

    def make(name: str | None = None, *, start: bool = False) -> liblxc.Container:
        with liblxc.Container(base, lxcpath) as b:
            c = b.clone(name or unique_name(), flags=liblxc.CLONE_SNAPSHOT, bdevtype="overlay")
        made.append(c)
        if start:
            c.start()
        return c

    yield make
    for c in made:
        if c.closed:
            continue
        if c.is_running():
            c.stop()
        if c.is_defined():
            c.destroy()
        c.close()


@pytest.fixture
def extra(lxcpath: str) -> Iterator[list[str]]:
    """Names of further containers a test makes: stopped and destroyed afterwards."""
    names: list[str] = []
    yield names
    for name in reversed(names):
        with liblxc.Container(name, lxcpath) as c:
            if c.is_running():
                c.stop()
            if c.is_defined():
                if c.snapshot_list():
                    c.destroy_with_snapshots()
                else:
                    c.destroy()


@pytest.fixture
def outside(tmp_path: Any) -> Iterator[str]:
    """A directory outside every rootfs; must stay empty (and keep its mode)."""
    d = tmp_path / "outside"
    d.mkdir(mode=0o711)
    os.chmod(d, 0o711)
    yield str(d)


@pytest.fixture(autouse=True)
def nothing_left_behind(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test that leaves a container, mount, monitor, cgroup or fd behind."""
    if "lxcpath" not in request.fixturenames:
        yield
        return
    path = request.getfixturevalue("lxcpath")
    before = leaks.snapshot(path)
    yield
    leaks.assert_same(before, leaks.settle(path, before))


@pytest.fixture
def spawn(lxcpath: str) -> Iterator[Callable[..., lxactors.ContainerRef]]:
    """lxactors.spawn in the test lxcpath; whatever is still alive is killed after."""
    refs: list[lxactors.ContainerRef] = []

    def do_spawn(name: str = "", **options: object) -> lxactors.ContainerRef:
        options.setdefault("path", lxcpath)
        ref = lxactors.spawn(name, **options)
        refs.append(ref)
        return ref

    yield do_spawn
    for ref in refs:
        if ref.alive:
            lxactors.exit(ref, "kill")
        with liblxc.Container(ref.name, lxcpath) as c:
            if c.is_running():
                c.stop()
            if c.is_defined():
                c.destroy()

