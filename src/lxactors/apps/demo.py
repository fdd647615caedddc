"""``lxactors demo``: a container's whole life on the low-level API."""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lxactors.apps.command import Subparsers

__all__ = ["register"]


def register(subparsers: Subparsers) -> None:
    p = subparsers.add_parser(
        "demo", help="create, start, use, stop and destroy a busybox container")
    p.add_argument("--path", help="lxcpath to use (default: a temporary one)")
    p.set_defaults(run=_demo)


def _demo(args: argparse.Namespace) -> int:
    """A container's whole life on the embedded default: busybox, no network."""
    from lxactors import liblxc

    path = args.path or tempfile.mkdtemp(prefix="lxactors-demo-", dir="/var/tmp")
    name = "demo"
    t0 = time.monotonic()

    def step(text: str) -> None:
        print(f"[{time.monotonic() - t0:6.2f}s] {text}", flush=True)

    try:
        with liblxc.Container(name, path) as c:
            step(f"liblxc {liblxc.get_version()}; lxcpath {path}")
            step("create from the host's busybox (template 'busybox')")
            c.create("busybox")
            step("start")
            pid = c.start()
            step(f"running: state {c.state()}, init pid {pid}, interfaces {c.get_interfaces()}")
            r = c.attach_run_wait(["sh", "-c", "echo hello from $(hostname); uname -sr"])
            for line in r.stdout.decode().splitlines():
                step(f"  attach: {line}")
            step(f"shutdown: {'clean' if c.shutdown(5) else 'timed out, killing'}")
            if c.is_running():
                c.stop()
            step("destroy")
            c.destroy()
        step("done")
    finally:
        if not args.path:
            shutil.rmtree(path, ignore_errors=True)
    return 0
