"""The one module that imports the compiled extension, plus str <-> C helpers."""

from __future__ import annotations

from typing import Any

try:
    from lxactors._lxc import ffi, lib
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError(
        "lxactors' liblxc extension is not built or liblxc is missing: "
        "install 'lxc' and 'lxc-dev' (apt-get install lxc lxc-dev) and reinstall lxactors"
    ) from exc

__all__ = ["ffi", "lib", "NULL", "from_c", "take_string", "take_string_array"]

NULL = ffi.NULL


def from_c(ptr: Any) -> str | None:
    """Return a C string as ``str`` (``None`` for NULL) without freeing it."""
    if ptr == NULL:
        return None
    return ffi.string(ptr).decode("utf-8", "surrogateescape")  # type: ignore[no-any-return]


def take_string(ptr: Any) -> str | None:
    """Return a malloc'd C string as ``str`` and free it."""
    if ptr == NULL:
        return None
    try:
        return from_c(ptr)
    finally:
        lib.free(ptr)


def take_string_array(arr: Any, count: int = -1) -> list[str]:
    """Return a malloc'd array of malloc'd strings (NULL-ended, or *count* long)."""
    out: list[str] = []
    if arr == NULL:
        return out
    try:
        i = 0
        while (count < 0 and arr[i] != NULL) or i < count:
            s = take_string(arr[i])
            if s is not None:
                out.append(s)
            i += 1
    finally:
        lib.free(arr)
    return out
