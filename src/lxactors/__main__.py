"""The ``lxactors`` command: demo, tcpvm, imc, ls."""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any

from lxactors.apps import connect, setup_user

__all__ = ["main"]

PROG = "lxactors"
#: Where liblxc looks for ``lxc-<name>`` template scripts.
TEMPLATE_DIRS = ("/usr/share/lxc/templates", "/usr/local/share/lxc/templates")


class UsageError(Exception):
    """A bad argument found after parsing: one line, exit status 2."""


def _say(text: str) -> None:
    print(f"{PROG}: {text}", file=sys.stderr, flush=True)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, not {text!r}")
    return key.strip(), value


def _template_exists(template: str) -> bool:
    if "/" in template:
        return os.access(template, os.X_OK)
    return any(os.access(os.path.join(d, f"lxc-{template}"), os.X_OK) for d in TEMPLATE_DIRS)


def _check_template(template: str) -> None:
    if not _template_exists(template):
        known = sorted({n[4:] for d in TEMPLATE_DIRS if os.path.isdir(d)
                        for n in os.listdir(d) if n.startswith("lxc-")})
        hint = f"; known: {', '.join(known)}" if known else ""
        raise UsageError(f"unknown template {template!r}{hint}")


def _lxcpath(path: str | None) -> str:
    from lxactors import liblxc

    return os.path.abspath(path) if path else liblxc.default_lxcpath()


# ---------------------------------------------------------------- demo


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


# ---------------------------------------------------------------- tcpvm


def _tcpvm(args: argparse.Namespace) -> int:
    from lxactors import _base, tcpvm

    try:
        listen = tcpvm.parse_listen(args.listen)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    if args.max_clients < 1:
        raise UsageError(f"--max-clients must be at least 1, not {args.max_clients}")
    options: dict[str, Any] = {}
    if args.path:
        options["path"] = os.path.abspath(args.path)
    if args.config:
        options["config"] = _with_veth_defaults(list(args.config))
    if args.template:
        _check_template(args.template)
        options["create"] = {"template": args.template}
    if args.no_userns:
        options["userns"] = False
    try:
        server = tcpvm.TcpVm(listen, args.max_clients, options)
    except (TypeError, ValueError) as exc:
        raise UsageError(str(exc)) from exc
    try:
        server.bind()
    except OSError as exc:
        server.close()
        why = "address already in use" if exc.errno == errno.EADDRINUSE else (
            exc.strerror or str(exc)).lower()
        _say(f"cannot listen on {tcpvm.format_address(listen)}: {why}")
        return 1
    try:
        # From here on SIGINT/SIGTERM stop the server cleanly (even while the
        # base is being built: serve_forever then returns at once).
        with _signals(lambda signum: server.shutdown()):
            if not args.template:
                # Unnamed containers are clones of a cached base: build it now,
                # not when the first client is waiting.
                _base.ensure_base(options.get("path"), server.userns, progress=True)
            host, port = server.address
            _say(f"tcpvm listening on {tcpvm.format_address(server.address)} "
                 f"(at most {args.max_clients} clients); try: nc {host} {port}")
            server.serve_forever()
    finally:
        n = server.close()
    _say(f"tcpvm stopped; {n} container{'s' if n != 1 else ''} exited")
    return 0


def _with_veth_defaults(config: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """``lxc.net.N.link=BR`` alone means a veth on BR, up (as erlxc's example assumed)."""
    keys = {k for k, _ in config}
    extra = []
    for key, _ in config:
        if key.startswith("lxc.net.") and key.endswith(".link"):
            net = key[: -len(".link")]
            if f"{net}.type" not in keys:
                extra.append((f"{net}.type", "veth"))
            if f"{net}.flags" not in keys:
                extra.append((f"{net}.flags", "up"))
    return extra + config


class _signals:
    """Run *action(signum)* on SIGINT/SIGTERM while in the block (main thread only)."""

    def __init__(self, action: Callable[[int], None]) -> None:
        self.action = action
        self.saved: dict[int, Any] = {}

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        self.action(signum)

    def __enter__(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self.saved[sig] = signal.signal(sig, self._handler)

    def __exit__(self, *exc: object) -> None:
        for sig, old in self.saved.items():
            signal.signal(sig, old)


# ---------------------------------------------------------------- imc


def _imc(args: argparse.Namespace) -> int:
    from lxactors import imc

    cmd = list(args.cmd)
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if not cmd:
        raise UsageError("imc needs a command: lxactors imc [options] -- CMD [ARGS...]")
    data = sys.stdin.buffer.read() if args.stdin else None
    binds = list(imc.DEFAULT_BINDS) + [b for b in args.bind if b not in imc.DEFAULT_BINDS]
    out, err = sys.stdout.buffer, sys.stderr.buffer
    exited: imc.Exited | None = None
    stopped_by: list[int] = []
    running: list[imc.Imc] = []

    def stop(signum: int) -> None:
        stopped_by.append(signum)
        for r in running:
            r.kill()

    # Installed first: a signal while the container boots still removes it.
    with _signals(stop):
        try:
            run = imc.spawn(
                cmd, path=args.path, uid=args.uid, gid=args.gid, env=dict(args.env),
                cwd=args.cwd, input=data, timeout=args.timeout, binds=binds,
                tmpfs_size=args.tmpfs_size, bridge=args.bridge, address=args.address,
                gateway=args.gateway, config=list(args.config), hostname=args.hostname,
                userns=not args.no_userns)
        except (TypeError, ValueError) as exc:
            raise UsageError(str(exc)) from exc
        running.append(run)
        if stopped_by:
            run.kill()
        for m in run:
            if isinstance(m, imc.Stdout):
                out.write(m.data)
                out.flush()
            elif isinstance(m, imc.Stderr):
                err.write(m.data)
                err.flush()
            else:
                exited = m
    assert exited is not None
    if stopped_by:
        return 128 + stopped_by[0]
    if exited.timed_out:
        _say(f"imc: {cmd[0]} did not finish within {args.timeout:g} s; killed")
        return 124
    if exited.status < 0:
        return 128 + -exited.status
    return exited.status


# ---------------------------------------------------------------- ls


def _describe(path: str, name: str) -> str:
    from lxactors._base import BASE_NAME

    if name == BASE_NAME:
        return "lxactors base (unnamed containers are overlay clones of it)"
    if name.startswith(BASE_NAME + "-userns-"):
        return "lxactors base for user-namespaced clones (ids " + name.rsplit("-userns-")[1] + ")"
    try:
        with open(os.path.join(path, name, "lxactors.json"), encoding="utf-8") as f:
            marker = json.load(f)
    except (OSError, ValueError):
        marker = None
    if isinstance(marker, dict) and marker.get("by") == "lxactors":
        kind = str(marker.get("kind", "?"))
        pid = marker.get("pid")
        alive = isinstance(pid, int) and os.path.exists(f"/proc/{pid}")
        owner = f"owner pid {pid}" + ("" if alive else " (gone)")
        if kind == "tcpvm":
            return f"tcpvm, client {marker.get('client')}, server {marker.get('server')}, {owner}"
        if kind == "imc":
            command = marker.get("command") or []
            shown = " ".join(str(a) for a in command)
            if len(shown) > 40:
                shown = shown[:37] + "..."
            return f"imc {shown!r} as uid {marker.get('uid')}, {owner}"
        return f"{kind}, {owner}"
    if name.startswith("lxa-"):
        return "lxactors unnamed (temporary)"
    return "-"


def _ls(args: argparse.Namespace) -> int:
    from lxactors import LxcError, liblxc

    path = _lxcpath(args.path)
    if not os.path.isdir(path):
        _say(f"no such lxcpath: {path}")
        return 1
    rows: list[dict[str, Any]] = []
    for name in liblxc.list_all_containers(path):
        try:
            with liblxc.Container(name, path) as c:
                state = c.state()
                pid = c.init_pid() if state != "STOPPED" else None
        except LxcError:
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


# ---------------------------------------------------------------- main


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Linux containers as Pykka actors.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("demo", help="create, start, use, stop and destroy a busybox container")
    p.add_argument("--path", help="lxcpath to use (default: a temporary one)")
    p.set_defaults(func=_demo)

    p = sub.add_parser("tcpvm", help="a shell in a new container for every TCP client",
                       description="Listen on TCP; every client gets a temporary container "
                       "wired to its console, exited and destroyed when the client leaves.")
    p.add_argument("--listen", default="127.0.0.1:31337", metavar="ADDR:PORT",
                   help="address to listen on (default 127.0.0.1:31337; ':PORT' for all)")
    p.add_argument("--max-clients", type=int, default=32, metavar="N",
                   help="clients served at once; more are refused (default 32)")
    p.add_argument("--config", type=_key_value, action="append", default=[],
                   metavar="KEY=VALUE",
                   help="liblxc config item for every container, e.g. lxc.net.0.link=br0")
    p.add_argument("--template", help="create each container with this template "
                   "(default: overlay clones of a cached busybox base)")
    p.add_argument("--path", help="lxcpath (default: liblxc's)")
    p.add_argument("--no-userns", action="store_true",
                   help="give clients the host's root, not a user namespace's (see the "
                   "README's security section first)")
    p.set_defaults(func=_tcpvm)

    p = sub.add_parser("imc", help="run a command in an immutable container",
                       description="Run CMD as a random unprivileged user in a fresh container: "
                       "read-only root and system directories, tmpfs /tmp and home, no "
                       "capabilities. Prints its stdout and stderr; exits with its status.",
                       usage="%(prog)s [options] -- CMD [ARGS...]")
    p.add_argument("--path", help="lxcpath (default: liblxc's)")
    p.add_argument("--uid", type=int, help="run as this uid (default: random)")
    p.add_argument("--gid", type=int, help="run as this gid (default: the uid)")
    p.add_argument("--no-userns", action="store_true",
                   help="no user namespace: --uid is then a host uid")
    p.add_argument("--env", type=_key_value, action="append", default=[], metavar="NAME=VALUE",
                   help="add to the command's environment")
    p.add_argument("--cwd", help="working directory (default: the tmpfs home)")
    p.add_argument("--timeout", type=float, help="kill the command after this many seconds")
    p.add_argument("--bind", action="append", default=[], metavar="DIR",
                   help="one more host directory to bind read-only")
    p.add_argument("--tmpfs-size", default="64m", help="size of /tmp and home (default 64m)")
    p.add_argument("--bridge", help="give the container a veth on this bridge")
    p.add_argument("--address", help="IPv4 address/prefix of that veth, e.g. 10.0.3.5/24")
    p.add_argument("--gateway", help="IPv4 default gateway")
    p.add_argument("--hostname", help="the container's hostname (default: its name)")
    p.add_argument("--config", type=_key_value, action="append", default=[],
                   metavar="KEY=VALUE", help="more liblxc config items")
    p.add_argument("-i", "--stdin", action="store_true",
                   help="feed this command's stdin to CMD (default: /dev/null)")
    p.add_argument("cmd", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    p.set_defaults(func=_imc)

    p = sub.add_parser("ls", help="containers in an lxcpath, and which are lxactors'")
    p.add_argument("--path", help="lxcpath (default: liblxc's)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_ls)

    connect.register(sub)
    setup_user.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if hasattr(args, "run"):  # an app on the public API: needs no root
        return int(args.run(args))
    if os.geteuid() != 0 and not os.path.exists("/etc/lxactors/access.conf"):
        _say("must run as root (liblxc creates and starts containers), or be set up for "
             "unprivileged use: 'lxactors setup-user USER' as root")
        return 1
    if args.command in ("tcpvm", "imc"):
        logging.basicConfig(format="%(name)s: %(message)s", level=logging.WARNING)
        if args.command == "tcpvm":
            logging.getLogger("lxactors.tcpvm").setLevel(logging.INFO)
    try:
        return int(args.func(args))
    except UsageError as exc:
        _say(str(exc))
        return 2
    except ImportError as exc:
        # The cffi extension, or the liblxc it links, is missing.
        _say(_first_line(exc))
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from lxactors import LxcError

        if isinstance(exc, (LxcError, OSError)):
            _say(_first_line(exc))
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
