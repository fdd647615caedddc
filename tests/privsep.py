"""Unprivileged mode's test set-up: a test user, a root-owned install, its undo.

The gate runs as root from code the test user cannot change, so the tests
make what an admin would: a root-owned venv under /usr/local/lib (a Python
every user can run, this venv's packages, lxactors with its extension, a
copy of the tests), then ``lxactors setup-user``.  :func:`teardown` undoes
``setup-user``, removes the user with its files and the install, and
checks that they are gone.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass

import lxactors

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.abspath(lxactors.__file__))
VER = f"{sys.version_info[0]}.{sys.version_info[1]}"
#: Root runs the install's Python without writing bytecode there (a __pycache__
#: made under a lax umask would make the install one the user could change).
_ROOT_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PYTHONDONTWRITEBYTECODE": "1"}


@dataclass(frozen=True)
class Install:
    user: str
    uid: int
    root: str  # /usr/local/lib/lxactors-test-PID
    python: str  # its venv's interpreter: the client's and the gate's

    @property
    def tree(self) -> str:
        """A readable copy of the tests (the user runs pytest there)."""
        return os.path.join(self.root, "tree")


def _base_python() -> str:
    """A Python of this version that every user may run (pyenv's may sit under /root)."""
    for cand in (os.path.realpath(sys.executable), f"/usr/bin/python{VER}"):
        out = subprocess.run(["runuser", "-u", "nobody", "--", cand, "-c",
                              "import sys; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True, check=False)
        if out.returncode == 0 and out.stdout.strip() == VER:
            return cand
    raise RuntimeError(f"no Python {VER} that every user can run")


def make_install(tag: str) -> tuple[str, str]:
    """(the install's directory, its interpreter): root's, mode 0755, read-only to others."""
    root = f"/usr/local/lib/lxactors-test-{tag}"
    shutil.rmtree(root, ignore_errors=True)
    os.mkdir(root, 0o755)
    venv = os.path.join(root, "venv")
    subprocess.run([_base_python(), "-m", "venv", "--without-pip", venv], check=True)
    site = os.path.join(venv, "lib", f"python{VER}", "site-packages")
    ours = sysconfig.get_paths()["purelib"]
    for name in os.listdir(ours):
        if name.startswith(("__editable__", "lxactors", "pip", "mypy", "_distutils", "distutils")):
            continue
        src = os.path.join(ours, name)
        dst = os.path.join(site, name)
        if os.path.isdir(src):
            shutil.copytree(src, dst, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
        elif not os.path.exists(dst):
            shutil.copy2(src, dst)
    shutil.copytree(SRC, os.path.join(site, "lxactors"),
                    ignore=shutil.ignore_patterns("__pycache__"))
    tree = os.path.join(root, "tree")
    os.mkdir(tree)
    shutil.copytree(HERE, os.path.join(tree, "tests"), ignore=shutil.ignore_patterns(
        "__pycache__", ".hypothesis"))
    shutil.copytree(os.path.join(os.path.dirname(HERE), "examples"),  # test_aio_tcpvm's server
                    os.path.join(tree, "examples"), ignore=shutil.ignore_patterns("__pycache__"))
    for dirpath, dirs, files in os.walk(root):
        for n in (dirpath, *[os.path.join(dirpath, f) for f in files + dirs]):
            if not os.path.islink(n):
                os.chmod(n, (os.lstat(n).st_mode | 0o444 | (0o111 if os.path.isdir(n) else 0))
                         & ~0o022)
    return root, os.path.join(venv, "bin", "python")


#: What the set-up made that the host did not have (removed by teardown).
_MADE: list[str] = []


def setup(tag: str | None = None) -> Install:
    """A fresh test user, allowed by ``lxactors setup-user`` to use the gate."""
    tag = tag or str(os.getpid())
    for path in ("/etc/lxactors/access.conf", "/etc/lxactors", "/var/lib/lxactors/users",
                 "/var/lib/lxactors", "/etc/sudoers.d"):
        if not os.path.exists(path):
            _MADE.append(path)
    user = f"lxactors-t{tag}"
    subprocess.run(["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
                    "--shell", "/usr/sbin/nologin", user], check=True)
    uid = pwd.getpwnam(user).pw_uid
    root = f"/usr/local/lib/lxactors-test-{tag}"
    inst = Install(user, uid, root, os.path.join(root, "venv", "bin", "python"))
    try:
        make_install(tag)
        out = subprocess.run([inst.python, "-m", "lxactors", "setup-user", user, "--python",
                              inst.python], capture_output=True, text=True, check=False,
                             env=_ROOT_ENV)
        if out.returncode != 0:
            raise RuntimeError(f"setup-user failed: {out.stdout}{out.stderr}")
    except BaseException:
        teardown(inst)  # the user and the install go, whatever failed
        raise
    return inst


def as_user(inst: Install, argv: list[str], timeout: float = 600,
            env: dict[str, str] | None = None, cwd: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run *argv* as the test user (HOME in a private temporary directory)."""
    base = {"HOME": "/tmp", "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1"}
    base.update(env or {})
    return subprocess.run(["runuser", "-u", inst.user, "--", "env", "-i",
                           *(f"{k}={v}" for k, v in base.items()), *argv],
                          capture_output=True, text=True, timeout=timeout, check=False,
                          cwd=cwd or inst.tree)


def _pids_of(uid: int) -> list[int]:
    pids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if os.stat(f"/proc/{d}").st_uid == uid:
                    pids.append(int(d))
            except OSError:
                pass
    return pids


def teardown(inst: Install) -> list[str]:
    """Undo :func:`setup`; return what is left behind (empty: nothing)."""
    out = subprocess.run([inst.python, "-m", "lxactors", "setup-user", "--remove", inst.user],
                         capture_output=True, text=True, check=False, env=_ROOT_ENV)
    left = [] if out.returncode == 0 else [f"setup-user --remove: {out.stderr.strip()[-500:]}"]
    for pid in _pids_of(inst.uid):  # the test user's processes: all started by the tests
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
    subprocess.run(["userdel", "--force", inst.user], capture_output=True, check=False)
    shutil.rmtree(inst.root, ignore_errors=True)
    try:
        pwd.getpwnam(inst.user)
        left.append(f"user {inst.user}")
    except KeyError:
        pass
    for path in (inst.root, f"/etc/sudoers.d/lxactors-{inst.user}",
                 f"/var/lib/lxactors/users/{inst.uid}", f"/tmp/lxactors-{inst.uid}",
                 f"/tmp/lxactors-markers-{inst.uid}"):
        if os.path.lexists(path):
            if path.startswith("/tmp/"):
                shutil.rmtree(path, ignore_errors=True)
                continue
            left.append(path)
    for f in ("/etc/subuid", "/etc/subgid"):
        with open(f, encoding="utf-8") as fh:
            if any(line.startswith(f"{inst.user}:") for line in fh):
                left.append(f"{inst.user} in {f}")
    with open("/etc/lxactors/access.conf", encoding="utf-8") as fh:
        if f"[user:{inst.user}]" in fh.read():
            left.append(f"[user:{inst.user}] in access.conf")
    for path in _MADE:  # files first, then the directories, if empty
        try:
            os.rmdir(path) if os.path.isdir(path) else os.unlink(path)
        except OSError:
            left.append(path)
    _MADE.clear()
    return left


if __name__ == "__main__":  # manual trials: python tests/privsep.py setup|teardown TAG
    tag = sys.argv[2] if len(sys.argv) > 2 else "manual"
    if sys.argv[1] == "setup":
        print(setup(tag))
    else:
        inst = Install(f"lxactors-t{tag}", pwd.getpwnam(f"lxactors-t{tag}").pw_uid,
                       f"/usr/local/lib/lxactors-test-{tag}",
                       f"/usr/local/lib/lxactors-test-{tag}/venv/bin/python")
        print(teardown(inst))
