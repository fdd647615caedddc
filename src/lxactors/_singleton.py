"""One object per process, made on first use and made again after a fork.

The console hub, the log directory, the helper and the supervisor each hold
threads, fds or a child process that a forked child does not inherit in a
usable state: the child must get its own.  Standard library only.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["PerProcess"]

T = TypeVar("T")


class PerProcess(Generic[T]):
    """``get()`` returns this process's instance, made by *factory* if needed.

    After a fork the parent's instance is dropped, never used: its threads do
    not run in the child, and its child processes are the parent's.
    """

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._lock = threading.Lock()
        self._value: T | None = None
        self._pid = 0

    def get(self) -> T:
        with self._lock:
            if self._value is None or self._pid != os.getpid():
                self._value = self._factory()
                self._pid = os.getpid()
            return self._value

    def peek(self) -> T | None:
        """This process's instance if one was made (never makes one)."""
        with self._lock:
            return self._value if self._pid == os.getpid() else None

    def replace(self, value: T | None) -> T | None:
        """Put *value* in place (None: make anew on the next ``get``); return the old one."""
        with self._lock:
            old = self._value if self._pid == os.getpid() else None
            self._value, self._pid = value, os.getpid() if value is not None else 0
            return old
