"""The ``lxactors`` command, run as a subprocess: its work, and one clear line per mistake."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from lxactors import liblxc, tcpvm
from lxactors._userns import resolve_userns
from tests.util import AS_USER, dirs_left

NOBODY = 65534


def lxactors(*args: str, check_rc: int | None = None, timeout: float = 60,
             **kw: Any) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([sys.executable, "-m", "lxactors", *args], capture_output=True,
                       text=True, timeout=timeout, **kw)
    if check_rc is not None:
        assert r.returncode == check_rc, (r.returncode, r.stdout, r.stderr)
    return r


def one_line(r: subprocess.CompletedProcess[str]) -> str:
    """The whole of stderr, which must be one line starting with the program name."""
    assert "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("lxactors: "), r.stderr
    return lines[0]


def _as_nobody() -> None:
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)


@pytest.mark.skipif(AS_USER, reason="becomes nobody: needs root (a user access.conf does not "
                    "name is refused by the gate: tests/test_privsep.py)")
@pytest.mark.parametrize("args", [["ls"], ["imc", "--", "id"], ["tcpvm"], ["demo"]])
def test_not_root(args: Sequence[str]) -> None:
    cmd = [sys.executable, "-m", "lxactors", *args]
    if not _reachable_by_others(os.path.realpath(sys.executable)):
        # The interpreter lives where nobody cannot reach it (pyenv under
        # /root): let nobody search directories, nothing more.
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("the interpreter is out of nobody's reach and setpriv is missing")
        cmd = [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
               "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search", *cmd]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd="/")
    else:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd="/",
                           preexec_fn=_as_nobody)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "must run as root" in one_line(r)


def _reachable_by_others(path: str) -> bool:
    """Can any user execute *path* (x for others on it and every directory above)?"""
    while path != "/":
        if os.stat(path).st_mode & 0o001 == 0:
            return False
        path = os.path.dirname(path)
    return True


def test_port_in_use(lxcpath: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = lxactors("tcpvm", "--listen", f"127.0.0.1:{port}", "--path", lxcpath, check_rc=1)
    assert one_line(r) == f"lxactors: cannot listen on 127.0.0.1:{port}: address already in use"


def test_unknown_template(lxcpath: str) -> None:
    r = lxactors("tcpvm", "--template", "no-such-template", "--path", lxcpath, check_rc=2)
    assert one_line(r).startswith("lxactors: unknown template 'no-such-template'; known: ")
    assert "busybox" in r.stderr


@pytest.mark.parametrize("args, message", [
    (["tcpvm", "--listen", "localhost:99999"], "--listen wants ADDR:PORT"),
    (["tcpvm", "--max-clients", "0"], "--max-clients must be at least 1"),
    (["imc"], "imc needs a command"),
    (["imc", "--tmpfs-size", "lots", "--", "true"], "tmpfs size"),
    (["imc", "--uid", "0", "--", "true"], "not root"),
    (["imc", "--bind", "relative/dir", "--", "true"], "absolute"),
    (["tcpvm", "--memory", "lots"], "limits memory must be a size"),
    (["tcpvm", "--pids-max", "0"], "limits pids must be between"),
    (["imc", "--memory", "1K", "--", "true"], "memory must be at least"),
])
def test_bad_arguments(lxcpath: str, args: list[str], message: str) -> None:
    r = lxactors(*args, "--path", lxcpath) if args[0] == "tcpvm" else lxactors(
        args[0], "--path", lxcpath, *args[1:])
    assert r.returncode == 2
    assert message in one_line(r)


def test_tcpvm_config_liblxc_or_the_gate_refuses_stops_it_before_it_listens(
        lxcpath: str) -> None:
    r = lxactors("tcpvm", "--listen", "127.0.0.1:0", "--path", lxcpath, "--config",
                 "lxc.no.such=1", check_rc=1)
    line = one_line(r)
    assert "lxc.no.such" in line and "listening" not in r.stdout + r.stderr
    assert line.endswith("(refused by rule allowlist)") if AS_USER else "failed" in line
    assert "tcpvm-config-check" not in liblxc.list_all_containers(lxcpath)


def test_liblxc_missing_reported_in_one_line() -> None:
    # What main() does when the extension (or the liblxc it links) cannot be
    # imported by a command.
    code = ("import sys; import lxactors.apps.cli as m; sys.modules['lxactors.apps.imc'] = None; "
            "sys.exit(m.main(['imc', '--', 'true']))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert "lxactors.apps.imc" in one_line(r)


def test_liblxc_missing_before_main() -> None:
    code = ("import sys, runpy; sys.modules['lxactors._lxc'] = None; "
            "sys.argv = ['lxactors', 'ls']; runpy.run_module('lxactors', run_name='__main__')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert "liblxc" in one_line(r)


def test_imc_prints_output_and_exits_with_status(lxcpath: str) -> None:
    r = lxactors("imc", "--path", lxcpath, "--", "sh", "-c",
                 "echo out; echo err >&2; test $(id -u) -ne 0 && exit 3")
    assert (r.returncode, r.stdout, r.stderr) == (3, "out\n", "err\n")
    r = lxactors("imc", "--path", lxcpath, "--stdin", "--env", "X=a b", "--",
                 "sh", "-c", 'tr a-z A-Z; echo "$X"', input="hello\n")
    assert (r.returncode, r.stdout) == (0, "HELLO\na b\n")
    assert not dirs_left(lxcpath, "imc-")


def test_imc_timeout(lxcpath: str) -> None:
    r = lxactors("imc", "--path", lxcpath, "--timeout", "0.5", "--", "sleep", "30",
                 check_rc=124)
    assert "did not finish within 0.5 s" in one_line(r)


def test_ls_shows_base_and_tcpvm_containers(lxcpath: str) -> None:
    r = lxactors("ls", "--path", lxcpath, check_rc=0)
    if not AS_USER:  # (the gate makes no container outside a user namespace)
        assert re.search(r"^lxactors-base\s+STOPPED\s+-\s+lxactors base", r.stdout, re.M), \
            r.stdout
    tag = resolve_userns(True).tag
    assert re.search(rf"^lxactors-base-userns-{tag}\s+STOPPED\s+-\s+lxactors base for "
                     rf"user-namespaced clones \(ids {tag}\)$", r.stdout, re.M), r.stdout
    vm = tcpvm.TcpVm(("127.0.0.1", 0), 4, {"path": lxcpath})
    vm.bind()
    thread = threading.Thread(target=vm.serve_forever, daemon=True)
    thread.start()
    try:
        with socket.create_connection(vm.address, timeout=20) as s:
            s.sendall(b"\necho ready-$((1+1))\n")
            buf = b""
            while b"ready-2" not in buf:
                buf += s.recv(4096)
            (client,) = vm.clients
            r = lxactors("ls", "--path", lxcpath, check_rc=0)
            peer = s.getsockname()
            expected = (rf"^{client.container}\s+RUNNING\s+\d+\s+tcpvm, client "
                        rf"{peer[0]}:{peer[1]}, server 127.0.0.1:{vm.address[1]}, "
                        rf"owner pid {os.getpid()}$")
            assert re.search(expected, r.stdout, re.M), r.stdout
    finally:
        vm.shutdown()
        thread.join(10)
        vm.close()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_imc_signal_kills_the_command_and_cleans_up(lxcpath: str, sig: int) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "lxactors", "imc", "--path", lxcpath, "--",
                             "sh", "-c", "echo started; sleep 30"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "started\n"
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 128 + sig, err
    assert "Traceback" not in err
    assert not dirs_left(lxcpath, "imc-")


def test_ls_shows_imc_containers(lxcpath: str) -> None:
    from lxactors import imc

    with imc.spawn(["sleep", "30"], path=lxcpath, uid=4242) as run:
        r = lxactors("ls", "--path", lxcpath, check_rc=0)
        run.kill()
    # The host's view of the uid: 4242 inside the user namespace.
    assert run.host_uid == resolve_userns(True).uid + 4242
    expected = (rf"^{run.name}\s+RUNNING\s+\d+\s+imc 'sleep 30' as uid {run.host_uid}, "
                rf"owner pid {os.getpid()}$")
    assert re.search(expected, r.stdout, re.M), r.stdout


@pytest.fixture
def cli_server(lxcpath: str) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen([sys.executable, "-m", "lxactors", "tcpvm", "--listen",
                             "127.0.0.1:0", "--path", lxcpath, "--max-clients", "3"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait(10)
    assert proc.stderr is not None
    proc.stderr.close()


def _listening_port(proc: subprocess.Popen[str]) -> int:
    assert proc.stderr is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
        if m:
            return int(m.group(1))
        if not line and proc.poll() is not None:
            break
    raise AssertionError("the server did not say where it listens")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_tcpvm_command_serves_and_stops_cleanly(cli_server: subprocess.Popen[str],
                                                lxcpath: str, sig: int) -> None:
    port = _listening_port(cli_server)
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        s.sendall(b"\necho hi-$((6*7))\n")
        buf = b""
        while b"hi-42" not in buf:
            buf += s.recv(4096)
        assert [n for n in liblxc.list_active_containers(lxcpath) if n.startswith("lxa-")]
        cli_server.send_signal(sig)
        assert cli_server.wait(20) == 0
        s.settimeout(10)
        while s.recv(4096):
            pass
    assert not [n for n in liblxc.list_all_containers(lxcpath) if n.startswith("lxa-")]
    assert cli_server.stderr is not None
    rest = cli_server.stderr.read()
    assert "tcpvm stopped; 1 container exited" in rest, rest
    assert "Traceback" not in rest


@pytest.mark.skipif(AS_USER, reason="a fresh lxcpath: an ordinary user has its own only "
                    "(access.conf may grant more), whose base the session made")
def test_tcpvm_shows_progress_building_the_base(lxcpath: str) -> None:
    # A fresh lxcpath inside the test one (which the mapped root can reach).
    path = os.path.join(lxcpath, "fresh")
    proc = subprocess.Popen([sys.executable, "-m", "lxactors", "tcpvm", "--listen",
                             "127.0.0.1:0", "--path", path],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _listening_port(proc)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err
        base = f"lxactors-base-userns-{resolve_userns(True).tag}"
        assert f"lxactors: building the base container {base} in {path} (once)" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        for name in liblxc.list_all_containers(path):
            with liblxc.Container(name, path) as c:
                c.destroy()
        shutil.rmtree(path, ignore_errors=True)


def test_imc_no_userns_runs_the_command_as_a_host_uid(lxcpath: str) -> None:
    script = "id -u; cat /proc/self/uid_map"
    inside = lxactors("imc", "--path", lxcpath, "--", "sh", "-c", script, check_rc=0).stdout
    uid, mapping = inside.split("\n", 1)
    # In the namespace: a small uid, and root's range mapped (the user's, for a user).
    assert int(uid) < 65534 and mapping.split() == ["0", str(resolve_userns(True).uid), "65536"]
    if AS_USER:  # refused by the gate, in one line naming the rule
        r = lxactors("imc", "--path", lxcpath, "--no-userns", "--", "true", check_rc=1)
        assert one_line(r).endswith("(refused by rule userns)")
        return
    host = lxactors("imc", "--path", lxcpath, "--no-userns", "--", "sh", "-c", script,
                    check_rc=0).stdout
    uid, mapping = host.split("\n", 1)
    # Without: a host uid from 200000 up, and the identity map of the host.
    assert int(uid) >= 200_000 and mapping.split() == ["0", "0", "4294967295"]


@pytest.mark.parametrize("flag, mapped", [([], True), (["--no-userns"], False)],
                         ids=["default", "no-userns"])
def test_tcpvm_clients_get_a_user_namespace_unless_told(lxcpath: str, flag: list[str],
                                                        mapped: bool) -> None:
    if AS_USER and not mapped:  # the server does not start: one line naming the rule
        r = lxactors("tcpvm", "--listen", "127.0.0.1:0", "--path", lxcpath, *flag, check_rc=1)
        assert one_line(r).endswith("(refused by rule userns)")
        return
    proc = subprocess.Popen([sys.executable, "-m", "lxactors", "tcpvm", "--listen",
                             "127.0.0.1:0", "--path", lxcpath, *flag],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        port = _listening_port(proc)
        with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
            s.sendall(b"\necho map-$((1+1))=$(cat /proc/1/uid_map)=\n")
            buf = b""
            while not re.search(rb"map-2=([^=]*)=", buf):
                chunk = s.recv(4096)
                assert chunk, buf
                buf += chunk
        m = re.search(rb"map-2=([^=]*)=", buf)
        assert m is not None
        want = ["0", str(resolve_userns(True).uid), "65536"] if mapped else ["0", "0", "4294967295"]
        assert m.group(1).decode().split() == want
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        assert proc.stderr is not None
        proc.stderr.close()
