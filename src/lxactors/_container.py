"""The in-process implementation of :mod:`lxactors.liblxc` (its public face).

Split from it so that the unprivileged proxy (``lxactors._proxy``), a
subclass of :class:`Container`, imports this module and ``liblxc`` imports
both: ``liblxc`` registers the proxy here with :func:`use_proxy`, and
``Container(...)`` in a process that is not root makes one.
"""

from __future__ import annotations

import errno
import math
import os
import select
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from lxactors import _freezer
from lxactors import _validate as v
from lxactors._chroot import overlay_layers, unlink_symlinks_to_store
from lxactors._errlog import HandleLog, log_dir, strip_from_config
from lxactors._errors import ContainerClosedError, LxcError
from lxactors._ffi import NULL, ffi, from_c, lib, take_string, take_string_array
from lxactors._helper import protocol
from lxactors._helperclient import DEFAULT_TIMEOUT, Helper, Reply, helper

__all__ = [
    "Container",
    "AttachResult",
    "Attached",
    "ConsoleFd",
    "Snapshot",
    "LxcError",
    "list_defined_containers",
    "list_active_containers",
    "list_all_containers",
    "get_version",
    "get_global_config_item",
    "default_lxcpath",
    "get_wait_states",
    "config_item_is_supported",
    "has_api_extension",
    "log_init",
    "log_close",
    "CLONE_KEEPNAME",
    "CLONE_KEEPMACADDR",
    "CLONE_SNAPSHOT",
    "CLONE_KEEPBDEVTYPE",
    "CLONE_MAYBE_SNAPSHOT",
    "CLONE_ALLOW_RUNNING",
    "CREATE_QUIET",
    "ATTACH_NO_NEW_PRIVS",
    "ATTACH_REMOUNT_PROC_SYS",
    "use_proxy",
]


@dataclass(frozen=True)
class _Unprivileged:
    container: type[Container]
    lister: Callable[[str, str | os.PathLike[str] | None], list[str]]


_UNPRIVILEGED: list[_Unprivileged] = []


def use_proxy(container: type[Container],
              lister: Callable[[str, str | os.PathLike[str] | None], list[str]]) -> None:
    """Register unprivileged mode's handle class and container lister (``liblxc`` does)."""
    _UNPRIVILEGED[:] = [_Unprivileged(container, lister)]


def _unprivileged() -> _Unprivileged:
    if not _UNPRIVILEGED:
        raise RuntimeError("unprivileged mode needs lxactors.liblxc imported (it registers the proxy)")
    return _UNPRIVILEGED[0]

#: :meth:`Container.clone` flag: keep the hostname (``lxc.uts.name``) of the original.
CLONE_KEEPNAME: int = lib.LXC_CLONE_KEEPNAME
#: :meth:`Container.clone` flag: keep the MAC addresses (new random ones otherwise).
CLONE_KEEPMACADDR: int = lib.LXC_CLONE_KEEPMACADDR
#: :meth:`Container.clone` flag: a copy-on-write snapshot (overlay, btrfs...) instead of a copy.
CLONE_SNAPSHOT: int = lib.LXC_CLONE_SNAPSHOT
#: :meth:`Container.clone` flag: the clone's storage of the original's type.
CLONE_KEEPBDEVTYPE: int = lib.LXC_CLONE_KEEPBDEVTYPE
#: :meth:`Container.clone` flag: snapshot where the storage can, else copy.
CLONE_MAYBE_SNAPSHOT: int = lib.LXC_CLONE_MAYBE_SNAPSHOT
#: :meth:`Container.clone` flag: clone a running container (its files may change meanwhile).
CLONE_ALLOW_RUNNING: int = lib.LXC_CLONE_ALLOW_RUNNING
#: :meth:`Container.create` flag: the template's output is not shown.
CREATE_QUIET: int = lib.LXC_CREATE_QUIET
#: :meth:`Container.attach` flag: ``no_new_privs`` for the command (no setuid gains).
ATTACH_NO_NEW_PRIVS: int = lib.LXC_ATTACH_NO_NEW_PRIVS
#: :meth:`Container.attach` flag: remount /proc and /sys for the command's namespaces.
ATTACH_REMOUNT_PROC_SYS: int = lib.LXC_ATTACH_REMOUNT_PROC_SYS

_BDEV_SPEC_FIELDS = frozenset(
    {"fstype", "fssize", "dir", "zfs.zfsroot", "lvm.vg", "lvm.lv", "lvm.thinpool",
     "rbd.rbdname", "rbd.rbdpool"}
)


@dataclass(frozen=True)
class AttachResult:
    """What a command run by :meth:`Container.attach_run_wait` did."""

    status: int  #: exit code, or -N if killed by signal N
    stdout: bytes
    stderr: bytes
    timed_out: bool = False


@dataclass(frozen=True)
class Snapshot:
    """One snapshot from :meth:`Container.snapshot_list` (``snapN``, its comment file, when, where)."""

    name: str
    comment_pathname: str | None
    timestamp: str | None
    lxcpath: str | None


class ConsoleFd:
    """A console allocated by :meth:`Container.console_getfd`.

    ``ptx`` is the pty's controller side, to read and write; ``fd`` is the
    keep-alive descriptor liblxc hands back: the tty stays allocated to us
    only while it is open.  :meth:`close` closes both.
    """

    def __init__(self, ttynum: int, fd: int, ptx: int) -> None:
        self.ttynum, self.fd, self.ptx = ttynum, fd, ptx

    def close(self) -> None:
        """Close both fds (the tty is then free for another console)."""
        for attr in ("ptx", "fd"):
            fd = getattr(self, attr)
            if fd >= 0:
                os.close(fd)
                setattr(self, attr, -1)

    def __enter__(self) -> ConsoleFd:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ConsoleFd(ttynum={self.ttynum}, fd={self.fd}, ptx={self.ptx})"


class Attached:
    """A command started by :meth:`Container.attach`; :meth:`wait` for its end."""

    def __init__(self, reply: Reply, pid: int) -> None:
        self._reply = reply
        self.pid = pid
        self._result: AttachResult | None = None

    def wait(self, timeout: float | None = None) -> int:
        """Return the exit status (-N for signal N); raise LxcTimeoutError on timeout."""
        if self._result is None:
            r = self._reply.frame(timeout)
            self._reply.close()
            self._result = AttachResult(r["status"], r["stdout"], r["stderr"], r["timed_out"])
        return self._result.status

    def close(self) -> None:
        """Stop waiting for the command: close the reply pipe from the helper."""
        self._reply.close()


#: Config keys already checked, as bytes (get_config_item is called often,
#: with few distinct keys).
_KEYS: dict[str, bytes] = {}


def _checked_key(key: object) -> bytes:
    raw = v.check_key(key)
    if len(_KEYS) < 4096:
        _KEYS[key] = raw  # type: ignore[index]  # check_key accepts str only
    return raw


def _config_item(c: Any, raw: bytes) -> str | None:
    """The value of the (checked) key *raw* on handle *c*; None if liblxc does not know it."""
    # One C call into a per-thread buffer: the common case, 4x faster
    # than asking liblxc for the length first.
    p = lib.lxa_config_item(c, raw)
    if p:
        return ffi.string(p).decode("utf-8", "surrogateescape").removesuffix("\n")  # type: ignore[no-any-return]
    n = c.get_config_item(c, raw, NULL, 0)
    if n < 0:
        return None
    if n == 0:
        return ""
    buf = ffi.new("char[]", n + 1)
    c.get_config_item(c, raw, buf, n + 1)
    # List keys (lxc.environment, lxc.mount.entry...) end each value with a
    # newline; values cannot hold one, so drop the last: "A=1\nB=2".
    text: str = ffi.string(buf).decode("utf-8", "surrogateescape")
    return text.removesuffix("\n")


def _path_arg(path: object | None, what: str = "path") -> str | None:
    return None if path is None else v.check_path(path, what).decode("utf-8", "surrogateescape")


def _required_path(path: object, what: str) -> str:
    """A path that must be given: None would reach liblxc as NULL."""
    return v.check_path(path, what).decode("utf-8", "surrogateescape")


def _c_str(raw: bytes | None) -> Any:
    return NULL if raw is None else raw


class Container:
    """A handle on one container: ``Container(name, path=None)``.

    *path* is the lxcpath (the directory holding containers); ``None`` uses
    liblxc's default.  Close it with :meth:`close` or a ``with`` block.
    ``log=False`` gives it no liblxc log file of its own: it holds no fd,
    and its failures carry no log lines.
    """

    def __new__(cls, name: str, path: str | os.PathLike[str] | None = None,
                *, helper: Helper | None = None, log: bool = True) -> Container:
        # Unprivileged mode (issue 16): the handle lives in the gate, root's.
        if cls is Container and os.geteuid() != 0:
            return super().__new__(_unprivileged().container)
        return super().__new__(cls)

    def __init__(self, name: str, path: str | os.PathLike[str] | None = None,
                 *, helper: Helper | None = None, log: bool = True) -> None:
        raw = v.check_name(name)
        rawpath = None if path is None else v.check_path(path, "lxcpath")
        c = lib.lxc_container_new(raw, _c_str(rawpath))
        if c == NULL:
            raise LxcError(name, "open", "liblxc could not allocate a handle (bad lxcpath?)")
        self._c: Any = ffi.gc(c, lib.lxc_container_put)
        self._name = name
        self._helper = helper
        self._lock = threading.Lock()
        self._daemonize = True
        self._close_all_fds = True
        self._log = HandleLog(name)
        self._own_log = False
        #: A foreground start's reply, still to carry init's wait status.
        self._foreground: Reply | None = None
        self._foreground_status: int | None = None
        if log:  # False: a handle for queries, which holds no fd (its failures carry no lines)
            self._attach_log()
        if not self._call("is_defined"):
            # Embedded default: loopback-only network, not /etc/lxc/default.conf
            # (whose lxcbr0 bridge exists only when lxc-net runs).
            self._c.set_config_item(self._c, b"lxc.net.0.type", b"empty")

    # ------------------------------------------------------------ plumbing

    def _attach_log(self) -> None:
        c = self._c
        if c.get_config_item(c, b"lxc.log.file", NULL, 0) <= 0:
            c.set_config_item(c, b"lxc.log.file", v.encode(self._log.path))
            self._own_log = True

    def _handle(self) -> Any:
        c = self._c
        if c is None:
            raise ContainerClosedError(self._name, "use", "the handle is closed")
        return c

    def _call(self, member: str, *args: Any) -> Any:
        c = self._handle()
        return getattr(c, member)(c, *args)

    def _marked(self, member: str, *args: Any) -> Any:
        """:meth:`_call` with the log marked first: a failure then reports the
        lines of this call only, not those of earlier calls on the handle."""
        self._log.mark()
        return self._call(member, *args)

    def _fail(self, operation: str, message: str = "failed") -> LxcError:
        return LxcError(self._name, operation, message, self._log.read_new())

    def _check(self, operation: str, ok: Any) -> None:
        if not ok:
            raise self._fail(operation)

    def _helper_args(self, *, snapshot: bool = False) -> dict[str, Any]:
        args: dict[str, Any] = {"name": self._name, "path": self.get_config_path(),
                                "log": self._log.path if self._own_log else None}
        if snapshot:
            snap = os.path.join(log_dir(), f"{self._name}.{threading.get_ident()}.conf")
            c = self._handle()
            self._log.mark()
            if not c.save_config(c, v.encode(snap)):
                raise self._fail("save configuration snapshot")
            args["config"] = snap
        return args

    def _via_helper(self, op: type[protocol.HandleRequest], timeout: float | None = DEFAULT_TIMEOUT,
                    snapshot: bool = False, fds: Sequence[int] = (), **extra: Any) -> Any:
        """One request of type *op* (its fields: this handle's and *extra*)."""
        args = self._helper_args(snapshot=snapshot)
        self._log.mark()
        try:
            req = op(**args, **extra)
            return self._get_helper().call(req, fds, container=self._name, timeout=timeout)
        finally:
            if snapshot:
                try:
                    os.unlink(args["config"])
                except OSError:
                    pass

    def _get_helper(self) -> Helper:
        return self._helper if self._helper is not None else helper()

    def set_helper(self, helper: Helper | None) -> None:
        """Run this handle's forking calls in *helper* (None: the process's own)."""
        self._helper = helper

    def log_size(self) -> int:
        """Bytes in this handle's liblxc log so far (see :meth:`log_lines_since`)."""
        return self._log.size()

    def log_lines_since(self, offset: int) -> list[str]:
        """The raw liblxc log lines written from *offset* on."""
        return self._log.lines_since(offset)

    def _reload(self) -> None:
        """Re-read the on-disk config after the helper changed it."""
        c = self._handle()
        c.clear_config(c)
        cfg = self.config_file_name()
        if cfg and os.path.exists(cfg):
            c.load_config(c, v.encode(cfg))
        self._own_log = False
        self._attach_log()

    # ------------------------------------------------------------ lifetime

    @property
    def name(self) -> str:
        """The container's name (it follows :meth:`rename`)."""
        return self._name

    @property
    def closed(self) -> bool:
        """Has :meth:`close` released the liblxc handle?"""
        return self._c is None

    def close(self) -> None:
        """Release the liblxc handle now (idempotent)."""
        with self._lock:
            c, self._c = self._c, None
        if c is not None:
            ffi.release(c)
            self._log.remove()
        if self._foreground is not None:
            self._foreground.close()
            self._foreground = None

    def __enter__(self) -> Container:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._c is None else self.get_config_path()
        return f"<lxactors.liblxc.Container {self._name!r} {state}>"

    # ------------------------------------------------------------ fields

    @property
    def error_string(self) -> str | None:
        """liblxc's last error text (5.0 never sets it; errors carry the log)."""
        return from_c(self._handle().error_string)

    @property
    def error_num(self) -> int:
        """liblxc's error_num.  After a foreground start (``want_daemonize(False)``):
        init's wait status once the container has stopped (what lxc-execute exits with)."""
        c = self._handle()
        fg = self._foreground
        if fg is not None:
            running = self.is_running()
            if not running or select.select([fg.fd], [], [], 0)[0]:
                self._foreground = None
                try:
                    # Stopped: the monitor is at its last step, the status follows.
                    status = fg.frame(10)
                except LxcError:
                    status = None
                finally:
                    fg.close()
                if status is not None:
                    self._foreground_status = int(status)
        if self._foreground_status is not None:
            return self._foreground_status
        return int(c.error_num)

    @property
    def daemonize(self) -> bool:
        """Will :meth:`start` daemonize the container (see :meth:`want_daemonize`)?"""
        return self._daemonize

    # ------------------------------------------------------------ state

    def is_defined(self) -> bool:
        """Does the container exist (a config file in its lxcpath)?  Also ``defined``."""
        return bool(self._call("is_defined"))

    defined = is_defined

    def is_running(self) -> bool:
        """Is the container running (its monitor answers)?  Also ``running``."""
        return bool(self._call("is_running"))

    running = is_running

    def state(self) -> str:
        """The container's state: ``STOPPED``, ``RUNNING``, ``FROZEN``... (see :func:`get_wait_states`)."""
        s = from_c(self._call("state"))
        return s or "STOPPED"

    def init_pid(self) -> int | None:
        """The host pid of the container's init, or None when not running."""
        pid = int(self._call("init_pid"))
        return pid if pid > 0 else None

    def init_pidfd(self) -> int:
        """A pidfd for init (yours to close)."""
        fd = int(self._marked("init_pidfd"))
        if fd < 0:
            raise self._fail("init_pidfd")
        return fd

    def wait(self, state: str, timeout: float = -1) -> bool:
        """Block until the container is in *state*; False if *timeout* passed."""
        raw = v.check_text(state, "state", allow_newline=False)
        if state not in get_wait_states():
            raise ValueError(f"unknown state {state!r}; one of {', '.join(get_wait_states())}")
        t = v.check_timeout(timeout)
        if t == 0:  # liblxc takes 0 as "no limit" (SO_RCVTIMEO 0): check once instead
            return self.state() == state
        # Whole seconds only: round up, so 0 < t < 0.5 does not become 0 (forever).
        return bool(self._call("wait", raw, -1 if t < 0 else math.ceil(t)))

    def may_control(self) -> bool:
        """May the caller control the container (False: its monitor's socket is there and refuses us)?"""
        return bool(self._call("may_control"))

    def freeze(self) -> None:
        """Freeze every process of the container (the freezer cgroup); LxcError if it cannot.

        A v1 freezer left FREEZING is thawed and frozen again (see ``_freezer``)."""
        self._check("freeze", _freezer.freeze(self, lambda: self._marked("freeze")))

    def unfreeze(self) -> None:
        """Thaw a frozen container."""
        self._check("unfreeze", self._marked("unfreeze"))

    # ------------------------------------------------------------ config

    def config_file_name(self) -> str | None:
        """The path of the container's config file (None: liblxc cannot name it)."""
        return take_string(self._call("config_file_name"))

    def get_config_path(self) -> str:
        """The lxcpath this handle looks in (the directory holding containers)."""
        return from_c(self._call("get_config_path")) or ""

    def set_config_path(self, path: str | os.PathLike[str]) -> None:
        """Look for the container in another lxcpath from now on."""
        raw = v.check_path(path, "lxcpath")
        self._check("set_config_path", self._marked("set_config_path", raw))

    def load_config(self, path: str | os.PathLike[str] | None = None) -> None:
        """Load a config file into the handle (None: the container's own)."""
        raw = None if path is None else v.check_path(path, "config file")
        self._check("load_config", self._marked("load_config", _c_str(raw)))
        self._attach_log()

    def save_config(self, path: str | os.PathLike[str] | None = None) -> None:
        """Write the handle's config to *path* (None: the container's own config file)."""
        raw = None if path is None else v.check_path(path, "config file")
        self._check("save_config", self._marked("save_config", _c_str(raw)))
        written = raw.decode("utf-8", "surrogateescape") if raw else self.config_file_name()
        if written and self._own_log:
            strip_from_config(written, self._log.path)

    def get_config_item(self, key: str) -> str:
        """The value of *key* ('' when unset); several values are joined by newlines."""
        raw = _KEYS.get(key) if isinstance(key, str) else None
        if raw is None:
            raw = _checked_key(key)
        c = self._c
        if c is None:
            raise ContainerClosedError(self._name, "use", "the handle is closed")
        text = _config_item(c, raw)
        if text is None:
            raise KeyError(f"container {self._name!r}: unknown config key {key!r}")
        return text

    def set_config_item(self, key: str, value: str) -> None:
        """Set *key* in the handle (a list key gets one more value); :meth:`save_config` keeps it."""
        rk, rv = v.check_key(key), v.check_value(value)
        self._check(f"set_config_item {key}", self._marked("set_config_item", rk, rv))

    def clear_config_item(self, key: str) -> None:
        """Clear config *key* (for a list key, every value) in the handle."""
        rk = v.check_key(key)
        self._check(f"clear_config_item {key}", self._marked("clear_config_item", rk))
        if key in ("lxc.log.file", "lxc.log") or key.startswith("lxc.log.file"):
            self._own_log = False

    def clear_config(self) -> None:
        """Drop the whole config of the handle (before a :meth:`load_config` of another)."""
        self._call("clear_config")
        self._own_log = False
        self._attach_log()

    def get_running_config_item(self, key: str) -> str | None:
        """The value of *key* in the running container's monitor (None: unset, or not running)."""
        raw = v.check_key(key)
        return take_string(self._call("get_running_config_item", raw))

    def get_keys(self, key: str | None = None) -> list[str]:
        """The config keys (under *key*, e.g. ``lxc.net.0``)."""
        raw = None if key is None else v.check_key(key)
        c = self._handle()
        n = c.get_keys(c, _c_str(raw), NULL, 0)
        if n < 0:
            raise KeyError(f"container {self._name!r}: no keys under {key!r}")
        buf = ffi.new("char[]", n + 1)
        c.get_keys(c, _c_str(raw), buf, n + 1)
        text = ffi.string(buf).decode("utf-8", "surrogateescape")
        return [k for k in text.split("\n") if k]

    def get_cgroup_item(self, key: str) -> str:
        """Read a cgroup file of the running container (such as ``pids.max``)."""
        raw = v.check_key(key, "cgroup key")
        c = self._handle()
        self._log.mark()
        n = c.get_cgroup_item(c, raw, NULL, 0)
        if n < 0:
            raise self._fail(f"get_cgroup_item {key}")
        buf = ffi.new("char[]", n + 1)
        c.get_cgroup_item(c, raw, buf, n + 1)
        return ffi.string(buf).decode("utf-8", "surrogateescape")  # type: ignore[no-any-return]

    def set_cgroup_item(self, key: str, value: str) -> None:
        """Write a cgroup file of the running container (such as ``memory.max``)."""
        rk, rv = v.check_key(key, "cgroup key"), v.check_value(value, "cgroup value")
        self._check(f"set_cgroup_item {key}", self._marked("set_cgroup_item", rk, rv))

    def want_daemonize(self, state: bool = True) -> None:
        """Should :meth:`start` daemonize (default True; False: the seed's ``nodaemonize``)?"""
        if not isinstance(state, bool):
            raise TypeError("want_daemonize takes a bool")
        self._daemonize = state
        self._call("want_daemonize", state)

    def want_close_all_fds(self, state: bool = True) -> None:
        """Should :meth:`start` close inherited fds (default True: none reaches the container)?"""
        if not isinstance(state, bool):
            raise TypeError("want_close_all_fds takes a bool")
        self._close_all_fds = state
        self._call("want_close_all_fds", state)

    # ------------------------------------------------------------ lifecycle

    def create(self, template: str | None = "busybox", bdevtype: str | None = None,
               bdevspec: Mapping[str, str | int] | None = None, flags: int = 0,
               argv: Iterable[str] = (), *, timeout: float = 600) -> None:
        """Create the rootfs with *template* (None: config only, no rootfs)."""
        t = None if template is None else v.check_text(template, "template", allow_newline=False).decode()
        b = None if bdevtype is None else v.check_text(bdevtype, "bdevtype", allow_newline=False).decode()
        specs: dict[str, str | int] | None = None
        if bdevspec is not None:
            if not isinstance(bdevspec, Mapping):
                raise TypeError("bdevspec must be a mapping such as {'dir': '/srv/rootfs'}")
            specs = {}
            for field, value in bdevspec.items():
                if field not in _BDEV_SPEC_FIELDS:
                    raise ValueError(f"unknown bdevspec field {field!r}; one of {sorted(_BDEV_SPEC_FIELDS)}")
                if field == "fssize":
                    specs[field] = v.check_int(value, "fssize", low=0, high=2**63 - 1)
                else:
                    specs[field] = v.check_path(value, f"bdevspec {field}").decode()
        f = v.check_int(flags, "flags", low=0, high=lib.LXC_CREATE_QUIET)
        args = [a.decode("utf-8", "surrogateescape") for a in v.check_argv(argv)]
        args_b = [a.encode("utf-8", "surrogateescape") for a in args]
        rootfs = self._existing_rootfs()
        if rootfs is not None:
            raise LxcError(self._name, "create",
                           f"a container of this name already exists (its rootfs {rootfs})")
        self._via_helper(protocol.Create, timeout=v.check_timeout(timeout), snapshot=True,
                         template=t, bdevtype=b, specs=specs, flags=f, argv=args_b)
        self._reload()

    def _existing_rootfs(self) -> str | None:
        """The rootfs of a defined container, if it exists on disk.

        liblxc refuses to create only a container whose rootfs exists: a
        defined one without (``save_config()`` on a new handle, as liblxc's
        clonetest.c and python3-lxc code do) is created.  Its own check
        misses a ``dir:`` or overlay rootfs; this one does not.
        """
        if not self.is_defined():
            return None
        path = self.get_config_item("lxc.rootfs.path")
        if not path:
            return None
        _, sep, rest = path.partition(":")
        # "dir:/p", "overlay:/lower:/upper" (the upper layer is what create makes), "/p"
        where = rest.rsplit(":", 1)[-1] if sep and not path.startswith("/") else path
        return path if os.path.lexists(where) else None

    def createl(self, template: str | None, *argv: str, bdevtype: str | None = None,
                flags: int = 0) -> None:
        """``create(template, bdevtype, None, flags, argv)`` with the template's arguments inline."""
        self.create(template, bdevtype, None, flags, argv)

    def start(self, useinit: bool | int = False, argv: Iterable[str] | None = None,
              *, timeout: float = DEFAULT_TIMEOUT) -> int | None:
        """Boot the container; return its init's host pid (None if init already ended).

        With ``want_daemonize(False)`` the helper's worker stays in the
        foreground as the monitor (the seed's ``nodaemonize``).
        """
        if useinit not in (True, False, 0, 1):
            raise ValueError(f"useinit must be True/False/0/1, not {useinit!r}")
        args = None if argv is None else v.check_argv(argv)
        if args is not None and not args:
            raise ValueError("argv must not be empty (use None for the default init)")
        t = v.check_timeout(timeout)
        extra: dict[str, Any] = {"useinit": bool(useinit), "argv": args,
                                 "daemonize": self._daemonize,
                                 "close_all_fds": self._close_all_fds}
        if self._foreground is not None:
            self._foreground.close()
            self._foreground = None
        self._foreground_status = None
        if not self._daemonize:
            return self._start_foreground(t, extra)
        pid = self._via_helper(protocol.Start, timeout=t, snapshot=True, **extra)
        return None if pid is None else int(pid)

    def start_clone_of(self, base: str, items: Iterable[tuple[str, str | None]] = (),
                       useinit: bool | int = False, argv: Iterable[str] | None = None,
                       *, timeout: float = DEFAULT_TIMEOUT) -> int | None:
        """Make this (new) container an overlay snapshot of the stopped *base*
        in the same lxcpath and start it: lxactors' own, a spawn's clone and
        start in one helper request (one round trip, one config parse).

        *items* are set on the clone's config before the start, in order (a
        value of None clears the key); this handle has them too afterwards,
        as it would after clone, ``set_config_item`` and :meth:`start`.
        Returns init's pid as :meth:`start` does.  A clone that does not
        start is destroyed: no container is left when this raises.
        """
        v.check_name(base, "base name")
        if useinit not in (True, False, 0, 1):
            raise ValueError(f"useinit must be True/False/0/1, not {useinit!r}")
        steps = [(v.check_key(k).decode("utf-8", "surrogateescape"),
                  None if val is None else v.check_value(val).decode("utf-8", "surrogateescape"))
                 for k, val in items]
        args = None if argv is None else v.check_argv(argv)
        if args is not None and not args:
            raise ValueError("argv must not be empty (use None for the default init)")
        t = v.check_timeout(timeout)
        for key, _ in steps:
            # As set_config_item would say, before anything is made (the
            # launcher's child could only say that its start failed).
            if not lib.lxc_config_item_is_supported(v.encode(key)):
                raise LxcError(self._name, f"set_config_item {key}",
                               f"unknown config key {key!r}")
        if not self._daemonize:
            raise LxcError(self._name, "start_clone_of", "a clone is started daemonized only")
        if self.is_defined():
            raise LxcError(self._name, "start_clone_of", "the container already exists")
        try:
            pid = self._via_helper(protocol.CloneStart, timeout=t, base=base,
                                   items=[[key, val] for key, val in steps], argv=args,
                                   useinit=bool(useinit), close_all_fds=self._close_all_fds)
        except LxcError as exc:
            # Named for the half that failed, as clone() or start() would be.
            op = "clone" if exc.message.startswith("clone") else "start"
            raise type(exc)(exc.container, op, exc.message, exc.log) from None
        self._reload()
        c = self._handle()
        for key, val in steps:
            raw = v.encode(key)
            if val is None:
                c.clear_config_item(c, raw)
            else:
                c.set_config_item(c, raw, v.encode(val))
        return None if pid is None else int(pid)

    def _start_foreground(self, timeout: float, extra: dict[str, Any]) -> int | None:
        """A foreground start: its reply stays open for init's wait status (error_num)."""
        args = self._helper_args(snapshot=True)
        self._log.mark()
        try:
            req = protocol.Start(**args, **extra)
            reply = self._get_helper().request(req, container=self._name)
            try:
                pid = reply.frame(timeout)
            except BaseException:
                reply.close()
                raise
        finally:
            try:
                os.unlink(args["config"])
            except OSError:
                pass
        self._foreground = reply
        return None if pid is None else int(pid)

    def startl(self, *argv: str, useinit: bool = False) -> int | None:
        """``start(useinit, argv)`` with init's argv inline (none: the default init)."""
        return self.start(useinit, list(argv) or None)

    def stop(self) -> None:
        """Kill the container (SIGKILL to init) and wait until STOPPED."""
        self._check("stop", self._marked("stop"))

    def shutdown(self, timeout: float = 30) -> bool:
        """Ask init to halt (SIGPWR or lxc.signal.halt); True once STOPPED in time.

        The request is sent again every second while waiting: an init that
        has not yet set up its handler (it has just started) ignores the
        signal, as a pid namespace's init ignores every unhandled signal, and
        liblxc sends it only once.
        """
        t = v.check_timeout(timeout)
        if t == 0:
            return bool(self._call("shutdown", 0)) or not self.is_running()
        deadline = None if t < 0 else time.monotonic() + t
        while True:  # liblxc waits in whole seconds: one second a request
            if self._call("shutdown", 1) or not self.is_running():
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False

    def reboot(self) -> None:
        """Ask init to reboot (SIGINT, or ``lxc.signal.reboot``) without waiting."""
        self._check("reboot", self._marked("reboot"))

    def reboot2(self, timeout: float = 30) -> bool:
        """Reboot and wait for it (True when rebooted within *timeout*)."""
        t = v.check_timeout(timeout)
        return bool(self._call("reboot2", int(t) if t < 0 else round(t)))

    def destroy(self) -> None:
        """Delete the container and its rootfs (it must be stopped)."""
        if not self._destroy_here():
            self._via_helper(protocol.Destroy)
        self._reload()

    def _destroy_here(self) -> bool:
        """Destroy in this process (as python3-lxc does) when liblxc's destroy
        forks nothing; False: the helper must (it saves a round trip and a fork,
        ~2 ms of a temporary container's exit).

        Only as root with the default helper, and only for what liblxc removes
        with plain file calls: no id map (a mapped rootfs is removed inside the
        namespace), no destroy hook, a ``dir:`` or overlay rootfs, no bounded
        layer mounted (the helper unmounts it).  Like the helper, it destroys
        what the saved config says (a fresh handle), never an unsaved rootfs
        path of this one, and unlinks symlinks planted on the way to the store.
        """
        if self._helper is not None or os.geteuid() != 0:
            return False
        self._handle()
        path = self.get_config_path()
        c = lib.lxc_container_new(v.encode(self._name), v.encode(path))
        if c == NULL:
            return False
        try:
            if not c.is_defined(c) or c.is_running(c):
                return False  # the helper reports it, as it always has
            rootfs = _config_item(c, b"lxc.rootfs.path") or ""
            home = os.path.join(path, self._name)
            if (_config_item(c, b"lxc.idmap") or _config_item(c, b"lxc.hook.destroy")
                    or not (rootfs.startswith("dir:") or overlay_layers(rootfs))
                    or os.path.ismount(os.path.join(home, "overlay"))):
                return False
            if self._own_log:
                c.set_config_item(c, b"lxc.log.file", v.encode(self._log.path))
            self._log.mark()
            unlink_symlinks_to_store(rootfs, home)
            if not c.destroy(c):
                raise LxcError(self._name, "destroy", "destroy failed", self._log.read_new())
        finally:
            lib.lxc_container_put(c)
        return True

    def destroy_with_snapshots(self) -> None:
        """Delete the (stopped) container and every snapshot of it."""
        self._via_helper(protocol.DestroyWithSnapshots)
        self._reload()

    def rename(self, newname: str) -> None:
        """Rename the (stopped) container; the handle follows the new name."""
        v.check_name(newname, "new name")
        self._via_helper(protocol.Rename, newname=newname)
        path = self.get_config_path()
        old = self._c
        self._c = ffi.gc(lib.lxc_container_new(v.encode(newname), v.encode(path)),
                         lib.lxc_container_put)
        self._name = newname
        ffi.release(old)
        self._own_log = False
        self._attach_log()

    def clone(self, newname: str, lxcpath: str | os.PathLike[str] | None = None,
              flags: int = 0, bdevtype: str | None = None, bdevdata: str | None = None,
              newsize: int = 0, hookargs: Iterable[str] | None = None,
              *, timeout: float = 600) -> Container:
        """Copy (or with CLONE_SNAPSHOT, snapshot) into a new container."""
        v.check_name(newname, "new name")
        path = _path_arg(lxcpath, "lxcpath")
        f = v.check_int(flags, "flags", low=0, high=(1 << 7) - 1)
        b = None if bdevtype is None else v.check_text(bdevtype, "bdevtype", allow_newline=False).decode()
        d = None if bdevdata is None else v.check_text(bdevdata, "bdevdata", allow_newline=False).decode()
        size = v.check_int(newsize, "newsize", low=0, high=2**63 - 1)
        hooks = None if hookargs is None else v.check_argv(hookargs, "hookargs")
        self._via_helper(protocol.Clone, timeout=v.check_timeout(timeout), snapshot=True,
                         newname=newname, lxcpath=path, flags=f, bdevtype=b, bdevdata=d,
                         newsize=size, hookargs=hooks)
        return Container(newname, path or self.get_config_path())

    # ------------------------------------------------------------ snapshots

    def snapshot(self, commentfile: str | os.PathLike[str] | None = None) -> int:
        """Snapshot the container; return the snapshot number (snapN)."""
        return int(self._via_helper(protocol.Snapshot, commentfile=_path_arg(commentfile, "comment file")))

    def snapshot_list(self) -> list[Snapshot]:
        """The container's snapshots, as :class:`Snapshot` records."""
        c = self._handle()
        out = ffi.new("struct lxc_snapshot **")
        self._log.mark()
        n = c.snapshot_list(c, out)
        if n < 0:
            raise self._fail("snapshot_list")
        snaps = []
        try:
            for i in range(n):
                s = out[0][i]
                snaps.append(Snapshot(from_c(s.name) or "", from_c(s.comment_pathname),
                                      from_c(s.timestamp), from_c(s.lxcpath)))
                s.free(ffi.addressof(out[0][i]))
        finally:
            if n > 0:
                lib.free(out[0])
        return snaps

    def snapshot_restore(self, snapname: str, newname: str | None = None) -> None:
        """Restore snapshot *snapname* as a copy named *newname* (None: replace this container)."""
        v.check_name(snapname, "snapshot name")
        if newname is not None:
            v.check_name(newname, "new name")
        self._via_helper(protocol.SnapshotRestore, snapname=snapname, newname=newname or self._name)
        if newname in (None, self._name):
            self._reload()

    def snapshot_destroy(self, snapname: str) -> None:
        """Delete snapshot *snapname*."""
        v.check_name(snapname, "snapshot name")
        self._via_helper(protocol.SnapshotDestroy, snapname=snapname)

    def snapshot_destroy_all(self) -> None:
        """Delete every snapshot of the container."""
        self._via_helper(protocol.SnapshotDestroyAll)

    # ------------------------------------------------------------ devices, network, mounts

    def add_device_node(self, src_path: str, dest_path: str | None = None) -> None:
        """Make host device *src_path* usable in the running container (at *dest_path*, or the same path)."""
        self._via_helper(protocol.AddDeviceNode, src_path=_required_path(src_path, "device"),
                         dest_path=_path_arg(dest_path, "destination"))

    def remove_device_node(self, src_path: str, dest_path: str | None = None) -> None:
        """Remove a device added with :meth:`add_device_node`."""
        self._via_helper(protocol.RemoveDeviceNode, src_path=_required_path(src_path, "device"),
                         dest_path=_path_arg(dest_path, "destination"))

    def attach_interface(self, dev: str, dst_dev: str | None = None) -> None:
        """Move host network device *dev* into the running container (named *dst_dev* there)."""
        v.check_name(dev, "interface")
        if dst_dev is not None:
            v.check_name(dst_dev, "interface")
        self._via_helper(protocol.AttachInterface, dev=dev, dst_dev=dst_dev)

    def detach_interface(self, dev: str, dst_dev: str | None = None) -> None:
        """Move network device *dev* of the running container back to the host (named *dst_dev*)."""
        v.check_name(dev, "interface")
        if dst_dev is not None:
            v.check_name(dst_dev, "interface")
        self._via_helper(protocol.DetachInterface, dev=dev, dst_dev=dst_dev)

    def get_interfaces(self) -> list[str]:
        """The network interfaces inside the running container."""
        return take_string_array(self._call("get_interfaces"))

    def get_ips(self, interface: str | None = None, family: str | None = None,
                scope: int = 0) -> list[str]:
        """The running container's addresses (on *interface*, of *family* ``inet``/``inet6``, *scope*)."""
        i = None if interface is None else v.check_name(interface, "interface")
        if family not in (None, "inet", "inet6"):
            raise ValueError(f"family must be None, 'inet' or 'inet6', not {family!r}")
        f = None if family is None else family.encode()
        s = v.check_int(scope, "scope", low=0, high=255)
        return take_string_array(self._call("get_ips", _c_str(i), _c_str(f), s))

    def mount(self, source: str | None, target: str, filesystemtype: str | None = None,
              mountflags: int = 0, data: str | None = None) -> None:
        """Mount *source* on *target* inside the running container."""
        self._via_helper(protocol.Mount, snapshot=True, source=_path_arg(source, "source"),
                         target=_required_path(target, "target"),
                         fstype=None if filesystemtype is None else v.check_text(
                             filesystemtype, "filesystem type", allow_newline=False).decode(),
                         flags=v.check_int(mountflags, "mountflags", low=0, high=2**63 - 1),
                         data=None if data is None else v.check_text(data, "mount data").decode())

    def umount(self, target: str, mountflags: int = 0) -> None:
        """Unmount *target* inside the running container."""
        self._via_helper(protocol.Umount, snapshot=True, target=_required_path(target, "target"),
                         flags=v.check_int(mountflags, "mountflags", low=0, high=2**31 - 1))

    # ------------------------------------------------------------ console

    def console_getfd(self, ttynum: int = -1) -> ConsoleFd:
        """Allocate a console tty (-1: the next free one; 0: the console itself)."""
        n = ffi.new("int *", v.check_int(ttynum, "ttynum", low=-1, high=1024))
        ptx = ffi.new("int *", -1)
        self._log.mark()
        fd = int(self._call("console_getfd", n, ptx))
        if fd < 0:
            raise self._fail("console_getfd", f"no console tty {ttynum} (is it running?)")
        os.set_inheritable(fd, False)
        os.set_inheritable(int(ptx[0]), False)
        return ConsoleFd(int(n[0]), fd, int(ptx[0]))

    def console(self, ttynum: int = -1, stdinfd: int = 0, stdoutfd: int = 1,
                stderrfd: int = 2, escape: int = 1) -> None:
        """Run liblxc's interactive console on the given fds until the escape key."""
        fds = [v.check_int(fd, "fd", low=0, high=2**31 - 1) for fd in (stdinfd, stdoutfd, stderrfd)]
        self._via_helper(protocol.Console, timeout=-1, fds=fds,
                         ttynum=v.check_int(ttynum, "ttynum", low=-1, high=1024),
                         escape=v.check_int(escape, "escape", low=1, high=26))

    def console_log(self, clear: bool = False, read: bool = True,
                    read_max: int = 1 << 20) -> bytes:
        """Read (and/or clear) the console ring buffer (lxc.console.buffer.size)."""
        log = ffi.new("struct lxc_console_log *")
        size = ffi.new("uint64_t *", v.check_int(read_max, "read_max", low=0, high=1 << 30))
        log.clear, log.read, log.read_max = bool(clear), bool(read), size
        ret = int(self._marked("console_log", log))
        if ret == -errno.ENODATA:  # an empty ring buffer: nothing written yet, or cleared
            return b""
        if ret < 0:
            raise self._fail("console_log", f"failed ({os.strerror(-ret)})")
        if log.data == NULL:
            return b""
        try:
            return bytes(ffi.buffer(log.data, size[0]))
        finally:
            lib.free(log.data)

    # ------------------------------------------------------------ attach

    def _attach_args(self, argv: Iterable[str], env: Mapping[str, str] | None,
                     clear_env: bool, uid: int | None, gid: int | None,
                     groups: Iterable[int] | None, cwd: str | None, namespaces: int,
                     flags: int) -> dict[str, Any]:
        args = v.check_argv(argv)
        if not args:
            raise ValueError("argv must name a program")
        if env is not None and not isinstance(env, Mapping):
            raise TypeError(f"env must be a mapping of names to values, not {type(env).__name__}")
        if groups is not None and (isinstance(groups, (str, bytes)) or not isinstance(groups, Iterable)):
            raise TypeError(f"groups must be a list of gids, not {type(groups).__name__}")
        environ = {}
        for k, val in (env or {}).items():
            rk = v.check_text(k, "environment name", allow_newline=False)
            if not rk or b"=" in rk:
                raise ValueError(f"bad environment name {k!r}")
            v.check_text(val, f"environment value of {k}")
            environ[k] = val
        return {
            "argv": args, "env": environ, "clear_env": bool(clear_env),
            "uid": None if uid is None else v.check_int(uid, "uid", low=0, high=2**32 - 2),
            "gid": None if gid is None else v.check_int(gid, "gid", low=0, high=2**32 - 2),
            "groups": None if groups is None else [v.check_int(g, "group", low=0, high=2**32 - 2)
                                                   for g in groups],
            "cwd": _path_arg(cwd, "cwd"),
            "namespaces": v.check_int(namespaces, "namespaces", low=-1, high=2**31 - 1),
            "flags": v.check_int(flags, "flags", low=0, high=2**31 - 1),
        }

    def attach_run_wait(self, argv: Iterable[str], *, input: bytes | None = None,
                        env: Mapping[str, str] | None = None, clear_env: bool = False,
                        uid: int | None = None, gid: int | None = None,
                        groups: Iterable[int] | None = None, cwd: str | None = None,
                        namespaces: int = -1, flags: int = 0,
                        timeout: float = DEFAULT_TIMEOUT) -> AttachResult:
        """Run *argv* in the running container; return status, stdout and stderr.

        After *timeout* seconds the command is killed (``timed_out`` is set).
        *input* travels in the request to the helper, so it is small (under
        about 190 KB; more is refused before anything runs): feed more
        through a pipe given to :meth:`attach`.  What the command does not
        read is dropped.
        """
        if input is not None and not isinstance(input, (bytes, bytearray, memoryview)):
            raise TypeError("input must be bytes")
        t = v.check_timeout(timeout)
        args = self._attach_args(argv, env, clear_env, uid, gid, groups, cwd, namespaces, flags)
        req = protocol.Attach(**self._helper_args(), **args, capture=True, input=bytes(input or b""),
                          timeout=t)
        with self._get_helper().request(req, container=self._name) as reply:
            self._log.mark()
            try:
                reply.frame(t + 10 if t >= 0 else None)
            except LxcError as exc:
                exc.log = tuple(exc.log) + tuple(self._log.read_new())
                raise
            r = reply.frame(t + 10 if t >= 0 else None)
        return AttachResult(r["status"], r["stdout"], r["stderr"], r["timed_out"])

    def attach_run_waitl(self, program: str, *args: str, **kw: Any) -> AttachResult:
        """``attach_run_wait([program, *args], **kw)``."""
        return self.attach_run_wait([program, *args], **kw)

    def attach(self, argv: Iterable[str], *, stdin: int | None = None,
               stdout: int | None = None, stderr: int | None = None,
               env: Mapping[str, str] | None = None, clear_env: bool = False,
               uid: int | None = None, gid: int | None = None,
               groups: Iterable[int] | None = None, cwd: str | None = None,
               namespaces: int = -1, flags: int = 0) -> Attached:
        """Start *argv* in the container on the given fds (None: /dev/null)."""
        args = self._attach_args(argv, env, clear_env, uid, gid, groups, cwd, namespaces, flags)
        devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        try:
            fds = [devnull if fd is None else v.check_int(fd, "fd", low=0, high=2**31 - 1)
                   for fd in (stdin, stdout, stderr)]
            req = protocol.Attach(**self._helper_args(), **args, capture=False)
            reply = self._get_helper().request(req, fds, container=self._name)
        finally:
            os.close(devnull)
        try:
            pid = reply.frame(DEFAULT_TIMEOUT)
        except BaseException:
            reply.close()
            raise
        return Attached(reply, int(pid))

    # ------------------------------------------------------------ checkpoint/restore

    def checkpoint(self, directory: str, stop: bool = False, verbose: bool = False) -> None:
        """Dump the running container with CRIU into *directory* (*stop*: stop it after)."""
        self._via_helper(protocol.Checkpoint, directory=_required_path(directory, "directory"),
                         stop=bool(stop), verbose=bool(verbose))

    def restore(self, directory: str, verbose: bool = False) -> None:
        """Start the container again from a CRIU dump in *directory*."""
        self._via_helper(protocol.Restore, directory=_required_path(directory, "directory"),
                         verbose=bool(verbose))

    def migrate(self, cmd: int, directory: str, **opts: Any) -> None:
        """liblxc's migrate (MIGRATE_PRE_DUMP=0, DUMP=1, RESTORE=2, FEATURE_CHECK=3)."""
        self._via_helper(protocol.Migrate, cmd=v.check_int(cmd, "cmd", low=0, high=3),
                         directory=_required_path(directory, "directory"), **opts)

    # ------------------------------------------------------------ seccomp, devpts

    def seccomp_notify_fd(self) -> int:
        """The fd of the container's seccomp notify listener (``lxc.seccomp.notify``)."""
        fd = int(self._marked("seccomp_notify_fd"))
        if fd < 0:
            raise self._fail("seccomp_notify_fd", "no seccomp notify fd (no notify policy?)")
        return fd

    def seccomp_notify_fd_active(self) -> int:
        """The seccomp notify fd of the running container, asked of its monitor."""
        fd = int(self._marked("seccomp_notify_fd_active"))
        if fd < 0:
            raise self._fail("seccomp_notify_fd_active", "no active seccomp notify fd")
        return fd

    def devpts_fd(self) -> int:
        """An fd on the container's devpts (yours to close)."""
        fd = int(self._marked("devpts_fd"))
        if fd < 0:
            raise self._fail("devpts_fd", f"failed ({os.strerror(-fd) if fd < -1 else 'not running?'})")
        return fd


# ---------------------------------------------------------------- free functions


def _list(fn: Any, path: str | os.PathLike[str] | None) -> list[str]:
    if os.geteuid() != 0:  # the lxcpath belongs to root: the gate lists it
        return _unprivileged().lister(fn.__name__.split("_")[1], path)
    raw = None if path is None else v.check_path(path, "lxcpath")
    names = ffi.new("char ***")
    n = fn(_c_str(raw), names, NULL)
    if n < 0:
        raise LxcError(None, fn.__name__, f"cannot list containers in {path!r}")
    return sorted(take_string_array(names[0], n))


def list_defined_containers(path: str | os.PathLike[str] | None = None) -> list[str]:
    """Names of the containers defined in *path* (None: the default lxcpath)."""
    return _list(lib.list_defined_containers, path)


def list_active_containers(path: str | os.PathLike[str] | None = None) -> list[str]:
    """Names of the running containers in *path* (None: the default lxcpath)."""
    return _list(lib.list_active_containers, path)


def list_all_containers(path: str | os.PathLike[str] | None = None) -> list[str]:
    """Names of the containers in *path* that are defined or running."""
    return _list(lib.list_all_containers, path)


def get_version() -> str:
    """liblxc's version, such as ``5.0.2``."""
    return from_c(lib.lxc_get_version()) or ""


def get_global_config_item(key: str) -> str | None:
    """A key of liblxc's global config (``lxc.lxcpath``, ``lxc.default_config``...); None if unset."""
    return from_c(lib.lxc_get_global_config_item(v.check_key(key)))


def default_lxcpath() -> str:
    """The lxcpath used when none is given: liblxc's ``lxc.lxcpath`` (``/var/lib/lxc``);
    in unprivileged mode the user's own (``/var/lib/lxactors/users/UID``)."""
    if os.geteuid() != 0:
        from lxactors._launcher import own_lxcpath

        return own_lxcpath()
    return get_global_config_item("lxc.lxcpath") or "/var/lib/lxc"


_wait_states: tuple[str, ...] = ()


def get_wait_states() -> tuple[str, ...]:
    """The state names :meth:`Container.wait` and :meth:`Container.state` use."""
    global _wait_states
    if not _wait_states:
        n = lib.lxc_get_wait_states(NULL)
        arr = ffi.new("char *[]", n)
        lib.lxc_get_wait_states(ffi.cast("const char **", arr))
        _wait_states = tuple(from_c(arr[i]) or "" for i in range(n))
    return _wait_states


def config_item_is_supported(key: str) -> bool:
    """Does this liblxc know config key *key*?"""
    return bool(lib.lxc_config_item_is_supported(v.check_key(key)))


def has_api_extension(extension: str) -> bool:
    """Does this liblxc have API extension *extension* (such as ``mount_injection_file``)?"""
    return bool(lib.lxc_has_api_extension(v.check_text(extension, "extension", allow_newline=False)))


_log_keep: list[Any] = []


def log_init(file: str | None = None, level: str = "ERROR", prefix: str = "lxactors",
             name: str | None = None, lxcpath: str | None = None, quiet: bool = True) -> None:
    """liblxc's process-wide log (each handle also logs to its own file)."""
    levels = {"TRACE", "DEBUG", "INFO", "NOTICE", "WARN", "ERROR", "CRIT", "ALERT", "FATAL"}
    if level not in levels:
        raise ValueError(f"log level must be one of {sorted(levels)}, not {level!r}")
    log = ffi.new("struct lxc_log *")
    keep = [ffi.new("char[]", v.check_text(x, "log setting", allow_newline=False)) if x else NULL
            for x in (file, level, prefix, name, lxcpath)]
    log.file, log.level, log.prefix, log.name, log.lxcpath = keep
    log.quiet = bool(quiet)
    if lib.lxc_log_init(log) != 0:
        raise LxcError(None, "log_init", f"cannot open the log {file!r}")
    _log_keep[:] = keep


def log_close() -> None:
    """Close liblxc's process-wide log opened by :func:`log_init`."""
    lib.lxc_log_close()
