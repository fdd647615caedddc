"""``lxactors connect``: through a real pty, against real tcpvm servers and tiny local ones."""

from __future__ import annotations

import os
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import lxactors
from lxactors import liblxc
from lxactors.apps import connect as client
from lxactors.tcpvm import TcpVm
from tests.util import pids_in_pidns_of, status_field, wait_for

SRC = str(Path(lxactors.__file__).resolve().parent.parent)
#: Make the pty the client's controlling terminal (as a login shell's is), then exec it:
#: with ISIG still on, a Ctrl-C would then signal the client instead of reaching the container.
CTTY = ("import fcntl, os, sys, termios; fcntl.ioctl(0, termios.TIOCSCTTY, 0); "
        "os.execv(sys.argv[1], sys.argv[1:])")
HOST = re.compile(rb"host=([A-Za-z0-9-]+)=")
#: What the test's terminal answers to a cursor-position query (row 24, column 5).
ANSWER = b"\x1b[24;5R"


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": SRC}


class Terminal:
    """A pty whose slave is the client's stdin, stdout and stderr; the test types into the master."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        os.set_blocking(self.master, False)
        self.before = termios.tcgetattr(self.slave)
        self.seen = b""
        self.answers = True
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CTTY, sys.executable, "-m", "lxactors", "connect", *args],
            stdin=self.slave, stdout=self.slave, stderr=self.slave, start_new_session=True,
            env=_env())
        wait_for(lambda: self.raw() or self.proc.poll() is not None, 10.0, "raw mode")  # type: ignore[union-attr]
        assert self.raw(), self.read_all()
        return self.proc

    def raw(self) -> bool:
        lflag = termios.tcgetattr(self.slave)[3]
        return not lflag & (termios.ECHO | termios.ICANON | termios.ISIG)

    def restored(self) -> bool:
        return termios.tcgetattr(self.slave) == self.before

    def type(self, data: bytes) -> None:
        os.write(self.master, data)

    def _read(self, timeout: float) -> None:
        ready, _, _ = select.select([self.master], [], [], max(0.0, timeout))
        if ready:
            try:
                data = os.read(self.master, 65536)
            except (BlockingIOError, OSError):
                return
            self.seen += data
            if self.answers:  # as a terminal does: where the cursor is
                os.write(self.master, ANSWER * data.count(client.CURSOR_QUERY))

    def read_until(self, pattern: bytes | re.Pattern[bytes], timeout: float = 20.0) -> bytes:
        """What the terminal shows, up to *pattern* (then forgotten, so the next wait is fresh)."""
        deadline = time.monotonic() + timeout
        while True:
            m = (pattern.search(self.seen) if isinstance(pattern, re.Pattern)
                 else re.search(re.escape(pattern), self.seen))
            if m:
                shown, self.seen = self.seen[:m.end()], self.seen[m.end():]
                return shown
            if time.monotonic() > deadline:
                raise AssertionError(f"{pattern!r} not shown; got {self.seen[-300:]!r}")
            self._read(deadline - time.monotonic())

    def read_all(self) -> bytes:
        self._read(0.1)
        return self.seen

    def exited(self, timeout: float = 10.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        os.close(self.master)
        os.close(self.slave)


@pytest.fixture
def terminal() -> Iterator[Terminal]:
    t = Terminal()
    yield t
    t.close()


class LocalServer:
    """A one-connection TCP server on loopback running *script(conn)* in a thread."""

    def __init__(self, script: Callable[[socket.socket], None]) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.received = b""
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._serve, args=(script,), daemon=True)
        self.thread.start()

    def _serve(self, script: Callable[[socket.socket], None]) -> None:
        try:
            conn, _ = self.sock.accept()
            conn.settimeout(10)
            with conn:
                script(conn)
        except BaseException as exc:
            self.error = exc

    def recv_until(self, conn: socket.socket, needle: bytes) -> None:
        while needle not in self.received:
            data = conn.recv(4096)
            if not data:
                raise AssertionError(f"end of file before {needle!r}; got {self.received!r}")
            self.received += data

    def done(self) -> None:
        self.thread.join(10)
        self.sock.close()
        assert not self.thread.is_alive()
        if self.error is not None:
            raise self.error


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------- against a real tcpvm


class Server:
    """A TcpVm on a free loopback port, served from a thread."""

    def __init__(self, lxcpath: str) -> None:
        self.lxcpath = lxcpath
        self.stopped = False
        self.vm = TcpVm(("127.0.0.1", 0), 4, {"path": lxcpath})
        host, port = self.vm.bind()
        self.address = f"{host}:{port}"
        self.thread = threading.Thread(target=self.vm.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        if not self.stopped:
            self.stopped = True
            self.vm.shutdown()
            self.thread.join(10)
            self.vm.close()

    def processes(self, container: str, cmdline: bytes) -> list[int]:
        """Host pids of the processes in *container* running *cmdline* (NUL-separated)."""
        with liblxc.Container(container, self.lxcpath) as c:
            init = c.init_pid()
        assert init is not None
        found = []
        for pid in pids_in_pidns_of(init):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if f.read() == cmdline:
                        found.append(pid)
            except OSError:
                pass
        return found


SLEEP = b"sleep\x00100\x00"


@pytest.fixture
def server(lxcpath: str) -> Iterator[Server]:
    s = Server(lxcpath)
    yield s
    s.stop()


def shell(t: Terminal, server: Server) -> str:
    """Start the client on *t*, reach the container's shell; its hostname."""
    t.start(server.address)
    t.type(b"\recho host=$(hostname)=\r")
    m = HOST.search(t.read_until(HOST))
    assert m is not None
    return m.group(1).decode()


def test_terminal_restored_when_the_container_ends(terminal: Terminal, server: Server) -> None:
    shell(terminal, server)
    # busybox asks for the cursor after its prompt, and only when no input is
    # pending (the answer to its last query may still be): wait for the query
    # before typing (it reaches the terminal); Enter for a new prompt if it
    # did not ask at this one.
    for _ in range(10):
        try:
            shown = terminal.read_until(b"# \x1b[6n", timeout=2)
            break
        except AssertionError:
            terminal.type(b"\r")
    else:
        raise AssertionError("busybox never asked for the cursor")
    terminal.type(b"echo hi-$((6*7))\r")
    shown += terminal.read_until(b"hi-42")
    # The shell's queries reached the terminal, and its answers were not echoed.
    assert b"\x1b[6n" in shown
    assert b"^[[" not in shown and ANSWER not in shown and b"24;5R" not in shown
    terminal.type(b"poweroff -f\r")
    assert terminal.exited() == 0
    assert terminal.restored()


def test_terminal_restored_when_the_server_goes(terminal: Terminal, server: Server) -> None:
    shell(terminal, server)
    server.stop()
    assert terminal.exited() == 0
    assert terminal.restored()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_terminal_restored_on_a_signal(terminal: Terminal, server: Server, signum: int) -> None:
    shell(terminal, server)
    assert terminal.proc is not None
    terminal.proc.send_signal(signum)
    assert terminal.exited() == 128 + signum
    assert terminal.restored()
    wait_for(lambda: not server.vm.clients, 5.0, "the client's container to go")


def test_ctrl_c_interrupts_the_containers_command(terminal: Terminal, server: Server) -> None:
    name = shell(terminal, server)
    terminal.type(b"sleep 100; echo rc=$?\r")
    wait_for(lambda: server.processes(name, SLEEP), 10.0, "sleep in the container")
    t0 = time.monotonic()
    terminal.type(b"\x03")
    wait_for(lambda: not server.processes(name, SLEEP), 10.0, "sleep to be interrupted")
    terminal.type(b"echo after-$((6*7))\r")
    terminal.read_until(b"after-42")
    assert time.monotonic() - t0 < 20
    assert terminal.proc is not None and terminal.proc.poll() is None
    terminal.type(b"echo host=$(hostname)=\r")
    m = HOST.search(terminal.read_until(HOST))
    assert m is not None and m.group(1).decode() == name  # the same session


def test_ctrl_z_stops_the_containers_command(terminal: Terminal, server: Server) -> None:
    name = shell(terminal, server)
    terminal.type(b"sleep 100\r")
    wait_for(lambda: server.processes(name, SLEEP), 10.0, "sleep in the container")
    terminal.type(b"\x1a")
    terminal.read_until(re.compile(rb"Stopped.*sleep 100"))
    [pid] = server.processes(name, SLEEP)
    assert status_field(pid, "State").startswith("T")  # stopped, as the host sees it
    terminal.type(b"jobs; echo jobs-done\r")
    jobs = terminal.read_until(re.compile(rb"\njobs-done\r\n"))
    assert re.search(rb"\n\[1\]\+ +Stopped +sleep 100\r\njobs-done", jobs), jobs
    assert terminal.proc is not None and terminal.proc.poll() is None


def test_escape_quits_locally(terminal: Terminal, server: Server) -> None:
    shell(terminal, server)
    terminal.type(b"\r~.")
    assert terminal.exited() == 0
    assert terminal.restored()


def test_piped_input(server: Server) -> None:
    r = subprocess.run([sys.executable, "-m", "lxactors", "connect", server.address,
                        "--linger", "3"], input=b"echo hi-$((6*7))\n", capture_output=True,
                       timeout=60, env=_env())
    assert r.returncode == 0, r.stderr
    assert b"hi-42" in r.stdout
    assert b"\x1b[6n" not in r.stdout
    assert r.stderr == b""
    wait_for(lambda: not server.vm.clients, 5.0, "the client's container to go")


# ---------------------------------------------------------------- local servers, no containers


def test_cannot_connect_says_so_in_one_line() -> None:
    port = free_port()
    r = subprocess.run([sys.executable, "-m", "lxactors", "connect", f"127.0.0.1:{port}"],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=30, env=_env())
    assert r.returncode == 1
    assert r.stdout == b""
    assert r.stderr == (f"lxactors connect: cannot connect to 127.0.0.1:{port}: "
                        "connection refused\n").encode()


def test_bad_address_is_a_usage_error() -> None:
    r = subprocess.run([sys.executable, "-m", "lxactors", "connect", "host:99999"],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=30, env=_env())
    assert r.returncode == 2
    assert r.stderr.count(b"\n") == 1 and b"99999" in r.stderr


def test_cursor_query_is_answered_and_hidden_when_no_terminal_can() -> None:
    def script(conn: socket.socket) -> None:
        conn.sendall(b"# \x1b[")  # a query split across two reads
        time.sleep(0.05)
        conn.sendall(b"6n")
        srv.recv_until(conn, b"R")
        conn.sendall(b"ok\r\n")

    srv = LocalServer(script)
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    try:
        assert client.connect("127.0.0.1", srv.port, stdin=in_r, stdout=out_w) == 0
        os.close(out_w)
        shown = os.read(out_r, 65536)
    finally:
        for fd in (in_r, in_w, out_r):
            os.close(fd)
    srv.done()
    assert srv.received == client.CURSOR_ANSWER == b"\x1b[24;1R"
    assert shown == b"# ok\r\n"


def test_cursor_query_goes_to_a_terminal_whose_answer_is_not_echoed(terminal: Terminal) -> None:
    def script(conn: socket.socket) -> None:
        conn.sendall(b"# \x1b[6n")
        srv.recv_until(conn, b"R")
        conn.sendall(b"bye\r\n")

    srv = LocalServer(script)
    terminal.answers = False
    terminal.start(str(srv.port))
    terminal.read_until(b"# \x1b[6n")     # the query reached the terminal...
    terminal.type(b"\x1b[7;3R")           # ...which answers it, as terminals do
    shown = terminal.read_until(b"bye\r\n")
    srv.done()
    assert srv.received == b"\x1b[7;3R"   # the answer went to the server, whole
    assert shown == b"bye\r\n"            # and was not echoed (no ^[[7;3R)
    assert terminal.exited() == 0
    assert terminal.restored()


def test_terminal_restored_when_the_connection_is_reset(terminal: Terminal) -> None:
    def script(conn: socket.socket) -> None:
        conn.sendall(b"hello\r\n")
        srv.recv_until(conn, b"x")
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    srv = LocalServer(script)
    terminal.start(f"127.0.0.1:{srv.port}")
    terminal.read_until(b"hello")
    terminal.type(b"x")
    assert terminal.exited() == 1
    assert terminal.restored()
    srv.done()
    assert re.search(rb"lxactors connect: connection to 127\.0\.0\.1:\d+ lost: connection reset",
                     terminal.read_all())


def test_terminal_restored_after_an_exception() -> None:
    def script(conn: socket.socket) -> None:
        conn.sendall(b"output to a closed fd\r\n")
        while conn.recv(4096):  # until the client goes
            pass

    master, slave = os.openpty()
    before = termios.tcgetattr(slave)
    srv = LocalServer(script)
    bad = os.open(os.devnull, os.O_RDONLY)  # writing to it fails: EBADF
    try:
        with pytest.raises(OSError):
            client.connect("127.0.0.1", srv.port, stdin=slave, stdout=bad)
        assert termios.tcgetattr(slave) == before
    finally:
        os.close(bad)
        os.close(master)
        os.close(slave)
    srv.done()


def test_sigtstp_suspends_with_the_terminal_restored(terminal: Terminal) -> None:
    def script(conn: socket.socket) -> None:
        conn.sendall(b"$ ")
        srv.recv_until(conn, b"resumed\r")

    srv = LocalServer(script)
    proc = terminal.start(str(srv.port))
    terminal.read_until(b"$ ")
    proc.send_signal(signal.SIGTSTP)
    wait_for(lambda: status_field(proc.pid, "State").startswith("T"), 10.0, "the client to stop")
    assert terminal.restored()
    proc.send_signal(signal.SIGCONT)
    wait_for(terminal.raw, 10.0, "raw mode again")
    terminal.type(b"resumed\r")
    srv.done()
    assert srv.received == b"resumed\r"
    assert terminal.exited() == 0
    assert terminal.restored()


def test_escapes_only_at_line_start_and_tilde_tilde_sends_one(terminal: Terminal) -> None:
    def script(conn: socket.socket) -> None:
        conn.sendall(b"$ ")
        srv.recv_until(conn, b"end\r")

    srv = LocalServer(script)
    terminal.start(str(srv.port))
    terminal.read_until(b"$ ")
    terminal.type(b"a~.b\r~~c\r~xend\r")
    srv.done()
    assert srv.received == b"a~.b\r~c\r~xend\r"
    assert terminal.exited() == 0  # the server closed
    assert terminal.restored()


def test_works_as_a_user_without_privileges() -> None:
    runuser, python = shutil.which("runuser"), "/usr/bin/python3"
    if os.geteuid() != 0 or runuser is None or not os.access(python, os.X_OK):
        pytest.skip("needs root (to become nobody), runuser and /usr/bin/python3")
    probe = subprocess.run([runuser, "-u", "nobody", "--", python, "-c",
                            f"import sys; sys.path.insert(0, {SRC!r}); "
                            "import lxactors.apps.connect; assert sys.version_info >= (3, 11)"],
                           capture_output=True, timeout=30)
    if probe.returncode != 0:
        pytest.skip(f"nobody cannot run this tree's lxactors: {probe.stderr[-200:]!r}")

    def script(conn: socket.socket) -> None:
        srv.recv_until(conn, b"\n")
        conn.sendall(b"got " + srv.received)

    srv = LocalServer(script)
    r = subprocess.run([runuser, "-u", "nobody", "--", "env", f"PYTHONPATH={SRC}", python,
                        "-m", "lxactors", "connect", str(srv.port)], input=b"hi\n",
                       capture_output=True, timeout=30)
    srv.done()
    assert (r.returncode, r.stdout, r.stderr) == (0, b"got hi\n", b"")


def test_parse_address_and_bad_arguments() -> None:
    parse = client.parse_address
    assert parse("") == ("127.0.0.1", 31337)
    assert parse("2323") == ("127.0.0.1", 2323)
    assert parse(":2323") == ("127.0.0.1", 2323)
    assert parse("10.0.3.5:2323") == ("10.0.3.5", 2323)
    assert parse("box") == ("box", 31337)
    assert parse("[::1]:2323") == ("::1", 2323)
    assert parse("::1") == ("::1", 31337)
    for bad in ("host:", "host:0", "host:70000", "a:b", "[::1", "[::1]x"):
        with pytest.raises(ValueError):
            parse(bad)
    bad_calls: list[tuple[dict[str, Any], type[Exception]]] = [
        ({"address": ""}, TypeError), ({"port": 0}, ValueError), ({"port": True}, ValueError),
        ({"stdin": "0"}, TypeError), ({"linger": -1}, ValueError)]
    for kwargs, exc in bad_calls:
        with pytest.raises(exc):
            client.connect(**kwargs)
