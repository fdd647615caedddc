"""imc's pool: immutable containers booted ahead, one command each.

An :class:`Pool` keeps containers of one shape (lxcpath, binds, tmpfs,
network, config, user namespace, limits) started and waiting; a command
given ``pool=`` is attached to one at once, where a cold :func:`spawn
<lxactors.apps.imc.spawn>` builds the root, creates and starts first.
Each pooled container draws its random uid and gid when it boots (its home
tmpfs is mounted for them), so a command from a pool cannot choose its own,
nor a hostname.  Every container serves one command and goes with it: a
command never sees another's.

Until handed to a command the containers belong to an
:class:`lxactors.Pool` (``factory=``): its end, its owner's (the thread or
actor that made it), the interpreter's or a SIGKILL of the process destroy
them (the helper's registry); handed over, a container is the command's,
and ends as a cold one does.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import lxactors
from lxactors import Owner
from lxactors.apps.imc_command import _boot
from lxactors.apps.imc_plan import DEFAULT_BINDS, DEFAULT_LIMITS, _Plan, _plan

__all__ = ["DEFAULT_POOL", "POOL_OPTIONS", "Pool", "REFILL_DELAY"]

#: Containers ``lxactors imc --pool N`` boots ahead (0: none; one command
#: gains nothing from a pool, several at once do).
DEFAULT_POOL = 0

#: :func:`spawn <lxactors.apps.imc.spawn>`'s options that shape a container,
#: and so are the pool's (with their defaults): given with a pool, an option
#: left at its default or repeating the pool's value is taken, any other is
#: refused.
POOL_OPTIONS: Mapping[str, Any] = {
    "path": None, "binds": DEFAULT_BINDS, "tmpfs_size": "64m", "bridge": None,
    "address": None, "gateway": None, "config": (), "userns": True,
    "limits": DEFAULT_LIMITS,
}
#: Seconds a refill waits for the commands taken from the pool to end
#: before it boots (on a small machine a boot beside a short command slows
#: the command; a long one does not hold the refill back longer than this).
REFILL_DELAY = 1.0
#: Options drawn or fixed when a pooled container boots.
_AT_BOOT = {"uid": None, "gid": None, "hostname": None}


def _same(a: object, b: object) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return tuple(a) == tuple(b)
    return a == b


class Pool:
    """Keep *size* imc containers of one shape booted for commands.

    ``imc.run(cmd, pool=p)`` and ``imc.spawn(cmd, pool=p)`` attach *cmd*
    to a ready container (or boot one cold
    if none is ready); the pool refills in the background with at most
    *refill* boots at a time, each once the commands taken from the pool
    ended (at most :data:`REFILL_DELAY` later: a boot beside a short
    command slows it).  *options* are the container's shape, as
    :func:`spawn <lxactors.apps.imc.spawn>` takes them (:data:`POOL_OPTIONS`:
    ``path``, ``binds``, ``tmpfs_size``, ``bridge``, ``address``,
    ``gateway``, ``config``, ``userns``, ``limits``; no ``address``: the
    containers run at once); what a command still
    chooses is its own (``env``, ``cwd``, ``input``, ``timeout``,
    ``owner``, ``window``).  The pool belongs to *owner* (None: the calling
    actor or thread) and closes with it; ``close()`` (or leaving a ``with``
    block) destroys the containers not handed to a command.
    """

    def __init__(self, size: int, *, refill: int = 2, owner: object = None,
                 boot_timeout: float = 60.0, **options: Any) -> None:
        unknown = sorted(set(options) - set(POOL_OPTIONS))
        if unknown:
            what = ", ".join(unknown)
            if set(unknown) <= set(_AT_BOOT):
                raise ValueError(f"imc.Pool: {what} is drawn when each container boots: "
                                 "give it to imc.spawn without a pool")
            raise TypeError(f"imc.Pool: {what} cannot be chosen ahead of the command "
                            f"(a pool's options: {', '.join(POOL_OPTIONS)})")
        self.options: dict[str, Any] = {**POOL_OPTIONS, **options}
        if self.options["address"] is not None:
            raise ValueError("imc.Pool: a pool's containers run at once (the refill boots "
                             "while a command runs), so they cannot share one address: "
                             "give the pool a bridge without address (or spawn cold)")
        self._plan_for(["true"])  # bad options fail here, not in the refill
        self._boot_timeout = boot_timeout
        self._lock = threading.Condition()
        self._plans: dict[str, _Plan] = {}
        self._closing = False
        self._running = 0  # commands taken from the pool and not yet ended
        self._cold = threading.local()  # set while _take spawns cold (no refill wait)
        self._pool = lxactors.Pool(size, refill=refill, owner=owner, factory=self._make)

    @property
    def size(self) -> int:
        return self._pool.size

    @property
    def ready(self) -> int:
        """Containers booted and waiting for a command."""
        return self._pool.ready

    @property
    def closed(self) -> bool:
        return self._pool.closed

    def _plan_for(self, cmd: Sequence[str], env: Mapping[str, str] | None = None,
                  uid: int | None = None, gid: int | None = None) -> _Plan:
        return _plan(cmd, uid=uid, gid=gid, env=env, hostname=None, **self.options)

    def _make(self, owner: Owner) -> lxactors.ContainerRef:
        if not getattr(self._cold, "on", False):
            # A refill: after the commands running from the pool (bounded).
            with self._lock:
                self._lock.wait_for(lambda: not self._running or self._closing,
                                    REFILL_DELAY)
        plan = self._plan_for(["true"])
        host_uid = plan.uid if plan.userns is None else plan.userns.host_uid(plan.uid)
        ref = _boot(plan, owner, self._boot_timeout, host_uid, command=[])
        with self._lock:
            self._plans[ref.name] = plan
        return ref

    def _check(self, options: Mapping[str, Any]) -> None:
        """Refuse what a running container cannot take (its shape differing from the pool's)."""
        for k, v in options.items():
            if k in _AT_BOOT:
                if v is not None:
                    raise ValueError(f"a pooled container's {k} is drawn when it boots: "
                                     f"give {k}= to imc.spawn without a pool")
            elif k in POOL_OPTIONS:
                if not _same(v, POOL_OPTIONS[k]) and not _same(v, self.options[k]):
                    raise ValueError(f"{k} is the pool's ({self.options[k]!r}): a command from "
                                     f"it cannot choose {v!r}; make a Pool with {k}={v!r}")
            elif k != "boot_timeout":
                raise TypeError(f"unexpected option {k!r}")

    def _take(self, cmd: Sequence[str], env: Mapping[str, str] | None
              ) -> tuple[_Plan, lxactors.ContainerRef]:
        """A booted container (cold if none is ready) and the plan of *cmd* in it."""
        # The command line does not depend on the ids: a bad one fails
        # before a container is taken.
        mine = self._plan_for(cmd, env, 1, 1)
        with self._lock:
            self._running += 1
        try:
            self._cold.on = True
            ref = self._pool.spawn(owner=lxactors.Mailbox())
        except BaseException:
            self._ended()
            raise
        finally:
            self._cold.on = False
        with self._lock:
            booted = self._plans.pop(ref.name)
        return replace(booted, command=mine.command, argv=mine.argv), ref

    def _ended(self) -> None:
        """A command taken from the pool ended (its container is gone): refill."""
        with self._lock:
            self._running -= 1
            self._lock.notify_all()

    def close(self) -> None:
        """Destroy the containers not handed to a command (idempotent)."""
        with self._lock:
            self._closing = True
            self._lock.notify_all()  # a refill waiting for commands: stop waiting
        self._pool.close()
        with self._lock:
            self._plans.clear()

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{self.ready}/{self.size} ready"
        return f"<imc.Pool {state}>"
