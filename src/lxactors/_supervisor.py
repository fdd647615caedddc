"""The supervisor: watches owners and applies the owner-death policies.

pykka has no links or monitors, so owners are watched by one thread that
polls their liveness (an actor's ``actor_stopped`` event, a thread's
``is_alive``) every ``POLL`` seconds.  When an owner is gone, each of its
containers' actors is told to :meth:`~ContainerActor.abandon` it:
temporary -> stopped and deleted, transient -> stopped, permanent -> left
running (adoptable by name).

What no thread in the process can see — the interpreter exiting, or the
process SIGKILLed — the helper process sees as end of file on its socket,
and applies the same table from the types registered with it.
"""

from __future__ import annotations

import atexit
import logging
import threading
from dataclasses import dataclass
from typing import Any

import pykka

from lxactors._actor import ask
from lxactors._helperclient import helper
from lxactors._owner import Owner
from lxactors._policy import Type
from lxactors._singleton import PerProcess

__all__ = ["Entry", "supervisor"]

log = logging.getLogger("lxactors")

#: How often owners are checked, in seconds.
POLL = 0.05


@dataclass(eq=False)
class Entry:
    name: str
    path: str
    actor: pykka.ActorRef[Any]
    owner: Owner
    type: Type


class _Supervisor:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, str], Entry] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lxactors-supervisor",
                                        daemon=True)
        self._thread.start()

    def add(self, entry: Entry) -> None:
        with self._lock:
            self._entries[(entry.path, entry.name)] = entry
        helper().register(entry.path, entry.name, entry.type)

    def get(self, path: str, name: str) -> Entry | None:
        with self._lock:
            return self._entries.get((path, name))

    def set_type(self, entry: Entry, type_: Type) -> None:
        entry.type = type_
        helper().register(entry.path, entry.name, type_)

    def set_owner(self, entry: Entry, owner: Owner) -> None:
        entry.owner = owner

    def remove(self, path: str, name: str) -> None:
        with self._lock:
            entry = self._entries.pop((path, name), None)
        if entry is not None:
            try:
                helper().unregister(path, name)
            except Exception as exc:  # the helper may be gone at exit
                log.debug("unregister %s: %s", name, exc)

    def entries(self) -> list[Entry]:
        with self._lock:
            return list(self._entries.values())

    def _run(self) -> None:
        while not self._stop.wait(POLL):
            if self._entries:
                try:
                    # A dead helper is replaced now, not at the next call: it
                    # holds the policies to apply if this process dies.
                    helper()._ensure()
                except Exception:
                    log.exception("lxactors supervisor: cannot restart the helper")
            for entry in self.entries():
                try:
                    if entry.owner.alive() or not entry.actor.is_alive():
                        continue
                    log.info("owner %s of %s is gone; applying %s policy",
                             entry.owner.describe(), entry.name, entry.type)
                    with self._lock:
                        self._entries.pop((entry.path, entry.name), None)
                    ask(entry.actor, "abandon")
                except Exception:
                    log.exception("lxactors supervisor")


_supervisor = PerProcess(_Supervisor)


def supervisor() -> _Supervisor:
    """The process's supervisor (its thread started on first use, again after fork)."""
    return _supervisor.get()


def _at_exit() -> None:
    """Interpreter exit: the helper applies the policies as it would on SIGKILL."""
    sup = _supervisor.peek()
    if sup is not None:
        sup._stop.set()
        if sup.entries():
            try:
                helper()._ensure()  # a helper that died since the last poll is replaced first
            except Exception as exc:
                log.warning("lxactors: cannot restart the helper at exit: %s", exc)
        helper().close()


atexit.register(_at_exit)
