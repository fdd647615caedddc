"""Exceptions: one class for liblxc failures, carrying who, what and why."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["LxcError", "AccessRefused", "ContainerClosedError", "HelperError", "LxcTimeoutError"]


class LxcError(Exception):
    """A liblxc operation failed.

    ``container`` and ``operation`` say which call failed; ``log`` holds the
    error lines liblxc wrote for it (liblxc 5.0 never sets ``error_string``,
    so its own log is the only place its reasons can be read).
    """

    def __init__(
        self,
        container: str | None,
        operation: str,
        message: str = "failed",
        log: Sequence[str] = (),
    ) -> None:
        self.container = container
        self.operation = operation
        self.message = message
        self.log = tuple(log)
        super().__init__(str(self))

    def __str__(self) -> str:
        who = f"container {self.container!r}" if self.container else "liblxc"
        text = f"{who}: {self.operation}: {self.message}"
        if self.log:
            text += "\n  " + "\n  ".join(self.log)
        return text

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(container={self.container!r}, "
            f"operation={self.operation!r}, message={self.message!r}, log={self.log!r})"
        )

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.container, self.operation, self.message, self.log))


class ContainerClosedError(LxcError):
    """The handle was closed; open a new one."""


class HelperError(LxcError):
    """The helper process that runs liblxc's forking calls failed or died."""


class LxcTimeoutError(LxcError, TimeoutError):
    """A blocking liblxc call did not finish within its timeout."""


class AccessRefused(LxcError, PermissionError):
    """The privileged helper refused an unprivileged caller's request.

    ``message`` names the rule of ``/etc/lxactors/access.conf`` (or the
    built-in one) that refused it; nothing was changed.
    """
