"""Spawn options: every option of the erlxc seed, checked before anything runs."""

from __future__ import annotations

import os
import secrets
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lxactors import _validate as v
from lxactors._chroot import ChrootSpec, parse_chroot
from lxactors._console import DEFAULT_WINDOW
from lxactors._limits import Limits, host_layout, limit_config, parse_limits
from lxactors._policy import Type, check_type
from lxactors._userns import IdMap, reach_problem, resolve_userns, unprivileged

__all__ = ["SpawnOptions", "ConfigStep", "parse_options", "random_name", "spawn_options"]

#: verbose level -> liblxc log level.
LOG_LEVELS = ("ERROR", "WARN", "NOTICE", "INFO", "DEBUG", "TRACE")

#: One step of the ``config`` option: ("clear",), ("load", file),
#: ("set", key, value) or ("clear_item", key).
ConfigStep = tuple[str, ...]

_ALPHABET = string.ascii_lowercase + string.digits


def random_name(prefix: str = "lxa-") -> str:
    """A random container name (``lxa-`` + 8 characters from ``secrets``)."""
    if not isinstance(prefix, str):
        raise TypeError(f"name prefix must be str, not {type(prefix).__name__}")
    name = prefix + "".join(secrets.choice(_ALPHABET) for _ in range(8))
    v.check_name(name, f"container name with prefix {prefix!r}")
    return name


@dataclass(frozen=True)
class SpawnOptions:
    path: str | None = None
    verbose: int = 0
    config: tuple[ConfigStep, ...] = ()
    cgroup: tuple[tuple[str, str], ...] = ()
    chroot: tuple[ChrootSpec, ...] = ()
    create: Mapping[str, Any] | None = None
    start: Mapping[str, Any] = field(default_factory=dict)
    type: Type | None = None
    window: int = DEFAULT_WINDOW
    nodaemonize: bool = False
    nocloseallfds: bool = False
    exec: tuple[str, ...] = ()
    console: bool | int = True
    timeout: float = 60.0
    #: The user namespace's id mapping (None: none).  parse_options fills
    #: it in: unnamed containers get root's range unless told otherwise.
    userns: IdMap | None = None
    #: What the container may take (None: no bounds); see :class:`Limits`.
    limits: Limits | None = None

    @property
    def console_tty(self) -> int | None:
        """The tty read as the console: 1 (a shell, see _base.INITTAB), or 0
        (/dev/console, where a custom init writes), or as asked; None: none."""
        if self.console is False:
            return None
        if self.console is True:
            return 0 if self.start.get("argv") else 1
        return int(self.console)

    @property
    def log_level(self) -> str:
        return LOG_LEVELS[min(self.verbose, len(LOG_LEVELS) - 1)]


def _config(steps: object) -> tuple[ConfigStep, ...]:
    if isinstance(steps, (str, bytes)) or not isinstance(steps, Sequence):
        raise TypeError("config must be a list of '', ('load', file), (key, value) or key")
    out: list[ConfigStep] = []
    for step in steps:
        if step == "":
            out.append(("clear",))
        elif isinstance(step, str):
            out.append(("clear_item", v.check_key(step).decode()))
        elif isinstance(step, tuple) and len(step) == 2:
            key, value = step
            if key == "load":
                out.append(("load", v.check_path(value, "config file").decode()))
            else:
                v.check_key(key)
                if isinstance(value, int) and not isinstance(value, bool):
                    value = str(value)
                v.check_value(value, f"value of {key}")
                out.append(("set", key, value))
        else:
            raise TypeError(f"config step must be '', ('load', file), (key, value) or key: {step!r}")
    return tuple(out)


def _cgroup(items: object) -> tuple[tuple[str, str], ...]:
    pairs = items.items() if isinstance(items, Mapping) else items
    if isinstance(pairs, (str, bytes)) or not hasattr(pairs, "__iter__"):
        raise TypeError("cgroup must be a list of (key, value) pairs or a mapping")
    out = []
    for item in pairs:
        if not (isinstance(item, tuple) and len(item) == 2):
            raise TypeError(f"cgroup entry must be (key, value): {item!r}")
        key, value = item
        v.check_key(key, "cgroup key")
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        v.check_value(value, f"cgroup value of {key}")
        out.append((key, value))
    return tuple(out)


_CREATE_KEYS = {"template", "bdevtype", "bdevspec", "flags", "argv"}
_START_KEYS = {"useinit", "argv"}


def _keys(opts: object, allowed: set[str], what: str) -> dict[str, Any]:
    if isinstance(opts, Mapping):
        d = dict(opts)
    elif isinstance(opts, Sequence) and not isinstance(opts, (str, bytes)):
        try:
            d = dict(opts)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{what} must be a mapping or a list of (key, value)") from exc
    else:
        raise TypeError(f"{what} must be a mapping or a list of (key, value)")
    unknown = set(d) - allowed
    if unknown:
        raise ValueError(f"unknown {what} option(s) {sorted(unknown)}; known: {sorted(allowed)}")
    if "argv" in d:
        v.check_argv(d["argv"], f"{what} argv")
        d["argv"] = list(d["argv"])
    return d


def parse_options(name: object, options: Mapping[str, Any]) -> tuple[str, bool, SpawnOptions]:
    """Check *name* and *options*; return (name, named?, SpawnOptions)."""
    if not isinstance(name, str):
        raise TypeError(f"container name must be str, not {type(name).__name__}")
    named = name != ""
    if named:
        v.check_name(name)
    else:
        name = random_name()
    known = {f for f in SpawnOptions.__dataclass_fields__}
    unknown = set(options) - known
    if unknown:
        raise TypeError(f"spawn() got unknown option(s) {sorted(unknown)}")
    o: dict[str, Any] = dict(options)
    if o.get("path") is not None:
        o["path"] = os.path.abspath(v.check_path(o["path"], "path").decode())
    if "verbose" in o:
        o["verbose"] = v.check_int(o["verbose"], "verbose", low=0, high=100)
    if "config" in o:
        o["config"] = _config(o["config"])
    if "cgroup" in o:
        o["cgroup"] = _cgroup(o["cgroup"])
    if "chroot" in o:
        o["chroot"] = parse_chroot(o["chroot"])
    if o.get("create") is not None:
        o["create"] = _keys(o["create"], _CREATE_KEYS, "create")
    if o.get("start") is not None:
        o["start"] = _keys(o["start"], _START_KEYS, "start")
        if o["start"].get("useinit", False) not in (True, False, 0, 1):
            raise ValueError("start useinit must be true, false, 0 or 1")
    else:
        o.pop("start", None)
    if o.get("type") is not None:
        o["type"] = check_type(o["type"])
    if "window" in o:
        o["window"] = v.check_int(o["window"], "window", low=1, high=1 << 30)
    for flag in ("nodaemonize", "nocloseallfds"):
        if flag in o and not isinstance(o[flag], bool):
            raise TypeError(f"{flag} must be a bool")
    if "console" in o and not isinstance(o["console"], bool):
        o["console"] = v.check_int(o["console"], "console tty number", low=0, high=1024)
    if o.get("exec") is not None:
        wrapper = o["exec"]
        if isinstance(wrapper, str):
            wrapper = wrapper.split()
        o["exec"] = tuple(a.decode() for a in v.check_argv(wrapper, "exec"))
    else:
        o.pop("exec", None)
    if "timeout" in o:
        o["timeout"] = v.check_timeout(o["timeout"])
    o["userns"] = _userns(o, named)
    if "limits" in o:
        o["limits"] = _limits(o["limits"], named or o.get("create") is not None)
    return name, named, SpawnOptions(**o)


def _limits(value: object, created: bool) -> Limits | None:
    """The ``limits`` option, refused here if this host or container cannot hold it."""
    limits = parse_limits(value)
    if limits is None:
        return None
    limit_config(limits, host_layout())  # ValueError: a controller the host lacks
    if limits.disk is not None and created:
        raise ValueError("limits disk bounds the writable layer of an unnamed container "
                         "(an overlay clone of the base): not of a named or created one")
    return limits


def spawn_options(**options: Any) -> dict[str, Any]:
    """:func:`lxactors.spawn`'s options for unnamed containers, checked once for many spawns.

    Raises what ``spawn`` would (TypeError, ValueError) without starting
    anything, so a server fails when it starts, not at its first client.
    ``userns`` comes back resolved (an :class:`IdMap`, or False), so root's
    id range is read once; an lxcpath the container's root could not reach
    is refused here too.
    """
    opts = parse_options("", options)[2]
    checked = dict(options)
    checked["userns"] = opts.userns or False
    if opts.userns is not None:
        from lxactors.liblxc import default_lxcpath  # the extension, only when asked

        path = options.get("path") or default_lxcpath()
        problem = reach_problem(path, opts.userns)
        if problem:
            raise ValueError(f"lxcpath {path}: {problem}")
    return checked


def _userns(o: dict[str, Any], named: bool) -> IdMap | None:
    """The ``userns`` option resolved: on by default for unnamed containers.

    ``lxc.idmap`` items in ``config`` are the user's own mapping: they turn
    the default off, and clash with an explicit ``userns``.
    """
    own_map = any(step[0] in ("set", "clear_item") and step[1] == "lxc.idmap"
                  for step in o.get("config", ()))
    if own_map and not named and o.get("create") is None:
        raise ValueError("an unnamed container is a clone of a base made for its id mapping: "
                         "choose the mapping with userns, not lxc.idmap config items")
    if "userns" not in o:
        # Unprivileged callers' containers always map ids (the helper insists).
        return None if own_map or (named and not unprivileged()) else resolve_userns(True)
    if own_map and o["userns"] not in (None, False):
        raise ValueError("give the id mapping either as userns or as lxc.idmap config items, "
                         "not both")
    return resolve_userns(o["userns"])
