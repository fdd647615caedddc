"""The ``lxactors.json`` marker: which application a container is for.

tcpvm and imc write it; ``lxactors ls`` reads it.  Both ends are here.  Run
by root, it goes in the container's directory (so it goes with the
container).  Run by an ordinary user, whose lxcpath and containers'
directories are root's (the gate's), it goes in a directory of the user's
own, ``$XDG_RUNTIME_DIR/lxactors-markers`` or ``/tmp/lxactors-markers-UID``
(0700, refused if it is not theirs), one file per lxcpath and name: the
application removes it when the container ends, and ``ls`` removes those
of containers that are gone (an application that was SIGKILLed).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import time
from collections.abc import Collection
from typing import Any

__all__ = ["FILE", "prune", "read", "remove", "write"]

FILE = "lxactors.json"


def _user_dir(make: bool) -> str | None:
    """The ordinary user's marker directory (None: none, or not safely theirs)."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    base = runtime if runtime and os.path.isabs(runtime) else None
    path = (os.path.join(base, "lxactors-markers") if base
            else f"/tmp/lxactors-markers-{os.getuid()}")
    if make:
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
        except OSError:
            return None
    try:
        st = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        return None  # another user's, or a symlink: never written through
    return path


def _tag(lxcpath: str) -> str:
    """A user's markers of one lxcpath start with this."""
    return hashlib.sha256(os.path.realpath(lxcpath).encode()).hexdigest()[:16] + "-"


def _place(lxcpath: str, name: str, make: bool = False) -> str | None:
    """Where the marker of container *name* in *lxcpath* is (None: nowhere to put it)."""
    if os.geteuid() == 0:
        return os.path.join(lxcpath, name, FILE)
    d = _user_dir(make)
    if d is None:
        return None
    return os.path.join(d, f"{_tag(lxcpath)}{name}.json")


def write(lxcpath: str, name: str, kind: str, **fields: Any) -> None:
    """Mark container *name* in *lxcpath* as *kind*'s, from this process (OSError if
    it is gone, or there is nowhere safe to put the marker)."""
    place = _place(lxcpath, name, make=True)
    if place is None:
        raise OSError(f"no marker directory of this user's for {name}")
    marker = {"by": "lxactors", "kind": kind, "pid": os.getpid(), **fields, "since": time.time()}
    fd = os.open(place, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o644)
    with open(fd, "w", encoding="utf-8") as f:
        json.dump(marker, f)


def read(lxcpath: str, name: str) -> dict[str, Any] | None:
    """The marker of container *name* in *lxcpath* (None: none, or not ours)."""
    place = _place(lxcpath, name)
    if place is None:
        return None
    try:
        fd = os.open(place, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with open(fd, encoding="utf-8") as f:
            marker = json.load(f)
    except (OSError, ValueError):
        return None
    if isinstance(marker, dict) and marker.get("by") == "lxactors":
        return marker
    return None


def remove(lxcpath: str, name: str) -> None:
    """The container ended: its marker goes (root's went with its directory)."""
    place = None if os.geteuid() == 0 else _place(lxcpath, name)
    if place is not None:
        try:
            os.unlink(place)
        except OSError:
            pass


def prune(lxcpath: str, names: Collection[str]) -> None:
    """Remove an ordinary user's markers of containers in *lxcpath* not in *names*."""
    if os.geteuid() == 0:
        return
    d = _user_dir(False)
    if d is None:
        return
    tag = _tag(lxcpath)
    for entry in os.listdir(d):
        if entry.startswith(tag) and entry.endswith(".json") \
                and entry[len(tag):-len(".json")] not in names:
            try:
                os.unlink(os.path.join(d, entry))
            except OSError:
                pass
