"""``lxactors ls``: the containers in an lxcpath, and which are lxactors'."""

from __future__ import annotations

import argparse
import json
import os
from typing import TYPE_CHECKING, Any

import lxactors
from lxactors.apps import marker
from lxactors.apps.command import say

if TYPE_CHECKING:
    from lxactors.apps.command import Subparsers

__all__ = ["register"]


def register(subparsers: Subparsers) -> None:
    p = subparsers.add_parser("ls", help="containers in an lxcpath, and which are lxactors'")
    p.add_argument("--path", help="lxcpath (default: liblxc's)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=_ls)


def _describe(path: str, name: str) -> str:
    base = lxactors.base_name()
    if name == base:
        return "lxactors base (unnamed containers are overlay clones of it)"
    if name.startswith(base + "-userns-"):
        return "lxactors base for user-namespaced clones (ids " + name.rsplit("-userns-")[1] + ")"
    mark = marker.read(path, name)
    if mark is not None:
        kind = str(mark.get("kind", "?"))
        pid = mark.get("pid")
        alive = isinstance(pid, int) and os.path.exists(f"/proc/{pid}")
        owner = f"owner pid {pid}" + ("" if alive else " (gone)")
        if kind == "tcpvm":
            return f"tcpvm, client {mark.get('client')}, server {mark.get('server')}, {owner}"
        if kind == "imc":
            command = mark.get("command") or []
            shown = " ".join(str(a) for a in command)
            if len(shown) > 40:
                shown = shown[:37] + "..."
            return f"imc {shown!r} as uid {mark.get('uid')}, {owner}"
        return f"{kind}, {owner}"
    if name.startswith("lxa-"):
        return "lxactors unnamed (temporary)"
    return "-"


def _ls(args: argparse.Namespace) -> int:
    from lxactors import liblxc

    path = os.path.abspath(args.path) if args.path else liblxc.default_lxcpath()
    if not os.path.isdir(path):
        say(f"no such lxcpath: {path}")
        return 1
    rows: list[dict[str, Any]] = []
    names = liblxc.list_all_containers(path)
    marker.prune(path, names)
    for name in names:
        try:
            with liblxc.Container(name, path) as c:
                state = c.state()
                pid = c.init_pid() if state != "STOPPED" else None
        except lxactors.LxcError:
            state, pid = "GONE", None
        rows.append({"name": name, "state": state, "pid": pid,
                     "lxactors": _describe(path, name)})
    if args.json:
        print(json.dumps({"path": path, "containers": rows}, indent=1))
        return 0
    if not rows:
        print(f"no containers in {path}")
        return 0
    width = max(4, *(len(r["name"]) for r in rows))
    print(f"{'NAME':<{width}}  {'STATE':<8}  {'PID':>7}  LXACTORS")
    for r in rows:
        shown = str(r["pid"]) if r["pid"] else "-"
        print(f"{r['name']:<{width}}  {r['state']:<8}  {shown:>7}  {r['lxactors']}")
    return 0
