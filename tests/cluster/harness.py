"""A local multi-node Ray cluster in network namespaces made for it, and drivers inside them.

Ray rewrites ``127.0.0.1`` to the host's primary address, so no Ray node or
driver may run in the host's own network namespace: each node gets a
namespace of its own (``/run/netns/<prefix>n<i>``) with a veth to a bridge
that itself lives in a test namespace (``<prefix>br``), addresses from
10.213.0.0/24, used only there.  Nothing is routed anywhere else.  Processes
enter with ``nsenter --net=`` (``ip netns exec`` would remount /sys and hide
/sys/fs/cgroup from liblxc).  Each node has its own lxcpath.

Teardown is by what was made: the containers in each node's lxcpath, then
every process whose network namespace is one of ours (by pid), then the
namespaces; :meth:`NetCluster.stop` asserts all of it is gone.
"""

from __future__ import annotations

import os
import pickle
import secrets
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RAY = os.path.join(os.path.dirname(sys.executable), "ray")
SUBNET = "10.213.0"
PORT = 6379
#: The node's address, for a driver started there: without it, Ray found the head's raylet (its
#: socket is in the session directory, which every namespace shares) and the driver advertised
#: the head's address, where nothing answers for it: calls back to it (a stream's items) hung.
NODE_IP_ENV = "LXACTORS_TEST_NODE_IP"

#: GCS health checks: a dead node is marked after about period x threshold + timeout
#: (about 1.1 s here; Ray's defaults take about 14 s).
HEALTH = {
    "RAY_health_check_initial_delay_ms": "1000",
    "RAY_health_check_period_ms": "300",
    "RAY_health_check_timeout_ms": "300",
    "RAY_health_check_failure_threshold": "3",
}


def _run(*argv: str, ns: str | None = None, env: dict[str, str] | None = None,
         timeout: float = 60) -> subprocess.CompletedProcess[str]:
    cmd = list(argv) if ns is None else ["nsenter", f"--net=/run/netns/{ns}", "--", *argv]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return done


def netns_inode(ns: str) -> int:
    return os.stat(f"/run/netns/{ns}").st_ino


def pids_in_netns(inodes: set[int]) -> dict[int, str]:
    """Every process (pid -> comm) whose network namespace is one of *inodes*."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry}/ns/net").st_ino in inodes:
                with open(f"/proc/{entry}/comm") as f:
                    found[int(entry)] = f.read().strip()
        except OSError:
            pass  # gone meanwhile
    return found


@dataclass
class Node:
    index: int
    ns: str
    ip: str
    lxcpath: str
    head: bool
    labels: dict[str, str] = field(default_factory=dict)
    resource: str = ""
    node_id: str = ""

    def pids(self) -> dict[int, str]:
        return pids_in_netns({netns_inode(self.ns)})

    def lxc(self, tool: str, name: str, *args: str, check: bool = True) -> str:
        """An ``lxc-*`` tool on one of this node's containers, run in the node's namespace.

        A container's monitor answers on an abstract unix socket, which lives
        in the network namespace of the process that started it: from any
        other, liblxc would report a running container STOPPED.
        """
        argv = ["nsenter", f"--net=/run/netns/{self.ns}", "--", f"lxc-{tool}", "-P", self.lxcpath,
                "-n", name, *args]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip()}")
        return done.stdout.strip()

    def state(self, name: str) -> str:
        """RUNNING / STOPPED / ..., or 'gone' once the container is deleted."""
        from lxactors import liblxc

        try:
            return self.lxc("info", name, "-sH")
        except RuntimeError:
            if name not in liblxc.list_defined_containers(self.lxcpath):
                return "gone"  # deleted, perhaps while lxc-info read it
            raise

    def init_pid(self, name: str) -> int:
        return int(self.lxc("info", name, "-pH"))

    def remove(self, name: str) -> None:
        """Stop and delete *name* if it is there."""
        from lxactors import liblxc

        if name in liblxc.list_defined_containers(self.lxcpath):
            self.lxc("stop", name, "-k", check=False)
            try:
                self.lxc("destroy", name, "-f")
            except RuntimeError:
                # Deleted meanwhile by its own policy (a temporary whose owner just went, or
                # an agent's pooled one): gone is what was wanted.
                if name in liblxc.list_defined_containers(self.lxcpath):
                    raise

    def raylet_pid(self) -> int | None:
        for pid, comm in self.pids().items():
            if comm == "raylet":
                return pid
        return None


class NetCluster:
    """*n* Ray nodes (node 0 is the head), each in its own namespace, with its own lxcpath."""

    def __init__(self, n: int = 3, num_cpus: int = 2) -> None:
        self.prefix = f"lxa{os.getpid() % 100000}"
        self.bridge_ns = f"{self.prefix}br"
        self.num_cpus = num_cpus
        self.tmp = tempfile.mkdtemp(prefix="lxactors-cluster-", dir="/var/tmp")
        os.chmod(self.tmp, 0o711)
        self.token = secrets.token_hex(32)
        self.nodes = [
            Node(i, f"{self.prefix}n{i}", f"{SUBNET}.{i + 1}", os.path.join(self.tmp, f"lxc{i}"),
                 i == 0, {"lxactors-test-node": f"n{i}"}, f"node{i}")
            for i in range(n)
        ]
        self.made_ns: list[str] = []
        self.drivers: list[Driver] = []

    @property
    def address(self) -> str:
        return f"{self.nodes[0].ip}:{PORT}"

    def env(self, node: Node | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
        env.update(HEALTH)
        env.update({
            "RAY_AUTH_MODE": "token",  # the same on every node and driver
            "RAY_AUTH_TOKEN": self.token,
            "RAY_USAGE_STATS_ENABLED": "0",
            "PYTHONPATH": ROOT,
        })
        if node is not None:
            env["LXACTORS_LXCPATH"] = node.lxcpath
            env[NODE_IP_ENV] = node.ip
        return env

    # ------------------------------------------------------------------ network

    def _add_ns(self, ns: str) -> None:
        _run("ip", "netns", "add", ns)
        self.made_ns.append(ns)
        _run("ip", "link", "set", "lo", "up", ns=ns)

    def make_network(self) -> None:
        self._add_ns(self.bridge_ns)
        _run("ip", "link", "add", "br0", "type", "bridge", ns=self.bridge_ns)
        _run("ip", "link", "set", "br0", "up", ns=self.bridge_ns)
        for node in self.nodes:
            self._add_ns(node.ns)
            os.makedirs(node.lxcpath, mode=0o711)
            os.chmod(node.lxcpath, 0o711)
            # Both ends are made inside the test namespaces: nothing ever sits in the host's.
            _run("ip", "link", "add", f"b{node.index}", "type", "veth", "peer", "name", "eth0",
                 "netns", node.ns, ns=self.bridge_ns)
            _run("ip", "link", "set", f"b{node.index}", "master", "br0", "up", ns=self.bridge_ns)
            _run("ip", "addr", "add", f"{node.ip}/24", "dev", "eth0", ns=node.ns)
            _run("ip", "link", "set", "eth0", "up", ns=node.ns)

    # ------------------------------------------------------------------ ray

    def start_node(self, node: Node) -> None:
        """``ray start`` in the node's namespace (one after another: parallel starts collide)."""
        argv = [RAY, "start", f"--node-ip-address={node.ip}", f"--num-cpus={self.num_cpus}",
                "--object-store-memory=100000000", "--disable-usage-stats",
                f"--labels={','.join(f'{k}={v}' for k, v in node.labels.items())}",
                f'--resources={{"{node.resource}": 1000}}', f"--temp-dir={self.tmp}/ray"]
        if node.head:
            argv += ["--head", f"--port={PORT}", "--include-dashboard=false"]
        else:
            argv += [f"--address={self.address}"]
        _run(*argv, ns=node.ns, env=self.env(node), timeout=120)

    def start(self) -> None:
        try:
            self.make_network()
            for node in self.nodes:
                self.start_node(node)
        except BaseException:
            self.stop(check=False)
            raise

    def driver(self, node: int = 0, module: str = "tests.cluster.scenarios") -> Driver:
        d = Driver(self, self.nodes[node], module)
        self.drivers.append(d)
        return d

    # ------------------------------------------------------------------ teardown

    def remove_containers(self) -> None:
        from lxactors import liblxc

        for node in self.nodes:
            if not os.path.isdir(node.lxcpath):
                continue
            for name in liblxc.list_defined_containers(node.lxcpath):
                node.remove(name)

    def kill_processes(self, timeout: float = 15.0) -> dict[int, str]:
        inodes = {netns_inode(ns) for ns in self.made_ns if os.path.exists(f"/run/netns/{ns}")}
        deadline = time.monotonic() + timeout
        sig = signal.SIGTERM
        while True:
            left = pids_in_netns(inodes)
            if not left or time.monotonic() > deadline:
                return left
            for pid in left:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            sig = signal.SIGKILL if time.monotonic() > deadline - timeout / 2 else sig
            time.sleep(0.2)

    def stop(self, check: bool = True) -> None:
        for d in self.drivers:
            if d.proc.poll() is None:
                try:  # the agents' pools stop refilling what the teardown destroys
                    d.call("close_pools", timeout=60)
                    break
                except (RemoteError, TimeoutError):
                    continue  # not the tests' driver module, or its node is gone
        for d in self.drivers:
            d.close()
        problems = []
        try:
            self.remove_containers()
        except Exception as exc:
            problems.append(f"containers: {exc}")
        left = self.kill_processes()
        if left:
            problems.append(f"processes left in the test namespaces: {left}")
        # Monitors exit with their containers; anything still naming our lxcpaths is a leak.
        try:
            self.remove_containers()
        except Exception as exc:
            problems.append(f"containers: {exc}")
        for node in self.nodes:
            left_files = [f for f in os.listdir(node.lxcpath) if not f.endswith(".lock")] \
                if os.path.isdir(node.lxcpath) else []
            if left_files:
                problems.append(f"{node.lxcpath} not empty: {left_files}")
        for ns in reversed(self.made_ns):
            subprocess.run(["ip", "netns", "del", ns], check=False)
        gone = [ns for ns in self.made_ns if os.path.exists(f"/run/netns/{ns}")]
        if gone:
            problems.append(f"namespaces left: {gone}")
        shutil.rmtree(self.tmp, ignore_errors=True)
        if check and problems:
            raise AssertionError("; ".join(problems))


class RemoteError(Exception):
    """An exception raised in a driver, with its traceback text."""


class Driver:
    """A Ray driver process in a node's namespace, running functions of ``tests.cluster.scenarios``.

    Requests and answers are length-prefixed pickles on two pipes (not
    stdout, which Ray may write to).
    """

    def __init__(self, cluster: NetCluster, node: Node, module: str) -> None:
        self.node = node
        req_r, self._req_w = os.pipe()
        self._ans_r, ans_w = os.pipe()
        self.proc = subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{node.ns}", "--", sys.executable, "-m",
             "tests.cluster.driver", cluster.address, str(req_r), str(ans_w), module],
            pass_fds=(req_r, ans_w), env=cluster.env(node), cwd=ROOT, stdin=subprocess.DEVNULL,
        )
        os.close(req_r)
        os.close(ans_w)
        self.pid = self.proc.pid  # nsenter execs the interpreter: this is the driver itself
        self.call("ready", timeout=120)

    def call(self, fn: str, *args: Any, timeout: float = 120, **kwargs: Any) -> Any:
        data = pickle.dumps((fn, args, kwargs))
        os.write(self._req_w, struct.pack("!I", len(data)) + data)
        ok, value = self._read(timeout)
        if not ok:
            raise RemoteError(value)
        return value

    def _read(self, timeout: float) -> Any:
        import select

        buf = b""
        need = 4
        size = None
        deadline = time.monotonic() + timeout
        while True:
            while len(buf) < need:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not select.select([self._ans_r], [], [], remaining)[0]:
                    raise TimeoutError(f"driver on {self.node.ns}: no answer within {timeout} s")
                chunk = os.read(self._ans_r, 1 << 20)
                if not chunk:
                    raise RemoteError(f"driver on {self.node.ns} ended (rc {self.proc.poll()})")
                buf += chunk
            if size is None:
                (size,) = struct.unpack("!I", buf[:4])
                need = 4 + size
                continue
            return pickle.loads(buf[4:need])

    def kill(self) -> None:
        """SIGKILL the driver (by pid) and reap it."""
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                os.close(self._req_w)  # EOF: the driver disconnects from Ray and exits
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.kill()
        for fd in (self._req_w, self._ans_r):
            try:
                os.close(fd)
            except OSError:
                pass


def wait_until(predicate: Callable[[], object], timeout: float = 15.0, what: str = "condition") -> Any:
    from tests.util import wait_for

    return wait_for(predicate, timeout=timeout, what=what)
