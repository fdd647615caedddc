"""The gate's request decoder and dispatch under malformed and hostile frames.

An in-process :class:`~lxactors._helper.gate.Gate` for a made-up caller,
fed by hypothesis: random bytes, pickles of random plain data, pickles that
name globals, and well-formed ops with random fields.  Each frame must get
one answer (no crash, no hang) and do nothing: no container made, nothing
written under the users' directory but the caller's own empty lxcpath.
"""

from __future__ import annotations

import os
import pickle
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lxactors._helper import protocol, wire
from lxactors._helper.access import Caller, Grant
from lxactors._helper.gate import Gate

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the gate is root's")

CALLER = Caller(uid=4242424, gid=4242424, pid=1, name="lxactors-fuzz", groups=frozenset())
#: Ops a fuzzed frame may name (register/unregister would reach this process's own helper).
OPS = sorted(set(protocol._REQUESTS) - {"register", "unregister"})
FIELDS = sorted({f for cls in protocol._REQUESTS.values() for f in protocol._hints(cls)})

plain = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=24) | st.binary(max_size=24),
    lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner)
    | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)
hostile_globals = st.sampled_from([os.system, os.unlink, pickle.loads, eval, getattr]).map(
    lambda g: pickle.dumps(("call", {"handle": 1, "member": g})))
ops = st.builds(lambda op, args: pickle.dumps((op, args)),
                st.sampled_from(OPS) | st.text(max_size=12),
                st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), plain, max_size=7))
frames = st.one_of(st.binary(max_size=300), plain.map(pickle.dumps), hostile_globals, ops)


@pytest.fixture(scope="module")
def gate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gate, str]]:
    users = str(tmp_path_factory.mktemp("users"))
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    g = Gate(theirs, CALLER, Grant(allowed=True, users_dir=users))
    yield g, users
    for e in g.handles.values():
        e.container.close()
    mine.close()
    theirs.close()


def _answer(sock: socket.socket, timeout: float = 20.0) -> tuple[Any, ...]:
    reader = wire.FrameReader()
    deadline = time.monotonic() + timeout
    while True:
        frame = reader.pop()
        if frame is not None:
            return frame
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = sock.recv(65536)
        assert chunk, "the gate closed the reply channel without answering"
        reader.feed(chunk)


def _made(users: str) -> list[str]:
    return sorted(os.path.join(d, n) for d, dirs, files in os.walk(users) for n in dirs + files)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(frames)
def test_every_frame_gets_one_answer_and_does_nothing(gate: tuple[Gate, str], frame: bytes) -> None:
    g, users = gate
    mine, theirs = socket.socketpair()
    try:
        g.handle(frame, [os.dup(theirs.fileno())])
        theirs.close()
        kind, *rest = _answer(mine)
        assert kind in ("ok", "err")
        if kind == "ok" and isinstance(rest[0], tuple) and rest[0][0] == "return":
            # only a well-formed request succeeds, and none of these makes anything
            assert protocol.decode_request(frame).op in ("open", "close_handle", "list_containers",
                                                     "call", "chroot")
    finally:
        mine.close()
        if theirs.fileno() >= 0:
            theirs.close()
    own = os.path.join(users, str(CALLER.uid))
    assert set(_made(users)) <= {own}, _made(users)
