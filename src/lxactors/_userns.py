"""The ``userns`` spawn option: root in the container is an unprivileged uid on the host.

A container started with ``lxc.idmap = u 0 START COUNT`` (and the same for
``g``) runs in a user namespace: its uid 0 is host uid START, and a kernel
bug that lets root out of the container leaves it an unprivileged user on
the host.  The ranges must be delegated to root in ``/etc/subuid`` and
``/etc/subgid`` (newuidmap, which liblxc would otherwise use, checks that;
the helper checks it before writing the maps itself): ``userns=True`` takes
root's range from there and delegates one if root has none.
"""

from __future__ import annotations

import errno
import fcntl
import functools
import logging
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["IdMap", "resolve_userns", "default_idmap", "check_delegated", "delegated_line",
           "idmap_of", "delegate", "undelegate", "own_idmap", "unprivileged",
           "reach_problem", "unreachable_dir", "SUBUID", "SUBGID", "DEFAULT_COUNT", "DEFAULT_START"]

log = logging.getLogger("lxactors")

SUBUID = "/etc/subuid"
SUBGID = "/etc/subgid"
#: shadow's lckpwdf(3) lock, so useradd and we never write the files at once.
PWD_LOCK = "/etc/.pwd.lock"
#: 65536 ids: every uid and gid a distribution's userland uses (nobody is 65534).
DEFAULT_COUNT = 65536
#: Where a range delegated by lxactors starts at the earliest (the usual first
#: range useradd hands out, below which system and login users live).
DEFAULT_START = 100000
_MAX_ID = 2**32 - 1  # (uid_t)-1 is "no id"


@dataclass(frozen=True)
class IdMap:
    """Container uids and gids 0..count-1 are host ids uid.. and gid..."""

    uid: int
    gid: int
    count: int

    def __post_init__(self) -> None:
        for what, n in (("uid", self.uid), ("gid", self.gid), ("count", self.count)):
            if isinstance(n, bool) or not isinstance(n, int):
                raise TypeError(f"userns {what} must be an int, not {type(n).__name__}")
        if self.count < 1:
            raise ValueError(f"userns range must hold at least one id, not {self.count}")
        for what, start in (("uid", self.uid), ("gid", self.gid)):
            if start < 1:
                raise ValueError(f"userns {what} range must not include the host's root "
                                 f"(it starts at {start}); that would map root to root")
            if start + self.count > _MAX_ID:
                raise ValueError(f"userns {what} range {start}+{self.count} passes the largest id")

    @property
    def config(self) -> list[tuple[str, str]]:
        """The ``lxc.idmap`` items that run a container in this mapping."""
        return [("lxc.idmap", f"u 0 {self.uid} {self.count}"),
                ("lxc.idmap", f"g 0 {self.gid} {self.count}")]

    @property
    def tag(self) -> str:
        """A short name for the mapping (the cached base's name ends with it)."""
        if self.uid == self.gid:
            return f"{self.uid}-{self.count}"
        return f"{self.uid}-{self.gid}-{self.count}"

    def host_uid(self, uid: int) -> int:
        """The host uid of container uid *uid*."""
        if not 0 <= uid < self.count:
            raise ValueError(f"uid {uid} is outside the container's {self.count} mapped ids")
        return self.uid + uid

    def host_gid(self, gid: int) -> int:
        """The host gid of container gid *gid*."""
        if not 0 <= gid < self.count:
            raise ValueError(f"gid {gid} is outside the container's {self.count} mapped ids")
        return self.gid + gid


def _read_ranges(path: str) -> list[tuple[str, int, int]]:
    """(owner, start, count) of every well-formed line of a subid file."""
    out = []
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return []
    for line in lines:
        parts = line.strip().split(":")
        if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
            continue
        out.append((parts[0], int(parts[1]), int(parts[2])))
    return out


def _root_ranges(path: str) -> list[tuple[int, int]]:
    return [(s, n) for owner, s, n in _read_ranges(path) if owner in ("root", "0")]


def _covers(ranges: Iterable[tuple[int, int]], start: int, count: int) -> bool:
    return any(s <= start and start + count <= s + n for s, n in ranges)


def _first_free(taken: list[tuple[int, int]], count: int) -> int:
    """The lowest start from DEFAULT_START whose *count* ids overlap no range."""
    start = DEFAULT_START
    while True:
        ends = [s + n for s, n in taken if start < s + n and s < start + count]
        if not ends:
            return start
        start = max(ends)


def _append(path: str, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        if os.fstat(fd).st_size:
            with open(path, "rb") as f:
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    line = "\n" + line
        os.write(fd, line.encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def default_idmap(subuid: str = SUBUID, subgid: str = SUBGID,
                  lock: str = PWD_LOCK) -> IdMap:
    """Root's first delegated range of at least 65536 ids; delegated now if absent."""
    try:
        return _default_idmap(subuid, subgid, lock)
    except OSError as exc:
        line = f"root:{DEFAULT_START}:{DEFAULT_COUNT}"
        raise type(exc)(exc.errno, f"cannot read or delegate root's ids in "
                        f"{exc.filename or subuid} ({exc.strerror}): give root a range (such as "
                        f"the line '{line}') in {subuid} and {subgid}, or pass userns=False"
                        ) from exc


def _roots(subuid: str, subgid: str) -> IdMap | None:
    uids = [r for r in _root_ranges(subuid) if r[1] >= DEFAULT_COUNT]
    gids = [r for r in _root_ranges(subgid) if r[1] >= DEFAULT_COUNT]
    return IdMap(uids[0][0], gids[0][0], DEFAULT_COUNT) if uids and gids else None


#: fcntl locks do not exclude the threads of one process.
_delegating = threading.Lock()


def _default_idmap(subuid: str, subgid: str, lock: str) -> IdMap:
    found = _roots(subuid, subgid)  # the usual case: read, no lock
    if found is not None:
        return found
    with _delegating:
        fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            _lock(fd, lock)
            found = _roots(subuid, subgid)  # someone may have been quicker
            if found is not None:
                return found
            # One fresh range, free in both files, keeps uid == gid on the host.
            taken = [(s, n) for f in (subuid, subgid) for _, s, n in _read_ranges(f)]
            start = _first_free(taken, DEFAULT_COUNT)
            for path in (subuid, subgid):
                if not any(n >= DEFAULT_COUNT for _, n in _root_ranges(path)):
                    _append(path, f"root:{start}:{DEFAULT_COUNT}\n")
                    log.warning("user namespaces: delegated ids %d-%d to root in %s",
                                start, start + DEFAULT_COUNT - 1, path)
        finally:
            os.close(fd)  # drops the lock
    found = _roots(subuid, subgid)
    assert found is not None
    return found


def _owner_ranges(path: str, owners: tuple[str, ...]) -> list[tuple[int, int]]:
    return [(s, n) for owner, s, n in _read_ranges(path) if owner in owners]


def delegate(user: str, uid: int, subuid: str = SUBUID, subgid: str = SUBGID,
             lock: str = PWD_LOCK) -> IdMap:
    """The user's range of 65536 ids (delegated now if it has none), also delegated
    to root: the privileged helper maps it (unprivileged mode, issue 16).  Root's
    own range is delegated first, so root's containers never get the user's ids."""
    default_idmap(subuid, subgid, lock)
    owners = (user, str(uid))
    with _delegating:
        fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            _lock(fd, lock)
            mine = [[r for r in _owner_ranges(p, owners) if r[1] >= DEFAULT_COUNT]
                    for p in (subuid, subgid)]
            if not (mine[0] and mine[1]):
                taken = [(s, n) for f in (subuid, subgid) for _, s, n in _read_ranges(f)]
                start = _first_free(taken, DEFAULT_COUNT)
                for path in (subuid, subgid):
                    _append(path, f"{user}:{start}:{DEFAULT_COUNT}\n")
                    _append(path, f"root:{start}:{DEFAULT_COUNT}\n")
                mine = [[(start, DEFAULT_COUNT)], [(start, DEFAULT_COUNT)]]
            for path, (s, n) in zip((subuid, subgid), (mine[0][0], mine[1][0]), strict=True):
                if not _covers(_root_ranges(path), s, n):
                    _append(path, f"root:{s}:{n}\n")
        finally:
            os.close(fd)
    return IdMap(mine[0][0][0], mine[1][0][0], DEFAULT_COUNT)


def undelegate(user: str, uid: int, subuid: str = SUBUID, subgid: str = SUBGID,
               lock: str = PWD_LOCK) -> None:
    """Undo :func:`delegate`: the user's lines, and root's lines for the same ranges."""
    owners = (user, str(uid))
    with _delegating:
        fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            _lock(fd, lock)
            for path in (subuid, subgid):
                mine = {(s, n) for s, n in _owner_ranges(path, owners)}
                if not mine:
                    continue
                with open(path, encoding="utf-8") as f:
                    lines = f.read().splitlines()
                keep = []
                for line in lines:
                    parts = line.strip().split(":")
                    ours = (len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit()
                            and (int(parts[1]), int(parts[2])) in mine
                            and parts[0] in (*owners, "root"))
                    if not ours:
                        keep.append(line)
                tmp = f"{path}.lxactors-tmp"
                with open(tmp, "w", encoding="utf-8") as f:
                    f.write("".join(ln + "\n" for ln in keep))
                os.chmod(tmp, os.stat(path).st_mode & 0o7777)
                os.replace(tmp, path)
        finally:
            os.close(fd)


def _lock(fd: int, path: str, timeout: float = 30.0) -> None:
    """lckpwdf(3)'s lock, waited for at most *timeout* seconds (vipw holds it)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except OSError as exc:
            if exc.errno not in (errno.EACCES, errno.EAGAIN):
                raise
            if time.monotonic() > deadline:
                raise OSError(errno.ETIMEDOUT, f"still locked after {timeout:g} s "
                              "(is vipw or useradd running?)", path) from exc
            time.sleep(0.05)


@functools.cache
def _cached_default() -> IdMap:
    """default_idmap(), read once per process (it only ever adds a range); in
    unprivileged mode the caller's own range, which the admin delegated."""
    if unprivileged():
        return own_idmap()
    return default_idmap()


def unprivileged() -> bool:
    """Whether this process uses lxactors through the privileged helper (it is
    not root): its containers then map its own delegated ids, always."""
    return os.geteuid() != 0


def own_idmap(subuid: str = SUBUID, subgid: str = SUBGID) -> IdMap:
    """An unprivileged caller's range of 65536 ids (``lxactors setup-user``'s)."""
    import pwd

    try:
        owners: tuple[str, ...] = (pwd.getpwuid(os.getuid()).pw_name, str(os.getuid()))
    except KeyError:
        owners = (str(os.getuid()),)
    uids = [r for r in _owner_ranges(subuid, owners) if r[1] >= DEFAULT_COUNT]
    gids = [r for r in _owner_ranges(subgid, owners) if r[1] >= DEFAULT_COUNT]
    if not (uids and gids):
        raise ValueError(f"user namespaces: {owners[0]} has no range of {DEFAULT_COUNT} ids in "
                         f"{subuid} and {subgid}; an admin runs 'lxactors setup-user "
                         f"{owners[0]}'")
    return IdMap(uids[0][0], gids[0][0], DEFAULT_COUNT)


def delegated_line(item: str, subuid: str = SUBUID, subgid: str = SUBGID) -> bool:
    """Whether one ``lxc.idmap`` line (``u|g NSID HOSTID COUNT``) maps only
    host ids delegated to root: what newuidmap and newgidmap check."""
    parts = item.split()
    if len(parts) != 4 or parts[0] not in ("u", "g") or not all(p.isdigit() for p in parts[1:]):
        return False
    host, count = int(parts[2]), int(parts[3])
    return _covers(_root_ranges(subuid if parts[0] == "u" else subgid), host, count)


def check_delegated(idmap: IdMap, subuid: str = SUBUID, subgid: str = SUBGID) -> None:
    """ValueError unless root may map *idmap* (newuidmap would refuse it at start)."""
    for what, path, start in (("uid", subuid, idmap.uid), ("gid", subgid, idmap.gid)):
        if not _covers(_root_ranges(path), start, idmap.count):
            raise ValueError(
                f"userns {what} range {start}-{start + idmap.count - 1} is not delegated to "
                f"root in {path}; add the line 'root:{start}:{idmap.count}' there, "
                f"or pass userns=True for root's own range")


def resolve_userns(value: object) -> IdMap | None:
    """The ``userns`` option as an IdMap (None: no user namespace).

    True takes root's range from /etc/subuid and /etc/subgid; a ``range`` or
    a ``(start, count)`` pair maps the container's ids 0.. to host ids
    start.. (the same start for uids and gids); an :class:`IdMap` is used as
    it is.  Explicit ranges must be delegated to root in both files.
    """
    if value is None or value is False:
        return None
    if value is True:
        return _cached_default()
    if isinstance(value, IdMap):
        idmap = value
    elif isinstance(value, range):
        if value.step != 1:
            raise ValueError(f"userns range must have step 1, not {value.step}")
        idmap = IdMap(value.start, value.start, len(value))
    elif isinstance(value, tuple) and len(value) == 2:
        idmap = IdMap(value[0], value[0], value[1])
    else:
        raise TypeError("userns must be True, False, a range such as range(100000, 165536), "
                        f"a (start, count) pair or an IdMap, not {value!r}")
    check_delegated(idmap)
    return idmap


def unreachable_dir(path: str, idmap: IdMap) -> str | None:
    """The first directory on *path* the container's root cannot search, if any.

    liblxc opens the rootfs from inside the namespace, as the mapped root:
    a private (0700) lxcpath stops it there.  The kernel's rules: "other"
    bits, or owner bits for its uid, group bits for its gid; and capabilities
    (search anything) over files whose owner and group are both mapped.
    """
    def mapped(n: int, first: int) -> bool:
        return first <= n < first + idmap.count

    here = "/"
    for part in [""] + [p for p in os.path.realpath(path).split("/") if p]:
        here = os.path.join(here, part)
        try:
            st = os.stat(here)
        except FileNotFoundError:
            return None  # made later, by us
        if (st.st_mode & 0o001
                or (st.st_uid == idmap.uid and st.st_mode & 0o100)
                or (st.st_gid == idmap.gid and st.st_mode & 0o010)
                or (mapped(st.st_uid, idmap.uid) and mapped(st.st_gid, idmap.gid))):
            continue
        return here
    return None


def reach_problem(path: str, idmap: IdMap) -> str | None:
    """Why the container's root could not reach a rootfs under *path* (None: it can)."""
    blocked = unreachable_dir(path, idmap)
    if blocked is None:
        return None
    return (f"{blocked} is closed to the container's root (host uid {idmap.uid}), which must "
            f"reach its rootfs: chmod o+x {blocked}, or use another lxcpath")


def idmap_of(items: Iterable[str]) -> IdMap | None:
    """The container's mapping of root, from its ``lxc.idmap`` lines.

    None: no user namespace, or one whose root is the host's root (a
    hand-written config may do that); either way root inside is uid 0 outside.
    """
    uid = gid = ucount = gcount = None
    for item in items:
        parts = item.split()
        if len(parts) != 4 or parts[1] != "0" or not all(p.isdigit() for p in parts[1:]):
            continue
        if parts[0] == "u":
            uid, ucount = int(parts[2]), int(parts[3])
        elif parts[0] == "g":
            gid, gcount = int(parts[2]), int(parts[3])
    if not (uid and gid and ucount and gcount):
        return None
    return IdMap(uid, gid, min(ucount, gcount))
