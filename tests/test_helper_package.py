"""The helper as a package: imported without pykka, started isolated, serving typed requests."""

from __future__ import annotations

import array
import os
import pickle
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import lxactors
from lxactors import liblxc
from lxactors._errors import HelperError, LxcError
from lxactors._helper import protocol
from lxactors._helperclient import Reply, helper, helper_command

PARENT = os.path.dirname(os.path.dirname(os.path.abspath(lxactors.__file__)))
#: Run first in each isolated Python: pykka (and anything importing it) cannot be imported.
NO_PYKKA = f"""
import sys
class NoPykka:
    def find_spec(self, name, path=None, target=None):
        if name == "pykka" or name.startswith("pykka."):
            raise ImportError("the helper must not import pykka")
        return None
sys.meta_path.insert(0, NoPykka())
sys.path.insert(0, {PARENT!r})
"""


def test_the_helper_package_imports_without_pykka() -> None:
    code = NO_PYKKA + """
import importlib
for name in ("lxactors._helper", "lxactors._helper.wire", "lxactors._helper.host",
             "lxactors._helper.handle", "lxactors._helper.cgroups", "lxactors._helper.start",
             "lxactors._helper.attach", "lxactors._helper.ops", "lxactors._helper.server",
             "lxactors._helper.__main__", "lxactors._helper.access", "lxactors._helper.calls",
             "lxactors._helper.gate", "lxactors._helper.members"):
    importlib.import_module(name)
try:
    import pykka
except ImportError:
    pass
else:
    raise SystemExit("the hook let pykka in")
assert "pykka" not in sys.modules, sorted(sys.modules)
import lxactors._errlog, lxactors._userns
# One copy of each sibling, under its real name (no second import by path).
assert not {"_errlog", "_userns", "_helper"} & set(sys.modules), sorted(sys.modules)
print("ok")
"""
    out = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


@pytest.fixture
def isolated_helper() -> Iterator[tuple[socket.socket, subprocess.Popen[bytes]]]:
    """A real helper process, run isolated with the no-pykka hook, on a socket of ours."""
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    code = NO_PYKKA + ("import runpy; runpy.run_module('lxactors._helper', run_name='__main__', "
                       "alter_sys=True)")
    proc = subprocess.Popen([sys.executable, "-I", "-c", code, str(child.fileno())],
                            pass_fds=(child.fileno(),), stdin=subprocess.DEVNULL)
    child.close()
    try:
        yield parent, proc
    finally:
        parent.close()  # end of file: the helper applies its (empty) registry and exits
        try:
            assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def send(sock: socket.socket, payload: bytes, op: str = "raw") -> Reply:
    r, w = os.pipe2(os.O_CLOEXEC)
    try:
        sock.sendmsg([payload], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [w]))])
    finally:
        os.close(w)
    return Reply(r, "c1", op)


def test_an_isolated_helper_serves_requests_and_survives_bad_ones(
        isolated_helper: tuple[socket.socket, subprocess.Popen[bytes]], tmp_path: Path) -> None:
    sock, proc = isolated_helper
    base = {"name": "c1", "path": str(tmp_path), "log": None}
    bad = [
        pickle.dumps(("no-such-op", {})),
        pickle.dumps(("destroy", {**base, "bogus": 1})),
        pickle.dumps(("destroy", {"name": "c1"})),
        pickle.dumps(("rename", {**base, "newname": ["not", "a", "name"]})),
        b"cos\nsystem\n(Vtouch " + str(tmp_path / "ran").encode() + b"\ntR.",
        b"garbage",
    ]
    for payload in bad:
        with send(sock, payload) as reply, pytest.raises(HelperError, match="bad request"):
            reply.frame(10)
    assert not (tmp_path / "ran").exists()
    assert proc.poll() is None
    # Still serving: the loop answers a registry request, a forked worker a real op.
    with send(sock, protocol.encode_request(protocol.Register(path=str(tmp_path), name="c1",
                                                      type="permanent"))) as reply:
        assert reply.frame(10) is None
    with send(sock, protocol.encode_request(protocol.Destroy(**base)), "destroy") as reply, \
            pytest.raises(LxcError, match="destroy failed") as err:
        reply.frame(30)
    assert type(err.value) is LxcError  # liblxc's failure, not the helper's
    with send(sock, protocol.encode_request(protocol.Unregister(path=str(tmp_path), name="c1"))) as reply:
        assert reply.frame(10) is None


def test_the_process_helper_runs_as_the_module(tmp_path: Path) -> None:
    cmd = helper_command()
    assert cmd[:2] == (sys.executable, "-I")
    assert cmd[2:] == ("-m", "lxactors._helper") or "lxactors._helper" in cmd[3]
    assert helper_command() is cmd  # decided once per process
    h = helper()
    h._ensure()
    with open(f"/proc/{h.pid}/cmdline", "rb") as f:
        assert b"lxactors._helper" in f.read()


def test_a_misspelt_option_fails_before_it_is_sent(tmp_path: Path) -> None:
    with liblxc.Container("c1", str(tmp_path)) as c:
        sent = []
        h = helper()
        real = h.request
        h.request = lambda *a, **k: sent.append(a) or real(*a, **k)  # type: ignore[method-assign]
        try:
            with pytest.raises(TypeError, match="ghost_limt"):
                c.migrate(1, str(tmp_path / "ck"), ghost_limt=3)
        finally:
            del h.request
        assert sent == []
