"""A container's config steps and its id mapping, as a spawn asks for them.

The boot applies the spawn options' config steps (before and after a
template, which writes its own config) and checks, before and after them,
that the container runs in the user namespace asked for.
"""

from __future__ import annotations

from lxactors import _base
from lxactors._errors import LxcError
from lxactors._options import SpawnOptions
from lxactors._userns import IdMap
from lxactors.liblxc import Container

__all__ = ["check_userns", "configure", "log_level"]


def check_userns(name: str, h: Container, want: IdMap | None,
                 changed: str | None = None) -> None:
    """The container runs in the namespace asked for, or not at all.

    Its rootfs was made for the mapping in its config: mapping it anew
    would show every file owned by nobody.
    """
    if want is None:
        return
    have = _base.container_idmap(h)
    if have == want:
        return
    was = "none" if have is None else f"ids {have.tag}"
    if changed:
        raise LxcError(name, "spawn", f"{changed} (to {was}, where userns asks for "
                       f"ids {want.tag}): choose the mapping with userns")
    was = "without a user namespace" if have is None else f"for ids {have.tag}"
    raise LxcError(name, "spawn",
                   f"userns asks for ids {want.tag}, but the container was made {was}; "
                   "spawn it without userns, or make a new one")


def configure(h: Container, options: SpawnOptions, clear: bool = True) -> None:
    """The spawn's config steps in order, then the log level.

    Run again after a template wrote its own config (``clear=False``: the
    template's items stay, the user's win).
    """
    for step in options.config:
        if step[0] == "clear":
            if clear:
                h.clear_config()
        elif step[0] == "load":
            h.load_config(step[1])
        elif step[0] == "set":
            h.set_config_item(step[1], step[2])
        else:
            h.clear_config_item(step[1])
    h.set_config_item("lxc.log.level", log_level(options))


def log_level(options: SpawnOptions) -> str:
    """liblxc's log level for a spawn: INFO unless verbose asks for more (liblxc
    logs init's exit status at INFO: the actor reads it there)."""
    return options.log_level if options.verbose >= 3 else "INFO"
