"""The core of the high- and low-level suites, as an ordinary user, through the gate."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

import lxactors
from lxactors import _base, liblxc
from lxactors._helperclient import GateHelper, helper
from lxactors._launcher import own_lxcpath
from lxactors._proxy import ProxyContainer
from lxactors._userns import own_idmap
from tests.util import unique_name, wait_for


def _busybox(name: str) -> liblxc.Container:
    c = liblxc.Container(name)
    for key, value in own_idmap().config:
        c.set_config_item(key, value)
    c.create("busybox")
    return c


def test_the_process_is_unprivileged_and_its_handles_are_proxies() -> None:
    assert os.geteuid() != 0
    assert isinstance(helper(), GateHelper)
    with liblxc.Container("never-made") as c:
        assert isinstance(c, ProxyContainer) and isinstance(c, liblxc.Container)
        assert c.get_config_path() == own_lxcpath() == liblxc.default_lxcpath()
        assert not c.is_defined()
        assert c.get_config_item("lxc.net.0.type") == "empty"  # the embedded default
    with pytest.raises(lxactors.ContainerClosedError):
        c.state()


def test_low_level_lifecycle(names: list[str]) -> None:
    name = unique_name("ll")
    names.append(name)
    c = _busybox(name)
    assert c.is_defined() and c.state() == "STOPPED"
    assert name in liblxc.list_defined_containers()
    c.set_config_item("lxc.uts.name", "unpriv")
    assert c.get_config_item("lxc.uts.name") == "unpriv"
    with pytest.raises(KeyError):
        c.get_config_item("lxc.no.such.key")
    with pytest.raises(TypeError):
        c.set_config_item(1, "x")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        c.set_config_item("lxc.uts.name", "a\nb")
    pid = c.start()
    assert pid and c.is_running() and c.init_pid() == pid
    r = c.attach_run_wait(["sh", "-c", "id -u; hostname; exit 3"])
    assert (r.status, r.stdout) == (3, b"0\nunpriv\n")
    # root inside is the user's delegated id outside, never host root
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        uid_line = next(ln for ln in f if ln.startswith("Uid:"))
    assert int(uid_line.split()[1]) == own_idmap().uid
    fd = c.init_pidfd()
    os.close(fd)
    a = c.attach(["sh", "-c", "exit 7"])
    assert a.wait(30) == 7
    c.stop()
    assert c.wait("STOPPED", 10)
    clone = c.clone(name + "-c", flags=liblxc.CLONE_SNAPSHOT, bdevtype="overlay")
    names.append(clone.name)
    assert isinstance(clone, ProxyContainer) and clone.is_defined()
    lower, upper = clone.get_config_item("lxc.rootfs.path").split(":")[-2:]  # an overlay
    assert lower.endswith(f"/{name}/rootfs") and upper.endswith("/delta")
    clone.destroy()
    assert not clone.is_defined()
    c.rename(name + "-r")
    names.append(c.name)
    assert c.name == name + "-r" and c.is_defined()
    assert name not in liblxc.list_defined_containers()
    c.destroy()
    assert not c.is_defined() and c.name not in liblxc.list_defined_containers()


def test_console_fds_come_back(names: list[str]) -> None:
    name = unique_name("con")
    names.append(name)
    c = _busybox(name)
    _base.shell_on_tty1(c)  # a chroot spec, made by the gate: a shell, not getty
    c.start()
    cfd = c.console_getfd(1)
    try:
        assert cfd.ttynum == 1
        os.write(cfd.ptx, b"\necho con-$((6*7))\n")
        seen = b""
        deadline = time.monotonic() + 20
        while b"con-42" not in seen and time.monotonic() < deadline:
            import select

            if select.select([cfd.ptx], [], [], 1)[0]:
                seen += os.read(cfd.ptx, 4096)
        assert b"con-42" in seen
    finally:
        cfd.close()
        c.stop()


def test_spawn_send_exit_type() -> None:
    ref = lxactors.spawn()
    assert ref.path == own_lxcpath()
    lxactors.send(ref, "echo hi-$((6*7))\n")
    for msg in ref:
        if isinstance(msg, lxactors.ConsoleOutput) and b"hi-42" in msg.data:
            break
    assert lxactors.type(ref) == "temporary"
    lxactors.type(ref, "transient")
    assert lxactors.type(ref) == "transient"
    lxactors.type(ref, "temporary")
    exited = lxactors.exit(ref, "kill")
    assert exited.reason == "kill"
    wait_for(lambda: ref.name not in liblxc.list_defined_containers(), 10, "temporary deleted")


def test_spawn_chroot_copy_reads_with_the_users_rights(tmp_path: object) -> None:
    mine = os.path.join(str(tmp_path), "mine.txt")
    with open(mine, "w") as f:
        f.write("copied-as-me\n")
    os.chmod(mine, 0o600)  # only this user (and root) may read it
    ref = lxactors.spawn(chroot={"copy": [(mine, "/etc/mine")], "file": [("/etc/f", "F\n")],
                                 "dir": ["/srv/d"]})
    try:
        r = lxactors.container(ref).attach_run_wait(["cat", "/etc/mine", "/etc/f"])
        assert r.stdout == b"copied-as-me\nF\n"
        assert lxactors.container(ref).attach_run_wait(["test", "-d", "/srv/d"]).status == 0
    finally:
        lxactors.exit(ref, "kill")
    with pytest.raises(lxactors.LxcError, match="Permission denied"):
        lxactors.spawn(chroot={"copy": [("/etc/shadow", "/x")]})


def _owner(name: str, type_: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "tests.owner_process", own_lxcpath(), name,
                             type_, "wait"], stdout=subprocess.PIPE, text=True)


@pytest.mark.parametrize("type_", ["temporary", "transient", "permanent"])
def test_owner_sigkill_policies(type_: str, names: list[str]) -> None:
    name = unique_name(type_[:4])
    names.append(name)
    p = _owner(name, type_)
    try:
        line = p.stdout.readline() if p.stdout else ""
        assert line.startswith("ready"), line
        os.kill(p.pid, signal.SIGKILL)
    finally:
        p.wait(30)
    if type_ == "temporary":  # (a handle opened while it is being destroyed may fail)
        wait_for(lambda: name not in liblxc.list_all_containers(), 20,
                 "the temporary container deleted")
        return
    with liblxc.Container(name) as c:
        if type_ == "transient":
            wait_for(lambda: c.state() == "STOPPED", 20, "the transient container stopped")
            assert c.is_defined()
        else:
            assert c.is_running(), "a permanent container outlives its owner"
            ref = lxactors.spawn(name, type="permanent")  # adopted by name
            lxactors.exit(ref, "kill")


def test_non_forking_round_trip_p50() -> None:
    """The benchmark of issue 16 (bench/privsep.py prints the same)."""
    with liblxc.Container("bench-never-made") as c:
        for _ in range(200):
            c.get_config_item("lxc.uts.name")
        samples = []
        for _ in range(2000):
            t = time.perf_counter()
            c.get_config_item("lxc.uts.name")
            samples.append(time.perf_counter() - t)
    samples.sort()
    p50 = samples[len(samples) // 2] * 1e6
    print(f"privsep round trip p50 {p50:.1f} us")
    assert p50 < 1000


def test_inline_calls_answer_as_the_pipe_path_does(monkeypatch: pytest.MonkeyPatch) -> None:
    """The hot quick calls are answered on the gate's socket (no reply pipe): the same
    answers, errors included, as with a pipe; an answer too large for the socket is
    asked again with one; a request without a reply channel that is not an inline call
    is answered with an error there, and the session goes on."""
    from lxactors import _gatecall, _proxy
    from lxactors._helper import protocol
    from lxactors._helper.calls import INLINE, INLINE_MAX, Call

    asked: list[str] = []
    real = _proxy.ask_inline

    def counted(gate: GateHelper, req: Call, container: str | None, timeout: float | None) -> object:
        answered, value = real(gate, req, container, timeout)
        asked.append(f"{req.member}:{'inline' if answered else 'again'}")
        return answered, value

    monkeypatch.setattr(_proxy, "ask_inline", counted)
    big = "A=" + "x" * (INLINE_MAX + 1000)
    answers = {}
    for arm in ("inline", "pipe"):
        if arm == "pipe":
            monkeypatch.setattr(_proxy, "INLINE", frozenset())
        with liblxc.Container("never-made") as c:
            c.set_config_item("lxc.uts.name", "inl")
            c.set_config_item("lxc.environment", big)
            with pytest.raises(KeyError) as key_error:
                c.get_config_item("lxc.no.such.key")
            answers[arm] = (c.get_config_item("lxc.uts.name"), c.get_config_item("lxc.environment"),
                            c.is_defined(), c.state(), str(key_error.value))
    assert answers["inline"] == answers["pipe"] and answers["inline"][1] == big
    assert "get_config_item:inline" in asked and "get_config_item:again" in asked  # the big one
    assert {a.split(":")[0] for a in asked} <= INLINE
    # No reply channel for a member that is not inline: an error on the socket, nothing run.
    gate = helper()
    assert isinstance(gate, GateHelper)
    with liblxc.Container("never-made") as c, gate.inline_lock:
        sock = gate._ensure()
        sock.send(protocol.encode_request(Call(handle=c._hid, member="start", args=[],  # type: ignore[attr-defined]
                                               kwargs={}, fd_args={})))
        reply = _gatecall.ProxyReply(-1, c.name, "start")
        reply._frames.feed(sock.recv(INLINE_MAX))
        assert reply._frames.pop() == ("err", "helper", "start needs a reply channel", [])
    with liblxc.Container("never-made") as c:
        assert c.get_config_item("lxc.net.0.type") == "empty" and not c.is_defined()
