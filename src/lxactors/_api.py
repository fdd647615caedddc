"""The high-level API: erlxc's ``spawn / exit / send / type / container / console``."""

from __future__ import annotations

import builtins
import threading
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any, cast

import pykka

from lxactors._actor import ContainerActor, ask
from lxactors._console import Console
from lxactors._errors import LxcError
from lxactors._limits import host_layout, parse_events
from lxactors._messages import ContainerExited, Message
from lxactors._options import parse_options
from lxactors._owner import Mailbox, Owner, as_owner
from lxactors._policy import Intensity, Type, check_type
from lxactors._supervisor import Entry, supervisor
from lxactors._validate import check_timeout
from lxactors.liblxc import Container, default_lxcpath

__all__ = ["ContainerRef", "spawn", "exit", "send", "type", "container", "console",
           "limit_events"]

#: Seconds to wait for the container actor to answer a call.
CALL_TIMEOUT = 120.0


class ContainerRef:
    """A spawned container: pass it to :func:`exit`, :func:`send`, ...

    When the owner is plain code, the container's messages are read here:
    ``ref.receive(timeout)`` or ``for message in ref``.  As a context manager
    the container is exited (``"kill"``) on leaving the block.
    """

    def __init__(self, name: str, path: str, actor: pykka.ActorRef[ContainerActor],
                 owner: Owner, entry: Entry) -> None:
        self.name = name
        self.path = path
        self.actor = actor
        self.owner = owner
        self._entry = entry
        #: A handle of the caller's side for the monitor's queries (see _HandleProxy).
        self._query: Container | None = None
        self._query_lock = threading.Lock()

    @property
    def alive(self) -> bool:
        """Is the container's actor still running (the container not ended)?"""
        return self.actor.is_alive()

    def _mailbox(self) -> Mailbox:
        if not isinstance(self.owner, Mailbox):
            raise LxcError(self.name, "receive",
                           "messages go to the owner actor; only plain-code owners read them here")
        return self.owner

    def receive(self, timeout: float | None = None) -> Message:
        """The next message for this container's owner (``queue.Empty`` on timeout)."""
        return self._mailbox().get(timeout)

    def __iter__(self) -> Iterator[Message]:
        return iter(self._mailbox())

    def _ask(self, method: str, *args: Any, timeout: float = CALL_TIMEOUT) -> Any:
        if not self.actor.is_alive():
            raise LxcError(self.name, method, "the container has ended")
        try:
            return ask(self.actor, method, *args).get(timeout=timeout)
        except pykka.ActorDeadError as exc:
            raise LxcError(self.name, method, "the container has ended") from exc
        except pykka.Timeout as exc:
            raise LxcError(self.name, method, f"no answer within {timeout:g} s") from exc

    def _monitor_query(self, method: str) -> Any:
        """Ask the container's monitor *method* from the calling thread.

        Its answer comes over the monitor's command socket, the same from
        any handle on the container: no need to queue it behind the actor's
        calls (a thread hand-off that costs more than the query).
        """
        with self._query_lock:
            if not self.actor.is_alive():
                self._close_query()
                raise LxcError(self.name, method, "the container has ended")
            if self._query is None:
                self._query = Container(self.name, self.path, log=False)  # no fd held
            return getattr(self._query, method)()

    def _close_query(self) -> None:
        if self._query is not None:
            self._query.close()
            self._query = None

    def _ended(self) -> None:
        """The container's actor ended: release the query handle."""
        with self._query_lock:
            self._close_query()

    def __enter__(self) -> ContainerRef:
        return self

    def __exit__(self, t: builtins.type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.alive:
            exit(self, "kill")

    def __repr__(self) -> str:
        return f"<ContainerRef {self.name!r} in {self.path} {'alive' if self.alive else 'ended'}>"


def spawn(name: str = "", *, owner: object = None, restarts: int = 3,
          restart_period: float = 5.0, **options: Any) -> ContainerRef:
    """Spawn a container and return its reference.

    ``name=""`` gives a random name and a temporary, ephemeral overlay clone
    of a cached busybox base.  A named container is transient, created with
    its template if it does not exist, started if stopped, and connected to
    if already running.  The options are the erlxc seed's: ``path``,
    ``verbose``, ``config``, ``cgroup``, ``chroot``, ``create``, ``start``,
    ``type``; and ``nodaemonize``, ``nocloseallfds``, ``exec`` for debugging;
    ``window`` (console flow-control bytes), ``console`` (False: none),
    ``timeout``; and ``userns``: True runs the container in a user namespace
    (its root is an unprivileged host uid from root's range in /etc/subuid),
    a ``range`` or ``(start, count)`` chooses the host ids, False runs it
    without.  Unnamed containers default to True, named ones to False.
    ``limits``: a :class:`Limits` (processes, memory, CPU, writable layer),
    None for none (the default).  See the README for each.

    *owner* is who gets the messages: a pykka ``ActorRef``, a
    :class:`Mailbox`, or None for the calling actor (or, from plain code, a
    new mailbox read through the reference).  Restarts are limited to
    *restarts* within *restart_period* seconds.
    """
    if "pool" in options:
        # The pool is a layer above spawn (it spawns the containers it holds):
        # it serves the request itself, so this module need not import it.
        pool = options.pop("pool")
        serve = getattr(pool, "_serve_spawn", None)
        if not callable(serve):
            raise TypeError(f"pool must be an lxactors.Pool, not {builtins.type(pool).__name__}")
        return cast(ContainerRef, serve(name, owner, options))
    name, named, opts = parse_options(name, options)
    if isinstance(restarts, bool) or not isinstance(restarts, int) or restarts < 0:
        raise ValueError(f"restarts must be a non-negative int, not {restarts!r}")
    if isinstance(restart_period, bool) or not isinstance(restart_period, (int, float)) \
            or not restart_period > 0:
        raise ValueError(f"restart_period must be a positive number, not {restart_period!r}")
    who = as_owner(owner)
    type_: Type = opts.type or ("transient" if named else "temporary")
    sup = supervisor()
    existing = sup.get(opts.path or default_lxcpath(), name)
    if existing is not None and existing.actor.is_alive():
        raise LxcError(name, "spawn", f"already spawned here, owned by {existing.owner.describe()}")

    # The container may end (and its actor stop) as soon as boot returns: a
    # command that exits at once.  Its end is then reported to the owner like
    # any other; the supervisor entry is added only while the actor lives.
    ended: list[Callable[[], None]] = []
    end_lock = threading.Lock()
    gone = threading.Event()

    def on_end(actor: ContainerActor) -> None:
        with end_lock:
            gone.set()
            fns = list(ended)
        for fn in fns:
            fn()

    actor = ContainerActor.start(name, named, opts, who, type_,
                                 Intensity(restarts, float(restart_period)), on_end)
    try:
        path = ask(actor, "boot").get(timeout=opts.timeout + 600)
    except BaseException:
        # A failed boot cleaned up after itself; an interrupted wait (^C, a
        # timeout) must not leave a container nobody holds: kill it once the
        # boot is done (a temporary one is deleted too), then end the actor.
        ask(actor, "exit", "kill", 0)  # a future: a dead actor raises nothing here
        actor.stop(block=False)
        raise
    entry = Entry(name, path, actor, who, type_)
    ref = ContainerRef(name, path, actor, who, entry)
    with end_lock:
        if not gone.is_set():
            sup.add(entry)
            ended.append(lambda: sup.remove(path, name))
            ended.append(ref._ended)
    return ref


def exit(ref: ContainerRef, reason: str = "normal", timeout: float = 10.0) -> ContainerExited | None:
    """Halt the container: ``"normal"`` (shutdown, killed after *timeout*) or ``"kill"``.

    Returns the exit message the owner also got (None if it had already ended).
    """
    _check_ref(ref)
    if reason not in ("normal", "kill"):
        raise ValueError(f"exit reason must be 'normal' or 'kill', not {reason!r}")
    timeout = _seconds(timeout)  # before the actor starts halting: a refused call changes nothing
    if not ref.actor.is_alive():
        return None
    try:
        result = ask(ref.actor, "exit", reason, timeout).get(timeout=timeout + CALL_TIMEOUT)
    except pykka.ActorDeadError:
        return None
    return cast("ContainerExited | None", result)


def send(ref: ContainerRef, data: bytes | str, timeout: float = 30.0) -> None:
    """Write *data* to the container's console (str is UTF-8 encoded)."""
    _check_ref(ref)
    if isinstance(data, str):
        data = data.encode()
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes or str, not {builtins.type(data).__name__}")
    timeout = _seconds(timeout)
    ref._ask("send", bytes(data), timeout, timeout=timeout + CALL_TIMEOUT)


def type(ref: ContainerRef, new: Type | None = None) -> Type:
    """Get the container's type, or change it to *new* (returns the new type)."""
    _check_ref(ref)
    if new is None:
        return cast(Type, ref._ask("get_type"))
    new = check_type(new)
    ref._ask("set_type", new)
    supervisor().set_type(ref._entry, new)
    return new


#: Handle methods whose answer is the monitor's, whichever handle asks
#: (run in the caller's thread, see ContainerRef._monitor_query).
_MONITOR_QUERIES = frozenset({"state", "is_running", "running", "init_pid"})


class _HandleProxy:
    """The low-level handle, each call run in the container's actor (the
    monitor's own queries excepted: see ContainerRef._monitor_query)."""

    def __init__(self, ref: ContainerRef) -> None:
        self._ref = ref

    def __getattr__(self, method: str) -> Callable[..., Any]:
        if method.startswith("_") or not callable(getattr(Container, method, None)):
            raise AttributeError(f"lxactors.liblxc.Container has no method {method!r}")
        ref = self._ref

        def call(*args: Any, **kwargs: Any) -> Any:
            if method in _MONITOR_QUERIES and not args and not kwargs:
                return ref._monitor_query(method)
            return ref._ask("call", method, args, kwargs)

        call.__name__ = method
        return call

    def __repr__(self) -> str:
        return f"<handle of {self._ref.name!r} via its actor>"


def container(ref: ContainerRef) -> Container:
    """The low-level :class:`~lxactors.liblxc.Container`, called through the actor."""
    _check_ref(ref)
    return cast(Container, _HandleProxy(ref))


def console(ref: ContainerRef) -> Console:
    """The console endpoint (``send()``, ``ptx`` fd, bytes in flight)."""
    _check_ref(ref)
    con = ref._ask("get_console")
    if con is None:
        raise LxcError(ref.name, "console", "the container has no console")
    return cast(Console, con)


def limit_events(ref: ContainerRef) -> dict[str, int]:
    """How often the running container met its limits: ``{"pids": forks refused,
    "oom_kills": processes killed at the memory bound, "cpu_throttled": periods
    held back}``, read from its cgroup (a server logs it when a client leaves)."""
    _check_ref(ref)

    def read(item: str) -> str | None:
        try:
            return cast(str, ref._ask("call", "get_cgroup_item", (item,), {}))
        except LxcError:
            return None

    return parse_events(read, host_layout())


def _seconds(timeout: object) -> float:
    """A timeout for exit() and send(): a finite number of seconds, >= 0."""
    if isinstance(timeout, (int, float)) and not isinstance(timeout, bool) and timeout < 0:
        raise ValueError(f"timeout must be >= 0 seconds, not {timeout}")
    return check_timeout(timeout)


def _check_ref(ref: object) -> None:
    if not isinstance(ref, ContainerRef):
        raise TypeError(f"expected a ContainerRef from lxactors.spawn(), not {builtins.type(ref).__name__}")
