"""The cluster's message connection, on loopback: order, tokens, flow control, ends."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator

import pytest

import lxactors

pytest.importorskip("ray")
from lxactors.cluster import _relay

C = "c1"
EXITED = lxactors.ContainerExited(C, "signal", None, 9)
RESTARTED = lxactors.ContainerRestarted(C, 2, lxactors.ContainerExited(C, "error", 3))
GAVE_UP = lxactors.GaveUp(C, 3, 5.0, lxactors.ContainerExited(C, "error", 1))


@pytest.fixture
def listener() -> Iterator[_relay.Listener]:
    lst = _relay.Listener("127.0.0.1")
    yield lst
    lst._sock.close()


def _pair(listener: _relay.Listener) -> tuple[_relay.Writer, _relay.Reader]:
    token = listener.expect()
    got: list[_relay.Writer | None] = []
    t = threading.Thread(target=lambda: got.append(listener.connection(token, 10)))
    t.start()
    reader = _relay.connect(listener.address, token)
    t.join(10)
    assert got and got[0] is not None
    return got[0], reader


def test_messages_arrive_in_order_and_the_end_is_told(listener: _relay.Listener) -> None:
    writer, reader = _pair(listener)
    sent: list[lxactors.Message] = [lxactors.ConsoleOutput(C, b"boot\r\n"), RESTARTED,
                                    lxactors.ConsoleOutput(C, bytes(range(256)) * 4000), GAVE_UP,
                                    EXITED]
    writer.send(sent[:2])
    writer.send(sent[2:])
    writer.end()
    writer.close()
    assert list(reader.messages(C)) == sent
    reader.close()


def test_console_output_longer_than_a_frame_arrives_whole(listener: _relay.Listener) -> None:
    """A window larger than a frame, filled while the owner was behind, is one batch."""
    writer, reader = _pair(listener)
    data = secrets.token_bytes(3 * _relay.MAX_FRAME + 5)

    def write() -> None:
        writer.send([lxactors.ConsoleOutput(C, data), EXITED])
        writer.end()

    t = threading.Thread(target=write)
    t.start()
    got = list(reader.messages(C))
    t.join(10)
    assert b"".join(m.data for m in got[:-1] if isinstance(m, lxactors.ConsoleOutput)) == data
    assert got[-1] == EXITED and len(got) == 5
    writer.close()
    reader.close()


def test_a_stream_cut_before_its_end_is_an_error(listener: _relay.Listener) -> None:
    writer, reader = _pair(listener)
    writer.send([lxactors.ConsoleOutput(C, b"x")])
    writer.close()  # as a killed agent's kernel would
    got = reader.messages(C)
    assert next(got) == lxactors.ConsoleOutput(C, b"x")
    with pytest.raises(ConnectionError, match="ended before"):
        next(got)
    reader.close()


def test_a_connection_without_the_token_reads_nothing(listener: _relay.Listener) -> None:
    def refused(token: bytes) -> None:
        reader = _relay.connect(listener.address, token)
        with pytest.raises(ConnectionError, match="ended before"):
            list(reader.messages(C))
        reader.close()

    token = listener.expect()
    refused(secrets.token_bytes(_relay.TOKEN_BYTES))
    refused(token[:-1] + bytes([token[-1] ^ 1]))
    assert listener.connection(token, 0.2) is None  # the stream's own never came
    # A token is good for one connection only.
    token = listener.expect()
    t = threading.Thread(target=listener.connection, args=(token, 10))
    t.start()
    first = _relay.connect(listener.address, token)
    t.join(10)
    refused(token)
    first.close()


def test_the_writer_waits_for_a_stalled_reader_and_nothing_is_lost(
        listener: _relay.Listener) -> None:
    writer, reader = _pair(listener)
    chunk = b"y" * 65536
    written = [0]

    def write() -> None:
        try:
            for _ in range(1024):  # 64 MiB
                writer.send([lxactors.ConsoleOutput(C, chunk)])
                written[0] += len(chunk)
            writer.end()
        except OSError:
            pass

    t = threading.Thread(target=write)
    t.start()
    # The writer stops once the socket buffers are full, far short of the 64 MiB.
    deadline = time.monotonic() + 30
    last = -1
    while written[0] != last and time.monotonic() < deadline:
        last = written[0]
        t.join(0.3)
    assert t.is_alive() and written[0] < 8 << 20, written[0]
    got = sum(len(m.data) for m in reader.messages(C) if isinstance(m, lxactors.ConsoleOutput))
    t.join(30)
    assert got == written[0] == 64 << 20
    writer.close()
    reader.close()


def test_a_reader_waiting_returns_when_interrupted(listener: _relay.Listener) -> None:
    writer, reader = _pair(listener)
    raised: list[BaseException] = []

    def read() -> None:
        try:
            list(reader.messages(C))
        except ConnectionError as exc:
            raised.append(exc)

    t = threading.Thread(target=read)
    t.start()
    reader.interrupt()
    t.join(10)
    assert not t.is_alive() and raised
    reader.close()
    # Its writer then finds no reader.
    with pytest.raises(OSError):
        for _ in range(100):
            writer.send([lxactors.ConsoleOutput(C, b"z" * 65536)])
    writer.close()


@pytest.mark.parametrize("payload", [b"[]", b'"x"', b'{"kind": "ConsoleOutput", "container": "c",'
                                     b' "data": "x"}', b'{"kind": "os.system"}', b"\x80"])
def test_only_lxactors_messages_are_decoded(payload: bytes) -> None:
    with pytest.raises(ValueError):
        _relay.decode(payload)


def test_every_other_message_survives_its_encoding() -> None:
    for m in (EXITED, RESTARTED, GAVE_UP, lxactors.ContainerExited(C, "normal", 0)):
        assert _relay.decode(_relay.encode(m)) == m
