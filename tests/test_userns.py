"""User namespaces: root in the container is an unprivileged uid on the host."""

from __future__ import annotations

import os
import re
import shutil
import stat
from collections.abc import Iterator
from typing import Any

import pytest

import lxactors
from lxactors import IdMap, LxcError, liblxc
from lxactors._userns import (
    DEFAULT_COUNT,
    resolve_userns,
    unreachable_dir,
)
from tests.util import host_uid, host_uids_in_pidns_of, read_console_until, remove_container, wait_for

# ---------------------------------------------------------------- the option


def test_forms_of_the_option() -> None:
    root = resolve_userns(True)
    assert root.count == DEFAULT_COUNT
    # True is root's range in /etc/subuid and /etc/subgid (delegated by the
    # first use if it was absent).
    for path, start in (("/etc/subuid", root.uid), ("/etc/subgid", root.gid)):
        with open(path, encoding="utf-8") as f:
            entries = [line.split(":") for line in f.read().split()]
        assert any(who in ("root", "0") and int(first) == start and int(n) >= DEFAULT_COUNT
                   for who, first, n in entries), entries
    assert resolve_userns(False) is None and resolve_userns(None) is None
    r = range(root.uid, root.uid + 1000)
    assert resolve_userns(r) == IdMap(root.uid, root.uid, 1000)
    assert resolve_userns((root.uid, 1000)) == IdMap(root.uid, root.uid, 1000)
    assert resolve_userns(root) is root
    assert root.config == [("lxc.idmap", f"u 0 {root.uid} {DEFAULT_COUNT}"),
                           ("lxc.idmap", f"g 0 {root.gid} {DEFAULT_COUNT}")]
    assert root.host_uid(1000) == root.uid + 1000
    with pytest.raises(ValueError, match="outside"):
        root.host_uid(DEFAULT_COUNT)


@pytest.mark.parametrize("value, error, match", [
    ("yes", TypeError, "userns must be True, False, a range"),
    (1.5, TypeError, "userns must be"),
    ([100000, 65536], TypeError, "userns must be"),
    (("100000", 65536), TypeError, "uid must be an int"),
    (range(0, 65536), ValueError, "must not include the host's root"),
    ((1, 0), ValueError, "at least one id"),
    (range(100000, 165536, 2), ValueError, "step 1"),
    ((2**32 - 10, 100), ValueError, "largest id"),
    (range(7_000_000, 7_065_536), ValueError,
     r"not delegated to root in /etc/subuid; add the line 'root:7000000:65536'"),
])
def test_bad_values_are_refused_before_anything_is_made(
        value: object, error: type[Exception], match: str, lxcpath: str) -> None:
    before = set(liblxc.list_all_containers(lxcpath))
    with pytest.raises(error, match=match):
        lxactors.spawn(path=lxcpath, userns=value)
    assert set(liblxc.list_all_containers(lxcpath)) == before


def test_own_idmap_items(lxcpath: str) -> None:
    from lxactors._options import parse_options

    own = [("lxc.idmap", "u 0 100000 10"), ("lxc.idmap", "g 0 100000 10")]
    # A named container (or one made by a template) takes the user's own mapping...
    assert parse_options("named", {"config": own})[2].userns is None
    assert parse_options("", {"config": own, "create": {"template": "busybox"}})[2].userns is None
    assert parse_options("", {})[2].userns == resolve_userns(True)
    assert parse_options("named", {})[2].userns is None
    # ...not together with userns; and an unnamed clone's base is made for one mapping.
    with pytest.raises(ValueError, match=r"either as userns or as lxc\.idmap"):
        lxactors.spawn("named", path=lxcpath, userns=True, config=own)
    with pytest.raises(ValueError, match=r"choose the mapping with userns, not lxc\.idmap"):
        lxactors.spawn(path=lxcpath, config=["lxc.idmap"])


def test_a_loaded_mapping_that_differs_is_refused(spawn: Any, lxcpath: str,
                                                  tmp_path: Any) -> None:
    conf = tmp_path / "other-map.conf"
    conf.write_text("lxc.idmap = u 0 100000 1000\nlxc.idmap = g 0 100000 1000\n")
    before = set(liblxc.list_all_containers(lxcpath))
    with pytest.raises(LxcError, match=r"spawn: the config steps changed the container's id "
                                       r"mapping .*choose the mapping with userns"):
        spawn(config=[("load", str(conf))])
    assert set(liblxc.list_all_containers(lxcpath)) == before


def test_an_undelegated_mapping_is_still_refused_by_newuidmap(make_container: Any) -> None:
    """A mapping from config items is not written directly unless root owns the range."""
    c = make_container()
    c.set_config_item("lxc.idmap", "u 0 7000000 65536")
    c.set_config_item("lxc.idmap", "g 0 7000000 65536")
    with pytest.raises(LxcError) as err:
        c.start()
    assert "newuidmap" in "\n".join(err.value.log) and "not allowed" in "\n".join(err.value.log)
    assert not c.is_running()


def test_a_closed_lxcpath_is_named_before_anything_is_made(lxcpath: str) -> None:
    closed = os.path.join(lxcpath, "closed")
    os.mkdir(closed, 0o700)
    try:
        inner = os.path.join(closed, "lxcpath")
        assert unreachable_dir(inner, resolve_userns(True)) == closed
        with pytest.raises(LxcError, match=rf"spawn: {closed} is closed to the container's root "
                                           rf"\(host uid \d+\).*chmod o\+x {closed}"):
            lxactors.spawn(path=inner)
        assert not os.path.exists(inner)
        os.chmod(closed, 0o711)
        assert unreachable_dir(inner, resolve_userns(True)) is None
    finally:
        shutil.rmtree(closed)


# ---------------------------------------------------------------- real containers


def _init_pid(ref: lxactors.ContainerRef) -> int:
    pid = lxactors.container(ref).init_pid()
    assert pid is not None
    return pid


def _upper(ref: lxactors.ContainerRef) -> str:
    return str(lxactors.container(ref).get_config_item("lxc.rootfs.path").rsplit(":", 1)[1])


def _run(ref: lxactors.ContainerRef, script: str) -> str:
    """Run *script* in the console's shell; its output (between markers)."""
    lxactors.send(ref, f"\necho BEGIN-$((1+1)); {script}; echo END-$((2+2))\n".encode())
    out = read_console_until(ref, b"END-4", timeout=20).decode(errors="replace")
    body = out[out.rindex("BEGIN-2"):out.rindex("END-4")]
    return body.replace("\r", "")


def test_init_runs_on_the_host_as_the_mapped_uid(spawn: Any) -> None:
    idmap = resolve_userns(True)
    ref = spawn()
    init = _init_pid(ref)
    assert host_uid(init) == idmap.uid
    with open(f"/proc/{init}/uid_map") as f:
        assert f.read().split() == ["0", str(idmap.uid), str(idmap.count)]
    with open(f"/proc/{init}/gid_map") as f:
        assert f.read().split() == ["0", str(idmap.gid), str(idmap.count)]
    # Every process in it (init, the shell on the console) is an unprivileged host uid.
    def init_and_shell() -> dict[int, int] | None:
        uids = host_uids_in_pidns_of(init)
        return uids if len(uids) >= 2 else None

    uids = wait_for(init_and_shell, what="init and the console's shell")
    assert isinstance(uids, dict) and init in uids
    assert all(idmap.uid <= u < idmap.uid + idmap.count for u in uids.values())
    # ...while inside it is root.
    assert re.search(r"uid=0\(root\) gid=0\(root\)", _run(ref, "id"))


def test_without_userns_init_is_the_hosts_root(spawn: Any) -> None:
    ref = spawn(userns=False)
    init = _init_pid(ref)
    assert host_uid(init) == 0
    assert os.readlink(f"/proc/{init}/ns/user") == os.readlink("/proc/self/ns/user")


def test_files_made_by_roots_inside_are_owned_by_mapped_ids(spawn: Any) -> None:
    idmap = resolve_userns(True)
    ref = spawn()
    _run(ref, "touch /root/by-root; mkdir /root/by-user; chown 1000:2000 /root/by-user")
    st = os.stat(os.path.join(_upper(ref), "root", "by-root"))
    assert (st.st_uid, st.st_gid) == (idmap.uid, idmap.gid)
    st = os.stat(os.path.join(_upper(ref), "root", "by-user"))
    assert (st.st_uid, st.st_gid) == (idmap.uid + 1000, idmap.gid + 2000)


def test_chroot_specs_keep_the_base_directories_as_they_were(spawn: Any) -> None:
    idmap = resolve_userns(True)
    ref = spawn(chroot={"file": [("/tmp/new/f", "x")], "dir": ["/var"]})
    out = _run(ref, "stat -c '%a %u %n' /tmp /tmp/new /tmp/new/f /var")
    # /tmp and /var come from the base: the upper layer's copies keep their
    # mode and owner; what the specs made belongs to root inside.
    assert "1777 0 /tmp\n" in out and "755 0 /tmp/new\n" in out, out
    assert "644 0 /tmp/new/f\n" in out and "755 0 /var\n" in out, out
    st = os.lstat(os.path.join(_upper(ref), "tmp"))
    assert (stat.S_IMODE(st.st_mode), st.st_uid) == (0o1777, idmap.uid)


def test_chroot_specs_belong_to_root_inside(spawn: Any) -> None:
    idmap = resolve_userns(True)
    ref = spawn(chroot={"dir": ["/srv/a/b"], "file": [("/srv/a/f", "made by a spec\n")]})
    for rel in ("srv", "srv/a", "srv/a/b", "srv/a/f"):
        st = os.lstat(os.path.join(_upper(ref), rel))
        assert (st.st_uid, st.st_gid) == (idmap.uid, idmap.gid), rel
    out = _run(ref, "ls -ln /srv/a; touch /srv/a/b/new && echo wrote-$((3*3))")
    # Root inside owns them (not nobody, 65534) and can write there.
    assert re.search(r"drwxr-xr-x\s+\d+\s+0\s+0\s.*\bb\n", out), out
    assert re.search(r"-rw-r--r--\s+1\s+0\s+0\s.*\bf\n", out), out
    assert "wrote-9" in out


@pytest.fixture
def host_dirs(lxcpath: str) -> Iterator[tuple[str, str]]:
    """Two host directories owned by the host's root: one to bind read-only, one read-write."""
    made = []
    for kind in ("ro", "rw"):
        d = os.path.join(lxcpath, f"host-{kind}-{os.getpid()}")
        os.mkdir(d, 0o755)
        with open(os.path.join(d, "kept"), "w") as f:
            f.write("host data\n")
        made.append(d)
    yield made[0], made[1]
    for d in made:
        shutil.rmtree(d)


def _binds(ro: str, rw: str) -> list[tuple[str, str]]:
    return [("lxc.mount.entry", f"{ro} mnt/ro none ro,bind,create=dir 0 0"),
            ("lxc.mount.entry", f"{rw} mnt/rw none rw,bind,create=dir 0 0")]


ATTACK = ("touch /mnt/ro/x 2>&1; mount -o remount,bind,rw /mnt/ro 2>&1; echo remount-rc=$?;"
          " touch /mnt/ro/y 2>&1; echo junk > /mnt/ro/kept 2>&1; touch /mnt/rw/z 2>&1;"
          " echo rw-rc=$?")


def test_root_inside_cannot_write_or_remount_host_binds(spawn: Any,
                                                        host_dirs: tuple[str, str]) -> None:
    ro, rw = host_dirs
    ref = spawn(config=_binds(ro, rw))
    out = _run(ref, ATTACK)
    # The bind was made inside the namespace, so its root may remount it
    # read-write; what stops the writes is that the files belong to the
    # host's root, who is nobody to the container (see the README).
    assert "Read-only file system" in out, out
    assert out.count("Permission denied") == 3 and "rw-rc=1" in out, out
    for d in (ro, rw):
        assert os.listdir(d) == ["kept"]
        with open(os.path.join(d, "kept")) as f:
            assert f.read() == "host data\n"


def test_without_userns_the_same_attack_succeeds(spawn: Any, host_dirs: tuple[str, str]) -> None:
    """What the namespace prevents above: the host's root inside breaks out of both."""
    ro, rw = host_dirs
    ref = spawn(userns=False, config=_binds(ro, rw))
    out = _run(ref, ATTACK)
    assert "remount-rc=0" in out and "rw-rc=0" in out, out
    assert sorted(os.listdir(ro)) == ["kept", "y"] and sorted(os.listdir(rw)) == ["kept", "z"]


def test_root_inside_cannot_load_kernel_modules(spawn: Any) -> None:
    ref = spawn(config=["lxc.cap.drop"])  # keep every capability the namespace allows
    init = _init_pid(ref)
    # CAP_SYS_MODULE is only ever checked in the host's user namespace, and
    # the container's root has no capability there.
    assert os.readlink(f"/proc/{init}/ns/user") != os.readlink("/proc/self/ns/user")
    out = _run(ref, "grep CapEff /proc/self/status; echo not-a-module > /tmp/m.ko;"
                    " insmod /tmp/m.ko 2>&1; echo insmod-rc=$?")
    # Inside, root holds the capability in its own namespace, and still fails.
    cap_eff = int(re.search(r"CapEff:\s+([0-9a-f]+)", out).group(1), 16)  # type: ignore[union-attr]
    assert cap_eff & (1 << 16), out  # CAP_SYS_MODULE
    # busybox exits with the errno: EPERM (1); or, on kernels built without
    # modules (like this CI machine's), ENOSYS (38), for the host's root too.
    assert re.search(r"insmod-rc=(1|38)\n", out), out


def test_named_containers_can_ask_for_it(spawn: Any, lxcpath: str) -> None:
    idmap = resolve_userns(True)
    name = f"userns-named-{os.getpid()}"
    try:
        ref = spawn(name, userns=True, create={"template": "busybox"})
        assert host_uid(_init_pid(ref)) == idmap.uid
        assert "uid=0(root)" in _run(ref, "id")
        # The template ran in the namespace: the rootfs belongs to the mapped root.
        assert os.stat(os.path.join(lxcpath, name, "rootfs", "bin")).st_uid == idmap.uid
        lxactors.exit(ref, "normal")
        # Spawned again (from its saved config), it is in the namespace again.
        ref = spawn(name, userns=True)
        assert host_uid(_init_pid(ref)) == idmap.uid
        lxactors.exit(ref, "normal")
    finally:
        remove_container(name, lxcpath)


def test_an_existing_container_is_not_remapped(spawn: Any, lxcpath: str,
                                               make_container: Any) -> None:
    c = make_container(start=True)
    pid = c.init_pid()
    with pytest.raises(LxcError, match=rf"container '{c.name}': spawn: userns asks for ids "
                                       r"\d+-65536, but the container was made without a user "
                                       "namespace"):
        spawn(c.name, userns=True)
    # Refused, it is left as it was: running, same init, no idmap.
    assert c.is_running() and c.init_pid() == pid
    assert c.get_config_item("lxc.idmap") == ""


def _id_map_writes(ref: lxactors.ContainerRef) -> list[str]:
    return [ln.rsplit(" - ", 1)[-1] for ln in lxactors.container(ref).log_lines_since(0)
            if "lxc_map_ids" in ln and "rote mapping" in ln]


def test_id_maps_are_written_without_newuidmap(spawn: Any) -> None:
    """liblxc would exec newuidmap and newgidmap per start (a sixth of a spawn)."""
    idmap = resolve_userns(True)
    ref = spawn(verbose=5)  # TRACE: liblxc logs how it wrote the maps
    assert host_uid(_init_pid(ref)) == idmap.uid
    writes = _id_map_writes(ref)
    assert f'Wrote mapping "0 {idmap.uid} {idmap.count}' in writes, writes
    assert not any("newuidmap" in w or "newgidmap" in w for w in writes), writes


def test_hooks_keep_their_path_and_newuidmap(spawn: Any, lxcpath: str) -> None:
    idmap = resolve_userns(True)
    mark = os.path.join(lxcpath, f"hook-ran-{os.getpid()}")
    # The hook finds `touch` on PATH (/usr/bin, where newuidmap lives too).
    ref = spawn(verbose=5, config=[("lxc.hook.pre-start", f"/bin/sh -c 'touch {mark}'")])
    try:
        assert os.path.exists(mark)
        writes = _id_map_writes(ref)
        assert f'newuidmap wrote mapping "newuidmap {_init_pid(ref)} 0 {idmap.uid} ' \
            f'{idmap.count}"' in writes, writes
        assert host_uid(_init_pid(ref)) == idmap.uid
    finally:
        if os.path.exists(mark):
            os.unlink(mark)
