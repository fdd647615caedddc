"""Unprivileged mode end to end (issue 16): a test user, sudo, the gate, access.conf.

The module's fixture makes a system user and a root-owned install, runs
``lxactors setup-user`` for it, and after the tests undoes it all and checks
that nothing is left (user, sudoers drop-in, access.conf section, subids,
its lxcpath).  The unprivileged suite (``tests/unprivileged``) runs as that
user, and so do tcpvm's, imc's, the command's and ``connect``'s own modules
(:data:`AS_USER_MODULES`); the rest checks, from root's side, what the user
must not reach.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
import textwrap
from collections.abc import Callable, Iterator

import pytest

from lxactors import liblxc
from lxactors.admin import unsafe_paths
from tests import privsep
from tests.util import made_bridge

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("sudo") is None,
                                reason="makes a user and a sudoers drop-in: needs root and sudo")


@pytest.fixture(scope="module")
def install() -> Iterator[privsep.Install]:
    inst = privsep.setup()
    try:
        yield inst
    finally:
        left = privsep.teardown(inst)
        assert left == [], f"left behind: {left}"


def _script(inst: privsep.Install, code: str) -> subprocess.CompletedProcess[str]:
    return privsep.as_user(inst, [inst.python, "-c", textwrap.dedent(code)], timeout=300)


def test_the_unprivileged_suite_passes_as_an_ordinary_user(install: privsep.Install) -> None:
    out = privsep.as_user(install, [install.python, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                    "-s", "tests/unprivileged"], timeout=1200)
    print(out.stdout[-4000:], out.stderr[-2000:])
    assert out.returncode == 0
    m = re.search(r"(\d+) passed", out.stdout)
    assert m and int(m.group(1)) >= 60 and "failed" not in out.stdout.splitlines()[-1]


@contextlib.contextmanager
def access_conf_edited(install: privsep.Install, settings: str) -> Iterator[None]:
    """access.conf with *settings* lines first in the test user's section (or, empty,
    without that section's heading: the user unnamed); put back after."""
    conf = "/etc/lxactors/access.conf"
    with open(conf) as f:
        before = f.read()
    heading = f"[user:{install.user}]\n"
    assert heading in before
    with open(conf, "w") as f:
        f.write(before.replace(heading, heading + settings if settings else ""))
    try:
        yield
    finally:
        with open(conf, "w") as f:
            f.write(before)


#: Root's own test modules that run as the test user too, through the gate (their
#: ``lxcpath`` fixture is then the user's; what only root may do is checked refused).
AS_USER_MODULES = ("tests/test_tcpvm.py", "tests/test_tcpvm_limits.py", "tests/test_tcpvm_pool.py",
                   "tests/test_aio_tcpvm.py", "tests/test_imc.py", "tests/test_imc_pool.py",
                   "tests/test_cli.py", "tests/test_connect.py")


def test_tcpvm_and_imc_pass_as_an_ordinary_user(install: privsep.Install) -> None:
    # The network tests' bridge: the user cannot make one; root does, and grants it.
    with made_bridge("lxapsv") as bridge, access_conf_edited(install, f"net_links = {bridge}\n"):
        out = privsep.as_user(install, [install.python, "-m", "pytest", "-q", "-p",
                                        "no:cacheprovider", "-rs", *AS_USER_MODULES],
                              env={"LXACTORS_TEST_AS_USER": "1", "LXACTORS_TEST_BRIDGE": bridge},
                              timeout=1200)
    print(out.stdout, out.stderr[-2000:])
    assert out.returncode == 0
    last = out.stdout.splitlines()[-1]
    assert "passed" in last and not re.search(r"\d+ (failed|errors?)\b", last), last
    # What the user could not look at (its lxcpath is root's): no container's directory
    # outlived it (the modules' fixture destroyed what was defined at the end).
    assert os.listdir(f"/var/lib/lxactors/users/{install.uid}") == []
    # tcpvm's and imc's markers (the user's own, for ls) went with their containers.
    markers = f"/tmp/lxactors-markers-{install.uid}"
    assert os.stat(markers).st_uid == install.uid and os.listdir(markers) == []


def test_the_sudoers_line_names_one_root_owned_command(install: privsep.Install) -> None:
    path = f"/etc/sudoers.d/lxactors-{install.user}"
    st = os.stat(path)
    assert (st.st_uid, st.st_mode & 0o777) == (0, 0o440)
    with open(path) as f:
        lines = [ln for ln in f.read().splitlines() if ln and not ln.startswith("#")]
    assert lines == [f"{install.user} ALL=(root) NOPASSWD: {install.python} -I -m "
                     "lxactors._helper.gate"]
    assert subprocess.run(["visudo", "-cf", path], capture_output=True).returncode == 0
    assert unsafe_paths(install.python) == []
    # sudo gives the user that command only, with no other arguments
    out = privsep.as_user(install, ["sudo", "-n", install.python, "-c", "print(1)"])
    assert out.returncode != 0 and "1" not in out.stdout


def test_an_install_the_user_could_change_is_refused(install: privsep.Install) -> None:
    code = os.path.join(install.root, "venv", "lib", f"python{privsep.VER}", "site-packages",
                        "lxactors", "_helper", "gate.py")
    os.chmod(code, 0o666)
    try:
        assert any(b.startswith(code + " ") for b in unsafe_paths(install.python))
        out = subprocess.run([install.python, "-m", "lxactors", "setup-user", install.user,
                              "--python", install.python], capture_output=True, text=True,
                             env=privsep._ROOT_ENV)
        assert out.returncode != 0 and code in out.stderr
    finally:
        os.chmod(code, 0o644)
    assert unsafe_paths(install.python) == []


def test_roots_containers_are_out_of_reach(install: privsep.Install, lxcpath: str,
                                           make_container: Callable[..., liblxc.Container]) -> None:
    c = make_container()
    c.start()
    out = _script(install, f"""
        from lxactors import AccessRefused, liblxc
        from lxactors._helperclient import helper
        from lxactors._helper import wire
        for attempt in (lambda: liblxc.Container({c.name!r}, {lxcpath!r}).stop(),
                        lambda: liblxc.list_active_containers({lxcpath!r}),
                        lambda: helper().register({lxcpath!r}, {c.name!r}, "temporary")):
            try:
                attempt()
                print("ALLOWED")
            except AccessRefused as exc:
                print("refused", exc)
        """)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert sum(ln.startswith("refused ") for ln in lines) == 3 and "ALLOWED" not in out.stdout
    assert "rule lxcpath" in out.stdout
    assert c.is_running() and c.is_defined()
    c.stop()


@pytest.fixture
def shared(install: privsep.Install) -> Iterator[str]:
    """A shared lxcpath granted to the test user in access.conf (and taken back)."""
    path = tempfile.mkdtemp(prefix="lxactors-shared-", dir="/var/tmp")
    os.chmod(path, 0o711)
    try:
        with access_conf_edited(install, f"lxcpaths = {path}\n"):
            yield path
    finally:
        for name in liblxc.list_defined_containers(path):
            with liblxc.Container(name, path) as c:
                if c.is_running():
                    c.stop()
                c.destroy()
        shutil.rmtree(path, ignore_errors=True)


def test_in_a_shared_lxcpath_only_the_users_own_containers(install: privsep.Install,
                                                            shared: str) -> None:
    with liblxc.Container("roots", shared) as c:  # root's, in the shared path
        c.set_config_item("lxc.uts.name", "roots")
        c.save_config()
    out = _script(install, f"""
        from lxactors import AccessRefused, liblxc
        from lxactors._userns import own_idmap
        c = liblxc.Container("roots", {shared!r})
        for attempt in (c.destroy, lambda: c.set_config_item("lxc.uts.name", "mine"), c.start,
                        lambda: c.attach_run_wait(["id"]), lambda: c.rename("stolen")):
            try:
                attempt()
                print("ALLOWED")
            except AccessRefused as exc:
                print("refused", exc)
        m = liblxc.Container("mine", {shared!r})
        for k, v in own_idmap().config:
            m.set_config_item(k, v)
        m.create(None)
        print("made", m.is_defined())
        """)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("rule owner") == 5 and "ALLOWED" not in out.stdout
    assert "made True" in out.stdout
    with open(os.path.join(shared, "mine", "lxactors-owner")) as f:
        assert f.read().strip() == str(install.uid)
    with liblxc.Container("roots", shared) as c:
        assert c.is_defined() and c.get_config_item("lxc.uts.name") == "roots"


def test_a_user_without_a_section_is_refused(install: privsep.Install) -> None:
    with access_conf_edited(install, ""):
        out = _script(install, """
            from lxactors import AccessRefused, liblxc
            try:
                liblxc.Container("x")
            except AccessRefused as exc:
                print("refused", exc)
            """)
    assert "refused" in out.stdout and "does not let" in out.stdout, out.stdout + out.stderr
