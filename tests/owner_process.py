"""A separate owner process for the supervision tests.

    python -m tests.owner_process LXCPATH NAME TYPE (exit|wait) [NEW_TYPE]

Spawns NAME with TYPE (then changes it to NEW_TYPE if given), prints
"ready <init pid>", then exits normally ("exit") or waits to be killed ("wait").
"""

from __future__ import annotations

import sys
import threading

import lxactors


def main() -> int:
    path, name, type_, mode = sys.argv[1:5]
    ref = lxactors.spawn(name, path=path, type=type_)
    if len(sys.argv) > 5:
        lxactors.type(ref, sys.argv[5])  # type: ignore[arg-type]
    print("ready", lxactors.container(ref).init_pid(), flush=True)
    if mode == "wait":
        threading.Event().wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
