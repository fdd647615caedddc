"""Checks that run before anything reaches C: bad input never crashes liblxc."""

from __future__ import annotations

import os
from collections.abc import Iterable

__all__ = [
    "MAX_NAME",
    "check_name",
    "check_text",
    "check_key",
    "check_value",
    "check_path",
    "check_argv",
    "check_timeout",
    "check_int",
    "encode",
]

#: Longest container name accepted, in bytes (it ends up in cgroup and
#: socket names, which have their own small limits).
MAX_NAME = 64


def encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def check_text(value: object, what: str, *, allow_newline: bool = True) -> bytes:
    """Return *value* (str) as bytes, refusing NUL (and newlines if asked)."""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be str, not {type(value).__name__}")
    if "\0" in value:
        raise ValueError(f"{what} must not contain NUL: {value!r}")
    if not allow_newline and ("\n" in value or "\r" in value):
        raise ValueError(f"{what} must not contain a newline: {value!r}")
    try:
        return encode(value)
    except UnicodeEncodeError as exc:
        raise ValueError(f"{what} is not encodable: {value!r}") from exc


def check_name(name: object, what: str = "container name") -> bytes:
    """A container name: a single path component, at most MAX_NAME bytes."""
    raw = check_text(name, what, allow_newline=False)
    if not raw:
        raise ValueError(f"{what} must not be empty")
    if b"/" in raw or raw in (b".", b"..") or raw.startswith(b"."):
        raise ValueError(f"{what} must be a plain name without '/' or leading '.': {name!r}")
    if len(raw) > MAX_NAME:
        raise ValueError(f"{what} is longer than {MAX_NAME} bytes: {name!r}")
    if any(c < 0x20 or c == 0x7F for c in raw) or b" " in raw:
        raise ValueError(f"{what} must not contain spaces or control characters: {name!r}")
    return raw


def check_key(key: object, what: str = "config key") -> bytes:
    raw = check_text(key, what, allow_newline=False)
    if not raw or b"=" in raw or b" " in raw:
        raise ValueError(f"{what} must be a non-empty key without spaces or '=': {key!r}")
    return raw


def check_value(value: object, what: str = "config value") -> bytes:
    return check_text(value, what, allow_newline=False)


def check_path(path: object, what: str = "path") -> bytes:
    if isinstance(path, os.PathLike):
        path = os.fspath(path)
    if isinstance(path, bytes):
        raise TypeError(f"{what} must be str or os.PathLike[str], not bytes")
    raw = check_text(path, what, allow_newline=False)
    if not raw:
        raise ValueError(f"{what} must not be empty")
    return raw


def check_argv(argv: object, what: str = "argv") -> list[bytes]:
    if isinstance(argv, (str, bytes)) or not isinstance(argv, Iterable):
        raise TypeError(f"{what} must be a list of str, not {type(argv).__name__}")
    return [check_text(a, f"{what} item") for a in argv]


def check_int(value: object, what: str, *, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be int, not {type(value).__name__}")
    if not low <= value <= high:
        raise ValueError(f"{what} must be between {low} and {high}: {value}")
    return value


def check_timeout(timeout: object, what: str = "timeout") -> float:
    """A timeout in seconds: a non-negative, finite number (-1 means forever)."""
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"{what} must be a number of seconds, not {type(timeout).__name__}")
    if timeout != timeout or timeout in (float("inf"), float("-inf")):
        raise ValueError(f"{what} must be finite: {timeout}")
    if timeout < 0 and timeout != -1:
        raise ValueError(f"{what} must be >= 0 (or -1 for no limit): {timeout}")
    if timeout > 2**31 - 1:
        raise ValueError(f"{what} is too large: {timeout}")
    return float(timeout)
