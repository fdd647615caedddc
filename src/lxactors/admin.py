"""Letting an ordinary user run lxactors (``lxactors setup-user USER``, as root).

One command for the admin (issue 16).  It writes, each validated before it
is put in place:

- ``/etc/sudoers.d/lxactors-USER``: USER may run exactly one command as
  root, ``PYTHON -I -m lxactors._helper.gate`` (the privileged helper),
  without a password; checked with ``visudo -cf``;
- ``/etc/lxactors/access.conf`` (root's, 0644): the interpreter the client
  runs the gate with, and a ``[user:USER]`` section (the defaults are safe);
- a range of 65536 ids for USER in ``/etc/subuid`` and ``/etc/subgid``,
  also delegated to root, which maps them.

PYTHON (this interpreter, or ``--python``) and the lxactors it imports must
be root's and writable by root only, all the way up: whoever can change
that code is root.  ``--remove`` undoes it all, and destroys USER's
containers (``/var/lib/lxactors/users/UID``).
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import stat
import subprocess
import tempfile

__all__ = ["ACCESS_CONF", "setup_user", "remove_user", "unsafe_paths"]

ACCESS_CONF = "/etc/lxactors/access.conf"
SUDOERS_DIR = "/etc/sudoers.d"
_NAME = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
_CONF_HEAD = """\
# lxactors: who may use the privileged helper without being root (issue 16).
# Read by the helper (root) at each start; must belong to root, mode 0644.
# [defaults], then [group:NAME] and [user:NAME] sections (later ones win).
# Settings: allowed, users_dir, lxcpaths, templates, named, mount_sources,
# net_types, net_links, devices (';'-separated), seccomp_profiles; see
# docs/PRIVILEGE.md.
"""


def _sudoers_file(user: str) -> str:
    return os.path.join(SUDOERS_DIR, f"lxactors-{user}")


def unsafe_paths(python: str) -> list[str]:
    """What an unprivileged user could change of the gate's code (empty: nothing)."""
    probe = ("import lxactors, os, sys; print(os.path.dirname(lxactors.__file__)); "
             "print('\\n'.join(p for p in sys.path if p))")
    out = subprocess.run([python, "-I", "-B", "-c", probe], capture_output=True, text=True,
                         timeout=60, check=False,
                         env={"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"})
    if out.returncode != 0:
        return [f"{python} -I cannot import lxactors: {out.stderr.strip()[-300:]}"]
    package, *path = out.stdout.splitlines()
    bad = []
    for top in [python, os.path.realpath(python), package, *path]:
        here = os.path.abspath(top)
        while True:  # the file or dir and every parent
            bad += _unsafe(here)
            if here == "/":
                break
            here = os.path.dirname(here)
    for root, dirs, files in os.walk(package):
        for n in dirs + files:
            bad += _unsafe(os.path.join(root, n))
    return sorted(set(bad))


def _unsafe(path: str) -> list[str]:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return []
    writable = st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    if stat.S_ISLNK(st.st_mode):
        writable = 0
    if st.st_uid != 0 or writable:
        return [f"{path} (owner uid {st.st_uid}, mode {stat.S_IMODE(st.st_mode):o})"]
    return []


def _write_root_file(path: str, text: str, mode: int, check: list[str] | None = None) -> None:
    """Write *path* whole (a temporary file renamed into place), checked first."""
    d = os.path.dirname(path)
    os.makedirs(d, 0o755, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".lxactors-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, mode)
        if check:
            out = subprocess.run([*check, tmp], capture_output=True, text=True, check=False)
            if out.returncode != 0:
                raise SystemExit(f"setup-user: {' '.join(check)} refused {path}: "
                                 f"{(out.stdout + out.stderr).strip()}")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _access_conf(python: str | None, user: str, add: bool) -> None:
    try:
        with open(ACCESS_CONF, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        text = _CONF_HEAD
    if not re.search(r"(?m)^\[defaults\]\n", text):
        text = text.rstrip("\n") + "\n\n[defaults]\n"
    if python is not None:
        text = re.sub(r"(?m)^python *=.*\n", "", text)
        text = re.sub(r"(?m)^\[defaults\]\n", f"[defaults]\npython = {python}\n", text,
                      count=1)
    section = re.compile(rf"(?ms)^\[user:{re.escape(user)}\]\n.*?(?=^\[|\Z)")
    text = section.sub("", text)
    if add:
        text = text.rstrip("\n") + f"\n\n[user:{user}]\n"
    _write_root_file(ACCESS_CONF, text.rstrip("\n") + "\n", 0o644)


def setup_user(user: str, python: str) -> str:
    """Do it (see the module's docstring); return what was done, in words."""
    if not _NAME.fullmatch(user):
        raise SystemExit(f"setup-user: {user!r} is not a plain user name")
    pw = pwd.getpwnam(user)
    if pw.pw_uid == 0:
        raise SystemExit("setup-user: root needs no set-up")
    if shutil.which("sudo") is None or shutil.which("visudo") is None:
        raise SystemExit("setup-user: sudo is not installed (apt-get install sudo)")
    bad = unsafe_paths(python)
    if bad:
        raise SystemExit("setup-user: the gate's code must be root's and writable by root "
                         "only; these are not:\n  " + "\n  ".join(bad[:20]))
    from lxactors._launcher import GATE_ARGS
    from lxactors._userns import delegate

    line = f"{user} ALL=(root) NOPASSWD: {python} {' '.join(GATE_ARGS)}\n"
    _write_root_file(_sudoers_file(user),
                     "# lxactors setup-user: the privileged helper, nothing else.\n" + line,
                     0o440, ["visudo", "-cf"])
    _access_conf(python, user, add=True)
    idmap = delegate(user, pw.pw_uid)
    return (f"{user} may use lxactors: {_sudoers_file(user)}, [user:{user}] in {ACCESS_CONF}, "
            f"ids {idmap.uid}-{idmap.uid + idmap.count - 1} in /etc/subuid and /etc/subgid")


def remove_user(user: str) -> str:
    """Undo :func:`setup_user`, destroying the user's containers."""
    pw = pwd.getpwnam(user)
    from lxactors import LxcError, liblxc
    from lxactors._helper.access import Policy
    from lxactors._userns import undelegate

    try:
        users_dir = Policy.load(ACCESS_CONF).defaults.users_dir
    except (OSError, ValueError):
        users_dir = "/var/lib/lxactors/users"
    own = os.path.join(users_dir, str(pw.pw_uid))
    if os.path.isdir(own):
        for name in liblxc.list_active_containers(own):
            with liblxc.Container(name, own) as c:
                c.stop()
        # Clones before their bases (liblxc refuses to destroy a base with
        # snapshots); what still fails goes with the directory.
        for name in sorted(liblxc.list_defined_containers(own), key=_base_last):
            with liblxc.Container(name, own) as c:
                try:
                    c.destroy()
                except LxcError:
                    pass
        with open("/proc/self/mountinfo", encoding="utf-8") as f:
            mounted = [ln.split()[4] for ln in f if ln.split()[4].startswith(own + "/")]
        if mounted:
            raise SystemExit(f"setup-user: not removing {own}: {mounted[0]} is mounted")
        shutil.rmtree(own, ignore_errors=True)
    try:
        os.unlink(_sudoers_file(user))
    except FileNotFoundError:
        pass
    if os.path.exists(ACCESS_CONF):
        _access_conf(None, user, add=False)
    undelegate(user, pw.pw_uid)
    return f"{user} may no longer use lxactors"


def _base_last(name: str) -> tuple[bool, str]:
    return (name.startswith("lxactors-base"), name)
