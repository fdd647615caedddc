"""Path safety: destroying a container never deletes outside it, through a symlink
swapped in for its storage.
"""

from __future__ import annotations

import os
import shutil
from typing import Any

import pytest

import lxactors
from lxactors import liblxc
from tests.util import unique_name

# --------------------------------------------------------------------------- path safety: destroy


PLANTED = ("sentinel", "sub/deeper", "delta/sentinel")  # delta: what overlay/delta resolves to


def plant(outside: str) -> None:
    for p in PLANTED:
        os.makedirs(os.path.dirname(os.path.join(outside, p)), exist_ok=True)
        with open(os.path.join(outside, p), "w") as f:
            f.write("keep me")


def planted(outside: str) -> bool:
    return all(os.path.isfile(os.path.join(outside, p)) for p in PLANTED)


def swap_for_link(path: str, outside: str) -> None:
    """Replace the directory *path* (and what is in it) with a symlink to *outside*."""
    shutil.rmtree(path)
    os.symlink(outside, path)


@pytest.mark.parametrize("where", ["rootfs", "overlay/delta", "overlay", "dir-rootfs"])
def test_destroy_never_deletes_outside_through_a_symlink(where: str, lxcpath: str, base: str,
                                                         outside: str) -> None:
    """The container's storage (its rootfs dir, its overlay upper, or a directory above it)
    replaced by a symlink to a directory outside: destroy removes the container, and the
    directory outside keeps every file."""
    plant(outside)
    name = unique_name("symrm")
    with liblxc.Container(base, lxcpath) as b:
        if where == "dir-rootfs":
            c = b.clone(name, bdevtype="dir")
        else:
            c = b.clone(name, flags=liblxc.CLONE_SNAPSHOT, bdevtype="overlay")
    home = os.path.join(lxcpath, name)
    try:
        swap_for_link(os.path.join(home, "rootfs" if where == "dir-rootfs" else where), outside)
        c.destroy()
        assert not c.is_defined()
        assert planted(outside), f"deleted outside: {os.listdir(outside)}"
        assert name not in os.listdir(lxcpath)
    finally:
        for link in ("rootfs", "overlay/delta", "overlay"):
            if os.path.islink(os.path.join(home, link)):
                os.unlink(os.path.join(home, link))
        if c.is_defined():
            c.destroy()
        c.close()
        shutil.rmtree(home, ignore_errors=True)


def test_temporary_container_deleted_through_a_symlinked_upper_layer(spawn: Any, lxcpath: str,
                                                                     outside: str) -> None:
    """The policy's destroy (a temporary exited) goes through the same guard."""
    plant(outside)
    ref = spawn()
    home = os.path.join(lxcpath, ref.name)
    delta = os.path.join(home, "overlay", "delta")
    os.rename(delta, delta + ".moved")  # it is mounted: move it aside rather than delete it
    os.symlink(outside, delta)
    exited = lxactors.exit(ref, "kill")
    assert exited is not None
    assert planted(outside), f"deleted outside: {os.listdir(outside)}"
    assert ref.name not in liblxc.list_all_containers(lxcpath)
    if os.path.exists(home):  # liblxc does not know the moved directory
        shutil.rmtree(home)
