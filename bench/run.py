#!/usr/bin/env python3
"""The lxactors benchmark: lxactors side by side with raw C liblxc, python3-lxc
and the lxc-* commands.  Run as root, from the repository:

    .venv/bin/python bench/run.py --all        # the full run behind docs/BENCHMARKS.md
    .venv/bin/python bench/run.py              # a quick run (small N)
    .venv/bin/python bench/run.py --only spawn,calls --spawn 40

It installs what it needs and is missing into the running virtualenv
(matplotlib; ``lxc``, i.e. python3-lxc, built against the system liblxc),
compiles ``bench/raw_c.c`` with ``gcc -llxc`` into a temporary directory, and
works in a temporary lxcpath under /var/tmp that it deletes at the end with
every container, cgroup directory and lock it made.  /var/lib/lxc is never
touched.  Every measurement runs in a fresh worker process (bench/_worker.py);
systems are interleaved in rounds so that a change of machine load hits all of
them alike.  Results go to docs/bench/results.json, the plots to docs/bench/,
and the tables into docs/BENCHMARKS.md (between the generated-results markers).
"""

from __future__ import annotations

import argparse
import datetime
import glob
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import _common as cm  # noqa: E402

WORKER = os.path.join(HERE, "_worker.py")
SYSTEMS = ("lxactors", "raw C", "python3-lxc", "lxc-* commands")
#: Short names accepted by --systems.
ALIASES = {"c": "raw C", "raw": "raw C", "py": "python3-lxc", "pylxc": "python3-lxc",
           "cmd": "lxc-* commands", "commands": "lxc-* commands", "lx": "lxactors"}
#: lxactors with the bench-side select -> poll shim (see _worker._install_poll_shim)
POLL_SHIM = "lxactors + poll shim"
WORKLOADS = ("spawn", "userns", "calls", "pool", "imc", "churn", "density", "console",
             "profile")
LXACTORS_ONLY = ("userns", "pool", "imc", "churn", "console", "profile")
#: The two arms of the userns workload.
USERNS_ARMS = {"without userns": False, "with userns": True}
QUICK = {"spawn": 16, "rounds": 2, "churn": 50, "density": [10, 30], "console_mb": 20,
         "repeats": 2, "calls": 20000, "actor_calls": 2000, "profile": 10, "pool": 20,
         "imc": 10}
FULL = {"spawn": 200, "rounds": 5, "churn": 1000, "density": [100, 300, 500],
        "console_mb": 200, "repeats": 3, "calls": 200000, "actor_calls": 5000, "profile": 50,
        "pool": 60, "imc": 60}


def say(msg: str) -> None:
    print(f"bench: {msg}", flush=True)


# ---------------------------------------------------------------- set-up


def ensure_extras() -> None:
    """matplotlib and python3-lxc, installed into this virtualenv if missing."""
    missing = []
    for module, package in (("matplotlib", "matplotlib"), ("lxc", "lxc")):
        if subprocess.run([sys.executable, "-c", f"import {module}"],
                          capture_output=True).returncode:
            missing.append(package)
    if not missing:
        return
    if sys.prefix == sys.base_prefix:
        sys.exit(f"bench: missing {' '.join(missing)}; run from the project's virtualenv "
                 "(.venv/bin/python bench/run.py) or pip install them")
    say(f"installing {' '.join(missing)} into {sys.prefix} (python3-lxc builds against liblxc)")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", *missing], check=True)


def check_host() -> None:
    if os.geteuid() != 0:
        sys.exit("bench: run as root (liblxc needs it to create and start containers)")
    for tool in ("gcc", "lxc-copy", "lxc-console", "lxc-stop", "lxc-ls", "lxc-destroy"):
        if shutil.which(tool) is None:
            sys.exit(f"bench: {tool} not found (apt-get install lxc lxc-dev gcc)")


def build_raw_c(tmp: str) -> str:
    exe = os.path.join(tmp, "raw_c")
    subprocess.run(["gcc", "-O2", "-Wall", "-o", exe, os.path.join(HERE, "raw_c.c"), "-llxc"],
                   check=True)
    return exe


# ---------------------------------------------------------------- running workers


class Bench:
    def __init__(self, path: str, raw_c: str) -> None:
        self.path = path
        self.raw_c = raw_c
        self.seq = 0
        #: lxactors container names seen (their cgroup dirs are checked too)
        self.names: set[str] = set()
        #: cgroup directories left behind, per system, removed by the bench
        self.cgroups_left: dict[str, int] = {}
        #: pids of the worker processes (their lxactors log dirs are checked)
        self.worker_pids: list[int] = []

    def prefix(self, tag: str) -> str:
        self.seq += 1
        return f"{cm.PREFIX}{os.getpid()}{tag}{self.seq}-"

    def popen(self, argv: list[str], **kw: Any) -> subprocess.Popen[str]:
        p = subprocess.Popen(argv, text=True, **kw)
        self.worker_pids.append(p.pid)
        return p

    def worker(self, kind: str, **args: Any) -> dict[str, Any]:
        args.setdefault("path", self.path)
        p = self.popen([sys.executable, WORKER, kind, json.dumps(args)], stdout=subprocess.PIPE)
        out, _ = p.communicate()
        return self._result(kind, p.returncode, out)

    def _result(self, kind: str, code: int, out: str) -> dict[str, Any]:
        lines = [ln for ln in out.splitlines() if ln.startswith("RESULT ")]
        if code or not lines:
            raise RuntimeError(f"worker {kind} failed (exit {code})")
        result: dict[str, Any] = json.loads(lines[-1][7:])
        self.names.update(result.get("names", []))
        return result

    def collect_cgroups(self, system: str) -> None:
        """Remove (and count) cgroup dirs the runs of *system* left."""
        dirs = cm.cgroup_dirs(self.names, prefix=cm.PREFIX + str(os.getpid()))
        self.cgroups_left[system] = self.cgroups_left.get(system, 0) + len(dirs)
        cm.remove_cgroup_dirs(dirs)

    # -- spawn cycles ----------------------------------------------------

    def spawn_block(self, system: str, jobs: int, per_job: int) -> list[dict[str, float]]:
        if system == "lxactors":
            r = self.worker("lx_spawn", jobs=jobs, per_job=per_job)
            cycles = r["cycles"]
        elif system == "lxc-* commands":
            r = self.worker("cmd_spawn", jobs=jobs, per_job=per_job, prefix=self.prefix("x"))
            cycles = r["cycles"]
        elif system == "python3-lxc":
            procs = [self.popen(
                [sys.executable, WORKER, "py_spawn",
                 json.dumps({"path": self.path, "per_job": per_job, "prefix": self.prefix("p")})],
                stdout=subprocess.PIPE) for _ in range(jobs)]
            cycles = []
            for p in procs:
                out, _ = p.communicate()
                cycles += self._result("py_spawn", p.returncode, out)["cycles"]
        else:
            p = subprocess.run([self.raw_c, "spawn", self.path, "lxactors-base",
                                self.prefix("c"), str(per_job + 1), str(jobs), "1"],
                               stdout=subprocess.PIPE, text=True)
            if p.returncode:
                raise RuntimeError("raw_c spawn failed")
            cycles = []
            for line in p.stdout.splitlines():
                _, _job, i, run, con, gone = line.split()
                if int(i):  # the first cycle of each job is a warm-up
                    cycles.append({"running": float(run) / 1e3, "console": float(con) / 1e3,
                                   "gone": float(gone) / 1e3})
        self.collect_cgroups(system)
        return cycles

    def spawn(self, systems: list[str], total: int, rounds: int, jobs: int) -> dict[str, Any]:
        """*total* cycles per system and mode, in *rounds* interleaved blocks."""
        out: dict[str, Any] = {}
        for mode, j in (("sequential", 1), (f"{jobs} concurrent", jobs)):
            per_job = max(1, total // rounds // j)
            cycles: dict[str, list[dict[str, float]]] = {s: [] for s in systems}
            for r in range(rounds):
                for s in systems:
                    say(f"spawn {mode}: {s}, round {r + 1}/{rounds} ({per_job * j} cycles)")
                    cycles[s] += self.spawn_block(s, j, per_job)
            out[mode] = {"jobs": j, "systems": {s: summarize_cycles(c, j)
                                                for s, c in cycles.items()}}
        return out

    def userns(self, total: int, rounds: int, jobs: int) -> dict[str, Any]:
        """lxactors' spawn cycles with and without a user namespace, interleaved."""
        out: dict[str, Any] = {}
        for mode, j in (("sequential", 1), (f"{jobs} concurrent", jobs)):
            per_job = max(1, total // rounds // j)
            cycles: dict[str, list[dict[str, float]]] = {arm: [] for arm in USERNS_ARMS}
            for r in range(rounds):
                for arm, on in USERNS_ARMS.items():
                    say(f"userns {mode}: {arm}, round {r + 1}/{rounds} ({per_job * j} cycles)")
                    cycles[arm] += self.worker("lx_spawn", jobs=j, per_job=per_job,
                                               userns=on)["cycles"]
                    self.collect_cgroups(f"lxactors {arm}")
            out[mode] = {"jobs": j, "systems": {arm: summarize_cycles(c, j)
                                                for arm, c in cycles.items()}}
        return out

    # -- calls -----------------------------------------------------------

    def calls(self, systems: list[str], iters: int, actor_iters: int,
              rounds: int = 3) -> dict[str, Any]:
        """Each system's calls in *rounds* interleaved rounds; the fastest round counts."""
        out: dict[str, Any] = {}
        for r in range(rounds):
            say(f"calls: round {r + 1}/{rounds}")
            for system, res in self._calls_round(systems, iters, actor_iters).items():
                best = out.setdefault(system, res)
                for k, v in res.items():
                    if isinstance(v, float) and k in best:
                        best[k] = min(best[k], v)
        return out

    def _calls_round(self, systems: list[str], iters: int, actor_iters: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if "lxactors" in systems:
            out["lxactors"] = self.worker("lx_calls", iters=iters, actor_iters=actor_iters)
            self.collect_cgroups("lxactors")
        name = self.prefix("k") + "calls"
        subprocess.run(["lxc-copy", "-e", "-n", "lxactors-base", "-N", name, "-P", self.path],
                       check=True, capture_output=True)
        try:
            if "python3-lxc" in systems:
                out["python3-lxc"] = self.worker("py_calls", name=name, iters=iters)
            if "raw C" in systems:
                p = subprocess.run([self.raw_c, "calls", self.path, name, str(iters)],
                                   check=True, stdout=subprocess.PIPE, text=True)
                kv = dict(line.split(" ", 1) for line in p.stdout.splitlines())
                out["raw C"] = {"get_config_item": float(kv["get_config_item"]) / 1e3,
                                "state": float(kv["state"]) / 1e3,
                                "state_value": kv["state_value"]}
        finally:
            subprocess.run(["lxc-stop", "-k", "-n", name, "-P", self.path], capture_output=True)
            self.collect_cgroups("lxc-* commands")
        return out

    # -- pool, imc vs bubblewrap ----------------------------------------

    def pool(self, count: int, rounds: int) -> dict[str, Any]:
        hand: list[float] = []
        cold: list[float] = []
        for r in range(rounds):
            say(f"pool: hand-over vs cold spawn, round {r + 1}/{rounds} ({count // rounds} each)")
            res = self.worker("lx_pool", size=4, count=max(1, count // rounds))
            hand += res["hand_over_ms"]
            cold += res["cold_ms"]
            self.collect_cgroups("lxactors")
        return {"hand_over": cm.summary(hand), "cold": cm.summary(cold), "size": 4}

    def imc(self, count: int, rounds: int) -> dict[str, Any]:
        ms: dict[str, list[float]] = {"lxactors imc (cold)": [], "lxactors imc (pool)": [],
                                      "bubblewrap": []}
        argv: list[str] = []
        for r in range(rounds):
            n = max(1, count // rounds)
            say(f"imc: imc.run cold, from a pool, and bubblewrap, round {r + 1}/{rounds} "
                f"({n} each)")
            ms["lxactors imc (cold)"] += self.worker("imc_run", count=n)["ms"]
            ms["lxactors imc (pool)"] += self.worker("imc_pool_run", count=n)["ms"]
            self.collect_cgroups("lxactors")
            if shutil.which("bwrap"):
                b = self.worker("bwrap_run", count=n)
                ms["bubblewrap"] += b["ms"]
                argv = b["argv"]
        return {"systems": {k: cm.summary(v) for k, v in ms.items() if v}, "bwrap_argv": argv,
                "command": "sh -c 'exit 3'"}

    # -- churn, density, console, profile -------------------------------

    def churn(self, count: int, jobs: int) -> dict[str, Any]:
        say(f"churn: {count} spawn/exit cycles, {jobs} threads")
        r = self.worker("lx_churn", count=count, jobs=jobs)
        r.pop("names", None)
        self.collect_cgroups("lxactors")
        return r

    def density(self, ns: list[int], jobs: int, systems: list[str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for n in ns:
            for s in ("lxactors", POLL_SHIM, "raw C"):
                if s.split(" +")[0] not in systems:
                    continue
                # liblxc gives each container 6 ptys (the base's lxc.tty.max = 5
                # and the console); kernel.pty.max is 4096 by default.
                if cm.pty_headroom() < 6 * n + 16:
                    say(f"density: {s} with {n} containers skipped: only "
                        f"{cm.pty_headroom()} ptys left (kernel.pty.max)")
                    continue
                say(f"density: {s} holding {n} containers")
                out.setdefault(s, []).append(self._hold(s, n, jobs))
                self.collect_cgroups(s)
        return out

    def _hold(self, system: str, n: int, jobs: int) -> dict[str, Any]:
        prefix = self.prefix("d")
        if system.startswith("lxactors"):
            argv = [sys.executable, WORKER, "lx_density",
                    json.dumps({"path": self.path, "n": n, "jobs": jobs,
                                "poll_shim": system == POLL_SHIM})]
        else:
            argv = [self.raw_c, "hold", self.path, "lxactors-base", prefix, str(n)]
        p = self.popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert p.stdin is not None and p.stdout is not None
        try:
            line = p.stdout.readline()
            if not line.startswith("base"):
                raise RuntimeError(f"density {system}: {line!r}")
            time.sleep(1)
            avail0 = cm.meminfo_kb()
            t0 = time.perf_counter()
            p.stdin.write("go\n")
            p.stdin.flush()
            line = p.stdout.readline()
            if not line.startswith("ready"):
                raise RuntimeError(f"density {system}: {line!r}")
            spawn_wall = time.perf_counter() - t0
            time.sleep(2)
            info = line[6:].strip()
            own = json.loads(info) if info.startswith("{") else {}
            reached = int(info) if info.isdigit() else n
            names = own.pop("names", None) or [f"{prefix}{i}" for i in range(reached)]
            self.names.update(names)
            mem = cm.container_memory(self.path, names)
            avail1 = cm.meminfo_kb()
            if system == "raw C":
                own.update(cm.status(p.pid))
                own["fds"] = cm.fd_count(p.pid)
            p.stdin.write("stop\n")
            p.stdin.flush()
            rest, _ = p.communicate(timeout=600)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        res: dict[str, Any] = {"n": len(names), "requested": n, "spawn_wall": spawn_wall,
                               "memavailable_delta_kb": avail0 - avail1, **mem, "process": own}
        if system.startswith("lxactors"):
            res.update({k: v for k, v in self._result("lx_density", p.returncode, rest).items()
                        if k not in ("n", "reached")})
        return res

    def console(self, mb: int, repeats: int) -> dict[str, Any]:
        say(f"console: {mb} MB to an owner actor, {repeats} times")
        r = self.worker("lx_console", bytes=mb * 1_000_000, repeats=repeats)
        self.collect_cgroups("lxactors")
        return r

    def profile(self, count: int) -> dict[str, Any]:
        say(f"profile: {count} spawn/exit cycles with timed steps")
        r = self.worker("lx_profile", count=count)
        self.collect_cgroups("lxactors")
        return r

    # -- clean-up --------------------------------------------------------

    def teardown(self) -> dict[str, Any]:
        """Delete every container of the lxcpath, then the lxcpath itself."""
        left: dict[str, Any] = {}
        ls = subprocess.run(["lxc-ls", "-1", "-P", self.path], capture_output=True, text=True)
        names = [n for n in ls.stdout.split() if n]
        bases = [n for n in names if n == "lxactors-base" or n.startswith("lxactors-base-userns-")]
        stray = [n for n in names if n not in bases]
        if stray:
            left["containers"] = stray
        for n in stray:
            subprocess.run(["lxc-stop", "-k", "-n", n, "-P", self.path], capture_output=True)
            if os.path.isdir(os.path.join(self.path, n)):
                subprocess.run(["lxc-destroy", "-n", n, "-P", self.path], capture_output=True)
        for n in bases:
            subprocess.run(["lxc-destroy", "-n", n, "-P", self.path], capture_output=True)
        for pid in cm.monitor_pids(self.path):  # only if a stop above failed
            left.setdefault("monitors", []).append(pid)
            os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
        dirs = cm.cgroup_dirs(self.names, prefix=cm.PREFIX + str(os.getpid()))
        if dirs:
            left["cgroup_dirs"] = len(dirs)
        cm.remove_cgroup_dirs(dirs)
        shutil.rmtree(self.path, ignore_errors=True)
        shutil.rmtree(os.path.join("/run/lxc/lock", self.path.lstrip("/")), ignore_errors=True)
        # lxactors keeps per-handle liblxc logs in /tmp/lxactors-PID-*, removed at
        # interpreter exit; count and remove any a worker of ours left behind.
        logs = [d for pid in self.worker_pids
                for d in glob.glob(os.path.join(tempfile.gettempdir(), f"lxactors-{pid}-*"))
                if not os.path.exists(f"/proc/{pid}")]
        if logs:
            left["lxactors_log_dirs"] = len(logs)
        for d in logs:
            shutil.rmtree(d, ignore_errors=True)
        return left


def raise_pty_max(need: int) -> None:
    """Raise kernel.pty.max (restored at the end) if containers would run out
    of ptys: each busybox container of the base takes 6 (lxc.tty.max = 5 and
    the console), from kernel.pty.max - kernel.pty.reserve shared by all."""
    if cm.pty_headroom() >= need:
        return
    new = cm.pty_sysctl("nr") + cm.pty_sysctl("reserve") + need
    say(f"raising kernel.pty.max from {cm.pty_sysctl('max')} to {new} for the density run "
        f"(containers need {need} ptys, {cm.pty_headroom()} left)")
    with open(cm.PTY_SYSCTL + "max", "w") as f:
        f.write(str(new))


def summarize_cycles(cycles: list[dict[str, float]], jobs: int) -> dict[str, Any]:
    ms = {k: [c[k] * 1e3 for c in cycles] for k in ("running", "console", "gone")}
    ready = [c["running"] * 1e3 + c["console"] * 1e3 for c in cycles]
    whole = [r + g for r, g in zip(ready, ms["gone"], strict=True)]
    return {
        "running": cm.summary(ms["running"]), "console": cm.summary(ms["console"]),
        "ready": cm.summary(ready), "gone": cm.summary(ms["gone"]),
        "cycles_per_s": jobs / (sum(whole) / len(whole) / 1e3) if whole else 0.0,
        "ready_ms": ready, "running_ms": ms["running"],
    }


def machine() -> dict[str, Any]:
    cpu = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    lxc_version = subprocess.run(["lxc-start", "--version"], capture_output=True,
                                 text=True).stdout.strip()
    return {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "host": platform.node(), "kernel": platform.release(), "cpu": cpu,
            "cores": os.cpu_count(), "mem_gib": round(cm.meminfo_kb("MemTotal") / 2**20, 1),
            "python": platform.python_version(), "liblxc": lxc_version,
            "load_at_start": os.getloadavg()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--all", action="store_true", help="full sizes (the documented run)")
    ap.add_argument("--only", default=",".join(WORKLOADS),
                    help=f"comma-separated workloads out of {','.join(WORKLOADS)}")
    ap.add_argument("--systems", default=",".join(SYSTEMS),
                    help="comma-separated systems to compare (short names: lxactors, c, py, cmd)")
    ap.add_argument("--spawn", type=int, help="spawn cycles per system and mode")
    ap.add_argument("--rounds", type=int, help="interleaved blocks the spawn cycles come in")
    ap.add_argument("--jobs", type=int, default=8, help="concurrent spawners (default 8)")
    ap.add_argument("--churn", type=int, help="spawn/exit cycles of the churn run")
    ap.add_argument("--density", help="comma-separated container counts to hold")
    ap.add_argument("--console-mb", type=int, help="MB the container writes to its console")
    ap.add_argument("--out", default=os.path.join(ROOT, "docs"),
                    help="where BENCHMARKS.md and bench/ (results, plots) are written")
    ap.add_argument("--no-doc", action="store_true", help="do not update BENCHMARKS.md")
    ap.add_argument("--report-only", action="store_true",
                    help="only render the report again from OUT/bench/results.json")
    ap.add_argument("--raise-pty-max", action="store_true",
                    help="raise kernel.pty.max for the density run if needed (restored after; "
                         "implied by --all)")
    args = ap.parse_args()
    args.raise_pty_max = args.raise_pty_max or args.all
    size = dict(FULL if args.all else QUICK)
    for key in ("spawn", "rounds", "churn", "console_mb"):
        if getattr(args, key) is not None:
            size[key] = getattr(args, key)
    if args.density:
        size["density"] = [int(x) for x in args.density.split(",")]
    only = [w for w in args.only.split(",") if w]
    systems = [ALIASES.get(s.strip().lower(), s.strip()) for s in args.systems.split(",")
               if s.strip()]
    for w in only:
        if w not in WORKLOADS:
            ap.error(f"unknown workload {w!r}")
    for s in systems:
        if s not in SYSTEMS:
            ap.error(f"unknown system {s!r}; one of {', '.join(SYSTEMS)}")

    if args.report_only:
        import _report

        out = os.path.join(args.out, "bench")
        with open(os.path.join(out, "results.json")) as f:
            text = _report.render(json.load(f), out)
        if not args.no_doc:
            _report.update_doc(os.path.join(args.out, "BENCHMARKS.md"), text)
        print(text)
        return 0
    check_host()
    ensure_extras()
    tmp = tempfile.mkdtemp(prefix="lxbench-build-")
    path = tempfile.mkdtemp(prefix="lxbench-", dir="/var/tmp")
    os.chmod(path, 0o711)  # reachable by the mapped root of user-namespaced containers
    results: dict[str, Any] = {"machine": machine(), "sizes": size, "workloads": only,
                               "systems": systems}
    bench = Bench(path, build_raw_c(tmp))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # run the clean-up below
    t0 = time.time()
    pty_max = cm.pty_sysctl("max")
    try:
        say(f"lxcpath {path}; building the busybox base")
        results["setup"] = bench.worker("setup")
        steps = {
            "spawn": lambda: bench.spawn(systems, size["spawn"], size["rounds"], args.jobs),
            "userns": lambda: bench.userns(size["spawn"], size["rounds"], args.jobs),
            "calls": lambda: bench.calls(systems, size["calls"], size["actor_calls"]),
            "pool": lambda: bench.pool(size["pool"], size["rounds"]),
            "imc": lambda: bench.imc(size["imc"], size["rounds"]),
            "churn": lambda: bench.churn(size["churn"], args.jobs),
            "density": lambda: bench.density(size["density"], args.jobs, systems),
            "console": lambda: bench.console(size["console_mb"], size["repeats"]),
            "profile": lambda: bench.profile(size["profile"]),
        }
        for name, step in steps.items():
            if name not in only or (name in LXACTORS_ONLY and "lxactors" not in systems):
                continue
            if name == "density" and args.raise_pty_max:
                raise_pty_max(6 * max(size["density"]) + 64)
            try:
                results[name] = step()
            except Exception as exc:  # keep the other workloads' results
                say(f"{name} failed: {type(exc).__name__}: {exc}")
                results.setdefault("errors", {})[name] = f"{type(exc).__name__}: {exc}"
                bench.collect_cgroups(f"{name} (failed)")
    finally:
        results["left_at_teardown"] = bench.teardown()
        if cm.pty_sysctl("max") != pty_max:
            with open(cm.PTY_SYSCTL + "max", "w") as f:
                f.write(str(pty_max))
            say(f"kernel.pty.max restored to {pty_max}")
        results["cgroup_dirs_left_by_system"] = bench.cgroups_left
        shutil.rmtree(tmp, ignore_errors=True)
    results["minutes"] = round((time.time() - t0) / 60, 1)
    results["load_at_end"] = os.getloadavg()

    import _report

    out = os.path.join(args.out, "bench")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    text = _report.render(results, out)
    print(text)
    if not args.no_doc:
        _report.update_doc(os.path.join(args.out, "BENCHMARKS.md"), text)
        say(f"updated {os.path.join(args.out, 'BENCHMARKS.md')}")
    say(f"results in {out} ({results['minutes']} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
