"""lxactors.liblxc on real busybox containers: the console (getfd, an interactive session, the console log).

Together the test_liblxc_*.py modules exercise every public function and ``Container``
member at least once, each test checking a result that a broken binding would get wrong.
The containers come from ``make_container`` (overlay snapshots of the session's busybox
``base``); anything else a test makes is registered with ``extra``.
"""

from __future__ import annotations

import os
import pty
import threading

import pytest

from lxactors import liblxc
from lxactors._errors import LxcError
from tests.util import ShellDriver, read_until, sh, wait_for

# --------------------------------------------------------------------------- console


def test_console_getfd(make_container) -> None:
    c = make_container(start=True)
    with c.console_getfd(0) as con:
        assert isinstance(con, liblxc.ConsoleFd)
        assert con.ttynum == 0 and con.fd >= 0 and con.ptx >= 0
        assert not os.get_inheritable(con.ptx) and not os.get_inheritable(con.fd)
        os.write(con.ptx, b"\r")
        buf = read_until(con.ptx, b"hi-42", poke=ShellDriver(con.ptx, b"echo hi-$((6*7))"))
        assert b"echo hi-$((6*7))" in buf  # the echoed command, then its output
    assert con.fd == -1 and con.ptx == -1
    con.close()  # idempotent

    with c.console_getfd() as tty:  # the next free tty (lxc.tty.max = 5)
        assert 1 <= tty.ttynum <= 5
    c.stop()
    with pytest.raises(LxcError) as e:
        c.console_getfd(0)
    assert e.value.operation == "console_getfd"


def test_console_interactive(make_container) -> None:
    """console() relays a pty to the container's console until Ctrl-a q."""
    c = make_container(start=True)
    ptx, pts = pty.openpty()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            c.console(0, pts, pts, pts, 1)
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    try:
        read_until(ptx, b"hi-42", poke=ShellDriver(ptx, b"echo hi-$((6*7))"))
        os.write(ptx, b"\x01q")  # the escape: Ctrl-a q
        t.join(15)
        assert not t.is_alive(), "console() did not return after Ctrl-a q"
        assert not errors, errors
    finally:
        if t.is_alive():
            c.stop()
            t.join(15)
        os.close(ptx)
        os.close(pts)
    assert c.is_running()


def test_console_log(make_container) -> None:
    c = make_container()
    c.set_config_item("lxc.console.buffer.size", "auto")
    c.start()
    assert c.get_running_config_item("lxc.console.buffer.size") not in (None, "", "0")
    # Reading moves the ring buffer's read position: collect what each read returns.
    seen = bytearray()

    def collect(want: bytes) -> bool:
        seen.extend(c.console_log())
        return want in seen

    wait_for(lambda: collect(b"Please press Enter to activate this console."),
             what="busybox's console greeting in the ring buffer")
    assert c.console_log() == b""  # all read: an empty buffer is not an error

    assert sh(c, "echo marker-$((6*7)) > /dev/console").status == 0
    seen.clear()
    wait_for(lambda: collect(b"marker-42"), what="the marker in the console ring buffer")
    assert b"marker-$((6*7))" not in seen  # the output, not the command

    # read_max bounds one read; the rest stays for the next.
    assert sh(c, "echo 0123456789 > /dev/console").status == 0
    first = wait_for(lambda: c.console_log(read_max=4), what="console output")
    assert first == b"0123"
    seen[:] = first
    wait_for(lambda: collect(b"0123456789"), what="the rest of the line")

    # clear drops what is unread.
    assert sh(c, "echo cleared > /dev/console").status == 0
    assert wait_for(lambda: c.console_log(read_max=1), what="console output") == b"c"
    assert c.console_log(clear=True, read=False) == b""
    assert c.console_log() == b""


def test_console_log_without_buffer_fails(make_container) -> None:
    c = make_container(start=True)
    with pytest.raises(LxcError) as e:
        c.console_log()
    assert e.value.operation == "console_log"
