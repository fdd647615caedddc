"""Build the cffi extension ``lxactors._lxc`` against the system liblxc.

API mode, out of line: the declarations in ``decl/*.h`` are compiled against
the real ``<lxc/lxccontainer.h>`` at install time, so struct offsets and
constants come from the header, not from us.  ``lxactors._ffi`` is the one
module that imports the result.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
DECLS = ("attach.h", "container.h", "launcher.h", "calls.h")
#: C compiled into the extension (the helper's launcher, the hot calls).
SOURCES = ("launcher.c", "calls.c")
INSTALL_HINT = (
    "lxactors needs liblxc 5.0 and its headers: run "
    "'apt-get install lxc lxc-dev' (Debian/Ubuntu) and install again."
)


def _lxc_flags() -> tuple[list[str], list[str], list[str]]:
    """Return include dirs, library dirs and libraries for liblxc."""
    if shutil.which("pkg-config"):
        try:
            cflags = subprocess.run(
                ["pkg-config", "--cflags-only-I", "lxc"],
                check=True, capture_output=True, text=True,
            ).stdout.split()
            libs = subprocess.run(
                ["pkg-config", "--libs", "lxc"],
                check=True, capture_output=True, text=True,
            ).stdout.split()
        except subprocess.CalledProcessError:
            pass
        else:
            return (
                [f[2:] for f in cflags if f.startswith("-I")],
                [f[2:] for f in libs if f.startswith("-L")],
                [f[2:] for f in libs if f.startswith("-l")] or ["lxc"],
            )
    return [], [], ["lxc"]


def _check_headers(include_dirs: list[str]) -> None:
    for d in [*include_dirs, "/usr/include", "/usr/local/include"]:
        if os.path.exists(os.path.join(d, "lxc", "lxccontainer.h")):
            return
    sys.stderr.write(f"error: <lxc/lxccontainer.h> not found. {INSTALL_HINT}\n")
    raise SystemExit(1)


def _sources() -> str:
    parts = []
    for name in SOURCES:
        with open(os.path.join(HERE, "csrc", name), encoding="utf-8") as f:
            parts.append(f.read())
    return "\n".join(parts)


def _declarations() -> str:
    parts = []
    for name in DECLS:
        with open(os.path.join(HERE, "decl", name), encoding="utf-8") as f:
            parts.append(f.read())
    return "\n".join(parts)


include_dirs, library_dirs, libraries = _lxc_flags()
_check_headers(include_dirs)

ffibuilder = FFI()
ffibuilder.cdef(_declarations())
ffibuilder.set_source(
    "lxactors._lxc",
    """
    #include <stdlib.h>
    #include <lxc/lxccontainer.h>
    #include <lxc/attach_options.h>
    """ + _sources(),
    include_dirs=include_dirs,
    library_dirs=library_dirs,
    libraries=libraries,
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
