"""A container on some node of the cluster, and the API on it (lxactors' own, across hosts)."""

from __future__ import annotations

import builtins
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from types import TracebackType
from typing import Any, cast

import pykka
import ray
from ray.exceptions import RayError, RayTaskError

from lxactors import ConsoleOutput, ContainerExited, GaveUp, LxcError, Message, liblxc
from lxactors._owner import calling_actor
from lxactors.cluster import _relay
from lxactors.cluster._agent import agent
from lxactors.cluster._lease import forget, lease
from lxactors.cluster._place import choose

__all__ = ["RemoteRef", "spawn", "exit", "send", "type", "container", "remote_call"]

log = logging.getLogger("lxactors")

#: Seconds to wait for an agent's answer beyond the operation's own timeout.
CALL_TIMEOUT = 120.0
_TYPES = ("temporary", "transient", "permanent")
#: How often a spawn waiting for its answer checks that the agent's call has not failed.
FIRST_POLL = 0.1
#: How often pykka owners are checked for having stopped.
OWNER_POLL = 0.05


def remote_call(name: str | None, operation: str, method: Any, *args: Any,
                timeout: float = CALL_TIMEOUT) -> Any:
    """Call an agent method; its exception is raised as itself, a lost agent as LxcError."""
    return _result(name, operation, method.remote(*args), timeout)


def _result(name: str | None, operation: str, ref: Any, timeout: float) -> Any:
    """``ray.get(ref)``; the agent's exception raised as itself, a lost agent as LxcError."""
    try:
        return ray.get(ref, timeout=timeout)
    except RayTaskError as exc:
        cause = exc.cause
        if isinstance(cause, BaseException):
            raise cause from None
        raise LxcError(name, operation, str(exc)) from exc
    except ray.exceptions.GetTimeoutError as exc:
        raise LxcError(name, operation, f"no answer from the node within {timeout:g} s") from exc
    except RayError as exc:
        raise LxcError(name, operation, f"the node or its agent is gone: {type_name(exc)}") from exc


def _first(name: str | None, stream: Any, timeout: float) -> Any:
    """The first item of an agent's *stream* (its exception raised as :func:`remote_call` does).

    A call that fails before its generator runs (an agent of another
    lxactors version, say) yields no item at all, only a failed
    ``completed()``: both are waited for.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            # The generator's own wait, bounded (next() has none): a nil ref when none came.
            item = stream._next_sync(FIRST_POLL)
        except StopIteration:
            raise LxcError(name, "spawn", "the node's agent ended the call without an answer") from None
        if not item.is_nil():
            return _result(name, "spawn", item, timeout)
        if ray.wait([stream.completed()], timeout=0)[0]:
            _result(name, "spawn", stream.completed(), timeout)  # raises the call's failure
            raise LxcError(name, "spawn", "the node's agent ended the call without an answer")
        if time.monotonic() > deadline:
            raise LxcError(name, "spawn", f"no answer from the node within {timeout:g} s")


def type_name(exc: BaseException) -> str:
    return builtins.type(exc).__name__


class RemoteRef:
    """A container spawned on a node of the cluster: pass it to this module's functions.

    As with a local :class:`lxactors.ContainerRef`, plain-code owners read
    its messages here (``ref.receive(timeout)``, ``for m in ref``); if the
    node or its agent is lost the last message is
    ``ContainerExited(reason="lost")``.
    """

    def __init__(self, cid: str, name: str, path: str, node: str, agent: Any,
                 owner: pykka.ActorRef[Any] | None, stream: Any, reader: _relay.Reader) -> None:
        self.cid = cid
        self.name = name
        self.path = path
        self.node = node
        self._agent = agent
        self.owner = owner
        #: Messages for a plain-code owner (None: the end), two ahead at most.
        self._q: queue.Queue[Message | None] = queue.Queue(maxsize=2)
        self._ended = threading.Event()
        self._stream = stream  # the spawn's call: its one item (the id) is already read
        self._reader = reader
        self._lost: str | None = None
        self._pump = threading.Thread(target=self._run, name=f"lxactors-cluster-{name}", daemon=True)
        self._pump.start()
        threading.Thread(target=self._watch_call, name=f"lxactors-cluster-{name}-call",
                         daemon=True).start()

    @property
    def alive(self) -> bool:
        """Are its messages still coming (the container not ended, its node not lost)?"""
        return not self._ended.is_set()

    # ------------------------------------------------------------------ messages

    def _watch_call(self) -> None:
        """The spawn's call ends with the stream; if it fails, the node or agent is lost,
        though no connection reset may ever come (a node frozen or switched off): the
        stream is cut.  A failed call's error is in an item, not raised by the iteration."""
        try:
            for item in self._stream:
                ray.get(item)
        except RayError as exc:
            self._lost = f"{type_name(exc)}: {exc}"
            self._reader.interrupt()

    def _run(self) -> None:
        ended = False  # the last message said the container ended (exited, or gave up)
        reason = ""
        try:
            for m in self._reader.messages(self.name):
                if not isinstance(m, ConsoleOutput):
                    ended = isinstance(m, (ContainerExited, GaveUp))
                if self.owner is None:
                    self._q.put(m)
                elif not self._tell(m):
                    return
            if not ended:  # the agent went away cleanly (its node shutting down) mid-stream
                reason = "the stream ended before the container did"
        except (ConnectionError, ValueError) as exc:  # a frame not ours: the stream is unusable
            reason = self._lost or str(exc)
        finally:
            self._reader.close()
            if reason:
                log.info("container %s on node %s lost: %s", self.name, self.node, reason)
                lost = ContainerExited(self.name, "lost")
                if self.owner is None:
                    self._q.put(lost)
                else:
                    self._tell(lost)
            self._ended.set()
            if self.owner is None:
                self._q.put(None)

    def _tell(self, message: Message) -> bool:
        """Hand *message* to the pykka owner, processed before the next (False: it is gone)."""
        assert self.owner is not None
        try:
            self.owner.ask(message)
        except pykka.ActorDeadError:
            _release(self)
            return False
        except Exception:  # the owner's on_receive failed: pykka has stopped it
            log.exception("owner of %s failed on %r", self.name, message)
        return True

    def _mailbox_owner(self) -> None:
        if self.owner is not None:
            raise LxcError(self.name, "receive",
                           "messages go to the owner actor; only plain-code owners read them here")

    def receive(self, timeout: float | None = None) -> Message:
        """The next message (``queue.Empty`` after *timeout* seconds, or once all were read)."""
        self._mailbox_owner()
        message = self._q.get(timeout=timeout)
        if message is None:
            self._q.put(None)  # stays at the end
            raise queue.Empty
        return message

    def __iter__(self) -> Iterator[Message]:
        self._mailbox_owner()
        while True:
            try:
                yield self.receive()
            except queue.Empty:
                return

    # ------------------------------------------------------------------ context

    def __enter__(self) -> RemoteRef:
        return self

    def __exit__(self, t: builtins.type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.alive:
            exit(self, "kill")

    def __reduce__(self) -> Any:
        raise TypeError("a RemoteRef belongs to its owner: pass the container's name instead")

    def __repr__(self) -> str:
        return (f"<RemoteRef {self.name!r} on node {self.node[:12]} "
                f"{'alive' if self.alive else 'ended'}>")


# ---------------------------------------------------------------------- pykka owners

_watched: set[RemoteRef] = set()
_watched_lock = threading.Lock()
_watcher: threading.Thread | None = None


def _release(ref: RemoteRef) -> None:
    with _watched_lock:
        _watched.discard(ref)
    try:
        ref._agent.release.remote(ref.cid)
    except RayError as exc:
        log.info("release of %s: %s", ref.name, exc)


def _watch_owners() -> None:
    """Pykka owners stop without telling: poll them, as lxactors' supervisor does."""
    while True:
        threading.Event().wait(OWNER_POLL)
        with _watched_lock:
            refs = list(_watched)
        for ref in refs:
            if not ref.alive:
                with _watched_lock:
                    _watched.discard(ref)
            elif ref.owner is not None and not ref.owner.is_alive():
                _release(ref)


def _watch(ref: RemoteRef) -> None:
    global _watcher
    with _watched_lock:
        _watched.add(ref)
        if _watcher is None or not _watcher.is_alive():
            _watcher = threading.Thread(target=_watch_owners, name="lxactors-cluster-owners",
                                        daemon=True)
            _watcher.start()


# ---------------------------------------------------------------------- the API

def spawn(name: str = "", *, node: str | None = None, label: Mapping[str, str] | None = None,
          resource: str | None = None, owner: object = None, pool: bool = True,
          **options: Any) -> RemoteRef:
    """:func:`lxactors.spawn` on a node of the cluster; same names, options and policies.

    The node is *node* (a node id), else one carrying every *label* and the
    custom *resource*, else any alive node, in turn.  The owner is the
    calling pykka actor or *owner* (a pykka ``ActorRef``), else this process
    (a driver or a Ray actor), its messages read through the reference.
    The policies hold when the owner exits, fails, or is SIGKILLed.

    An unnamed spawn with no option but ``window`` is served, if *pool*,
    by the node's pool (its agent keeps a few booted: a running container
    is handed over, and its console starts at the hand-over, with a fresh
    prompt); ``pool=False`` boots one, its console from the boot on.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, not {builtins.type(name).__name__}")
    if not isinstance(pool, bool):
        raise TypeError(f"pool must be a bool, not {builtins.type(pool).__name__}")
    if owner is not None and not isinstance(owner, pykka.ActorRef):
        raise TypeError(f"owner must be a pykka.ActorRef or None, not {builtins.type(owner).__name__}")
    who = owner if owner is not None else calling_actor()
    node_id = choose(name, node, label, resource)
    handle = agent(node_id)
    lease_id, lease_handle = lease(node_id)
    try:
        stream = handle.spawn.remote(lease_id, lease_handle, name, options, pool)
        first = _first(name or None, stream, CALL_TIMEOUT)
    except LxcError:
        forget(node_id)  # a lost node's lease is not reused
        raise
    if not (isinstance(first, tuple) and len(first) == 6 and first[0] == _relay.PROTOCOL):
        if isinstance(first, tuple) and len(first) == 3:  # (id, name, lxcpath): before the relay
            handle.release.remote(first[0])
        raise LxcError(name or None, "spawn", f"the agent on node {node_id} runs another "
                       "lxactors version (restart it: ray kill its actor, or restart the node)")
    _, cid, real_name, path, address, token = first
    try:
        reader = _relay.connect(tuple(address), token)
    except OSError as exc:
        handle.release.remote(cid)  # its policy applies: no owner reads it
        raise LxcError(real_name, "spawn", f"its messages cannot be read from node {node_id} "
                       f"at {address[0]}:{address[1]}: {exc}") from exc
    ref = RemoteRef(cid, real_name, path, node_id, handle, who, stream, reader)
    if who is not None:
        _watch(ref)
    return ref


def exit(ref: RemoteRef, reason: str = "normal", timeout: float = 10.0) -> ContainerExited | None:
    """Halt the container (``"normal"`` or ``"kill"``); the exit message its owner also gets."""
    _check_ref(ref)
    if reason not in ("normal", "kill"):
        raise ValueError(f"exit reason must be 'normal' or 'kill', not {reason!r}")
    _check_seconds(timeout)
    return cast("ContainerExited | None",
                remote_call(ref.name, "exit", ref._agent.exit, ref.cid, reason, timeout,
                            timeout=timeout + CALL_TIMEOUT))


def send(ref: RemoteRef, data: bytes | str, timeout: float = 30.0) -> None:
    """Write *data* to the container's console (str is UTF-8 encoded)."""
    _check_ref(ref)
    if isinstance(data, str):
        data = data.encode()
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes or str, not {builtins.type(data).__name__}")
    _check_seconds(timeout)
    remote_call(ref.name, "send", ref._agent.send, ref.cid, bytes(data), timeout,
                timeout=timeout + CALL_TIMEOUT)


def type(ref: RemoteRef, new: str | None = None) -> str:
    """Get the container's type, or change it to *new* (returns the new type)."""
    _check_ref(ref)
    if new is not None and new not in _TYPES:
        raise ValueError(f"type must be one of {_TYPES}, not {new!r}")
    return cast(str, remote_call(ref.name, "type", ref._agent.type, ref.cid, new))


class _RemoteHandle:
    """The low-level handle on the container's node, each call run in its actor there."""

    def __init__(self, ref: RemoteRef) -> None:
        self._ref = ref

    def __getattr__(self, method: str) -> Callable[..., Any]:
        if method.startswith("_") or not callable(getattr(liblxc.Container, method, None)):
            raise AttributeError(f"lxactors.liblxc.Container has no method {method!r}")

        def call(*args: Any, **kwargs: Any) -> Any:
            return remote_call(self._ref.name, method, self._ref._agent.call, self._ref.cid,
                               method, args, kwargs)

        call.__name__ = method
        return call

    def __repr__(self) -> str:
        return f"<handle of {self._ref.name!r} on node {self._ref.node[:12]}>"


def container(ref: RemoteRef) -> liblxc.Container:
    """The low-level :class:`~lxactors.liblxc.Container`, called on the container's node."""
    _check_ref(ref)
    return cast(liblxc.Container, _RemoteHandle(ref))


def _check_seconds(timeout: object) -> None:
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 <= timeout < 1e9:
        raise ValueError(f"timeout must be a number of seconds >= 0, not {timeout!r}")


def _check_ref(ref: object) -> None:
    if not isinstance(ref, RemoteRef):
        raise TypeError(f"expected a RemoteRef from lxactors.cluster.spawn(), "
                        f"not {builtins.type(ref).__name__}")


