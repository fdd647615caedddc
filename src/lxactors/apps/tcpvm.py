"""tcpvm: a new container for every TCP client (erlxc's ``tcpvm`` example).

Listen on a TCP port (default ``127.0.0.1:31337``); each client that
connects gets a temporary container of its own, its socket wired to the
container's console: bytes from the client go to the console, console
output goes to the client.  When the client disconnects the container is
exited and destroyed; when the container stops the client is disconnected.
At most ``max_clients`` (default 32) are served at once, at most
``max_per_address`` (default 8) from one address: one more is told so in
one line and closed.

Every client is bounded by default (``limits``, :data:`DEFAULT_LIMITS`):
256 processes, 256 MiB of memory (page cache and tmpfs included), one CPU's
time, a 128 MiB writable layer (a tmpfs, counted in the memory), so one
client cannot take the host or the other clients down; ``limits=None``
turns them off.  A session can also end after ``idle_timeout`` seconds
without a byte either way, or ``max_session`` seconds in all (both off by
default).  When a client leaves, one log line says which container it
had, for how long, why the session ended and which limits it met.

One thread per client owns its container (it reads the container's messages
and writes them to the socket); a second thread per client reads the
socket.  :meth:`TcpVm.shutdown` (``lxactors tcpvm`` calls it on
SIGINT/SIGTERM) stops accepting, exits every container and closes every
client::

    from lxactors.tcpvm import serve
    serve(("127.0.0.1", 31337), spawn_options={"config": [("lxc.net.0.link", "br0")]})

Connect with ``lxactors connect 127.0.0.1:31337`` (raw terminal, job
control; any user), or ``nc 127.0.0.1 31337`` / ``socat `tty`,raw,echo=0
tcp:127.0.0.1:31337`` where installed.  The busybox console first asks for
Enter.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
from typing import TYPE_CHECKING, Any

import lxactors
from lxactors.apps.command import (
    UsageError,
    add_limit_arguments,
    count,
    key_value,
    limits_from,
    say,
    seconds,
    signals,
)
from lxactors.apps.tcpvm_client import Address, Client, format_address
from lxactors.apps.tcpvm_server import (
    DEFAULT_LIMITS,
    DEFAULT_LISTEN,
    DEFAULT_MAX_CLIENTS,
    DEFAULT_MAX_PER_ADDRESS,
    DEFAULT_POOL,
    TcpVm,
    serve,
)

if TYPE_CHECKING:
    from lxactors.apps.command import Subparsers

__all__ = [
    "DEFAULT_LIMITS",
    "DEFAULT_LISTEN",
    "DEFAULT_MAX_CLIENTS",
    "DEFAULT_MAX_PER_ADDRESS",
    "DEFAULT_POOL",
    "Client",
    "TcpVm",
    "format_address",
    "parse_listen",
    "register",
    "serve",
]

log = logging.getLogger("lxactors.tcpvm")

#: Where liblxc looks for ``lxc-<name>`` template scripts.
TEMPLATE_DIRS = ("/usr/share/lxc/templates", "/usr/local/share/lxc/templates")


def parse_listen(text: str) -> Address:
    """``ADDR:PORT``, ``[V6ADDR]:PORT``, ``:PORT`` (all interfaces) or ``PORT``."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = DEFAULT_LISTEN[0], text
    elif host == "":
        host = "0.0.0.0"
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        number = int(port)
    except ValueError:
        number = -1
    if not 0 <= number <= 65535 or not host:
        raise ValueError(f"--listen wants ADDR:PORT (port 0-65535), not {text!r}")
    return host, number



# ---------------------------------------------------------------- lxactors tcpvm


def register(subparsers: Subparsers) -> None:
    """Add ``lxactors tcpvm``."""
    p = subparsers.add_parser(
        "tcpvm", help="a shell in a new container for every TCP client",
        description="Listen on TCP; every client gets a temporary container "
        "wired to its console, exited and destroyed when the client leaves.")
    p.add_argument("--listen", default="127.0.0.1:31337", metavar="ADDR:PORT",
                   help="address to listen on (default 127.0.0.1:31337; ':PORT' for all)")
    p.add_argument("--max-clients", type=int, default=32, metavar="N",
                   help="clients served at once; more are refused (default 32)")
    p.add_argument("--config", type=key_value, action="append", default=[],
                   metavar="KEY=VALUE",
                   help="liblxc config item for every container, e.g. lxc.net.0.link=br0")
    p.add_argument("--template", help="create each container with this template "
                   "(default: overlay clones of a cached busybox base)")
    p.add_argument("--path", help="lxcpath (default: liblxc's)")
    p.add_argument("--no-userns", action="store_true",
                   help="give clients the host's root, not a user namespace's (see the "
                   "README's security section first)")
    add_limit_arguments(p, DEFAULT_LIMITS)
    g = p.add_argument_group("sessions ('none' turns one off)")
    g.add_argument("--idle-timeout", type=seconds, default=None, metavar="SECONDS",
                   help="end a session after this long without a byte either way (default none)")
    g.add_argument("--max-session", type=seconds, default=None, metavar="SECONDS",
                   help="end a session after this long (default none)")
    g.add_argument("--max-per-address", type=count, default=DEFAULT_MAX_PER_ADDRESS,
                   metavar="N", help="sessions at once from one client address "
                   f"(default {DEFAULT_MAX_PER_ADDRESS})")
    p.add_argument("--pool", type=int, default=DEFAULT_POOL, metavar="N",
                   help=f"containers booted ahead, handed to clients at once (default "
                   f"{DEFAULT_POOL}; 0: none)")
    p.set_defaults(run=_run, log=(log.name,))


def _run(args: argparse.Namespace) -> int:
    try:
        listen = parse_listen(args.listen)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    if args.max_clients < 1:
        raise UsageError(f"--max-clients must be at least 1, not {args.max_clients}")
    if args.pool < 0:
        raise UsageError(f"--pool must be at least 0, not {args.pool}")
    options: dict[str, Any] = {}
    if args.path:
        options["path"] = os.path.abspath(args.path)
    if args.config:
        options["config"] = _with_veth_defaults(list(args.config))
    if args.template:
        _check_template(args.template)
        options["create"] = {"template": args.template}
    if args.no_userns:
        options["userns"] = False
    limits = limits_from(args)
    if args.config:
        _check_config(options.get("path"), options["config"])
    try:
        server = TcpVm(listen, args.max_clients, options, limits=limits,
                       idle_timeout=args.idle_timeout, max_session=args.max_session,
                       max_per_address=args.max_per_address, pool=args.pool)
    except (TypeError, ValueError) as exc:
        raise UsageError(str(exc)) from exc
    listening = False
    try:
        # From here on SIGINT/SIGTERM stop the server cleanly (even while the
        # base is being built: serve_forever then returns at once).
        with signals(lambda signum: server.shutdown()):
            if not args.template:
                # Unnamed containers are clones of a cached base: build it now, before
                # the pool boots clones of it and before a client waits (one it cannot
                # be, e.g. --no-userns for an ordinary user, is one line, and no server).
                lxactors.ensure_base(options.get("path"), server.userns, progress=True)
            try:
                server.bind()
            except OSError as exc:
                why = "address already in use" if exc.errno == errno.EADDRINUSE else (
                    exc.strerror or str(exc)).lower()
                say(f"cannot listen on {format_address(listen)}: {why}")
                return 1
            listening = True
            host, port = server.address
            say(f"tcpvm listening on {format_address(server.address)} "
                f"(at most {args.max_clients} clients; each: {limits or 'no limits'}); "
                f"try: lxactors connect {host}:{port}")
            server.serve_forever()
    finally:
        n = server.close()
    if listening:
        say(f"tcpvm stopped; {n} container{'s' if n != 1 else ''} exited")
    return 0


def _check_config(path: str | None, config: list[tuple[str, str]]) -> None:
    """Each ``--config`` item set once, on a handle never saved, as every client's
    container will be: one liblxc does not know, or one the gate refuses an ordinary
    user (a bridge not in access.conf's net_links...), stops the server before it
    listens, in one line naming the rule, not each client."""
    from lxactors import liblxc

    with liblxc.Container("tcpvm-config-check", path) as c:
        for key, value in config:
            c.set_config_item(key, value)


def _with_veth_defaults(config: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """``lxc.net.N.link=BR`` alone means a veth on BR, up (as erlxc's example assumed)."""
    keys = {k for k, _ in config}
    extra = []
    for key, _ in config:
        if key.startswith("lxc.net.") and key.endswith(".link"):
            net = key[: -len(".link")]
            if f"{net}.type" not in keys:
                extra.append((f"{net}.type", "veth"))
            if f"{net}.flags" not in keys:
                extra.append((f"{net}.flags", "up"))
    return extra + config


def _template_exists(template: str) -> bool:
    if "/" in template:
        return os.access(template, os.X_OK)
    return any(os.access(os.path.join(d, f"lxc-{template}"), os.X_OK) for d in TEMPLATE_DIRS)


def _check_template(template: str) -> None:
    if not _template_exists(template):
        known = sorted({n[4:] for d in TEMPLATE_DIRS if os.path.isdir(d)
                        for n in os.listdir(d) if n.startswith("lxc-")})
        hint = f"; known: {', '.join(known)}" if known else ""
        raise UsageError(f"unknown template {template!r}{hint}")
