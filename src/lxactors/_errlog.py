"""Per-handle liblxc log files: where the reasons for a failure are read.

liblxc 5.0 never fills ``error_string``; it writes its reasons to the log of
the container being operated on (``lxc.log.file``, thread-local in liblxc),
and the daemonized monitor keeps writing there after ``start`` returns.  Each
handle gets its own file under a private per-process directory, so the lines
read after a failure belong to that container.  The line is kept out of
config files written to disk (:func:`strip_from_config`).
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import stat
import tempfile
from itertools import count

from lxactors._singleton import PerProcess

__all__ = ["HandleLog", "is_noise", "log_dir", "report_lines", "strip_from_config",
           "sweep_stale_log_dirs"]

_seq = count()
#: Upper bound on what is read back for one error: the last lines matter.
_MAX_READ = 64 * 1024
_MAX_LINES = 20
#: Levels left out of error reports (the log runs at INFO so that init's exit
#: status, which liblxc logs at INFO, can be read).
_QUIET = ("INFO ", "NOTICE ", "DEBUG ", "TRACE ")
#: Lines that say nothing about a failure, or mislead: the helper keeps
#: newuidmap and newgidmap off liblxc's PATH on purpose (see
#: _helper.start._write_id_maps_directly); lxc-start, which the helper may start
#: containers with, gives command-line advice; the monitor cgroups it cannot
#: remove then, the helper removes (_helper.cgroups.remove_monitor_cgroups); a user
#: namespace's cgroup chown warns about files this kernel does not have.
_NOISE = ("newuidmap binary is missing", "newgidmap binary is missing",
          "The container failed to start", "run the container in foreground mode",
          "Additional information can be obtained by setting", "cgfsng_monitor_destroy")


def is_noise(line: str) -> bool:
    """A log line that would mislead in an error report."""
    if "cgfsng.c:fchowmodat" in line:
        return "No such file or directory" in line
    return any(n in line for n in _NOISE)


#: What :func:`tempfile.mkdtemp` makes for :func:`_make_log_dir`: the pid, then 8 random characters.
_LOG_DIR_NAME = re.compile(r"lxactors-(\d+)-[a-z0-9_]{8}")


def sweep_stale_log_dirs(tmp: str) -> list[str]:
    """Remove from *tmp* the log directories of this user's lxactors processes
    that are gone without their exit handler (SIGKILLed, an ``os._exit``);
    return them.  A live pid's directory is left alone: a process that reuses a
    dead one's pid makes its own, with another name."""
    removed: list[str] = []
    try:
        names = os.listdir(tmp)
    except OSError:
        return removed
    for name in names:
        m = _LOG_DIR_NAME.fullmatch(name)
        if m is None or os.path.exists(f"/proc/{m.group(1)}"):
            continue
        path = os.path.join(tmp, name)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid():
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _make_log_dir() -> str:
    sweep_stale_log_dirs(tempfile.gettempdir())
    path = tempfile.mkdtemp(prefix=f"lxactors-{os.getpid()}-")
    atexit.register(shutil.rmtree, path, True)
    return path


_dir = PerProcess(_make_log_dir)


def log_dir() -> str:
    """This process's private log directory (made on first use, removed at exit)."""
    return _dir.get()


class HandleLog:
    """One handle's log file and how far it has been read."""

    __slots__ = ("_offset", "path")

    def __init__(self, name: str) -> None:
        self.path = os.path.join(log_dir(), f"{next(_seq)}-{name}.log")
        self._offset = 0

    def mark(self) -> None:
        """Skip what is already there: the next read shows only newer lines."""
        try:
            self._offset = os.stat(self.path).st_size
        except OSError:
            self._offset = 0

    def size(self) -> int:
        try:
            return os.stat(self.path).st_size
        except OSError:
            return 0

    def read_new(self) -> list[str]:
        """Return the error and warning lines written since the last mark or read."""
        try:
            with open(self.path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                start = max(self._offset, size - _MAX_READ)
                f.seek(start)
                data = f.read(size - start)
        except OSError:
            return []
        self._offset = size
        return report_lines(data.decode("utf-8", "replace").splitlines())

    def lines_since(self, offset: int, limit: int = 1 << 20) -> list[str]:
        """Every raw line written from byte *offset* on (at most *limit* bytes)."""
        try:
            with open(self.path, "rb") as f:
                f.seek(offset)
                return f.read(limit).decode("utf-8", "replace").splitlines()
        except OSError:
            return []

    def remove(self) -> None:
        try:
            os.unlink(self.path)
        except OSError:
            pass


_LINE = re.compile(
    r"^\S+ (?:\S+ )?\d{14}\.\d+ +(TRACE|DEBUG|INFO|NOTICE|WARN|ERROR|CRIT|ALERT|FATAL) +(.*)$"
)


def report_lines(raw: list[str]) -> list[str]:
    """The lines of a liblxc log that belong in an error report: errors and
    warnings, shortened, without noise, the last few."""
    lines = [_shorten(line) for line in raw]
    return [line for line in lines
            if line and not line.startswith(_QUIET) and not is_noise(line)][-_MAX_LINES:]


def _shorten(line: str) -> str:
    """Drop liblxc's prefix, name and timestamp: keep level, place and message."""
    m = _LINE.match(line.strip())
    return f"{m.group(1)} {m.group(2)}" if m else line.strip()


def strip_from_config(config_file: str, log_path: str | None = None) -> None:
    """Remove our ``lxc.log.file`` line from a config file liblxc wrote.

    Matches only paths in a lxactors log directory (``log_path`` or any
    ``/tmp/lxactors-*``), so a user's own ``lxc.log.file`` is kept.
    """
    prefix = os.path.join(tempfile.gettempdir(), "lxactors-")
    try:
        with open(config_file, encoding="utf-8", errors="surrogateescape") as f:
            lines = f.readlines()
    except OSError:
        return
    kept = []
    for line in lines:
        key, sep, value = line.partition("=")
        if sep and key.strip() == "lxc.log.file":
            value = value.strip()
            if value == log_path or value.startswith(prefix):
                continue
        kept.append(line)
    if len(kept) != len(lines):
        tmp = f"{config_file}.lxactors-tmp"
        with open(tmp, "w", encoding="utf-8", errors="surrogateescape") as f:
            f.writelines(kept)
        os.replace(tmp, config_file)
