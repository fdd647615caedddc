"""Benchmark workers: each run is a fresh process started by ``bench/run.py``.

``python bench/_worker.py KIND 'JSON ARGS'`` prints progress on stderr and
its result as one ``RESULT {json}`` line on stdout.  Kinds:

- ``setup``: build the cached busybox base of the lxcpath (lxactors' own).
- ``lx_spawn``, ``py_spawn``, ``cmd_spawn``: spawn cycles of lxactors,
  python3-lxc and the ``lxc-*`` commands (the raw C one is ``raw_c``).
- ``lx_calls``, ``py_calls``: per-call cost of get_config_item and state.
- ``lx_churn``: spawn/exit cycles, then what is left behind.
- ``lx_density``: hold N containers (a line protocol with the orchestrator).
- ``lx_console``: console bytes/s to an owner actor, and a raw pty reader.
- ``lx_profile``: where lxactors' spawn and exit time goes.

Timing of a cycle: *running* = start of the call until the container is
RUNNING (``spawn()`` returning, for lxactors); *console* = from then until
the shell on tty1 answered the probe; *gone* = from the exit/stop call until
the container is stopped and deleted.
"""

from __future__ import annotations

import collections
import functools
import json
import math
import os
import pty
import queue
import select
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as cm

BASE = "lxactors-base"
#: lxactors' containers run without a user namespace in the comparisons
#: (the others' base has none); the ``userns`` workload sets it per run.
USERNS = False


def log(msg: str) -> None:
    print(f"  [{os.getpid()}] {msg}", file=sys.stderr, flush=True)


def now() -> float:
    return time.perf_counter()


def run_jobs(jobs: int, per_job: int, cycle: Callable[[int, int], dict[str, Any]]) -> list[Any]:
    """Run *per_job* cycles in each of *jobs* threads; the first cycle of
    each thread is a warm-up and is dropped.  Returns (t_end, cycle) pairs."""
    out: list[Any] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def job(j: int) -> None:
        try:
            for i in range(per_job + 1):
                r = cycle(j, i)
                if i:
                    with lock:
                        out.append((now(), r))
        except BaseException as exc:  # reported by the caller
            errors.append(exc)

    threads = [threading.Thread(target=job, args=(j,)) for j in range(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return out


# ---------------------------------------------------------------- lxactors


def _lx_probe(lx: Any, ref: Any, timeout: float = 10.0) -> None:
    """Wait for the shell's prompt, type the probe, wait for its answer."""
    probe = cm.Probe()
    deadline = now() + timeout
    while True:
        msg = ref.receive(max(0.0, deadline - now()))
        if isinstance(msg, lx.ConsoleOutput):
            write, done = probe.feed(msg.data)
            if done:
                return
            if write:
                lx.send(ref, write)
        elif isinstance(msg, lx.ContainerExited):
            raise RuntimeError(f"{ref.name} exited during the probe: {msg}")


def lx_spawn(a: dict[str, Any]) -> dict[str, Any]:
    import lxactors as lx

    path = a["path"]
    names: list[str] = []
    userns = a.get("userns", USERNS)

    def cycle(j: int, i: int) -> dict[str, Any]:
        t0 = now()
        ref = lx.spawn("", userns=userns, path=path)
        t1 = now()
        names.append(ref.name)
        if a.get("console", True):
            _lx_probe(lx, ref)
        t2 = now()
        lx.exit(ref, "kill")
        t3 = now()
        return {"running": t1 - t0, "console": t2 - t1, "gone": t3 - t2}

    t = now()
    rows = run_jobs(a["jobs"], a["per_job"], cycle)
    return {"cycles": [r for _, r in rows], "wall": now() - t, "names": names}


#: Blocks a call loop is split into; the fastest block counts (a loaded
#: machine's other work lands in some blocks, not in the call's cost).
BLOCKS = 5


def _best_of(fn: Callable[[], object], iters: int) -> float:
    """µs per call of *fn*: warm-up, then the fastest of BLOCKS blocks of iters/BLOCKS."""
    for _ in range(min(iters, 200)):
        fn()
    per = max(1, iters // BLOCKS)
    best = math.inf
    for _ in range(BLOCKS):
        t = now()
        for _ in range(per):
            fn()
        best = min(best, (now() - t) / per)
    return best * 1e6


def lx_calls(a: dict[str, Any]) -> dict[str, Any]:
    import pykka

    import lxactors as lx
    from lxactors import liblxc

    ref = lx.spawn("", userns=USERNS, path=a["path"])
    try:
        out: dict[str, Any] = {"name": ref.name}
        h = liblxc.Container(ref.name, a["path"])
        via = lx.container(ref)
        n, m = a["iters"], a["actor_iters"]

        def per_call(fn: Callable[[], object], iters: int) -> float:
            return _best_of(fn, iters)

        key = "lxc.rootfs.path"
        out["handle.get_config_item"] = per_call(lambda: h.get_config_item(key), n)
        out["handle.state"] = per_call(h.state, n)
        out["actor.get_config_item"] = per_call(lambda: via.get_config_item(key), m)
        out["actor.state"] = per_call(via.state, m)
        # Where the actor round trip goes: pykka's own floors.
        proxy = ref.actor.proxy()
        out["pykka.proxy().state().get()"] = per_call(lambda: ref.actor.proxy().state().get(), m)
        out["pykka.cached_proxy.state().get()"] = per_call(lambda: proxy.state().get(), m)
        out["pykka.ask(noop)"] = per_call(
            lambda: ref.actor.ask(pykka.messages.ProxyCall(attr_path=("get_type",), args=(),
                                                           kwargs={})), m)
        out["pykka.proxy() construction"] = per_call(ref.actor.proxy, m)
        out["lxactors.type(ref) (no liblxc call)"] = per_call(lambda: lx.type(ref), m)
        out["state_value"] = h.state()
        h.close()
    finally:
        lx.exit(ref, "kill")
    return out


def _tasks() -> dict[str, str]:
    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/comm") as f:
                out[tid] = f.read().strip()
        except OSError:
            pass
    return out


def _leak_snapshot(path: str, names: set[str]) -> dict[str, Any]:
    return {
        "fds": cm.fd_count(),
        "threads": threading.active_count(),
        "os_threads": cm.status()["Threads"],
        "host_mounts": cm.host_mounts(path),
        "cgroup_dirs": len(cm.cgroup_dirs(names)),
        "monitors": len(cm.monitor_pids(path)),
    }


def lx_churn(a: dict[str, Any]) -> dict[str, Any]:
    import lxactors as lx
    from lxactors import liblxc

    path = a["path"]
    names: list[str] = []
    # Warm up the process-wide parts (helper, console thread, supervisor)
    # before the "before" snapshot.
    with lx.spawn("", userns=USERNS, path=path) as ref:
        names.append(ref.name)
    time.sleep(0.5)
    before = _leak_snapshot(path, set())
    tasks_before = _tasks()
    defined_before = set(liblxc.list_defined_containers(path))
    done: list[float] = []
    lock = threading.Lock()
    it = iter(range(a["count"]))
    errors: list[BaseException] = []

    def job() -> None:
        try:
            while True:
                with lock:
                    if next(it, None) is None:
                        return
                ref = lx.spawn("", userns=USERNS, path=path)
                lx.exit(ref, "kill")
                with lock:
                    names.append(ref.name)
                    done.append(now())
        except BaseException as exc:
            errors.append(exc)

    t0 = now()
    threads = [threading.Thread(target=job) for _ in range(a["jobs"])]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = now() - t0
    if errors:
        raise errors[0]
    # Monitors and cgroups go asynchronously: give them a moment.
    deadline = now() + 10
    while True:
        after = _leak_snapshot(path, set(names))
        if all(after[k] <= before[k] for k in before) or now() > deadline:
            break
        time.sleep(0.2)
    left = sorted(set(liblxc.list_defined_containers(path)) - defined_before)
    tasks_after = _tasks()
    new_tasks = {t: c for t, c in tasks_after.items() if t not in tasks_before}
    if new_tasks:
        log(f"new OS threads: {new_tasks}; python threads: "
            f"{[t.name for t in threading.enumerate()]}")
    windows = []
    step = max(1, len(done) // 10)
    for k in range(step, len(done), step):
        windows.append(step / (done[k] - done[k - step]))
    return {
        "count": len(done), "jobs": a["jobs"], "wall": wall, "per_s": len(done) / wall,
        "window_per_s": windows, "before": before, "after": after,
        "leaked": {k: after[k] - before.get(k, 0) for k in after},
        "containers_left": left, "names": names, "new_os_threads": new_tasks,
    }


def _install_poll_shim() -> None:
    """Bench-side experiment, not a change to the library: lxactors' helper
    client waits for each reply with ``select.select``, which refuses fds
    >= 1024 (FD_SETSIZE), so a process holding ~250 containers (4 fds each)
    can no longer call the helper.  This gives that module a ``select``
    backed by ``poll``, to measure what the fix would allow."""
    import math as _math
    import select as _select

    from lxactors import _helperclient

    class PollSelect:
        def __getattr__(self, name: str) -> Any:
            return getattr(_select, name)

        def select(self, r: list[int], w: list[int], x: list[int],
                   timeout: float | None = None) -> tuple[list[int], list[int], list[int]]:
            p = _select.poll()
            for fd in r:
                p.register(fd, _select.POLLIN)
            for fd in w:
                p.register(fd, _select.POLLOUT)
            ms = None if timeout is None else _math.ceil(max(0.0, timeout) * 1000)
            ready = p.poll(ms)
            done = _select.POLLIN | _select.POLLHUP | _select.POLLERR
            return ([fd for fd, ev in ready if ev & done and fd in r],
                    [fd for fd, ev in ready if ev & _select.POLLOUT], [])

    _helperclient.select = PollSelect()  # type: ignore[assignment]


def lx_density(a: dict[str, Any]) -> dict[str, Any]:
    """Line protocol: print 'base', wait; spawn N, print 'ready {...}', wait;
    exit all, return.  Spawning stops at the first failure (recorded)."""
    import lxactors as lx

    if a.get("poll_shim"):
        _install_poll_shim()
    path, n, jobs = a["path"], a["n"], a["jobs"]
    with lx.spawn("", userns=USERNS, path=path):
        pass  # warm-up: helper, console thread, supervisor
    time.sleep(0.5)
    print("base " + json.dumps(cm.status()), flush=True)
    sys.stdin.readline()
    # One owner for all, alive as long as this function runs (a thread's
    # own mailbox would end with the spawning thread, and its containers too).
    owner = lx.Mailbox()
    refs: list[Any] = []
    errors: list[str] = []
    lock = threading.Lock()
    lat: list[float] = []
    it = iter(range(n))

    def job() -> None:
        while True:
            with lock:
                if errors or next(it, None) is None:
                    return
            t = now()
            try:
                ref = lx.spawn("", userns=USERNS, path=path, owner=owner)
            except Exception as exc:
                with lock:
                    errors.append(f"after {len(refs)} containers: {type(exc).__name__}: {exc}")
                return
            with lock:
                refs.append(ref)
                lat.append(now() - t)

    t0 = now()
    threads = [threading.Thread(target=job) for _ in range(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    spawn_wall = now() - t0
    if errors:
        log(f"density: spawn failed {errors[0]}")
    time.sleep(2)
    from lxactors._helperclient import helper

    own = {**cm.status(), "fds": cm.fd_count(), "py_threads": threading.active_count(),
           "helper_pss_kb": cm.pss_kb(helper().pid or 0), "alive": sum(r.alive for r in refs),
           "names": [r.name for r in refs]}
    print("ready " + json.dumps(own), flush=True)
    sys.stdin.readline()
    t1 = now()
    q: queue.SimpleQueue[Any] = queue.SimpleQueue()
    for r in refs:
        q.put(r)
    exit_errors: list[str] = []

    def ender() -> None:
        while True:
            try:
                r = q.get_nowait()
            except queue.Empty:
                return
            try:
                lx.exit(r, "kill")
            except Exception as exc:
                exit_errors.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=ender) for _ in range(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"n": n, "reached": len(refs), "errors": errors[:3], "exit_errors": exit_errors[:3],
            "spawn_wall": spawn_wall, "spawn_latency": lat, "exit_wall": now() - t1}


#: The console writers: dd with 64 KiB writes (busybox head writes in small
#: pieces and is slower), on the tty as it is, and with output processing off.
WRITERS = {
    "dd bs=64k": "dd if=/dev/zero bs=65536 count={count} 2>/dev/null",
    "dd bs=64k, stty -opost": "stty -opost; dd if=/dev/zero bs=65536 count={count} 2>/dev/null"
                              "; stty opost",
}


def lx_console(a: dict[str, Any]) -> dict[str, Any]:
    import pykka

    import lxactors as lx
    from lxactors import liblxc

    path, count = a["path"], max(1, a["bytes"] // 65536)
    end_marker = b"E-5"

    def command(writer: str) -> bytes:
        return (WRITERS[writer].format(count=count) + "; echo E-$((2+3))\n").encode()

    class Counter(pykka.ThreadingActor):
        """The owner: counts console bytes and messages, sets an event on a marker."""

        def __init__(self) -> None:
            super().__init__()
            self.reset(cm.PROBE_ANSWER)

        def reset(self, marker: bytes) -> None:
            self.n = 0
            self.messages = 0
            self.tail = b""
            self.marker = marker
            self.seen = threading.Event()

        def on_receive(self, message: Any) -> Any:
            if isinstance(message, lx.ConsoleOutput):
                self.n += len(message.data)
                self.messages += 1
                if self.marker in self.tail + message.data:
                    self.seen.set()
                self.tail = message.data[-8:]
            return None

    counter = Counter.start()
    actor: Any = counter.proxy()
    ref = lx.spawn("", userns=USERNS, path=path, owner=counter)
    runs = []
    try:
        lx.send(ref, cm.CURSOR_REPLY + cm.PROBE)
        if not actor.seen.get().wait(10):
            raise RuntimeError("no shell on the console")
        con = lx.console(ref)
        for writer in WRITERS:
            for _ in range(a["repeats"]):
                time.sleep(0.3)
                actor.reset(end_marker).get()
                seen = actor.seen.get()
                with open("/proc/self/clear_refs", "w") as f:
                    f.write("5")  # reset VmHWM (peak RSS)
                rss0 = cm.status()["VmRSS"]
                peak_inflight = 0
                t0 = now()
                lx.send(ref, command(writer))
                while not seen.wait(0.01):
                    peak_inflight = max(peak_inflight, con.inflight)
                    if now() - t0 > 300:
                        raise RuntimeError("console transfer did not finish")
                dt = now() - t0
                n, msgs = actor.n.get(), actor.messages.get()
                st = cm.status()
                runs.append({"writer": writer, "bytes": n, "seconds": dt, "MB_s": n / dt / 1e6,
                             "messages_per_s": msgs / dt, "bytes_per_message": n / max(1, msgs),
                             "rss_start_kb": rss0, "rss_peak_kb": st["VmHWM"],
                             "peak_inflight": peak_inflight, "window": con.window})
                log(f"console via actor, {writer}: {n / dt / 1e6:.1f} MB/s, "
                    f"{n / max(1, msgs):.0f} B/message, peak RSS {st['VmHWM']} kB")
    finally:
        lx.exit(ref, "kill")
        counter.stop()

    # The ceiling: the same transfers read straight from the pty, no actors.
    raw = []
    name = f"{cm.PREFIX}{os.getpid()}-raw"
    with liblxc.Container(BASE, path) as base:
        c = base.clone(name, flags=liblxc.CLONE_SNAPSHOT, bdevtype="overlay")
    try:
        c.start()
        cfd = c.console_getfd(1)
        _fd_probe(cfd.ptx)
        for writer in WRITERS:
            for _ in range(a["repeats"]):
                time.sleep(0.3)
                t0 = now()
                os.write(cfd.ptx, command(writer))
                n = _read_until(cfd.ptx, end_marker)
                dt = now() - t0
                raw.append({"writer": writer, "bytes": n, "seconds": dt, "MB_s": n / dt / 1e6})
                log(f"console raw pty read, {writer}: {n / dt / 1e6:.1f} MB/s")
        cfd.close()
    finally:
        if c.is_running():
            c.stop()
        c.destroy()
        c.close()
    return {"actor": runs, "raw_pty": raw, "names": [ref.name, name]}


def _read_until(fd: int, marker: bytes, timeout: float = 300) -> int:
    """Read *fd* until *marker* went by; return the bytes read."""
    tail = b""
    n = 0
    deadline = now() + timeout
    while True:
        r, _, _ = select.select([fd], [], [], max(0.0, deadline - now()))
        if not r:
            raise RuntimeError(f"no {marker!r} on the console")
        data = os.read(fd, 1 << 16)
        n += len(data)
        if marker in tail + data:
            return n
        tail = data[-16:]


def _fd_probe(fd: int, timeout: float = 10, gate: bytes | None = None) -> None:
    """The console probe on a pty controller fd.  With *gate*, output before
    it is skipped, and nothing is typed until the terminal is in raw mode
    (how lxc-console says it is attached)."""
    probe = cm.Probe()
    pending: bytes | None = b"" if gate else None
    deadline = now() + timeout
    while True:
        r, _, _ = select.select([fd], [], [], max(0.0, deadline - now()))
        if not r:
            raise RuntimeError("the console probe got no answer")
        data = os.read(fd, 1 << 16)
        if gate and pending is not None:
            pending += data
            i = pending.find(gate)
            if i < 0:
                continue
            data, pending = pending[i + len(gate):], None
            # lxc-console makes the terminal raw after saying it is
            # connected, which flushes pending input: type only once raw.
            # (termios calls on a pty's controller act on its terminal.)
            while termios.tcgetattr(fd)[3] & termios.ICANON and now() < deadline:
                time.sleep(0.0002)
        write, done = probe.feed(data)
        if done:
            return
        if write:
            os.write(fd, write)


def lx_profile(a: dict[str, Any]) -> dict[str, Any]:
    """Time the steps of spawn and exit by wrapping lxactors' internals from
    the outside (the library is not changed)."""
    import lxactors as lx
    from lxactors import _actor, _base, _helperclient, liblxc

    acc: dict[str, list[float]] = collections.defaultdict(list)

    def wrap(owner: Any, attr: str, label: str) -> None:
        fn = getattr(owner, attr, None)
        if fn is None:
            return

        @functools.wraps(fn)
        def timed(*args: Any, **kw: Any) -> Any:
            t = now()
            try:
                return fn(*args, **kw)
            finally:
                acc[label].append(now() - t)

        setattr(owner, attr, timed)

    steps = [
        (_actor.ContainerActor, "start", "spawn: ContainerActor.start (thread)"),
        (_actor.ContainerActor, "boot", "spawn: boot (in the actor)"),
        (_base, "ephemeral_clone", "spawn: boot: ephemeral_clone"),
        (_actor.ContainerActor, "_start", "spawn: boot: _start"),
        (_actor.ContainerActor, "_open_console", "spawn: boot: _start: open console"),
        (liblxc.Container, "__init__", "liblxc.Container() (each)"),
        (_actor.ContainerActor, "exit", "exit: ContainerActor.exit"),
        (liblxc.Container, "stop", "exit: handle.stop"),
        (_actor.ContainerActor, "_destroy", "exit: _destroy"),
    ]
    for owner, attr, label in steps:
        wrap(owner, attr, label)
    helper_call = _helperclient.Helper.call

    def call(self: Any, req: Any, *args: Any, **kw: Any) -> Any:
        t = now()
        try:
            return helper_call(self, req, *args, **kw)
        finally:
            acc[f"helper round trip: {req.op}"].append(now() - t)

    _helperclient.Helper.call = call  # type: ignore[method-assign]
    path = a["path"]
    with lx.spawn("", userns=USERNS, path=path):
        pass
    acc.clear()
    tot: dict[str, list[float]] = {"spawn()": [], "exit()": []}
    names = []
    for _ in range(a["count"]):
        t0 = now()
        ref = lx.spawn("", userns=USERNS, path=path)
        t1 = now()
        lx.exit(ref, "kill")
        t2 = now()
        names.append(ref.name)
        tot["spawn()"].append(t1 - t0)
        tot["exit()"].append(t2 - t1)
    n = a["count"]
    rows = {k: {"calls_per_cycle": len(v) / n, "p50_ms": cm.percentile(v, 50) * 1e3,
                "ms_per_cycle": sum(v) / n * 1e3} for k, v in acc.items()}
    rows.update({k: {"calls_per_cycle": 1, "p50_ms": cm.percentile(v, 50) * 1e3,
                     "ms_per_cycle": sum(v) / n * 1e3} for k, v in tot.items()})
    return {"steps": rows, "count": n, "names": names}


def setup(a: dict[str, Any]) -> dict[str, Any]:
    from lxactors import _base
    from lxactors._userns import resolve_userns

    t = now()
    _base.ensure_base(a["path"])
    took = now() - t
    t = now()
    _base.ensure_base(a["path"], resolve_userns(True))
    return {"base": BASE, "seconds": took, "userns_base_seconds": now() - t}


# ---------------------------------------------------------------- python3-lxc


def _close_new_fds(before: set[int], keep: int) -> None:
    """python3-lxc's console_getfd drops liblxc's keep-alive fd: close it."""
    for fd in set(map(int, os.listdir("/proc/self/fd"))) - before - {keep}:
        try:
            os.close(fd)
        except OSError:
            pass


def py_spawn(a: dict[str, Any]) -> dict[str, Any]:
    import lxc  # python3-lxc

    path, prefix = a["path"], a["prefix"]
    base = lxc.Container(BASE, path)
    cycles = []
    for i in range(a["per_job"] + 1):
        name = f"{prefix}{i}"
        t0 = now()
        c = base.clone(name, config_path=path, flags=lxc.LXC_CLONE_SNAPSHOT, bdevtype="overlay")
        if not c or not c.start() or not c.running:
            raise RuntimeError(f"python3-lxc: clone/start of {name} failed")
        t1 = now()
        if a.get("console", True):
            before = set(map(int, os.listdir("/proc/self/fd")))
            fd = c.console_getfd(1)
            _close_new_fds(before, fd)
            _fd_probe(fd)
            os.close(fd)
        t2 = now()
        if not c.stop() or not c.destroy():
            raise RuntimeError(f"python3-lxc: stop/destroy of {name} failed")
        t3 = now()
        if i:
            cycles.append({"running": t1 - t0, "console": t2 - t1, "gone": t3 - t2})
    return {"cycles": cycles}


def py_calls(a: dict[str, Any]) -> dict[str, Any]:
    import lxc

    c = lxc.Container(a["name"], a["path"])
    n = a["iters"]
    out: dict[str, Any] = {}
    for label, fn in (("get_config_item", lambda: c.get_config_item("lxc.rootfs.path")),
                      ("state", lambda: c.state)):
        out[label] = _best_of(fn, n)
    out["state_value"] = c.state
    return out


# ---------------------------------------------------------------- lxc-* commands


def _run(*argv: str) -> None:
    p = subprocess.run(argv, capture_output=True)
    if p.returncode:
        raise RuntimeError(f"{' '.join(argv)}: {p.stderr.decode(errors='replace').strip()}")


def _lxc_console_probe(name: str, path: str) -> None:
    """lxc-console on a pty of ours: wait for it, type the probe, quit with ^a q."""
    ptx, pts = pty.openpty()
    p = subprocess.Popen(["lxc-console", "-n", name, "-P", path, "-t", "1"],
                         stdin=pts, stdout=pts, stderr=pts, close_fds=True)
    os.close(pts)
    try:
        _fd_probe(ptx, gate=b"Connected to tty")
        os.write(ptx, b"\x01q")
        p.wait(10)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        os.close(ptx)


def cmd_spawn(a: dict[str, Any]) -> dict[str, Any]:
    path, prefix = a["path"], a["prefix"]

    def cycle(j: int, i: int) -> dict[str, Any]:
        name = f"{prefix}{j}-{i}"
        t0 = now()
        _run("lxc-copy", "-e", "-n", BASE, "-N", name, "-P", path)
        t1 = now()
        if a.get("console", True):
            _lxc_console_probe(name, path)
        t2 = now()
        _run("lxc-stop", "-k", "-n", name, "-P", path)
        while os.path.exists(os.path.join(path, name)):  # ephemeral: deleted on stop
            time.sleep(0.001)
        t3 = now()
        return {"running": t1 - t0, "console": t2 - t1, "gone": t3 - t2}

    t = now()
    rows = run_jobs(a["jobs"], a["per_job"], cycle)
    return {"cycles": [r for _, r in rows], "wall": now() - t}


# ---------------------------------------------------------------- pool, imc, bubblewrap


def lx_pool(a: dict[str, Any]) -> dict[str, Any]:
    """Pool hand-over vs cold spawn, interleaved in one process: each take
    finds the pool full (its refill is awaited first); both timed from the
    call until the reference returns (console attached, owner set)."""
    import lxactors as lx

    path, size = a["path"], a["size"]
    hand: list[float] = []
    cold: list[float] = []
    names: list[str] = []
    with lx.Pool(size, path=path, userns=USERNS) as pool:
        lx.exit(lx.spawn(path=path, userns=USERNS), "kill")  # warm-up
        for _ in range(a["count"]):
            deadline = now() + 60
            while pool.ready < size and now() < deadline:
                time.sleep(0.005)  # the bench waits for the refill; not timed
            t = now()
            ref = pool.spawn()
            hand.append(now() - t)
            names.append(ref.name)
            lx.exit(ref, "kill")
            t = now()
            ref = lx.spawn(path=path, userns=USERNS)
            cold.append(now() - t)
            names.append(ref.name)
            lx.exit(ref, "kill")
    return {"hand_over_ms": [x * 1e3 for x in hand], "cold_ms": [x * 1e3 for x in cold],
            "size": size, "names": names}


IMC_CMD = ["/bin/sh", "-c", "exit 3"]


def imc_run(a: dict[str, Any]) -> dict[str, Any]:
    """lxactors.imc.run of ``sh -c 'exit 3'``, end to end (status back, output collected)."""
    from lxactors import imc

    imc.run(["/bin/true"], path=a["path"])  # warm-up: the helper, the imports
    ms = []
    for _ in range(a["count"]):
        t = now()
        r = imc.run(IMC_CMD, path=a["path"])
        ms.append((now() - t) * 1e3)
        if r.status != 3:
            raise RuntimeError(f"imc: exit status {r.status}, not 3")
    return {"ms": ms}


def imc_pool_run(a: dict[str, Any]) -> dict[str, Any]:
    """imc.run of the same command from an imc.Pool of 2 (its refill awaited, not timed)."""
    from lxactors import imc

    ms = []
    with imc.Pool(2, path=a["path"]) as pool:
        imc.run(["/bin/true"], pool=pool)  # warm-up
        for _ in range(a["count"]):
            deadline = now() + 60
            while pool.ready < 2 and now() < deadline:
                time.sleep(0.005)
            t = now()
            r = imc.run(IMC_CMD, pool=pool)
            ms.append((now() - t) * 1e3)
            if r.status != 3:
                raise RuntimeError(f"imc (pool): exit status {r.status}, not 3")
    return {"ms": ms}


def bwrap_argv() -> list[str]:
    """bubblewrap with imc's shape: the system directories read-only, tmpfs
    /tmp and home, a fresh /proc and /dev, every namespace unshared."""
    argv = ["bwrap", "--unshare-all", "--die-with-parent", "--new-session",
            "--ro-bind", "/usr", "/usr"]
    for d in ("/bin", "/lib", "/lib64", "/sbin"):
        if os.path.islink(d):
            argv += ["--symlink", os.readlink(d), d]
        elif os.path.isdir(d):
            argv += ["--ro-bind", d, d]
    argv += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--tmpfs", "/home/imc",
             "--uid", "4242", "--gid", "4242", "--cap-drop", "ALL"]
    return argv + IMC_CMD


def bwrap_run(a: dict[str, Any]) -> dict[str, Any]:
    argv = bwrap_argv()
    subprocess.run(argv, capture_output=True)  # warm-up
    ms = []
    for _ in range(a["count"]):
        t = now()
        p = subprocess.run(argv, capture_output=True)
        ms.append((now() - t) * 1e3)
        if p.returncode != 3:
            raise RuntimeError(f"bwrap: exit status {p.returncode}, not 3: {p.stderr[-300:]!r}")
    return {"ms": ms, "argv": argv}


KINDS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "setup": setup, "lx_spawn": lx_spawn, "lx_calls": lx_calls, "lx_churn": lx_churn,
    "lx_density": lx_density, "lx_console": lx_console, "lx_profile": lx_profile,
    "py_spawn": py_spawn, "py_calls": py_calls, "cmd_spawn": cmd_spawn,
    "lx_pool": lx_pool, "imc_run": imc_run, "imc_pool_run": imc_pool_run,
    "bwrap_run": bwrap_run,
}


def main() -> None:
    kind, args = sys.argv[1], json.loads(sys.argv[2])
    result = KINDS[kind](args)
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
