"""Threads for the blocking calls of :mod:`lxactors.aio`.

Not ``ThreadPoolExecutor``: its ``submit`` starts a new worker with
``Thread.start``, which waits for that thread to run, so on a busy machine
the event loop would stall for as long as a new thread takes to be
scheduled (tens of ms with 20 spawns at once).  Here ``submit`` never
waits: a worker is started with ``_thread.start_new_thread``, which returns
at once.  Workers are daemonic, as the container actors are (the helper
process applies the policies at interpreter exit), and end when idle.
"""

from __future__ import annotations

import _thread
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

__all__ = ["Workers"]

log = logging.getLogger("lxactors")

Job = tuple["Future[Any]", Callable[[], Any]]


class Workers:
    """At most *limit* threads; a worker idle for *idle* seconds ends."""

    def __init__(self, limit: int, idle: float = 30.0) -> None:
        self._limit = limit
        self._idle_timeout = idle
        self._jobs: queue.SimpleQueue[Job] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._waiting = 0  # workers blocked in get()
        self._queued = 0   # jobs not yet taken

    def submit(self, fn: Callable[[], Any]) -> Future[Any]:
        """Run *fn* in a worker; its result or exception goes to the future."""
        future: Future[Any] = Future()
        with self._lock:
            self._queued += 1
            grow = self._queued > self._waiting and self._threads < self._limit
            if grow:
                self._threads += 1
        self._jobs.put((future, fn))
        if grow:
            try:
                _thread.start_new_thread(self._work, ())
            except RuntimeError:  # cannot start a thread: the others will take it
                with self._lock:
                    self._threads -= 1
                if self._threads == 0:
                    raise
        return future

    def _work(self) -> None:
        while True:
            with self._lock:
                self._waiting += 1
            try:
                future, fn = self._jobs.get(timeout=self._idle_timeout)
            except queue.Empty:
                with self._lock:
                    self._waiting -= 1
                    if self._queued == 0:  # else a job came as the wait timed out
                        self._threads -= 1
                        return
                continue
            with self._lock:
                self._waiting -= 1
                self._queued -= 1
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = fn()
            except BaseException as exc:
                future.set_exception(exc)
            else:
                future.set_result(result)
            del future, fn
