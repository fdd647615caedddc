"""``lxactors connect [ADDR:PORT]``: a terminal client for tcpvm, standard library only.

A tcpvm client gets the console of a container of its own, where a root
shell runs with job control, so the client is a terminal.  When stdin is a
terminal it is put in raw mode while connected: every key (Ctrl-C, Ctrl-Z,
Ctrl-\\, arrows) goes to the container, as with ``socat `tty`,raw,echo=0``.
Its mode is put back on every way out: the server closes or resets the
connection, SIGTERM, SIGHUP or SIGINT from outside (status 128+N), an
exception.  A SIGTSTP from outside suspends the client with the terminal
restored.  ``~.`` at the start of a line quits locally and ``~~`` sends one
``~``, as in ssh.

The shell's line editor (busybox ash) asks where the cursor is with
``ESC[6n``.  When stdin and stdout are both terminals the query is passed
through: the local terminal answers on stdin, which is raw (no echo), so the
answer reaches the shell and nothing shows -- a cooked terminal (``nc``)
echoes it as ``^[[24;1R``.  Otherwise no terminal would answer (and one on
stdout would answer into the input of whatever runs after us), so the query
is taken out of the output and answered with ``ESC[24;1R``: column 1, left
of any prompt, so busybox keeps its own idea of the cursor.

With stdin not a terminal (a pipe, a file) the input is sent as it is, and
when it ends the client waits until the session has printed nothing for
*linger* seconds before it half-closes: tcpvm ends the container at that end
of file, so hanging up at once would cut the last commands short.  It then
prints what is left until the server closes.  Exit status 0 when the server
closes the connection or ``~.`` is typed; :class:`ConnectError` (the command:
one line on stderr, status 1) when it cannot connect or the connection breaks.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import select
import selectors
import signal
import socket
import sys
import termios
import threading
import time
import tty
from types import FrameType, TracebackType
from typing import Any

__all__ = [
    "CURSOR_ANSWER",
    "CURSOR_QUERY",
    "DEFAULT_ADDRESS",
    "DEFAULT_LINGER",
    "ConnectError",
    "connect",
    "parse_address",
    "register",
    "run",
]

PROG = "lxactors connect"
DEFAULT_ADDRESS: tuple[str, int] = ("127.0.0.1", 31337)
#: Seconds of quiet output, after piped input ends, before the client hangs up.
DEFAULT_LINGER = 1.0
CONNECT_TIMEOUT = 10.0
#: The cursor-position query (DSR 6), and the answer given where no terminal can:
#: row 24, column 1 (not row 1: busybox reads ``ESC[1;N`` as a modified arrow key's start).
CURSOR_QUERY = b"\x1b[6n"
CURSOR_ANSWER = b"\x1b[24;1R"
#: Input bytes held for a server that is not reading before stdin is left unread.
SEND_WINDOW = 64 * 1024
CHUNK = 65536
#: Signals that end the session (with the terminal restored), and the one that suspends it.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)


class ConnectError(OSError):
    """Could not connect, or the connection broke; the message is one line saying which."""


def parse_address(text: str) -> tuple[str, int]:
    """``ADDR:PORT``, ``[V6ADDR]:PORT``, ``ADDR``, ``:PORT`` or ``PORT`` (default 127.0.0.1:31337)."""
    if not isinstance(text, str):
        raise TypeError(f"connect: address must be a str, not {type(text).__name__}")
    host, port_text, has_port = text, "", False
    if text.startswith("["):
        end = text.find("]")
        host, rest = text[1:end], text[end + 1:]
        if end < 0 or (rest and not rest.startswith(":")):
            raise ValueError(f"bad address {text!r}: want ADDR:PORT or [V6ADDR]:PORT")
        has_port, port_text = bool(rest), rest[1:]
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        has_port = True
    elif text.isdigit():
        host, port_text, has_port = "", text, True
    if has_port and not (port_text.isdigit() and 1 <= int(port_text) <= 65535):
        raise ValueError(f"bad port in {text!r}: want 1-65535")
    return host or DEFAULT_ADDRESS[0], int(port_text) if has_port else DEFAULT_ADDRESS[1]


def _format(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _why(exc: OSError) -> str:
    return (exc.strerror or str(exc) or type(exc).__name__).lower()


class _Escape:
    """ssh's escape on typed input: ``~.`` after a newline quits, ``~~`` sends one ``~``."""

    def __init__(self) -> None:
        self.line_start = True
        self.tilde = False

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """The bytes to send, and whether ``~.`` was typed (what follows it is dropped)."""
        out = bytearray()
        for b in data:
            if self.tilde:
                self.tilde = False
                if b == ord("."):
                    return bytes(out), True
                if b != ord("~"):
                    out.append(ord("~"))
            elif self.line_start and b == ord("~"):
                self.tilde = True
                continue
            out.append(b)
            self.line_start = b in (ord("\r"), ord("\n"))
        return bytes(out), False


class _CursorQueries:
    """Takes ``ESC[6n`` out of the output, also when it is split across reads."""

    def __init__(self) -> None:
        self.held = b""

    def feed(self, data: bytes) -> tuple[bytes, int]:
        """The output without queries, and how many there were."""
        data, count = self.held + data, 0
        while CURSOR_QUERY in data:
            count += data.count(CURSOR_QUERY)
            data = data.replace(CURSOR_QUERY, b"")
        self.held = b""
        for k in range(len(CURSOR_QUERY) - 1, 0, -1):
            if data.endswith(CURSOR_QUERY[:k]):
                data, self.held = data[:-k], data[-k:]
                break
        return data, count

    def flush(self) -> bytes:
        held, self.held = self.held, b""
        return held


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            select.select([], [fd], [])
            continue
        view = view[n:]


class _Local:
    """The local side: raw mode on a terminal stdin, and the signals, both put back on exit.

    Signal handlers only note the signal and wake the session's loop, so no
    exception can land half-way through putting the terminal back.
    """

    def __init__(self, stdin: int, raw: bool) -> None:
        self.stdin = stdin
        self.raw = raw
        self.saved: list[Any] | None = None
        self.handlers: dict[int, Any] = {}
        self.signals: list[int] = []
        self.wake_r, self.wake_w = socket.socketpair()
        self.wake_r.setblocking(False)
        self.wake_w.setblocking(False)

    def __enter__(self) -> _Local:
        try:
            if threading.current_thread() is threading.main_thread():
                wanted = STOP_SIGNALS + ((signal.SIGTSTP,) if self.raw else ())
                for sig in wanted:
                    self.handlers[sig] = signal.signal(sig, self._note)
            if self.raw:
                self.saved = termios.tcgetattr(self.stdin)
                tty.setraw(self.stdin, termios.TCSADRAIN)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _note(self, signum: int, frame: FrameType | None) -> None:
        self.signals.append(signum)
        with contextlib.suppress(OSError):
            self.wake_w.send(b"!")

    def suspend(self) -> None:
        """SIGTSTP from outside: stop with the terminal as it was; raw again on SIGCONT."""
        self.restore()
        os.kill(os.getpid(), signal.SIGSTOP)
        if self.raw:
            tty.setraw(self.stdin, termios.TCSADRAIN)

    def restore(self) -> None:
        if self.saved is not None:
            # The terminal may be gone (SIGHUP): then there is nothing to restore.
            with contextlib.suppress(termios.error, OSError):
                termios.tcsetattr(self.stdin, termios.TCSADRAIN, self.saved)

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            self.restore()
        finally:
            for sig, old in self.handlers.items():
                signal.signal(sig, old)
            self.wake_r.close()
            self.wake_w.close()


class _Session:
    """Bytes between the local side and the server until one of them ends it."""

    def __init__(self, sock: socket.socket, stdin: int, stdout: int, local: _Local,
                 terminal: bool, linger: float) -> None:
        self.sock = sock
        self.peer = _format(*sock.getpeername()[:2])  # (a reset connection has none)
        self.stdin = stdin
        self.stdout = stdout
        self.local = local
        self.linger = linger
        self.escape = _Escape() if local.raw else None
        self.queries = None if terminal else _CursorQueries()
        self.outgoing = bytearray()
        self.reading_stdin = True
        self.stdin_ended: float | None = None
        self.last_output: float | None = None
        self.half_closed = False

    def run(self) -> int:
        with selectors.PollSelector() as sel:  # poll, not epoll: stdin may be a regular file
            sel.register(self.sock, selectors.EVENT_READ)
            sel.register(self.local.wake_r, selectors.EVENT_READ)
            stdin_registered = False
            while True:
                want_stdin = self.reading_stdin and len(self.outgoing) < SEND_WINDOW
                if want_stdin != stdin_registered:
                    if want_stdin:
                        sel.register(self.stdin, selectors.EVENT_READ)
                    else:
                        sel.unregister(self.stdin)
                    stdin_registered = want_stdin
                events = selectors.EVENT_READ | (selectors.EVENT_WRITE if self.outgoing else 0)
                sel.modify(self.sock, events)
                for key, mask in sel.select(self._until_hangup()):
                    if key.fileobj is self.local.wake_r:
                        status = self._signalled()
                        if status is not None:
                            return status
                    elif key.fileobj is self.sock:
                        if mask & selectors.EVENT_WRITE:
                            self._send()
                        if mask & selectors.EVENT_READ and not self._receive():
                            return 0
                    elif not self._read_stdin():
                        return 0
                self._maybe_hang_up()

    def _signalled(self) -> int | None:
        with contextlib.suppress(OSError):
            self.local.wake_r.recv(4096)
        while self.local.signals:
            signum = self.local.signals.pop(0)
            if signum == signal.SIGTSTP:
                self.local.suspend()
            else:
                return 128 + signum
        return None

    def _read_stdin(self) -> bool:
        try:
            data = os.read(self.stdin, CHUNK)
        except BlockingIOError:
            return True
        except OSError as exc:
            if exc.errno != errno.EIO:  # EIO: the terminal hung up
                raise
            data = b""
        if not data:
            if self.escape is not None:
                return False  # a raw terminal reads no end of file: it is gone
            self.reading_stdin = False
            self.stdin_ended = time.monotonic()
            return True
        if self.escape is not None:
            data, quit = self.escape.feed(data)
            if quit:
                return False
        self.outgoing += data
        return True

    def _send(self) -> None:
        try:
            n = self.sock.send(self.outgoing)
        except BlockingIOError:
            return
        except OSError as exc:
            raise self._lost(exc) from exc
        del self.outgoing[:n]

    def _receive(self) -> bool:
        try:
            data = self.sock.recv(CHUNK)
        except BlockingIOError:
            return True
        except OSError as exc:
            raise self._lost(exc) from exc
        if not data:
            if self.queries is not None:
                _write_all(self.stdout, self.queries.flush())
            return False
        self.last_output = time.monotonic()
        if self.queries is not None:
            data, asked = self.queries.feed(data)
            if not self.half_closed:
                self.outgoing += CURSOR_ANSWER * asked
        _write_all(self.stdout, data)
        return True

    def _lost(self, exc: OSError) -> ConnectError:
        return ConnectError(f"connection to {self.peer} lost: {_why(exc)}")

    def _until_hangup(self) -> float | None:
        """Seconds the loop may wait before :meth:`_maybe_hang_up` must look again."""
        if self.half_closed or self.stdin_ended is None or self.outgoing:
            return None
        if self.linger <= 0:
            return 0
        if self.last_output is None:
            return None  # the container has not said anything yet: it is still booting
        return max(0.0, max(self.last_output, self.stdin_ended) + self.linger - time.monotonic())

    def _maybe_hang_up(self) -> None:
        if self._until_hangup() == 0:
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_WR)
            self.half_closed = True


def connect(address: str = DEFAULT_ADDRESS[0], port: int = DEFAULT_ADDRESS[1], *,
            stdin: int = 0, stdout: int = 1, linger: float = DEFAULT_LINGER) -> int:
    """Relay *stdin*/*stdout* to a tcpvm server until either side ends; the exit status.

    0 when the server closes or ``~.`` is typed, 128+N after signal N;
    :class:`ConnectError` when it cannot connect or the connection breaks.
    Signals are handled only when called from the main thread.
    """
    if not isinstance(address, str) or not address:
        raise TypeError(f"connect: address must be a non-empty str, not {address!r}")
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ValueError(f"connect: port must be an int in 1-65535, not {port!r}")
    for name, fd in (("stdin", stdin), ("stdout", stdout)):
        if isinstance(fd, bool) or not isinstance(fd, int) or fd < 0:
            raise TypeError(f"connect: {name} must be a file descriptor (int), not {fd!r}")
    if isinstance(linger, bool) or not isinstance(linger, (int, float)) or linger < 0:
        raise ValueError(f"connect: linger must be a number of seconds >= 0, not {linger!r}")
    try:
        sock = socket.create_connection((address, port), timeout=CONNECT_TIMEOUT)
    except OSError as exc:
        raise ConnectError(f"cannot connect to {_format(address, port)}: {_why(exc)}") from exc
    with sock:
        sock.setblocking(False)
        raw = os.isatty(stdin)
        with _Local(stdin, raw) as local:
            # Only a terminal that both sees the query and is read by us can answer it.
            session = _Session(sock, stdin, stdout, local, raw and os.isatty(stdout), linger)
            return session.run()


def run(args: argparse.Namespace) -> int:
    """The ``connect`` subcommand: the exit status."""
    try:
        host, port = parse_address(args.address)
        return connect(host, port, linger=args.linger)
    except (ValueError, ConnectError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr, flush=True)
        return 2 if isinstance(exc, ValueError) else 1


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``connect [ADDR:PORT]`` to the ``lxactors`` command."""
    p = subparsers.add_parser(
        "connect", help="a terminal client for tcpvm (no root needed)",
        description="Connect this terminal to a tcpvm server: raw mode while connected (Ctrl-C "
        "and Ctrl-Z go to the container), restored on exit. Type ~. at the start of a line to "
        "quit. With stdin not a terminal, sends it and prints the session's output.")
    p.add_argument("address", nargs="?", default=_format(*DEFAULT_ADDRESS), metavar="ADDR:PORT",
                   help="the server (default 127.0.0.1:31337; PORT alone for loopback)")
    p.add_argument("--linger", type=float, default=DEFAULT_LINGER, metavar="SECONDS",
                   help="with piped input: hang up after the session has been quiet this long "
                   f"once the input ended (default {DEFAULT_LINGER:g}; 0: at once)")
    p.set_defaults(run=run, root=False)
