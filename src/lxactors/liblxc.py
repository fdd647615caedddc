"""The low-level API: a :class:`Container` handle 1:1 with ``struct lxc_container``.

Names and meanings follow liblxc (and the erlxc seed's low-level API):
``None`` stands for NULL, text is ``str``.  A failed call raises
:class:`~lxactors.LxcError` naming the container and the operation and
carrying liblxc's own error lines; predicates return ``bool``.

Calls that fork (``start``, ``create``, ``attach``, ``clone``, ``destroy``,
snapshots, ``mount``...) run in the helper process, never in yours; the
rest call liblxc directly.  A process that is not root gets a proxy instead
(``lxactors._proxy``): every member is a request to the privileged helper,
which authorizes it (issue 16).
"""

from __future__ import annotations

from lxactors._container import (
    ATTACH_NO_NEW_PRIVS,
    ATTACH_REMOUNT_PROC_SYS,
    CLONE_ALLOW_RUNNING,
    CLONE_KEEPBDEVTYPE,
    CLONE_KEEPMACADDR,
    CLONE_KEEPNAME,
    CLONE_MAYBE_SNAPSHOT,
    CLONE_SNAPSHOT,
    CREATE_QUIET,
    Attached,
    AttachResult,
    ConsoleFd,
    Container,
    LxcError,
    Snapshot,
    config_item_is_supported,
    default_lxcpath,
    get_global_config_item,
    get_version,
    get_wait_states,
    has_api_extension,
    list_active_containers,
    list_all_containers,
    list_defined_containers,
    log_close,
    log_init,
    use_proxy,
)
from lxactors._proxy import ProxyContainer, list_containers

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
]

use_proxy(ProxyContainer, list_containers)
