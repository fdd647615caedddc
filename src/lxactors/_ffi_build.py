"""Build the cffi extension ``lxactors._lxc`` and the helper's launcher
program against the system liblxc.

API mode, out of line: the declarations in ``decl/*.h`` are compiled against
the real ``<lxc/lxccontainer.h>`` at install time, so struct offsets and
constants come from the header, not from us.  ``lxactors._ffi`` is the one
module that imports the result.  The launcher (``csrc/launcher.c``) is a
program of its own, not a function of the extension: the helper execs it, so
what it forks (each start's caller and the ``[lxc monitor]``) is a copy of a
small C process rather than of a Python interpreter (setup.py builds it with
the extension, through :func:`build_launcher`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from typing import Any

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
DECLS = ("attach.h", "container.h", "calls.h")
#: C compiled into the extension (the hot calls).
SOURCES = ("calls.c",)
#: The launcher program: its source, and its name beside the helper's modules.
LAUNCHER_SOURCE = "launcher.c"
LAUNCHER = os.path.join("_helper", "lxa-launcher")
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


def build_launcher(compiler: Any, build_temp: str, package_dir: str) -> str:
    """Compile and link the launcher into *package_dir* (where the built
    ``lxactors`` package is) with *compiler* (a setuptools build_ext's);
    return the program's path."""
    objects = compiler.compile([os.path.join(HERE, "csrc", LAUNCHER_SOURCE)],
                               output_dir=build_temp, include_dirs=include_dirs,
                               extra_preargs=["-O2", "-Wall"])
    program = os.path.join(package_dir, LAUNCHER)
    compiler.link_executable(objects, os.path.basename(program),
                             output_dir=os.path.dirname(program),
                             libraries=libraries, library_dirs=library_dirs)
    return program


include_dirs, library_dirs, libraries = _lxc_flags()
_check_headers(include_dirs)

ffibuilder = FFI()
ffibuilder.cdef(_declarations())
ffibuilder.set_source(
    "lxactors._lxc",
    """
    #include <poll.h>
    #include <sched.h>
    #include <stdlib.h>
    #include <time.h>
    #include <lxc/lxccontainer.h>
    #include <lxc/attach_options.h>
    """ + _sources(),
    include_dirs=include_dirs,
    library_dirs=library_dirs,
    libraries=libraries,
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
