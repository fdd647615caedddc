"""Unprivileged mode's launcher: the gate, started through ``sudo -n``.

A process that is not root cannot run liblxc's privileged calls, so its
helper is the gate (``lxactors._helper.gate``), root, started by sudo with
one fixed command line that the admin's sudoers drop-in allows (``lxactors
setup-user USER`` writes it): ``sudo -n PYTHON -I -m lxactors._helper.gate``.
sudo closes every fd above 2, so the socket to the gate is its stdin; the
gate learns who we are from the kernel (SO_PEERCRED), not from us.  PYTHON
is root's root-owned interpreter named in ``/etc/lxactors/access.conf``
(``python =`` in ``[defaults]``): an unprivileged user must not be able to
change the code that runs as root.
"""

from __future__ import annotations

import configparser
import functools
import os
import socket
import subprocess
import sys
import tempfile

from lxactors._errors import AccessRefused, HelperError
from lxactors._helper.calls import HELLO

__all__ = ["ACCESS_CONF", "gate_command", "start_gate", "own_lxcpath", "settings",
           "unprivileged"]

ACCESS_CONF = "/etc/lxactors/access.conf"
USERS_DIR = "/var/lib/lxactors/users"
#: The gate's arguments after the interpreter: what the sudoers line names.
GATE_ARGS = ("-I", "-m", "lxactors._helper.gate")
#: Seconds to wait for the gate's hello (sudo, then the gate's start).
START_TIMEOUT = 60.0


def unprivileged() -> bool:
    """Whether this process runs lxactors through the gate (it is not root)."""
    return os.geteuid() != 0


@functools.cache
def settings(path: str = ACCESS_CONF) -> tuple[str, str]:
    """(the gate's interpreter, the users' lxcpath directory) from access.conf."""
    cp = configparser.ConfigParser(interpolation=None, default_section="\0none")
    try:
        cp.read(path, encoding="utf-8")
    except configparser.Error:
        pass
    d = cp["defaults"] if cp.has_section("defaults") else {}
    return (d.get("python") or sys.executable), (d.get("users_dir") or USERS_DIR)


def own_lxcpath() -> str:
    """This user's lxcpath: made by the gate, owned by root, one per uid."""
    return os.path.join(settings()[1], str(os.getuid()))


def gate_command() -> list[str]:
    return ["sudo", "-n", "--", settings()[0], *GATE_ARGS]


def start_gate() -> tuple[subprocess.Popen[bytes], socket.socket]:
    """Start the gate through sudo; return it and the socket to it, once it said hello."""
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    errors = tempfile.TemporaryFile()
    try:
        proc = subprocess.Popen(gate_command(), stdin=child.fileno(),
                                stdout=subprocess.DEVNULL, stderr=errors, close_fds=True)
    except OSError as exc:
        parent.close()
        raise HelperError(None, "start helper", f"cannot run sudo for the gate: {exc}; "
                          "an admin runs 'lxactors setup-user USER' once") from exc
    finally:
        child.close()
    parent.settimeout(START_TIMEOUT)
    try:
        hello = parent.recv(8192)
    except OSError:
        hello = b""
    parent.settimeout(None)
    if hello != HELLO:
        parent.close()
        proc.wait(10)
        errors.seek(0)
        said = errors.read()[-2000:].decode("utf-8", "replace").strip()
        if hello.startswith(b"refused "):
            raise AccessRefused(None, "start helper", hello[8:].decode("utf-8", "replace"))
        raise HelperError(None, "start helper",
                          f"the gate did not start ({' '.join(gate_command())}): "
                          f"{said or 'no answer'}; an admin runs 'lxactors setup-user "
                          f"{_user()}' once to allow it")
    errors.close()
    return proc, parent


def _user() -> str:
    import pwd

    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())
