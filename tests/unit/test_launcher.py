"""The launcher program's request parsing and the helper's reading of its
result lines, root-free: a malformed request is answered "err" before any
liblxc call, and the lines become the reply frames an attach expects."""

from __future__ import annotations

import os
import select
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from lxactors._helper import launcher
from lxactors._helper.launcher import Pending
from lxactors._helper.wire import ok


@pytest.fixture
def program() -> Iterator[socket.socket]:
    """The launcher program serving on a socket pair (ours), ended after."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    proc = subprocess.Popen([launcher.PROGRAM, str(theirs.fileno())], pass_fds=[theirs.fileno()])
    theirs.close()
    try:
        assert select.select([ours], [], [], 30)[0], "the launcher did not say it serves"
        assert ours.recv(16) == b"ready"
        yield ours
    finally:
        ours.close()  # end of file: it exits
        assert proc.wait(30) == 0


def _ask(sock: socket.socket, fields: list[bytes], nstd: int = 3) -> bytes:
    """One request with a result pipe (and *nstd* fds); the whole answer."""
    r, w = os.pipe()
    std = [os.open(os.devnull, os.O_RDWR) for _ in range(nstd)]
    try:
        socket.send_fds(sock, [b"\0".join(fields) + b"\0"], [w, *std])
    finally:
        os.close(w)
        for fd in std:
            os.close(fd)
    out = b""
    try:
        while select.select([r], [], [], 30)[0]:
            chunk = os.read(r, 256)
            if not chunk:
                return out
            out += chunk
        raise AssertionError(f"no end of the answer to {fields[:1]}: {out!r}")
    finally:
        os.close(r)


def _attach(log: str, **over: bytes) -> list[bytes]:
    """A well-formed attach of /bin/true (fields as launcher.py builds them), with *over*;
    liblxc, once called, makes the *log* file."""
    f = {"op": b"attach", "name": b"c1", "path": b"/nonexistent", "config": b"",
         "log": b"+" + log.encode(),
         "flags": b"0", "namespaces": b"-1", "cwd": b"", "uid": b"-1", "gid": b"-1",
         "clear_env": b"0", "nenv": b"0", "ngroups": b"-1"}
    f.update(over)
    return [*f.values(), b"/bin/true"]


@pytest.mark.parametrize("over", [
    {"nenv": b"5"},  # more variables than fields
    {"nenv": b"-1"},
    {"ngroups": b"3"},  # more groups than fields (no argv left)
    {"ngroups": b"-2"},
    {"namespaces": b"-18446744073709551616"},  # would saturate to a value that joins none
    {"namespaces": b"1x"},
    {"uid": b"4294967295"},  # liblxc's "unset" is spelt -1
    {"gid": b""},
    {"flags": b"-1"},
], ids=lambda o: ",".join(f"{k}={v.decode()}" for k, v in o.items()))
def test_a_malformed_attach_is_refused_before_any_liblxc_call(
        program: socket.socket, over: dict[str, bytes], tmp_path: Path) -> None:
    log = str(tmp_path / "refused.log")
    assert _ask(program, _attach(log, **over)) == b"err\n"
    assert not os.path.exists(log)
    # A well-formed one reaches liblxc (which fails it: no such container).
    log = str(tmp_path / "called.log")
    assert _ask(program, _attach(log)) == b"err\n"
    assert os.path.exists(log)


def test_an_attach_without_its_three_fds_and_an_unknown_op_are_refused(
        program: socket.socket, tmp_path: Path) -> None:
    log = str(tmp_path / "refused.log")
    assert _ask(program, _attach(log), nstd=2) == b"err\n"
    assert not os.path.exists(log)
    assert _ask(program, [b"no_such_op", b"c1", b"/nonexistent"], nstd=0) == b"err\n"
    assert _ask(program, [b"clone", b"c1", b"/x", b"", b"", b"c2", b"", b"-3", b"", b"", b"0"],
                nstd=0) == b"err\n"  # clone flags must be >= 0


def _pending(op: str = "attach") -> Pending:
    return Pending(op, "c1", reply=-1, result=-1, log_path=None, log_offset=0)


def test_an_attach_answers_its_pid_then_its_end() -> None:
    p = _pending()
    assert p.feed(b"pid 42\n") == ([ok(42)], False)
    frames, done = p.feed(b"exit 768\n")  # exit status 3
    assert done
    assert frames == [ok({"pid": 42, "status": 3, "stdout": b"", "stderr": b"",
                          "timed_out": False})]
    # Both lines in one read, a signal's end.
    frames, done = _pending().feed(b"pid 7\nexit 9\n")
    assert done and frames[0] == ok(7) and frames[1][1]["status"] == -9


def test_an_attach_ending_early_or_out_of_order_is_an_error_naming_it() -> None:
    p = _pending()
    assert p.feed(b"pid 42\n")[1] is False
    frames, done = p.feed(b"")  # the launcher's child died
    assert done and frames[0][0] == "err"
    assert "attached command (attach of c1)" in frames[0][2]
    frames, done = _pending().feed(b"exit 0\n")  # no pid before it: not a success
    assert done and frames[0][0] == "err"
    frames, done = _pending("start").feed(b"err busy\n")
    assert done and frames[0][0] == "err" and "start of c1" in frames[0][2]
    assert _pending("start").feed(b"ok 1") == ([], False)  # half a line: more to come
