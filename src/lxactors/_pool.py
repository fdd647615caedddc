"""``Pool``: containers of one option set cloned, started and booted ahead.

A spawn served from a pool hands over a running container: one call to its
actor (the new owner set on the actor, its console and its supervisor
entry), so well under a millisecond, where a cold spawn clones and starts.

Until handed over, a pooled container is temporary and owned by the pool
(:class:`_Held`), so every owner-death path destroys it: the pool closed,
the pool's owner (the actor or thread that made it) gone, the interpreter
exiting or the process killed (the helper's registry).  A container is
taken out of the pool under its lock before it is handed over, so none is
handed out twice; and it is marked handed before its owner changes, so a
pool closing meanwhile leaves it to its new owner.  The new owner sees the
console from the hand-over on (a newline is typed so that the shell prints
a fresh prompt), not the boot's output, unless it asks for ``boot_log``.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any

from lxactors._api import ContainerRef, exit, spawn
from lxactors._api import type as type_of
from lxactors._errors import LxcError
from lxactors._messages import ConsoleOutput, ContainerExited, Message
from lxactors._owner import Done, Owner, as_owner
from lxactors._supervisor import supervisor

__all__ = ["Pool", "POOL_SPAWN_OPTIONS"]

log = logging.getLogger("lxactors")

#: What a spawn from a pool may still choose (the rest was applied at boot).
POOL_SPAWN_OPTIONS = frozenset({"owner", "window", "boot_log"})
#: Console bytes of the boot kept for ``boot_log=True``.
BOOT_LOG_MAX = 64 * 1024


class _Held(Owner):
    """The owner of one pooled container: keeps its boot log, says whether
    the pool (and the pool's owner) lives."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.handed = False
        self.ended = False
        self.boot = bytearray()

    def deliver(self, message: Message, done: Done | None = None) -> bool:
        if isinstance(message, ConsoleOutput):
            self.boot += message.data
            del self.boot[:-BOOT_LOG_MAX]
        elif isinstance(message, ContainerExited):
            self.ended = True
            self.pool._lost(self)
        if done is not None:
            done()  # held consoles never stall the boot
        return True

    def alive(self) -> bool:
        return self.handed or self.pool._alive()

    def describe(self) -> str:
        return f"pool {self.pool!r}"


class Pool:
    """Keep *size* containers spawned with *options*, ready to hand over.

    ``pool.spawn(owner=None, window=None, boot_log=False)`` (or
    ``lxactors.spawn(pool=pool, ...)``) hands one over, or spawns cold if
    none is ready; the pool refills in the background with at most
    *refill* spawns at a time.  Options are :func:`lxactors.spawn`'s, for
    unnamed temporary containers.  The pool belongs to *owner* (None: the
    calling actor or thread) and closes with it; ``close()`` (or leaving a
    ``with`` block) destroys the containers not handed over.

    *factory* (instead of options) makes each container: called with the
    owner to give it, it returns ``lxactors.spawn(..., owner=owner)``'s
    reference to a temporary container (imc's pool names its containers
    and builds their root first).
    """

    def __init__(self, size: int, *, refill: int = 2, owner: object = None,
                 factory: Callable[[Owner], ContainerRef] | None = None,
                 **options: Any) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ValueError(f"pool size must be a non-negative int, not {size!r}")
        if isinstance(refill, bool) or not isinstance(refill, int) or refill < 1:
            raise ValueError(f"pool refill must be a positive int, not {refill!r}")
        if factory is not None and not callable(factory):
            raise TypeError(f"factory must be callable, not {type(factory).__name__}")
        if factory is not None and options:
            raise ValueError("give the spawn options either to the pool or to its factory")
        if "name" in options:
            raise ValueError("a pool holds unnamed containers: no name")
        if options.get("type", "temporary") != "temporary":
            raise ValueError(f"pooled containers are temporary, not {options['type']!r}")
        if options.get("nodaemonize"):
            raise ValueError("nodaemonize cannot apply to pooled containers")
        self.size = size
        self.options = dict(options)
        self._factory = factory
        self._owner = as_owner(owner)
        self._lock = threading.Condition()
        self._ready: collections.deque[tuple[ContainerRef, _Held]] = collections.deque()
        self._booting = 0
        self._closed = False
        self._failures = 0
        self._threads = [threading.Thread(target=self._refill, name=f"lxactors-pool-{i}",
                                          daemon=True) for i in range(min(refill, max(size, 1)))]
        for t in self._threads:
            t.start()

    # ------------------------------------------------------------ state

    @property
    def ready(self) -> int:
        """Containers booted and waiting to be handed over."""
        with self._lock:
            return len(self._ready)

    @property
    def closed(self) -> bool:
        return self._closed

    def _alive(self) -> bool:
        return not self._closed and self._owner.alive()

    def _lost(self, held: _Held) -> None:
        """A pooled container ended before its hand-over: refill."""
        with self._lock:
            self._ready = collections.deque(e for e in self._ready if e[1] is not held)
            self._lock.notify_all()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self._ready)}/{self.size} ready"
        return f"<lxactors.Pool {state}>"

    # ------------------------------------------------------------ refill

    def _refill(self) -> None:
        while True:
            with self._lock:
                while self._alive() and len(self._ready) + self._booting >= self.size:
                    self._lock.wait(0.5)
                if not self._alive():
                    return
                self._booting += 1
            held = _Held(self)
            ref = None
            try:
                ref = self._make(held)
            except Exception as exc:
                log.warning("pool: spawn failed: %s", exc)
            with self._lock:
                self._booting -= 1
                if ref is not None and self._alive() and not held.ended:
                    self._ready.append((ref, held))
                    self._failures = 0
                    self._lock.notify_all()
                    continue
                if ref is None:
                    self._failures += 1
                    backoff = min(5.0, 0.1 * 2 ** min(self._failures, 6))
            if ref is not None:
                with contextlib.suppress(LxcError):
                    exit(ref, "kill")
            else:
                with self._lock:
                    self._lock.wait(backoff)

    def _make(self, owner: Owner) -> ContainerRef:
        """One container for the pool, owned by *owner*: temporary, whoever made it."""
        if self._factory is None:
            return spawn("", owner=owner, **self.options)
        ref = self._factory(owner)
        if not isinstance(ref, ContainerRef) or ref.owner is not owner:
            raise TypeError("a pool's factory must return spawn(..., owner=owner)'s reference")
        if type_of(ref) != "temporary":
            exit(ref, "kill")
            raise ValueError("a pool's factory must spawn temporary containers")
        return ref

    # ------------------------------------------------------------ hand-over

    def _serve_spawn(self, name: str, owner: object, options: dict[str, Any]) -> ContainerRef:
        """``spawn(pool=self, ...)``: only what can apply to a running container."""
        if name:
            raise ValueError(f"a pool holds unnamed containers: spawn({name!r}, pool=...) "
                             "cannot be served")
        refused = sorted(set(options) - POOL_SPAWN_OPTIONS)
        if refused:
            raise ValueError(f"option(s) {', '.join(refused)} cannot apply to a running container: "
                             "give them to the Pool, whose containers are booted ahead")
        return self.spawn(owner=owner, **options)

    def spawn(self, *, owner: object = None, window: int | None = None,
              boot_log: bool = False) -> ContainerRef:
        """Hand over a ready container to *owner* (None: the caller); cold
        spawn one with the pool's options if none is ready."""
        if self._closed:
            raise LxcError(None, "spawn", "the pool is closed")
        if window is not None and (isinstance(window, bool) or not isinstance(window, int)
                                   or window < 1):
            raise ValueError(f"window must be a positive int, not {window!r}")
        who = as_owner(owner)
        while True:
            with self._lock:
                if not self._ready:
                    break
                ref, held = self._ready.popleft()
                held.handed = True  # from here on the pool's end does not end it
                self._lock.notify_all()
            try:
                ref._ask("hand_over", who, window, bytes(held.boot) if boot_log else None)
            except LxcError:
                continue  # it ended meanwhile: the next one
            supervisor().set_owner(ref._entry, who)
            ref.owner = who
            return ref
        if self._factory is not None:
            ref = self._make(who)
            if window is not None:
                ref._ask("hand_over", who, window, None)
            return ref
        options = dict(self.options)
        if window is not None:
            options["window"] = window
        return spawn("", owner=who, **options)

    # ------------------------------------------------------------ teardown

    def close(self) -> None:
        """Destroy the containers not handed over; stop refilling (idempotent)."""
        with self._lock:
            self._closed = True
            taken = list(self._ready)
            self._ready.clear()
            self._lock.notify_all()
        for t in self._threads:
            if t is not threading.current_thread():
                t.join()
        for ref, _ in taken:
            with contextlib.suppress(LxcError):
                exit(ref, "kill")

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
