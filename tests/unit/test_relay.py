"""The cluster's message connection, on loopback: order, tokens, flow control, ends."""

from __future__ import annotations

import secrets
import socket
import ssl
import subprocess
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
    lst.close()


def _pair(listener: _relay.Listener) -> tuple[_relay.Writer, _relay.Reader]:
    token = listener.expect()
    got: list[socket.socket | None] = []
    t = threading.Thread(target=lambda: got.append(listener.connection(token, 10)))
    t.start()
    reader = _relay.connect(listener.address, token)
    t.join(10)
    assert got and got[0] is not None
    return _relay.Writer(got[0]), reader


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
                                     b' "data": "x"}', b'{"kind": "os.system"}', b"\x80",
                                     b'{"kind": []}', b'{"kind": "GaveUp", "exited": 3}',
                                     b"[" * 100_000 + b"]" * 100_000])
def test_only_lxactors_messages_are_decoded(payload: bytes) -> None:
    with pytest.raises(ValueError):
        _relay.decode(payload)


def test_every_other_message_survives_its_encoding() -> None:
    for m in (EXITED, RESTARTED, GAVE_UP, lxactors.ContainerExited(C, "normal", 0)):
        assert _relay.decode(_relay.encode(m)) == m


def test_a_discarded_token_wakes_its_waiter_at_once(listener: _relay.Listener) -> None:
    """The owner went before it connected: the agent's stream thread is not held 30 s."""
    token = listener.expect()
    got: list[object] = []
    t = threading.Thread(target=lambda: got.append(listener.connection(token, 30)))
    t.start()
    listener.discard(token)
    t.join(5)
    assert not t.is_alive() and got == [None]


def test_silent_connections_beyond_the_greeters_are_closed_at_once(
        listener: _relay.Listener) -> None:
    """A port scan holds at most GREETERS threads; the rest are closed, and once they
    go, owners connect again."""
    silent = [socket.create_connection(listener.address, timeout=10)
              for _ in range(_relay.GREETERS + 8)]
    try:
        closed = 0
        for s in silent[_relay.GREETERS:]:
            s.settimeout(_relay.GREET_TIMEOUT - 1)
            closed += s.recv(1) == b""
        assert closed == 8
    finally:
        for s in silent:
            s.close()
    deadline = time.monotonic() + 30
    while True:  # the greeters see the end of their connections
        try:
            writer, reader = _pair(listener)
            break
        except AssertionError:
            if time.monotonic() > deadline:
                raise
    writer.send([EXITED])
    writer.end()
    assert list(reader.messages(C)) == [EXITED]
    writer.close()
    reader.close()


@pytest.fixture
def ray_tls(tmp_path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Ray's TLS settings, with a self-signed certificate as Ray's test utilities make."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=lxactors-test", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    for var, value in (("RAY_USE_TLS", "1"), ("RAY_TLS_SERVER_CERT", str(cert)),
                       ("RAY_TLS_SERVER_KEY", str(key)), ("RAY_TLS_CA_CERT", str(cert))):
        monkeypatch.setenv(var, value)
    return str(cert)


def test_with_rays_tls_the_stream_is_tls_and_a_plain_client_reads_nothing(ray_tls: str) -> None:
    listener = _relay.Listener("127.0.0.1")
    try:
        writer, reader = _pair(listener)
        assert isinstance(reader._conn, ssl.SSLSocket)
        writer.send([lxactors.ConsoleOutput(C, b"secret"), EXITED])
        writer.end()
        assert list(reader.messages(C)) == [lxactors.ConsoleOutput(C, b"secret"), EXITED]
        writer.close()
        reader.close()
        token = listener.expect()
        with socket.create_connection(listener.address, timeout=10) as plain:
            plain.sendall(token)  # not a TLS hello: refused, and the token stays unused
            got = b""
            try:
                while chunk := plain.recv(4096):
                    got += chunk
            except ConnectionResetError:
                pass
        assert b"secret" not in got and _relay._HELLO + b"\0" not in got
        assert listener.connection(token, 0.2) is None
    finally:
        listener.close()
