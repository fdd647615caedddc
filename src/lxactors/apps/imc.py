"""imc: run a command in an "immutable" container.

The erlxc ``imc`` example, in Python.  Each command gets a fresh container
whose root is an empty directory made with ``chroot`` specs, mounted
read-only; the host's ``/bin /lib /lib64 /usr /sbin /etc/alternatives`` (those
that exist) are bind-mounted read-only, nosuid and nodev; ``/tmp`` and the
home directory are tmpfs; ``/dev`` holds only the usual character devices
(and a device cgroup denies the rest); every capability is dropped.  The
container runs in a user namespace (``userns=False`` turns it off), so even
its root is an unprivileged uid on the host.  The command runs as a random
unprivileged uid/gid with no supplementary groups and ``no_new_privs``.
When it ends the container is destroyed and its root directory removed:
nothing is left behind.

Where erlxc discarded the output, imc delivers it: :class:`Stdout` and
:class:`Stderr` messages as it comes (flow controlled), then one
:class:`Exited`, to an owner (a pykka ``ActorRef``, an
:class:`lxactors.Mailbox`, or by default the :class:`Imc` object itself,
read with :meth:`Imc.receive` or by iteration).  :func:`run` is the blocking
form: ``status, stdout, stderr = imc.run(["id", "-u"])``.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import secrets
import selectors
import shutil
import signal
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from types import TracebackType
from typing import TYPE_CHECKING, Any, NamedTuple, cast

import lxactors
from lxactors import IdMap, LxcError, LxcTimeoutError, Mailbox, Owner
from lxactors.apps import marker
from lxactors.apps.command import UsageError, key_value, say, signals

if TYPE_CHECKING:
    from lxactors import liblxc
    from lxactors.apps.command import Subparsers

__all__ = [
    "ALLOWED_DEVICES",
    "DEFAULT_BINDS",
    "DEFAULT_WINDOW",
    "Exited",
    "Imc",
    "ImcMessage",
    "ImcTimeoutError",
    "NS_UID_LOW",
    "Pool",
    "Result",
    "Stderr",
    "Stdout",
    "UID_HIGH",
    "UID_LOW",
    "register",
    "run",
    "spawn",
]

log = logging.getLogger("lxactors")

#: Host directories bind-mounted read-only (those that exist).
DEFAULT_BINDS: tuple[str, ...] = ("/bin", "/lib", "/lib64", "/usr", "/sbin", "/etc/alternatives")

#: Character devices the device cgroup allows: null, zero, full, random,
#: urandom, tty, ptmx and the pts.
ALLOWED_DEVICES: tuple[str, ...] = (
    "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm",
    "c 5:0 rwm", "c 5:2 rwm", "c 136:* rwm",
)

USER = "imc"
HOME = f"/home/{USER}"
PATH = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin"
#: Random uids/gids are drawn from [UID_LOW, UID_HIGH) (without a user
#: namespace), or from [NS_UID_LOW, the mapped count - 2) (with one: below
#: nobody, 65534, which holds every unmapped id).
UID_LOW, UID_HIGH = 200_000, 2_000_000_000
NS_UID_LOW = 1000
#: Output bytes in flight to an owner that has not processed them (the console's default).
DEFAULT_WINDOW = lxactors.FlowWindow.DEFAULT_SIZE
_HOSTNAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,61}[A-Za-z0-9])?")


# ---------------------------------------------------------------- messages


@dataclass(frozen=True)
class Stdout:
    """Bytes the command wrote to its standard output, in order."""

    container: str
    data: bytes


@dataclass(frozen=True)
class Stderr:
    """Bytes the command wrote to its standard error, in order."""

    container: str
    data: bytes


@dataclass(frozen=True)
class Exited:
    """The command ended and its container is gone (the last message).

    ``status`` is the exit code, or ``-N`` when a signal N killed it (a
    timeout or :meth:`Imc.kill` gives ``-9``).
    """

    container: str
    status: int
    timed_out: bool = False

    @property
    def signal(self) -> int | None:
        return -self.status if self.status < 0 else None

    def __str__(self) -> str:
        if self.status >= 0:
            how = f"status {self.status}"
        else:
            try:
                how = f"signal {signal.Signals(-self.status).name}"
            except ValueError:
                how = f"signal {-self.status}"
        extra = ", timed out" if self.timed_out else ""
        return f"imc {self.container!r} exited ({how}{extra})"


ImcMessage = Stdout | Stderr | Exited


class Result(NamedTuple):
    """What :func:`run` returns: ``status, stdout, stderr = run(...)``."""

    status: int
    stdout: bytes
    stderr: bytes


class ImcTimeoutError(LxcTimeoutError):
    """:func:`run`'s command did not finish in time; it was killed.

    ``stdout`` and ``stderr`` hold what it wrote until then.
    """

    stdout: bytes = b""
    stderr: bytes = b""


# ---------------------------------------------------------------- configuration


def _device_cgroup_prefix() -> str:
    """``lxc.cgroup`` on a host with the cgroup v1 devices controller, else ``lxc.cgroup2``."""
    return "lxc.cgroup" if os.path.exists("/sys/fs/cgroup/devices/devices.list") else "lxc.cgroup2"


def _check_host_dir(path: str) -> str:
    if not isinstance(path, str) or not path.startswith("/"):
        raise ValueError(f"bind paths must be absolute host paths, not {path!r}")
    if any(c.isspace() for c in path) or "\0" in path:
        raise ValueError(f"bind path must not contain whitespace: {path!r}")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise ValueError(f"bind path must name a directory below /, without '..': {path!r}")
    return "/".join(parts)


def _inside(binds: Sequence[str], candidates: Sequence[str]) -> str | None:
    """The first candidate that exists on the host and is visible through *binds*."""
    for cand in candidates:
        if os.path.exists(cand) and any(cand == "/" + b or cand.startswith("/" + b + "/")
                                        for b in binds):
            return cand
    return None


def _size(value: str) -> str:
    if not isinstance(value, str) or not value or not value.rstrip("kmgKMG%").isdigit():
        raise ValueError(f"tmpfs size must look like '64m', '1g' or '10%', not {value!r}")
    return value


@dataclass(frozen=True)
class _Plan:
    name: str
    lxcpath: str
    uid: int
    gid: int
    command: list[str]
    argv: list[str]
    init: list[str]
    config: list[tuple[str, str] | str]
    chroot: dict[str, list[Any]]
    userns: IdMap | None


def _ids(uid: int | None, gid: int | None, idmap: IdMap | None) -> tuple[int, int]:
    """The command's uid and gid: random and unprivileged unless given."""
    low, high = (UID_LOW, UID_HIGH) if idmap is None else (NS_UID_LOW, idmap.count - 2)
    if uid is None:
        if high <= low:
            raise ValueError(f"userns maps only {high + 2} ids, too few to draw an unprivileged "
                             f"uid from [{low}, {high}): give uid=")
        uid = secrets.randbelow(high - low) + low
    gid = uid if gid is None else gid
    top = 2**32 - 1 if idmap is None else idmap.count
    for what, n in (("uid", uid), ("gid", gid)):
        if isinstance(n, bool) or not isinstance(n, int) or not 0 < n < top:
            where = "" if idmap is None else f" inside the {idmap.count} ids userns maps"
            raise ValueError(f"{what} must be a positive int (not root){where}, not {n!r}")
    return uid, gid


def _plan(cmd: Sequence[str], *, path: str | None, uid: int | None, gid: int | None,
          env: Mapping[str, str] | None, binds: Sequence[str], tmpfs_size: str,
          bridge: str | None, address: str | None, gateway: str | None,
          config: Sequence[tuple[str, str]], hostname: str | None, userns: object) -> _Plan:
    if isinstance(cmd, (str, bytes)) or not isinstance(cmd, Sequence) or not cmd:
        raise TypeError("cmd must be a non-empty list of str, such as ['id', '-u']")
    argv = [str(a) if isinstance(a, os.PathLike) else a for a in cmd]
    if not all(isinstance(a, str) and "\0" not in a for a in argv):
        raise TypeError("cmd must be a list of str without NUL")
    if "=" in argv[0]:
        raise ValueError(f"the program name must not contain '=': {argv[0]!r}")
    idmap = lxactors.resolve_userns(userns)
    uid, gid = _ids(uid, gid, idmap)
    size = _size(tmpfs_size)
    if path:
        lxcpath = os.path.abspath(path)
    else:
        from lxactors import liblxc

        lxcpath = liblxc.default_lxcpath()
    rel_binds = [_check_host_dir(b) for b in binds]
    present = [b for b in rel_binds if os.path.exists("/" + b)]
    envbin = _inside(present, ("/usr/bin/env", "/bin/env"))
    sleep = _inside(present, ("/usr/bin/sleep", "/bin/sleep"))
    if envbin is None or sleep is None:
        raise ValueError("imc needs the host's env and sleep inside the container: "
                         "bind /usr or /bin")
    environ = {"HOME": HOME, "USER": USER, "LOGNAME": USER, "SHELL": "/bin/sh",
               "PATH": PATH, "LANG": "C.UTF-8"}
    for k, val in (env or {}).items():
        if not isinstance(k, str) or not k or "=" in k or "\0" in k:
            raise ValueError(f"bad environment name {k!r}")
        if not isinstance(val, str) or "\0" in val:
            raise ValueError(f"environment value of {k} must be str without NUL")
        environ[k] = val
    # The environment goes through env(1), not the attach options: see
    # the report on _helper.op_attach (extra_env_vars is freed too early).
    full = [envbin, "-i", "--", *(f"{k}={val}" for k, val in environ.items()), *argv]

    name = lxactors.random_name("imc-")
    host = hostname or name
    if not _HOSTNAME.fullmatch(host):
        raise ValueError(f"hostname must be letters, digits, '-' and '.' (at most 63): {host!r}")
    cfg: list[tuple[str, str] | str] = [
        ("lxc.rootfs.path", "dir:" + os.path.join(lxcpath, name, "rootfs")),
        ("lxc.rootfs.options", "ro,nosuid,nodev"),
        ("lxc.uts.name", host),
        ("lxc.autodev", "1"),
        ("lxc.mount.auto", "proc:mixed sys:ro"),
        ("lxc.tty.max", "0"),
        ("lxc.pty.max", "16"),
        ("lxc.console.path", "none"),
        ("lxc.cap.keep", "none"),
    ]
    for b in present:
        cfg.append(("lxc.mount.entry", f"/{b} {b} none ro,bind,nosuid,nodev 0 0"))
    cfg.append(("lxc.mount.entry", f"tmpfs tmp tmpfs rw,nosuid,nodev,mode=1777,size={size} 0 0"))
    cfg.append(("lxc.mount.entry", f"tmpfs {HOME[1:]} tmpfs rw,nosuid,nodev,mode=0700,"
                                   f"uid={uid},gid={gid},size={size} 0 0"))
    dev = _device_cgroup_prefix()
    cfg.append((f"{dev}.devices.deny", "a"))
    cfg.extend((f"{dev}.devices.allow", d) for d in ALLOWED_DEVICES)
    if bridge is not None:
        cfg += ["lxc.net", ("lxc.net.0.type", "veth"), ("lxc.net.0.link", bridge),
                ("lxc.net.0.flags", "up"), ("lxc.net.0.name", "eth0")]
        if address is not None:
            cfg.append(("lxc.net.0.ipv4.address", address))
        if gateway is not None:
            cfg.append(("lxc.net.0.ipv4.gateway", gateway))
    elif address is not None or gateway is not None:
        raise ValueError("an address or gateway needs a bridge")
    cfg.extend(config)

    dirs = [b for b in present] + ["dev", "proc", "sys", "tmp", "home", HOME[1:], "root",
                                   "etc", "run", "var", "var/tmp"]
    files = [
        ("etc/passwd", f"root:x:0:0:root:/root:/bin/sh\n{USER}:x:{uid}:{gid}::{HOME}:/bin/sh\n"),
        ("etc/group", f"root:x:0:\n{USER}:x:{gid}:\n"),
        ("etc/hostname", f"{host}\n"),
        ("etc/hosts", f"127.0.0.1\tlocalhost\n127.0.1.1\t{host}\n::1\tlocalhost\n"),
        ("etc/nsswitch.conf", "passwd: files\ngroup: files\nhosts: files dns\n"),
    ]
    return _Plan(name, lxcpath, uid, gid, argv, full, [sleep, "2147483647"], cfg,
                 {"dir": dirs, "file": files}, idmap)


def _mounted_under(path: str) -> bool:
    prefix = path.rstrip("/") + "/"
    with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
        for line in f:
            mnt = line.split()[4].replace("\\040", " ")
            if mnt == path or mnt.startswith(prefix):
                return True
    return False


def _remove_dir(path: str) -> None:
    """Remove a container directory liblxc left, never across a mount."""
    if not os.path.lexists(path):
        return
    if _mounted_under(path):
        log.warning("imc: not removing %s: something is mounted under it", path)
        return
    shutil.rmtree(path, ignore_errors=True)


# ---------------------------------------------------------------- the running command


class Imc:
    """A command running in its immutable container (see :func:`spawn`)."""

    def __init__(self, plan: _Plan, owner: Owner, private: bool, window: int) -> None:
        self.name = plan.name
        self.path = plan.lxcpath
        self.uid = plan.uid
        self.gid = plan.gid
        #: The command's uid and gid as the host sees them.
        self.host_uid = plan.uid if plan.userns is None else plan.userns.host_uid(plan.uid)
        self.host_gid = plan.gid if plan.userns is None else plan.userns.host_gid(plan.gid)
        self.command = plan.command
        self.owner = owner
        self._private = private
        self._window = lxactors.FlowWindow(window)
        self._done = threading.Event()
        self._killed = threading.Event()
        self._lock = threading.Lock()
        self._ref: lxactors.ContainerRef | None = None
        self._exited: Exited | None = None
        self._thread: threading.Thread | None = None

    # -- public

    @property
    def container_dir(self) -> str:
        return os.path.join(self.path, self.name)

    @property
    def done(self) -> bool:
        """Has the command ended and its container gone?"""
        return self._done.is_set()

    @property
    def exited(self) -> Exited | None:
        return self._exited

    @property
    def ref(self) -> lxactors.ContainerRef | None:
        """The container (while it runs), for :func:`lxactors.container` and the like."""
        return self._ref

    def receive(self, timeout: float | None = None) -> ImcMessage:
        """The next message (``queue.Empty`` after *timeout*); only with the default owner."""
        if not self._private:
            raise LxcError(self.name, "receive", "messages go to the owner given to spawn()")
        return cast(ImcMessage, cast(Mailbox, self.owner).get(timeout))

    def __iter__(self) -> Iterator[ImcMessage]:
        """Messages until (and with) :class:`Exited`."""
        while True:
            m = self.receive()
            yield m
            if isinstance(m, Exited):
                return

    def wait(self, timeout: float | None = None) -> int:
        """Block until the command ended and its container is gone; its status.

        With the default owner, read the messages too (or output past the
        flow-control window blocks the command).
        """
        if not self._done.wait(timeout):
            raise LxcTimeoutError(self.name, "wait", f"still running after {timeout:g} s")
        assert self._exited is not None
        return self._exited.status

    def kill(self) -> None:
        """Kill the command now (it exits with -9) and remove its container."""
        self._killed.set()
        self._window.wake()
        self._exit_container()

    def __enter__(self) -> Imc:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        if not self._done.is_set():
            self.kill()
        self._done.wait(60)

    def __repr__(self) -> str:
        state = str(self._exited) if self._exited else "running"
        return f"<Imc {self.name!r} {self.command!r} {state}>"

    # -- internals

    def _exit_container(self) -> None:
        ref = self._ref
        if ref is not None and ref.alive:
            try:
                lxactors.exit(ref, "kill")
            except LxcError as exc:
                log.warning("imc %s: exit failed: %s", self.name, exc)

    def _deliver(self, message: Stdout | Stderr) -> bool:
        """Hand output to the owner within the window; False if it is gone."""
        killed = self._killed.is_set
        if not self._window.wait_room(lambda: killed() or not self.owner.alive()) \
                and not killed():
            return False
        # (Once killed, what is left in the pipes is delivered regardless:
        # at most a pipe buffer each.)
        return self._window.deliver(self.owner, cast(Any, message), len(message.data))

    def _pump(self, outs: dict[int, type[Stdout] | type[Stderr]], stdin: int,
              data: bytes) -> None:
        sel = selectors.DefaultSelector()
        try:
            for fd in outs:
                sel.register(fd, selectors.EVENT_READ)
            view = memoryview(data)
            if stdin >= 0:
                if view:
                    os.set_blocking(stdin, False)
                    sel.register(stdin, selectors.EVENT_WRITE)
                else:
                    os.close(stdin)
                    stdin = -1
            while outs or stdin >= 0:
                for key, _ in sel.select():
                    fd = int(key.fd)
                    if fd == stdin:
                        try:
                            view = view[os.write(fd, view[:65536]):]
                        except BlockingIOError:
                            continue
                        except OSError:
                            view = view[:0]
                        if not view:
                            sel.unregister(fd)
                            os.close(fd)
                            stdin = -1
                        continue
                    chunk = os.read(fd, 65536)
                    if not chunk:
                        sel.unregister(fd)
                        os.close(fd)
                        del outs[fd]
                    elif not self._deliver(outs[fd](self.name, chunk)):
                        log.info("imc %s: owner gone; killing the command", self.name)
                        self.kill()
        finally:
            sel.close()
            for fd in [*outs, stdin]:
                if fd >= 0:
                    with contextlib.suppress(OSError):
                        os.close(fd)

    def _start(self, plan: _Plan, input: bytes | None, timeout: float | None,
               cwd: str | None, boot_timeout: float,
               booted: lxactors.ContainerRef | None = None) -> None:
        from lxactors import liblxc

        if booted is None:
            self._ref = _boot(plan, lxactors.Mailbox(), boot_timeout, self.host_uid)
        else:  # from a pool: booted for this plan's uid, gid and shape
            self._ref = booted
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(self.container_dir, marker.FILE))
                marker.write(self.container_dir, "imc", uid=self.host_uid, command=plan.command)
        pipes: list[int] = []
        try:
            out_r, out_w = os.pipe2(os.O_CLOEXEC)
            pipes += [out_r, out_w]
            err_r, err_w = os.pipe2(os.O_CLOEXEC)
            pipes += [err_r, err_w]
            in_r = in_w = -1
            if input is not None:
                in_r, in_w = os.pipe2(os.O_CLOEXEC)
                pipes += [in_r, in_w]
            attached = lxactors.container(self._ref).attach(
                plan.argv, stdin=None if in_r < 0 else in_r, stdout=out_w, stderr=err_w,
                uid=plan.uid, gid=plan.gid, groups=[], clear_env=True,
                cwd=cwd or HOME, flags=liblxc.ATTACH_NO_NEW_PRIVS)
        except BaseException:
            for fd in pipes:
                os.close(fd)
            self._exit_container()
            _remove_dir(self.container_dir)
            raise
        for fd in (out_w, err_w, in_r):
            if fd >= 0:
                os.close(fd)
        self._thread = threading.Thread(
            target=self._run, args=(attached, {out_r: Stdout, err_r: Stderr}, in_w,
                                    bytes(input or b""), timeout),
            name=f"imc-{plan.name}", daemon=True)
        self._thread.start()

    def _run(self, attached: liblxc.Attached,
             outs: dict[int, type[Stdout] | type[Stderr]], stdin: int, data: bytes,
             timeout: float | None) -> None:
        status = -signal.SIGKILL
        timed_out = False
        pump = threading.Thread(target=self._pump, args=(outs, stdin, data),
                                name=f"imc-{self.name}-io", daemon=True)
        pump.start()
        try:
            try:
                status = attached.wait(timeout)
            except LxcTimeoutError:
                timed_out = True
                self._killed.set()
                self._exit_container()
                status = attached.wait(60)
            # Anything the command left running dies with its container, and
            # with it the last writer of the pipes.
            self._exit_container()
            pump.join()
        except LxcError as exc:  # e.g. the helper's worker was killed: status unknown
            log.warning("imc %s: %s", self.name, str(exc).splitlines()[0])
            self._exit_container()
            pump.join(10)
        except BaseException:
            log.exception("imc %s", self.name)
            self._exit_container()
            pump.join(10)
        finally:
            attached.close()
            _remove_dir(self.container_dir)
            self._exited = Exited(self.name, status, timed_out)
            self._ref = None
            self.owner.deliver(cast(Any, self._exited))
            self._done.set()


def _boot(plan: _Plan, owner: Owner, boot_timeout: float, host_uid: int,
          command: list[str] | None = None) -> lxactors.ContainerRef:
    """Make and start *plan*'s container (its root built from chroot specs)."""
    container_dir = os.path.join(plan.lxcpath, plan.name)
    os.makedirs(plan.lxcpath, exist_ok=True)
    os.mkdir(container_dir, 0o755)
    try:
        os.mkdir(os.path.join(container_dir, "rootfs"), 0o755)
        marker.write(container_dir, "imc", uid=host_uid,
                     command=plan.command if command is None else command)
        return lxactors.spawn(
            plan.name, path=plan.lxcpath, type="temporary", owner=owner,
            config=plan.config, create={"template": None}, chroot=plan.chroot,
            start={"argv": plan.init}, console=False, timeout=boot_timeout,
            userns=plan.userns or False)
    except BaseException:
        _remove_dir(container_dir)
        raise


class Pool:
    """imc containers booted ahead: ``spawn(cmd, pool=p)`` attaches the
    command to one at once, where a cold spawn builds, creates and starts.

    *options* are :func:`spawn`'s that shape a container (``path``,
    ``binds``, ``tmpfs_size``, ``bridge``, ``address``, ``gateway``,
    ``config``, ``userns``).  Each pooled container's random uid and gid
    are drawn when it boots (so a command from a pool cannot choose its
    own, nor a hostname).  Until handed over the containers belong to the
    pool (see :class:`lxactors.Pool`): its end, its owner's, the
    interpreter's or a SIGKILL destroy them.
    """

    SHAPE = frozenset({"path", "binds", "tmpfs_size", "bridge", "address", "gateway",
                       "config", "userns"})

    def __init__(self, size: int, *, refill: int = 2, owner: object = None,
                 boot_timeout: float = 60.0, **options: Any) -> None:
        unknown = sorted(set(options) - self.SHAPE)
        if unknown:
            raise TypeError(f"imc.Pool: {', '.join(unknown)} cannot be chosen ahead of the "
                            f"command (the pool's options: {', '.join(sorted(self.SHAPE))})")
        self._shape = {"binds": DEFAULT_BINDS, "tmpfs_size": "64m", "bridge": None,
                       "address": None, "gateway": None, "config": (), "path": None,
                       "userns": True, **options}
        self._plan_for(["true"])  # bad options fail here, not in the refill
        self._boot_timeout = boot_timeout
        self._lock = threading.Lock()
        self._plans: dict[str, _Plan] = {}
        self._pool = lxactors.Pool(size, refill=refill, owner=owner, factory=self._make)

    def _plan_for(self, cmd: Sequence[str], env: Mapping[str, str] | None = None,
                  uid: int | None = None, gid: int | None = None) -> _Plan:
        return _plan(cmd, uid=uid, gid=gid, env=env, hostname=None, **self._shape)

    def _make(self, owner: Owner) -> lxactors.ContainerRef:
        plan = self._plan_for(["true"])
        host_uid = plan.uid if plan.userns is None else plan.userns.host_uid(plan.uid)
        ref = _boot(plan, owner, self._boot_timeout, host_uid, command=[])
        with self._lock:
            self._plans[ref.name] = plan
        return ref

    @property
    def ready(self) -> int:
        """Containers booted and waiting for a command."""
        return self._pool.ready

    def take(self, cmd: Sequence[str], env: Mapping[str, str] | None
             ) -> tuple[_Plan, lxactors.ContainerRef]:
        """A booted container (cold if none is ready) and the plan of *cmd* in it."""
        ref = self._pool.spawn(owner=lxactors.Mailbox())
        with self._lock:
            booted = self._plans.pop(ref.name)
        mine = self._plan_for(cmd, env, booted.uid, booted.gid)
        return replace(booted, command=mine.command, argv=mine.argv), ref

    def close(self) -> None:
        """Destroy the containers not taken (idempotent)."""
        self._pool.close()

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------- entry points


def spawn(cmd: Sequence[str], *, owner: object = None, path: str | None = None,
          uid: int | None = None, gid: int | None = None,
          env: Mapping[str, str] | None = None, cwd: str | None = None,
          input: bytes | None = None, timeout: float | None = None,
          binds: Sequence[str] = DEFAULT_BINDS, tmpfs_size: str = "64m",
          bridge: str | None = None, address: str | None = None, gateway: str | None = None,
          config: Sequence[tuple[str, str]] = (), hostname: str | None = None,
          window: int = DEFAULT_WINDOW, boot_timeout: float = 60.0,
          userns: object = True, pool: Pool | None = None) -> Imc:
    """Start *cmd* in a new immutable container; return at once.

    The owner (a pykka ``ActorRef``, an :class:`lxactors.Mailbox`, or None
    for the returned :class:`Imc` itself) gets :class:`Stdout`,
    :class:`Stderr`, then :class:`Exited` once the container is gone.

    *uid*/*gid*: random unprivileged ids when None.  *env* adds to a small
    clean environment (HOME, USER, PATH...).  *cwd* defaults to the tmpfs
    home.  *input* is fed to stdin (None: /dev/null).  After *timeout*
    seconds the command is killed.  *binds*: host directories bind-mounted
    read-only.  *bridge*/*address*/*gateway*: a veth on that bridge with
    that IPv4 address (CIDR); without, the container has loopback only.
    *config*: more ``(key, value)`` liblxc config items.  *userns*: as
    :func:`lxactors.spawn`'s (True: root's range; False: no user namespace,
    the command's uid is then a host uid).  *uid* and *gid* are the ids
    inside; :attr:`Imc.host_uid` is what the host sees.  *pool*: an
    :class:`imc.Pool <Pool>` whose containers shape the command's (its
    options, and a uid, gid and hostname of its own, stand for those here).
    """
    if input is not None and not isinstance(input, (bytes, bytearray, memoryview)):
        raise TypeError("input must be bytes")
    if timeout is not None and (isinstance(timeout, bool) or not timeout > 0):
        raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ValueError(f"window must be a positive int, not {window!r}")
    booted = None
    if pool is not None:
        if not isinstance(pool, Pool):
            raise TypeError(f"pool must be an imc.Pool, not {type(pool).__name__}")
        if uid is not None or gid is not None or hostname is not None:
            raise ValueError("a pooled container's uid, gid and hostname are drawn when it "
                             "boots: give them without a pool")
        plan, booted = pool.take(cmd, env)
    else:
        plan = _plan(cmd, path=path, uid=uid, gid=gid, env=env, binds=binds,
                     tmpfs_size=tmpfs_size, bridge=bridge, address=address, gateway=gateway,
                     config=config, hostname=hostname, userns=userns)
    private = owner is None
    who: Owner = Mailbox() if owner is None else lxactors.as_owner(owner)
    imc = Imc(plan, who, private, window)
    imc._start(plan, None if input is None else bytes(input), timeout, cwd, boot_timeout,
               booted)
    return imc


def run(cmd: Sequence[str], *, timeout: float | None = None, input: bytes | None = None,
        **options: Any) -> Result:
    """Run *cmd* in an immutable container and wait: ``(status, stdout, stderr)``.

    *options* are :func:`spawn`'s.  Raises :class:`ImcTimeoutError` (with
    the output so far) when *timeout* passed.
    """
    if "owner" in options:
        raise TypeError("run() collects the messages itself; use spawn() to choose an owner")
    out, err = bytearray(), bytearray()
    with spawn(cmd, timeout=timeout, input=input, **options) as imc:
        for m in imc:
            if isinstance(m, Stdout):
                out += m.data
            elif isinstance(m, Stderr):
                err += m.data
            else:
                if m.timed_out:
                    exc = ImcTimeoutError(imc.name, "run",
                                          f"{imc.command[0]} did not finish within {timeout:g} s")
                    exc.stdout, exc.stderr = bytes(out), bytes(err)
                    raise exc
                return Result(m.status, bytes(out), bytes(err))
    raise AssertionError("unreachable: the messages end with Exited")


# ---------------------------------------------------------------- lxactors imc


def register(subparsers: Subparsers) -> None:
    """Add ``lxactors imc``."""
    p = subparsers.add_parser(
        "imc", help="run a command in an immutable container",
        description="Run CMD as a random unprivileged user in a fresh container: "
        "read-only root and system directories, tmpfs /tmp and home, no "
        "capabilities. Prints its stdout and stderr; exits with its status.",
        usage="%(prog)s [options] -- CMD [ARGS...]")
    p.add_argument("--path", help="lxcpath (default: liblxc's)")
    p.add_argument("--uid", type=int, help="run as this uid (default: random)")
    p.add_argument("--gid", type=int, help="run as this gid (default: the uid)")
    p.add_argument("--no-userns", action="store_true",
                   help="no user namespace: --uid is then a host uid")
    p.add_argument("--env", type=key_value, action="append", default=[], metavar="NAME=VALUE",
                   help="add to the command's environment")
    p.add_argument("--cwd", help="working directory (default: the tmpfs home)")
    p.add_argument("--timeout", type=float, help="kill the command after this many seconds")
    p.add_argument("--bind", action="append", default=[], metavar="DIR",
                   help="one more host directory to bind read-only")
    p.add_argument("--tmpfs-size", default="64m", help="size of /tmp and home (default 64m)")
    p.add_argument("--bridge", help="give the container a veth on this bridge")
    p.add_argument("--address", help="IPv4 address/prefix of that veth, e.g. 10.0.3.5/24")
    p.add_argument("--gateway", help="IPv4 default gateway")
    p.add_argument("--hostname", help="the container's hostname (default: its name)")
    p.add_argument("--config", type=key_value, action="append", default=[],
                   metavar="KEY=VALUE", help="more liblxc config items")
    p.add_argument("-i", "--stdin", action="store_true",
                   help="feed this command's stdin to CMD (default: /dev/null)")
    p.add_argument("cmd", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    p.set_defaults(run=_run, log=())


def _run(args: argparse.Namespace) -> int:
    cmd = list(args.cmd)
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if not cmd:
        raise UsageError("imc needs a command: lxactors imc [options] -- CMD [ARGS...]")
    data = sys.stdin.buffer.read() if args.stdin else None
    binds = list(DEFAULT_BINDS) + [b for b in args.bind if b not in DEFAULT_BINDS]
    out, err = sys.stdout.buffer, sys.stderr.buffer
    exited: Exited | None = None
    stopped_by: list[int] = []
    running: list[Imc] = []

    def stop(signum: int) -> None:
        stopped_by.append(signum)
        for r in running:
            r.kill()

    # Installed first: a signal while the container boots still removes it.
    with signals(stop):
        try:
            imc = spawn(
                cmd, path=args.path, uid=args.uid, gid=args.gid, env=dict(args.env),
                cwd=args.cwd, input=data, timeout=args.timeout, binds=binds,
                tmpfs_size=args.tmpfs_size, bridge=args.bridge, address=args.address,
                gateway=args.gateway, config=list(args.config), hostname=args.hostname,
                userns=not args.no_userns)
        except (TypeError, ValueError) as exc:
            raise UsageError(str(exc)) from exc
        running.append(imc)
        if stopped_by:
            imc.kill()
        for m in imc:
            if isinstance(m, Stdout):
                out.write(m.data)
                out.flush()
            elif isinstance(m, Stderr):
                err.write(m.data)
                err.flush()
            else:
                exited = m
    assert exited is not None
    if stopped_by:
        return 128 + stopped_by[0]
    if exited.timed_out:
        say(f"imc: {cmd[0]} did not finish within {args.timeout:g} s; killed")
        return 124
    if exited.status < 0:
        return 128 + -exited.status
    return exited.status
