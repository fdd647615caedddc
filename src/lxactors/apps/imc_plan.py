"""imc's container, planned: its config, rootfs directories and files, ids and bounds.

Everything :func:`lxactors.apps.imc.spawn` checks and decides before a
container exists: the read-only binds, the tmpfs, the devices, the network,
the command's random unprivileged uid/gid and its clean environment, as one
:class:`_Plan` for :class:`lxactors.apps.imc_command.Imc` to start.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import lxactors
from lxactors import IdMap

__all__ = [
    "ALLOWED_DEVICES",
    "DEFAULT_BINDS",
    "DEFAULT_LIMITS",
    "HOME",
    "NS_UID_LOW",
    "PATH",
    "UID_HIGH",
    "UID_LOW",
    "USER",
]

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
#: The lowest uid/gid drawn inside a user namespace (above the image's system ids).
NS_UID_LOW = 1000
#: What each command's container may take unless told otherwise.  Its writable
#: space is its two tmpfs (``tmpfs_size`` each), counted in the memory.
DEFAULT_LIMITS = lxactors.Limits(pids=256, memory="256M", cpu=1.0)
_HOSTNAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,61}[A-Za-z0-9])?")


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
    limits: lxactors.Limits | None


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
          config: Sequence[tuple[str, str]], hostname: str | None, userns: object,
          limits: lxactors.Limits | None) -> _Plan:
    if isinstance(cmd, (str, bytes)) or not isinstance(cmd, Sequence) or not cmd:
        raise TypeError("cmd must be a non-empty list of str, such as ['id', '-u']")
    argv = [str(a) if isinstance(a, os.PathLike) else a for a in cmd]
    if not all(isinstance(a, str) and "\0" not in a for a in argv):
        raise TypeError("cmd must be a list of str without NUL")
    if "=" in argv[0]:
        raise ValueError(f"the program name must not contain '=': {argv[0]!r}")
    if limits is not None and not isinstance(limits, lxactors.Limits):
        raise TypeError(f"limits must be an lxactors.Limits or None, not {type(limits).__name__}")
    if limits is not None and limits.disk is not None:
        raise ValueError("imc's writable space is its tmpfs /tmp and home: size them with "
                         "tmpfs_size, not limits disk")
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
                 {"dir": dirs, "file": files}, idmap, limits)

