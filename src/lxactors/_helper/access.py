"""Who may ask the privileged helper for what: the policy file and its rules.

In unprivileged mode (issue 16) the helper is root and its client is not:
every request is checked here against ``/etc/lxactors/access.conf``
(root-owned, not writable by others) before anything runs.  A refusal is a
:class:`Refused` naming its rule.  The defaults are what an unprivileged
user may safely do: containers in their own lxcpath only, always in a user
namespace within their delegated ids, and no config key that runs code or
reaches the host as root.  Standard library only (the helper imports it).

The file is INI: ``[defaults]``, then ``[group:NAME]`` and ``[user:NAME]``
sections (a user with neither is refused); later sections override earlier
ones, the user's last.  Lists are whitespace-separated (devices: ``;``).
"""

from __future__ import annotations

import configparser
import grp
import os
import pwd
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

__all__ = ["ACCESS_CONF", "Caller", "Grant", "Policy", "Refused", "ConfigContext",
           "check_item", "check_config", "check_lxcpath", "inside", "caller_of", "id_ranges"]

ACCESS_CONF = "/etc/lxactors/access.conf"
USERS_DIR = "/var/lib/lxactors/users"
SUBUID, SUBGID = "/etc/subuid", "/etc/subgid"

#: What imc and the busybox template bind: system directories every user may
#: read anyway (and securityfs, read-only, which the template binds).
DEFAULT_MOUNT_SOURCES = ("/bin", "/lib", "/lib32", "/lib64", "/libx32", "/usr", "/sbin",
                         "/etc/alternatives", "/sys/kernel/security")
#: Character devices a device cgroup may allow (imc's: null, zero, full,
#: random, urandom, tty, ptmx and the pts).
DEFAULT_DEVICES = ("c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm",
                   "c 5:0 rwm", "c 5:2 rwm", "c 136:* rwm")


class Refused(Exception):
    """A request the policy does not allow; ``rule`` names what refused it."""

    def __init__(self, rule: str, detail: str) -> None:
        super().__init__(f"{detail} (refused by rule {rule})")
        self.rule = rule


@dataclass(frozen=True)
class Caller:
    """The client, as the kernel tells it (SO_PEERCRED), never as it says."""

    uid: int
    gid: int
    pid: int
    name: str
    groups: frozenset[str]


def caller_of(pid: int, uid: int, gid: int) -> Caller:
    """Name and groups of *uid* from the account database."""
    try:
        pw = pwd.getpwuid(uid)
        name = pw.pw_name
        gids = os.getgrouplist(name, gid)
    except KeyError:
        name, gids = str(uid), [gid]
    groups = set()
    for g in gids:
        try:
            groups.add(grp.getgrgid(g).gr_name)
        except KeyError:
            groups.add(str(g))
    return Caller(uid, gid, pid, name, frozenset(groups))


@dataclass(frozen=True)
class Grant:
    """What one caller may do (access.conf's sections merged)."""

    allowed: bool = False
    users_dir: str = USERS_DIR
    lxcpaths: tuple[str, ...] = ()
    templates: frozenset[str] = frozenset({"busybox"})
    named: bool = True
    mount_sources: tuple[str, ...] = DEFAULT_MOUNT_SOURCES
    net_types: frozenset[str] = frozenset({"empty", "none", "veth"})
    net_links: frozenset[str] = frozenset()
    devices: frozenset[str] = frozenset(DEFAULT_DEVICES)
    seccomp_profiles: tuple[str, ...] = ()

    def own_lxcpath(self, uid: int) -> str:
        return os.path.join(self.users_dir, str(uid))


_LISTS = {"lxcpaths", "mount_sources", "seccomp_profiles"}
_SETS = {"templates", "net_types", "net_links"}


def _parse_section(grant: Grant, sec: configparser.SectionProxy, where: str) -> Grant:
    changes: dict[str, object] = {}
    for key, raw in sec.items():
        if key in ("python",):
            continue
        if key in ("allowed", "named"):
            changes[key] = sec.getboolean(key)
        elif key == "users_dir":
            changes[key] = os.path.abspath(raw.strip())
        elif key in _LISTS:
            paths = tuple(raw.split())
            if key != "seccomp_profiles" and not all(p.startswith("/") for p in paths):
                raise ValueError(f"{where}: {key} takes absolute paths")
            changes[key] = paths
        elif key in _SETS:
            changes[key] = frozenset(raw.split())
        elif key == "devices":
            changes[key] = frozenset(d.strip() for d in raw.split(";") if d.strip())
        else:
            raise ValueError(f"{where}: unknown setting {key!r}")
    return replace(grant, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Policy:
    """access.conf, read once when the helper starts."""

    defaults: Grant = field(default_factory=Grant)
    groups: tuple[tuple[str, configparser.SectionProxy], ...] = ()
    users: tuple[tuple[str, configparser.SectionProxy], ...] = ()
    python: str | None = None
    path: str = ACCESS_CONF

    @classmethod
    def load(cls, path: str = ACCESS_CONF, *, check_owner: bool = True) -> Policy:
        """Read *path*; it must belong to root and be writable by root only."""
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with open(fd, encoding="utf-8") as f:
            st = os.fstat(f.fileno())
            if check_owner and (st.st_uid != 0 or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)):
                raise ValueError(f"{path} must belong to root and be writable by root only")
            return cls.parse(f.read(), path)

    @classmethod
    def parse(cls, text: str, path: str = ACCESS_CONF) -> Policy:
        cp = configparser.ConfigParser(interpolation=None, default_section="\0none")
        cp.read_string(text, source=path)
        defaults = Grant()
        python = None
        groups, users = [], []
        for name in cp.sections():
            sec = cp[name]
            if name == "defaults":
                defaults = _parse_section(defaults, sec, f"{path} [defaults]")
                python = sec.get("python")
            elif name.startswith("group:"):
                groups.append((name[6:], sec))
            elif name.startswith("user:"):
                users.append((name[5:], sec))
            else:
                raise ValueError(f"{path}: unknown section [{name}]")
        for _who, sec in (*groups, *users):  # validate now, not at the first request
            _parse_section(defaults, sec, f"{path} [{sec.name}]")
        return cls(defaults, tuple(groups), tuple(users), python, path)

    def grant(self, caller: Caller) -> Grant:
        """The caller's grant: refused unless a section names the user or a group."""
        g = self.defaults
        for who, sec in (*self.groups, *self.users):
            if who in (caller.groups if sec.name.startswith("group:") else
                       (caller.name, str(caller.uid))):
                g = _parse_section(replace(g, allowed=True), sec, sec.name)
        return g


# ---------------------------------------------------------------- paths and ids


def inside(path: str, top: str) -> bool:
    """Whether *path* is *top* or below it (both already resolved)."""
    return path == top or path.startswith(top.rstrip("/") + "/")


def check_lxcpath(path: str, caller: Caller, grant: Grant) -> str:
    """The resolved lxcpath if the caller may use it (its own, or one granted)."""
    real = os.path.realpath(path)
    own = os.path.realpath(grant.own_lxcpath(caller.uid))
    if real == own or real in {os.path.realpath(p) for p in grant.lxcpaths}:
        return real
    raise Refused("lxcpath", f"lxcpath {path} is not yours: use {own}"
                  + (f" or one of {' '.join(grant.lxcpaths)}" if grant.lxcpaths else ""))


def id_ranges(caller: Caller, path: str) -> list[tuple[int, int]]:
    """The caller's delegated (start, count) ranges in a subid file."""
    out = []
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                parts = line.strip().split(":")
                if (len(parts) == 3 and parts[0] in (caller.name, str(caller.uid))
                        and parts[1].isdigit() and parts[2].isdigit()):
                    out.append((int(parts[1]), int(parts[2])))
    except FileNotFoundError:
        pass
    return out


@dataclass(frozen=True)
class ConfigContext:
    """What a config item is judged against: whose container, where."""

    caller: Caller
    grant: Grant
    lxcpath: str  # resolved
    name: str
    uids: tuple[tuple[int, int], ...]
    gids: tuple[tuple[int, int], ...]
    own_log: str | None = None  # the helper's own lxc.log.file for this handle


# ---------------------------------------------------------------- config keys

_SAFE = re.compile(r"""lxc\.(
    arch | uts\.name | environment | tty\.max | tty\.dir | pty\.max
  | console\.buffer\.size | console\.size | console\.path
  | signal\.(halt|reboot|stop) | start\.(auto|delay|order) | group
  | autodev | autodev\.tmpfs\.size | ephemeral | no_new_privs | cap\.drop | cap\.keep
  | net | net\.\d+ | net\.\d+\.(type|flags|name|hwaddr|mtu|link|veth\.pair|veth\.mode
        |ipv4\.address|ipv4\.gateway|ipv6\.address|ipv6\.gateway)
  | idmap | rootfs\.path | rootfs\.options | rootfs\.managed
  | mount\.auto | mount\.entry | init\.cmd | init\.cwd | init\.uid | init\.gid | execute\.cmd
  | cgroup2?\.[a-z_]+\.[a-z_.]+
  | log\.level | log\.file | hook\.version | apparmor\.profile | seccomp\.profile
  | monitor\.unshare | monitor\.signal\.pdeath | keyring\.session | time\.offset\.(boot|monotonic)
)""", re.X)
_NET = re.compile(r"lxc\.net\.\d+\.(\w+)")
_VIRTUAL_FS = {"tmpfs", "proc", "sysfs", "devpts", "mqueue", "cgroup", "cgroup2"}
_ROOTFS_PREFIXES = ("dir:", "overlay:", "overlayfs:")


def _host_path_allowed(path: str, allow: Iterable[str]) -> bool:
    real = os.path.realpath(path)
    return any(inside(real, os.path.realpath(a)) for a in allow)


def _check_mount_entry(value: str, ctx: ConfigContext) -> None:
    parts = value.split()
    if len(parts) < 3:
        raise Refused("lxc.mount.entry", f"lxc.mount.entry {value!r}: not 'source target type "
                      "options'")
    src, dst, fstype = parts[:3]
    opts = parts[3].split(",") if len(parts) > 3 else []
    if ".." in dst.split("/"):
        raise Refused("lxc.mount.entry", f"lxc.mount.entry target {dst!r} leaves the rootfs")
    if "bind" in opts or "rbind" in opts or src.startswith("/"):
        if not src.startswith("/") or not _host_path_allowed(src, ctx.grant.mount_sources):
            raise Refused("lxc.mount.entry", f"lxc.mount.entry source {src} is a host path "
                          f"outside access.conf's mount_sources "
                          f"({' '.join(ctx.grant.mount_sources)})")
    elif fstype not in _VIRTUAL_FS:
        raise Refused("lxc.mount.entry", f"lxc.mount.entry of a {fstype} filesystem "
                      "(only binds of mount_sources and virtual filesystems)")


def _check_idmap(value: str, ctx: ConfigContext) -> None:
    parts = value.split()
    if len(parts) != 4 or parts[0] not in ("u", "g", "b") or not all(p.isdigit() for p in parts[1:]):
        raise Refused("lxc.idmap", f"lxc.idmap {value!r}: not 'u|g|b NSID HOSTID COUNT'")
    host, count = int(parts[2]), int(parts[3])
    kinds = {"u": [ctx.uids], "g": [ctx.gids], "b": [ctx.uids, ctx.gids]}[parts[0]]
    for ranges in kinds:
        if not any(s <= host and host + count <= s + n for s, n in ranges):
            mine = " ".join(f"{s}-{s + n - 1}" for s, n in ranges) or "none"
            raise Refused("lxc.idmap", f"lxc.idmap {value!r} maps host ids outside your "
                          f"delegated range ({mine}, /etc/subuid and /etc/subgid)")


def _check_rootfs(value: str, ctx: ConfigContext) -> None:
    if not value:
        return
    rest = value
    for prefix in _ROOTFS_PREFIXES:
        if value.startswith(prefix):
            rest = value[len(prefix):]
            break
    else:
        if not value.startswith("/"):
            raise Refused("lxc.rootfs.path", f"lxc.rootfs.path {value!r}: only dir and "
                          "overlay rootfs for unprivileged callers")
    for p in rest.split(":"):
        if not p.startswith("/") or not inside(os.path.realpath(p), ctx.lxcpath):
            raise Refused("lxc.rootfs.path", f"lxc.rootfs.path {p} is outside the lxcpath "
                          f"{ctx.lxcpath}")


def check_item(key: str, value: str, ctx: ConfigContext) -> None:
    """Refuse one config item an unprivileged caller may not set (or hold)."""
    if key == "lxc.include":
        raise Refused("lxc.include", "lxc.include reads host files as root")
    if key.startswith("lxc.hook.") and key != "lxc.hook.version":
        raise Refused("lxc.hook", f"{key}: hooks run on the host as root")
    if re.fullmatch(r"lxc\.net\.\d+\.script\..*", key):
        raise Refused("lxc.net.script", f"{key}: network scripts run on the host as root")
    if key == "lxc.mount.fstab":
        raise Refused("lxc.mount.fstab", "lxc.mount.fstab reads a host file as root")
    if key.startswith("lxc.namespace."):
        raise Refused("lxc.namespace", f"{key}: shares or keeps host namespaces")
    if key in ("lxc.console.logfile", "lxc.console.rotate"):
        raise Refused("host files", f"{key}: a file the host writes as root")
    if key == "lxc.log.file":
        if value and value != ctx.own_log:
            raise Refused("host files", "lxc.log.file: a file the host writes as root")
        return
    if re.fullmatch(r"lxc\.cgroup2?\.(dir|relative|dir\..*|cgroup\..*|tasks)", key):
        raise Refused("lxc.cgroup", f"{key}: places or moves processes in the host's cgroups")
    if not _SAFE.fullmatch(key):
        raise Refused("allowlist", f"{key} is not in the keys unprivileged callers may set")
    if key == "lxc.mount.entry":
        _check_mount_entry(value, ctx)
    elif key == "lxc.cap.keep" and value.strip() not in ("", "none"):
        raise Refused("lxc.cap.keep", f"lxc.cap.keep = {value}: only 'none' (keeping "
                      "capabilities could keep host ones)")
    elif key == "lxc.apparmor.profile" and value.strip() == "unconfined":
        raise Refused("lxc.apparmor.profile", "lxc.apparmor.profile = unconfined")
    elif key == "lxc.seccomp.profile" and value not in ctx.grant.seccomp_profiles:
        raise Refused("lxc.seccomp.profile", f"lxc.seccomp.profile = {value!r}: removed or "
                      "replaced (access.conf's seccomp_profiles lists what may be set)")
    elif key == "lxc.idmap":
        _check_idmap(value, ctx)
    elif key == "lxc.rootfs.path":
        _check_rootfs(value, ctx)
    elif key in ("lxc.init.cmd", "lxc.execute.cmd"):
        prog = value.split()[0] if value.split() else ""
        if prog and (not prog.startswith("/") or ".." in prog.split("/")):
            raise Refused("lxc.init.cmd", f"{key} = {value!r}: must be an absolute path in "
                          "the rootfs, without '..'")
    elif key == "lxc.console.path" and value not in ("", "none", "auto"):
        raise Refused("host files", f"lxc.console.path = {value}: a host device as console")
    elif re.fullmatch(r"lxc\.cgroup2?\..*", key):
        if key.split(".", 2)[2] == "devices.allow" and value.strip() not in ctx.grant.devices:
            raise Refused("lxc.cgroup.devices", f"{key} = {value}: a device outside "
                          "access.conf's devices")
    else:
        m = _NET.fullmatch(key)
        if m and m.group(1) == "type" and value and value not in ctx.grant.net_types:
            raise Refused("lxc.net.type", f"{key} = {value}: network type not in access.conf's "
                          f"net_types ({' '.join(sorted(ctx.grant.net_types))})")
        if m and m.group(1) == "link" and value and value not in ctx.grant.net_links:
            raise Refused("lxc.net.link", f"{key} = {value}: host bridge not in access.conf's "
                          "net_links")


def check_config(items: Iterable[tuple[str, str]], ctx: ConfigContext) -> None:
    """Refuse a whole config (before create, clone or start): every item, and a
    user namespace mapping root into the caller's ids (forced on)."""
    root = {"u": False, "g": False}
    for key, value in items:
        check_item(key, value, ctx)
        if key == "lxc.idmap":
            kind, nsid = value.split()[:2]
            if nsid == "0":
                for k in ("u", "g") if kind == "b" else (kind,):
                    root[k] = True
    if not all(root.values()):
        raise Refused("userns", "containers of unprivileged callers run in a user namespace: "
                      "set lxc.idmap 'u 0 START COUNT' and 'g 0 START COUNT' within your "
                      "delegated ids (spawn does)")
