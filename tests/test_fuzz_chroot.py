"""Path safety, fuzzed: chroot specs never reach outside the container, through planted
symlinks or ones swapped in while spawn applies them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any

import pytest

import lxactors
from lxactors._chroot import rootfs_dir
from tests.util import assert_untouched


def test_chroot_planted_symlinks_every_way(spawn: Any, make_container, lxcpath: str,
                                           outside: str, tmp_path: Any) -> None:
    """Spawn with specs through each kind of planted link: refused (LxcError) or replaced,
    never followed; a dir spec's mode is not applied to the link's target."""
    c = make_container()
    rootfs = rootfs_dir(c.get_config_item("lxc.rootfs.path"))
    os.makedirs(os.path.join(rootfs, "srv"))
    os.symlink(outside, os.path.join(rootfs, "srv", "out"))
    os.symlink("../../../../../../../../../.." + outside, os.path.join(rootfs, "srv", "rel"))
    os.symlink(outside, os.path.join(rootfs, "outdir"))
    src = tmp_path / "src"
    src.write_bytes(b"copied")
    blocked = [
        {"dir": ["/srv/out/sub"]},
        {"dir": [("/outdir", 0o777)]},                 # the final component is the link
        {"dir": ["/srv/rel/sub"]},
        {"file": [("/srv/out/f", b"x")]},
        {"file": [("/srv/rel/f", b"x")]},
        {"copy": [(str(src), "/srv/out/c")]},
        {"copy": [(str(src), "/outdir/c")]},
    ]
    for spec in blocked:
        with pytest.raises(lxactors.LxcError, match="symlink") as info:
            lxactors.spawn(c.name, path=lxcpath, chroot=spec)
        assert info.value.operation == "chroot"
        assert_untouched(outside)
    # A hard link to a file outside, and a symlink as the file itself: replaced, not written through.
    victim = tmp_path / "victim"
    victim.write_bytes(b"original")
    os.link(victim, os.path.join(rootfs, "srv", "hard"))
    os.symlink(str(victim), os.path.join(rootfs, "srv", "soft"))
    ref = spawn(c.name, chroot={"file": [("/srv/hard", b"new"), ("/srv/soft", b"new")],
                                "copy": [(str(src), "//srv//./copied")]})
    lxactors.exit(ref, "kill")
    assert victim.read_bytes() == b"original"
    assert not os.path.islink(os.path.join(rootfs, "srv", "soft"))
    with open(os.path.join(rootfs, "srv", "copied"), "rb") as f:
        assert f.read() == b"copied"
    assert_untouched(outside)


# The racer: swaps DIR between a real directory and a symlink to OUTSIDE, as fast as it can.
RACER = r"""
import os, sys, time
d, outside, stop = sys.argv[1], sys.argv[2], float(sys.argv[3])
n = 0
print("started", flush=True)
while time.monotonic() < stop and not os.path.exists(d + ".stop"):
    n += 1
    try:
        if os.path.isdir(d) and not os.path.islink(d):
            os.rename(d, f"{d}.old{n}")
        os.symlink(outside, d)
    except OSError:
        pass
    try:
        os.unlink(d)
        os.mkdir(d)
    except OSError:
        pass
    time.sleep(0.002)  # a directory most of the time, so some specs get through first
print(n)
"""


def test_chroot_symlink_swapped_in_during_spawn(lxcpath: str, make_container, outside: str,
                                                tmp_path: Any) -> None:
    """A process keeps replacing a directory with a symlink to outside while spawn applies
    hundreds of dir/file/copy specs under it: each spawn fails cleanly or succeeds, and
    nothing is ever written outside."""
    c = make_container()
    rootfs = rootfs_dir(c.get_config_item("lxc.rootfs.path"))
    race = os.path.join(rootfs, "race")
    os.mkdir(race)
    src = tmp_path / "src"
    src.write_bytes(b"c" * 5000)
    spec = {"dir": [f"/race/d{i}/e" for i in range(150)],
            "file": [(f"/race/f{i}", b"f" * 2000) for i in range(150)],
            "copy": [(str(src), f"/race/c{i}") for i in range(50)]}
    racer = subprocess.Popen([sys.executable, "-c", RACER, race, outside,
                              str(time.monotonic() + 120)], stdout=subprocess.PIPE, text=True)
    assert racer.stdout is not None
    outcomes = {"failed": 0, "made": 0}
    failed_at: set[str] = set()
    try:
        assert racer.stdout.readline() == "started\n"
        t0 = time.monotonic()
        while sum(outcomes.values()) < 6 or (sum(outcomes.values()) < 20
                                              and time.monotonic() - t0 < 5):
            try:
                ref = lxactors.spawn(c.name, path=lxcpath, chroot=spec)
            except lxactors.LxcError as exc:
                assert exc.operation == "chroot", exc  # a link in the way, or a dir moved away
                failed_at.add(exc.message.split(":")[0])
                outcomes["failed"] += 1
            else:
                lxactors.exit(ref, "kill")
                outcomes["made"] += 1
            assert_untouched(outside)
    finally:
        open(race + ".stop", "w").close()
        out, _ = racer.communicate(timeout=30)
    swaps = int(out or 0)
    assert swaps > 20, f"the racer swapped only {swaps} times during {outcomes}"
    assert outcomes["failed"], f"the race never hit a spawn ({swaps} swaps)"  # seen: 20 of 20, at ~15 specs
    assert_untouched(outside)
    for _d, _dirs, files in os.walk(rootfs):
        assert not [f for f in files if ".lxactors-" in f], "temporary file left"
