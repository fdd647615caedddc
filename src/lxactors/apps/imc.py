"""imc: run a command in an "immutable" container.

The erlxc ``imc`` example, in Python.  Each command gets a fresh container
whose root is an empty directory made with ``chroot`` specs, mounted
read-only; the host's ``/bin /lib /lib64 /usr /sbin /etc/alternatives`` (those
that exist) are bind-mounted read-only, nosuid and nodev; ``/tmp`` and the
home directory are tmpfs; ``/dev`` holds only the usual character devices
(and a device cgroup denies the rest); every capability is dropped.  The
container runs in a user namespace (``userns=False`` turns it off), so even
its root is an unprivileged uid on the host.  The command runs as a random
unprivileged uid/gid with no supplementary groups and ``no_new_privs``,
within :data:`DEFAULT_LIMITS` unless told otherwise (256 processes, 256 MiB of
memory counting its two tmpfs, one CPU's time; ``limits=None``: none).
When it ends the container is destroyed and its root directory removed:
nothing is left behind (:class:`Exited` and :func:`run`'s result come as
soon as the status and output are complete; the container's end follows,
off the caller's path, unless the command left something running).

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
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import lxactors
from lxactors import LxcError, Mailbox, Owner
from lxactors.apps.command import (
    UsageError,
    add_limit_arguments,
    key_value,
    limits_from,
    say,
    signals,
)
from lxactors.apps.imc_command import (
    DEFAULT_WINDOW,
    Exited,
    Imc,
    ImcMessage,
    ImcTimeoutError,
    Result,
    Stderr,
    Stdout,
)
from lxactors.apps.imc_plan import (
    ALLOWED_DEVICES,
    DEFAULT_BINDS,
    DEFAULT_LIMITS,
    NS_UID_LOW,
    UID_HIGH,
    UID_LOW,
    _plan,
)
from lxactors.apps.imc_pool import DEFAULT_POOL, POOL_OPTIONS, REFILL_DELAY, Pool

if TYPE_CHECKING:
    from lxactors.apps.command import Subparsers

__all__ = [
    "ALLOWED_DEVICES",
    "DEFAULT_BINDS",
    "DEFAULT_LIMITS",
    "DEFAULT_POOL",
    "DEFAULT_WINDOW",
    "Exited",
    "Imc",
    "ImcMessage",
    "ImcTimeoutError",
    "NS_UID_LOW",
    "POOL_OPTIONS",
    "Pool",
    "REFILL_DELAY",
    "Result",
    "Stderr",
    "Stdout",
    "UID_HIGH",
    "UID_LOW",
    "register",
    "run",
    "spawn",
]


# ---------------------------------------------------------------- entry points


def spawn(cmd: Sequence[str], *, owner: object = None, path: str | None = None,
          uid: int | None = None, gid: int | None = None,
          env: Mapping[str, str] | None = None, cwd: str | None = None,
          input: bytes | None = None, timeout: float | None = None,
          binds: Sequence[str] = DEFAULT_BINDS, tmpfs_size: str = "64m",
          bridge: str | None = None, address: str | None = None, gateway: str | None = None,
          config: Sequence[tuple[str, str]] = (), hostname: str | None = None,
          window: int = DEFAULT_WINDOW, boot_timeout: float = 60.0,
          userns: object = True, limits: lxactors.Limits | None = DEFAULT_LIMITS,
          pool: Pool | None = None) -> Imc:
    """Start *cmd* in a new immutable container; return at once.

    The owner (a pykka ``ActorRef``, an :class:`lxactors.Mailbox`, or None
    for the returned :class:`Imc` itself) gets :class:`Stdout`,
    :class:`Stderr`, then :class:`Exited` (the container then gone, or
    going: see :class:`Exited`; :meth:`Imc.wait` returns once it is gone).

    *uid*/*gid*: random unprivileged ids when None.  *env* adds to a small
    clean environment (HOME, USER, PATH...).  *cwd* defaults to the tmpfs
    home.  *input* is fed to stdin (None: /dev/null).  After *timeout*
    seconds the command is killed.  *binds*: host directories bind-mounted
    read-only.  *bridge*/*address*/*gateway*: a veth on that bridge with
    that IPv4 address (CIDR); without, the container has loopback only.
    *config*: more ``(key, value)`` liblxc config items.  *userns*: as
    :func:`lxactors.spawn`'s (True: root's range; False: no user namespace,
    the command's uid is then a host uid).  *uid* and *gid* are the ids
    inside; :attr:`Imc.host_uid` is what the host sees.  *limits*: what
    the container may take (:data:`DEFAULT_LIMITS`; None: unbounded; no
    ``disk``: *tmpfs_size* bounds the writable space).  *pool*: an
    :class:`imc.Pool <Pool>` whose booted containers have this command's
    shape (those of the options above a pool fixes, :data:`POOL_OPTIONS`,
    are refused unless left at their default or repeating the pool's; its
    uid, gid and hostname are drawn at boot, so they are refused).
    """
    if input is not None and not isinstance(input, (bytes, bytearray, memoryview)):
        raise TypeError("input must be bytes")
    if timeout is not None and (isinstance(timeout, bool) or not timeout > 0):
        raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ValueError(f"window must be a positive int, not {window!r}")
    booted = None
    if pool is None:
        plan = _plan(cmd, path=path, uid=uid, gid=gid, env=env, binds=binds,
                     tmpfs_size=tmpfs_size, bridge=bridge, address=address, gateway=gateway,
                     config=config, hostname=hostname, userns=userns, limits=limits)
    else:
        if not isinstance(pool, Pool):
            raise TypeError(f"pool must be an imc.Pool, not {type(pool).__name__}")
        if pool.closed:
            raise LxcError(None, "imc.spawn", "the pool is closed")
        pool._check({"path": path, "binds": binds, "tmpfs_size": tmpfs_size, "bridge": bridge,
                     "address": address, "gateway": gateway, "config": config,
                     "userns": userns, "limits": limits, "uid": uid, "gid": gid,
                     "hostname": hostname})
    private = owner is None
    who: Owner = Mailbox() if owner is None else lxactors.as_owner(owner)
    if pool is not None:
        plan, booted = pool._take(cmd, env)
    imc = Imc(plan, who, private, window, None if pool is None else pool._ended)
    try:
        imc._start(plan, None if input is None else bytes(input), timeout, cwd, boot_timeout,
                   booted)
    except BaseException:
        if pool is not None:
            pool._ended()
        raise
    return imc


def run(cmd: Sequence[str], *, timeout: float | None = None, input: bytes | None = None,
        **options: Any) -> Result:
    """Run *cmd* in an immutable container and wait: ``(status, stdout, stderr)``.

    Returns once the status and output are complete; the container may
    still be ending then (see :class:`Exited`).

    *options* are :func:`spawn`'s.  Raises :class:`ImcTimeoutError` (with
    the output so far) when *timeout* passed.
    """
    if "owner" in options:
        raise TypeError("run() collects the messages itself; use spawn() to choose an owner")
    out, err = bytearray(), bytearray()
    imc = spawn(cmd, timeout=timeout, input=input, **options)
    try:
        for m in imc:
            if isinstance(m, Stdout):
                out += m.data
            elif isinstance(m, Stderr):
                err += m.data
            elif m.timed_out:
                exc = ImcTimeoutError(imc.name, "run",
                                      f"{imc.command[0]} did not finish within {timeout:g} s")
                exc.stdout, exc.stderr = bytes(out), bytes(err)
                raise exc
            else:
                # The container may still be ending (see Exited): not waited for.
                return Result(m.status, bytes(out), bytes(err))
    except BaseException:
        imc.__exit__(None, None, None)  # killed if still running; gone before this raises
        raise
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
    add_limit_arguments(p, DEFAULT_LIMITS, disk=False)
    p.add_argument("--pool", type=int, default=DEFAULT_POOL, metavar="N",
                   help=f"boot N containers ahead and run CMD in one (default {DEFAULT_POOL}: "
                   "one command gains nothing from a pool; 0 turns it off)")
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
    limits = limits_from(args)
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
    with signals(stop), contextlib.ExitStack() as pools:
        shape = dict(path=args.path, binds=binds, tmpfs_size=args.tmpfs_size,
                     bridge=args.bridge, address=args.address, gateway=args.gateway,
                     config=list(args.config), userns=not args.no_userns, limits=limits)
        try:
            if args.pool < 0:
                raise ValueError(f"--pool must be 0 or more, not {args.pool}")
            if args.pool:
                pool = Pool(args.pool, **shape)
                pools.enter_context(pool)
                imc = spawn(cmd, pool=pool, uid=args.uid, gid=args.gid, env=dict(args.env),
                            cwd=args.cwd, input=data, timeout=args.timeout,
                            hostname=args.hostname)
            else:
                imc = spawn(cmd, uid=args.uid, gid=args.gid, env=dict(args.env), cwd=args.cwd,
                            input=data, timeout=args.timeout, hostname=args.hostname, **shape)
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
