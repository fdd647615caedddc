"""The helper's wire format, root-free: frames, the restricted unpickler, typed requests."""

from __future__ import annotations

import dataclasses
import os
import pickle
import struct
import threading
from pathlib import Path
from typing import Any

import pytest

from lxactors._helper import protocol, wire


def frames_of(data: bytes, step: int = 1) -> list[tuple[Any, ...]]:
    """Feed *data* to a FrameReader *step* bytes at a time; every frame popped."""
    reader = wire.FrameReader()
    out = []
    for i in range(0, len(data), step):
        reader.feed(data[i:i + step])
        while (frame := reader.pop()) is not None:
            out.append(frame)
    return out


def test_frames_round_trip_whole_or_byte_by_byte() -> None:
    values = [wire.ok(None), wire.ok(1234), wire.ok({"pid": 7, "stdout": b"\0\xff" * 100_000,
                                                     "timed_out": False}),
              wire.error("lxc", "start failed", ["ERROR start.c: no", "WARN x"])]
    data = b"".join(wire.encode_frame(v) for v in values)
    assert frames_of(data, step=len(data)) == values
    assert frames_of(data, step=1) == values
    assert frames_of(data, step=4093) == values


def test_a_partial_frame_waits_for_the_rest() -> None:
    data = wire.encode_frame(wire.ok("abc"))
    reader = wire.FrameReader()
    reader.feed(data[:-1])
    assert reader.pop() is None
    reader.feed(data[-1:])
    assert reader.pop() == ("ok", "abc")
    assert reader.pop() is None


def test_write_frame_writes_one_frame_to_a_pipe() -> None:
    r, w = os.pipe()
    try:
        wire.write_frame(w, wire.ok([1, 2.5, "x", b"y", None, True]))
        os.close(w)
        w = -1
        data = b""
        while chunk := os.read(r, 65536):
            data += chunk
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
    assert frames_of(data, len(data)) == [("ok", [1, 2.5, "x", b"y", None, True])]


def raw_frame(payload: bytes) -> bytes:
    return struct.pack("!I", len(payload)) + payload


@pytest.mark.parametrize("payload", [
    b"not a pickle at all",
    b"",
    pickle.dumps(("ok", 1))[:-1],                       # truncated: no STOP
    pickle.dumps(["ok", 1]),                            # a list, not a reply tuple
    pickle.dumps(("fine", 1)),                          # neither ok nor err
    pickle.dumps(("err", "lxc", "message")),            # err without its log
    pickle.dumps(("err", "lxc", "message", [1, 2])),    # log lines not str
    pickle.dumps(("err", 3, "message", [])),
])
def test_malformed_frames_are_wire_errors(payload: bytes) -> None:
    with pytest.raises(wire.WireError):
        frames_of(raw_frame(payload), step=1 << 20)


@pytest.mark.parametrize("value", [("ok",), ("nope", 1), "ok", ("err", "lxc", "m", ("a",))])
def test_only_replies_are_encoded(value: object) -> None:
    with pytest.raises(wire.WireError):
        wire.encode_frame(value)


def test_an_oversized_length_is_refused_before_its_data_arrives() -> None:
    reader = wire.FrameReader()
    reader.feed(struct.pack("!I", wire.MAX_FRAME + 1) + b"x")
    with pytest.raises(wire.WireError, match="exceeds"):
        reader.pop()
    reader = wire.FrameReader()
    reader.feed(struct.pack("!I", wire.MAX_FRAME))  # as large as allowed: just incomplete
    assert reader.pop() is None


class Evil:
    def __reduce__(self) -> tuple[object, ...]:
        return (os.system, ("true",))


def test_globals_in_a_pickle_are_refused_never_called(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    # os.system("touch MARKER") by the GLOBAL + REDUCE opcodes, as a hostile peer would send.
    hostile = b"cos\nsystem\n(V" + f"touch {marker}".encode() + b"\ntR."
    for payload in (hostile, pickle.dumps(Evil()), pickle.dumps(("ok", Evil())),
                    pickle.dumps(("ok", complex(1, 2))), pickle.dumps(("ok", protocol.Destroy))):
        with pytest.raises(wire.WireError, match="refused global"):
            wire.loads(payload)
        with pytest.raises(wire.WireError, match="refused global"):
            frames_of(raw_frame(payload), step=1 << 20)
    assert not marker.exists()
    # A request object itself never crosses: only (op, {field: value}).
    req = protocol.Destroy(name="c1", path="/p", log=None)
    with pytest.raises(wire.WireError, match="refused global"):
        protocol.decode_request(pickle.dumps(req))


def test_plain_data_crosses() -> None:
    value = {"a": [1, -2, 2**70, 1.5, "s", b"b", None, True, False, (1, 2)],
             "set": {1, 2}, "frozen": frozenset({"x"}), "ba": bytearray(b"q")}
    assert wire.loads(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)) == value


BASE = {"name": "c1", "path": "/var/tmp/lx", "log": "/tmp/lxactors-1-x/0-c1.log"}
SAMPLES: list[protocol.Request] = [
    protocol.Register(path="/p", name="c1", type="temporary"),
    protocol.Unregister(path="/p", name="c1"),
    protocol.Start(**BASE, config="/tmp/snap.conf", argv=[b"/bin/sh", b"-c", b"exit 3"], useinit=False,
               daemonize=True, close_all_fds=True),
    protocol.Start(**BASE, argv=None, useinit=True, daemonize=False, close_all_fds=False),
    protocol.Create(**BASE, template="busybox", bdevtype=None, specs={"dir": "/srv/r", "fssize": 5},
                flags=0, argv=[]),
    protocol.Clone(**BASE, newname="c2", lxcpath=None, flags=4, bdevtype="overlay", bdevdata=None,
               newsize=0, hookargs=None),
    protocol.Destroy(**BASE),
    protocol.DestroyWithSnapshots(**BASE),
    protocol.SnapshotRestore(**BASE, snapname="snap0", newname="c1"),
    protocol.Mount(**BASE, source="/src", target="/mnt", fstype=None, flags=4096, data=None),
    protocol.Migrate(**BASE, cmd=3, directory="/ck", features_to_check=1),
    protocol.Console(**BASE, ttynum=-1, escape=1),
    protocol.BoundLayer(**BASE, size=128 << 20),
    protocol.Attach(**BASE, argv=[b"echo", b"hi"], env={"A": "b"}, clear_env=True, uid=0, gid=None,
                groups=[1, 2], cwd="/", namespaces=-1, flags=0, capture=True, input=b"in",
                timeout=2.5),
    protocol.RemoveStaleCgroups(**BASE),
    protocol.CloneStart(**BASE, base="lxactors-base", items=[["lxc.log.level", "INFO"],
                                                          ["lxc.environment", None]],
                    argv=None, useinit=False, close_all_fds=True),
]


@pytest.mark.parametrize("req", SAMPLES, ids=lambda r: r.op)
def test_requests_round_trip_as_op_and_fields(req: protocol.Request) -> None:
    data = protocol.encode_request(req)
    op, fields = pickle.loads(data)
    assert op == req.op
    assert fields == {f.name: getattr(req, f.name) for f in dataclasses.fields(req)}
    back = protocol.decode_request(data)
    assert type(back) is type(req) and back == req


def test_every_op_is_declared_once_with_a_distinct_name() -> None:
    names = [cls.op for cls in protocol._REQUESTS.values()]
    assert len(names) == len(set(names)) and "" not in names
    assert {"start", "attach", "clone", "register", "unregister", "destroy_with_snapshots",
            "migrate", "console", "remove_stale_cgroups", "clone_start"} <= set(names)


@pytest.mark.parametrize("build", [
    lambda: protocol.Destroy(**BASE, nmae="typo"),                      # unknown field
    lambda: protocol.Rename(**BASE),                                    # missing newname
    lambda: protocol.Destroy(name="c1", path="/p"),                     # missing log
    lambda: protocol.Start(**BASE, argv="/bin/sh", useinit=False, daemonize=True,
                           close_all_fds=True),                         # argv a str
    lambda: protocol.Start(**BASE, argv=["/bin/sh"], useinit=False, daemonize=True,
                           close_all_fds=True),                         # argv items str, not bytes
    lambda: protocol.Attach(**BASE, argv=[b"x"], env={"A": 1}, clear_env=False, uid=None, gid=None,
                        groups=None, cwd=None, namespaces=-1, flags=0, capture=False),
    lambda: protocol.Umount(**BASE, target=None, flags=0),              # None would reach liblxc as NULL
    lambda: protocol.Register(path="/p", name="c1", type="forever"),
    lambda: protocol.Migrate(**BASE, cmd=1, directory="/d", ghost_limt=3),
    # clone_start's strings cross to C as NUL-separated fields, its items as config lines
    lambda: protocol.CloneStart(**BASE, base="b\0x", items=[], argv=None, useinit=False,
                            close_all_fds=True),
    lambda: protocol.CloneStart(**BASE, base="b", items=[["lxc.uts.name", "a\0b"]], argv=None,
                            useinit=False, close_all_fds=True),
    lambda: protocol.CloneStart(**BASE, base="b", items=[["lxc.uts.name", "a\nlxc.hook.start = x"]],
                            argv=None, useinit=False, close_all_fds=True),
    lambda: protocol.CloneStart(**BASE, base="b", items=[["lxc.uts.name"]], argv=None,
                            useinit=False, close_all_fds=True),
    lambda: protocol.CloneStart(**BASE, base="b", items=[[None, "x"]], argv=None, useinit=False,
                            close_all_fds=True),
    lambda: protocol.CloneStart(**BASE, base="b", items=[], argv=[b"/bin/sh\0-c"], useinit=False,
                            close_all_fds=True),
    lambda: protocol.CloneStart(**BASE, config="/tmp/snap.conf", base="b", items=[], argv=None,
                            useinit=False, close_all_fds=True),
])
def test_a_bad_request_is_a_type_error_at_the_sending_end(build: Any) -> None:
    with pytest.raises(TypeError):
        build()


@pytest.mark.parametrize(("message", "match"), [
    (("no-such-op", {}), "unknown helper operation"),
    ((None, {}), "unknown helper operation"),
    (("destroy", {**BASE, "bogus": 1}), "unknown field"),
    (("destroy", {"name": "c1"}), "destroy: "),
    (("rename", {**BASE, "newname": 5}), "newname must be"),
    (("register", {"path": "/p", "name": "c", "type": "forever"}), "register"),
    (("destroy",), "a request is"),
    (["destroy", BASE], "a request is"),
    (("destroy", [("name", "c1")]), "a request is"),
])
def test_a_bad_request_from_the_wire_is_a_wire_error(message: object, match: str) -> None:
    with pytest.raises(wire.WireError, match=match):
        protocol.decode_request(pickle.dumps(message))


def test_readable_sees_data_while_spinning_after_it_and_times_out_without() -> None:
    r, w = os.pipe()
    try:
        assert not wire.readable(r, 20, spin_ns=1_000_000)  # spun 1 ms, then slept 20 ms: nothing
        os.write(w, b"x")
        assert wire.readable(r, 0, spin_ns=0)  # already there
        os.read(r, 1)
        # Written after the spin ended: the sleeping poll sees it.
        t = threading.Timer(0.05, os.write, (w, b"y"))
        t.start()
        assert wire.readable(r, 10_000, spin_ns=1_000)
        t.join()
        os.read(r, 1)
        # Written during a long spin: seen without sleeping.
        t = threading.Timer(0.01, os.write, (w, b"z"))
        t.start()
        assert wire.readable(r, 0, spin_ns=5_000_000_000)
        t.join()
        assert os.read(r, 1) == b"z"
    finally:
        os.close(r)
        os.close(w)
