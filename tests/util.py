"""What the test modules share: waiting, names, /proc readers, teardown helpers."""

from __future__ import annotations

import glob
import itertools
import os
import queue
import select
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import lxactors
from lxactors import liblxc

#: Whether this run is root's test modules run as an ordinary user through the gate
#: (tests/test_privsep.py sets LXACTORS_TEST_AS_USER for its test user): their
#: ``lxcpath`` fixture is then the user's own, and what only root may do is skipped.
AS_USER = os.geteuid() != 0 and os.environ.get("LXACTORS_TEST_AS_USER") == "1"


def wait_for(predicate: Callable[[], object], timeout: float = 15.0, what: str = "condition",
             interval: float = 0.02) -> object:
    """Poll *predicate* until it returns something truthy; fail after *timeout* s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def seconds_until(predicate: Callable[[], object], timeout: float, what: str) -> float:
    """wait_for *predicate*; return the seconds it took (for tests that measure)."""
    t0 = time.monotonic()
    wait_for(predicate, timeout, what)
    return time.monotonic() - t0


_counter = itertools.count()
_counter_lock = threading.Lock()


def unique_name(prefix: str = "t") -> str:
    """A container name no other test (or test process) uses: PREFIX<pid>-<n>."""
    with _counter_lock:
        return f"{prefix}{os.getpid()}-{next(_counter)}"


def read_console_until(ref: lxactors.ContainerRef, needle: bytes, timeout: float = 10.0) -> bytes:
    """Console bytes from a plain-code owner's messages until *needle* shows up."""
    deadline = time.monotonic() + timeout
    buf = b""
    while needle not in buf:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"{needle!r} not seen within {timeout} s; got {buf[-500:]!r}")
        try:
            msg = ref.receive(timeout=remaining)
        except queue.Empty:
            continue
        if isinstance(msg, lxactors.ConsoleOutput):
            buf += msg.data
    return buf


def remove_container(name: str, lxcpath: str) -> None:
    """Teardown: stop and destroy *name* if it is still there (gone already is fine)."""
    try:
        with liblxc.Container(name, lxcpath) as c:
            if c.is_running():
                c.stop()
            if c.is_defined():
                c.destroy()
    except lxactors.LxcError:
        pass


def dirs_left(lxcpath: str, prefix: str) -> list[str]:
    """Directories named PREFIX... in *lxcpath*: what outlived its container.

    As an ordinary user, whose lxcpath is root's (0711: only the gate lists it),
    none are seen here: ``tests/test_privsep.py`` looks from root's side after the run.
    """
    if AS_USER:
        return []
    return [n for n in os.listdir(lxcpath) if n.startswith(prefix)]


def proc_status(pid: int | str) -> dict[str, str]:
    """/proc/PID/status (PID may be "self") as {field: value}."""
    with open(f"/proc/{pid}/status", encoding="utf-8") as f:
        return {key: value.strip() for key, sep, value in (line.partition(":") for line in f) if sep}


def status_field(pid: int | str, field: str) -> str:
    """One field of /proc/PID/status (PID may be "self"), without its name."""
    status = proc_status(pid)
    if field not in status:
        raise KeyError(field)
    return status[field]


def assert_untouched(outside: str) -> None:
    """Nothing was written in *outside* (the ``outside`` fixture) and its mode is as made."""
    assert os.listdir(outside) == [], f"written outside the rootfs: {os.listdir(outside)}"
    assert stat.S_IMODE(os.stat(outside).st_mode) == 0o711, "mode changed outside the rootfs"


def pid_gone(pid: int) -> bool:
    """True once *pid* has exited (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError):
        return True


def host_uid(pid: int) -> int:
    """The real uid of *pid* as the host sees it (from /proc/PID/status)."""
    uids = status_field(pid, "Uid")
    real, effective, saved, fs = (int(x) for x in uids.split())
    assert real == effective == saved == fs, uids
    return real


def pids_in_pidns_of(pid: int) -> list[int]:
    """The host pids of every process in *pid*'s pid namespace.

    As an ordinary user (:data:`AS_USER`), who may not read the namespaces of
    a container's processes (they run as the user's delegated ids, in a user
    namespace root made), those in *pid*'s cgroup: a container's processes,
    attached ones included, are all in its payload cgroup.
    """
    if AS_USER:
        return _pids_in_cgroup_of(pid)
    ns = os.readlink(f"/proc/{pid}/ns/pid")
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink(f"/proc/{entry}/ns/pid") == ns:
                    found.append(int(entry))
            except OSError:
                pass  # gone meanwhile
    return found


def host_uids_in_pidns_of(pid: int) -> dict[int, int]:
    """{host pid: host uid} of every process in *pid*'s pid namespace that is
    still there when read (one that ends between listing and reading, such as a
    finished ``id`` or boot script, is left out)."""
    uids = {}
    for p in pids_in_pidns_of(pid):
        try:
            uids[p] = host_uid(p)
        except (FileNotFoundError, ProcessLookupError):
            pass
    return uids


def _pids_in_cgroup_of(pid: int) -> list[int]:
    """The host pids in *pid*'s pids cgroup and below it (world-readable /proc files)."""
    def pids_cgroup(p: int | str) -> str:
        with open(f"/proc/{p}/cgroup", encoding="utf-8") as f:
            lines = [line.rstrip("\n").split(":", 2) for line in f]
        return next((path for _, ctrls, path in lines if "pids" in ctrls.split(",")),
                    next(path for n, _, path in lines if n == "0"))

    top = pids_cgroup(pid)
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                path = pids_cgroup(entry)
            except (OSError, StopIteration):
                continue  # gone meanwhile
            if path == top or path.startswith(top.rstrip("/") + "/"):
                found.append(int(entry))
    return found


def cgroup_file(pid: int | None, controller: str, name: str) -> str:
    """The host path of *name* in the cgroup of *controller* that *pid* is in (its
    container's payload cgroup, for a container's process), on cgroup v1 or v2."""
    from lxactors._limits import host_layout

    assert pid, "no pid: the container is not running"
    with open(f"/proc/{pid}/cgroup", encoding="utf-8") as f:
        lines = [line.rstrip("\n").split(":", 2) for line in f]
    if controller in host_layout().v1:
        for _, ctrls, path in lines:
            if controller in ctrls.split(","):
                return os.path.join("/sys/fs/cgroup", ctrls, path.lstrip("/"), name)
        raise AssertionError(f"{pid} is in no {controller} cgroup")
    path = next(p for n, _, p in lines if n == "0")
    root = "/sys/fs/cgroup/unified" if os.path.isdir("/sys/fs/cgroup/unified") else "/sys/fs/cgroup"
    return os.path.join(root, path.lstrip("/"), name)


@contextmanager
def made_bridge(prefix: str, address: str | None = None) -> Iterator[str]:
    """A Linux bridge made for the test (``PREFIX<pid>``), up, with *address*; deleted after.

    As an ordinary user, who cannot make one: the bridge root made for the run
    and granted in access.conf (``net_links``), named by LXACTORS_TEST_BRIDGE
    (no address: a container's own addresses do not need one).
    """
    if AS_USER:
        yield os.environ["LXACTORS_TEST_BRIDGE"]
        return
    name = f"{prefix}{os.getpid() % 10000}"
    subprocess.run(["ip", "link", "add", name, "type", "bridge"], check=True)
    try:
        if address is not None:
            subprocess.run(["ip", "addr", "add", address, "dev", name], check=True)
        subprocess.run(["ip", "link", "set", name, "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "link", "del", name], check=False)


# --------------------------------------------------------------------------- low-level handles


def sh(c: liblxc.Container, script: str, **kw: Any) -> liblxc.AttachResult:
    """Run *script* with the container's /bin/sh (attach_run_wait, 30 s)."""
    return c.attach_run_wait(["/bin/sh", "-c", script], timeout=30, **kw)


def assert_no_private_log_line(path: str) -> None:
    """No config file in *path* names one of lxactors' private per-handle logs."""
    for cfg in glob.glob(os.path.join(path, "**", "config"), recursive=True):
        with open(cfg, encoding="utf-8", errors="replace") as f:
            bad = [ln for ln in f if ln.startswith("lxc.log.file") and "lxactors-" in ln]
        assert not bad, f"{cfg} keeps lxactors' private log: {bad}"


def read_until(fd: int, want: bytes, timeout: float = 15.0,
               poke: Callable[[bytes], None] | None = None) -> bytes:
    """Read *fd* until *want* shows up; *poke(buffer)* runs between reads."""
    buf = b""
    deadline = time.monotonic() + timeout
    while want not in buf:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"{want!r} not seen within {timeout} s; got {buf[-400:]!r}")
        r, _, _ = select.select([fd], [], [], min(remaining, 0.1))
        if r:
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            buf += chunk
        if poke is not None:
            poke(buf)
    assert want in buf, buf
    return buf


class ShellDriver:
    """Drives busybox's askfirst console shell: Enter until a prompt, then one command."""

    def __init__(self, fd: int, command: bytes) -> None:
        self.fd, self.command = fd, command
        self.sent = False
        self.next_enter = 0.0

    def __call__(self, buf: bytes) -> None:
        if self.sent:
            return
        if b"# " in buf:
            os.write(self.fd, self.command + b"\r")
            self.sent = True
        elif time.monotonic() >= self.next_enter:
            os.write(self.fd, b"\r")
            self.next_enter = time.monotonic() + 0.5
