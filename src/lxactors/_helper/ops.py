"""Every op but start and attach, and the table the server dispatches on.

Each op runs in the worker forked for its request, on a handle of its own
(:class:`~lxactors._helper.handle.Handle`); what it returns is the reply.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from typing import Any

from lxactors._ffi import ffi, lib
from lxactors._helper.attach import op_attach
from lxactors._helper.cgroups import remove_stale_cgroups
from lxactors._helper.handle import Handle, c_argv, c_str, unlink_symlinked_rootfs
from lxactors._helper.layer import op_bound_layer, release_layer
from lxactors._helper.protocol import (
    AddDeviceNode,
    Attach,
    AttachInterface,
    BoundLayer,
    Checkpoint,
    Clone,
    CloneStart,
    Console,
    Create,
    Destroy,
    DestroyWithSnapshots,
    DetachInterface,
    HandleRequest,
    Migrate,
    Mount,
    RemoveDeviceNode,
    RemoveStaleCgroups,
    Rename,
    Request,
    Restore,
    Snapshot,
    SnapshotDestroy,
    SnapshotDestroyAll,
    SnapshotRestore,
    Start,
    Umount,
)
from lxactors._helper.start import op_clone_start, op_start

__all__ = ["OPS", "Op"]

#: An op: (its request, the fds sent along, the reply pipe) -> the reply's value.
Op = Callable[[Any, list[int], int], object]


def op_create(req: Create, fds: list[int], reply: int) -> object:
    h = Handle(req)
    c = h.c
    specs = ffi.NULL
    keep: list[Any] = []
    if req.specs:
        specs = ffi.new("struct bdev_specs *")
        for field, value in req.specs.items():
            if field == "fssize":
                specs.fssize = value
            elif field in ("fstype", "dir"):
                keep.append(ffi.new("char[]", c_str(str(value))))
                setattr(specs, field, keep[-1])
            else:
                group, sub = field.split(".")
                keep.append(ffi.new("char[]", c_str(str(value))))
                setattr(getattr(specs, group), sub, keep[-1])
    argv, _k = c_argv(req.argv)
    # The template's own output goes to a file, shown if it fails.
    out = tempfile.TemporaryFile()
    saved = os.dup(1), os.dup(2)
    os.dup2(out.fileno(), 1)
    os.dup2(out.fileno(), 2)
    try:
        ok = c.create(c, c_str(req.template), c_str(req.bdevtype), specs, req.flags, argv)
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
    if not ok:
        err = h.fail("create failed")
        out.seek(0)
        text = out.read()[-4000:].decode("utf-8", "replace").splitlines()
        err.log.extend(f"template: {ln}" for ln in text if ln.strip())
        raise err
    cfg = h.config_file()
    if cfg:
        h.strip_log_line(cfg)
    return None


def op_clone(req: Clone, fds: list[int], reply: int) -> object:
    h = Handle(req)
    c = h.c
    hooks, _k = c_argv(req.hookargs)
    c2 = c.clone(c, c_str(req.newname), c_str(req.lxcpath), req.flags, c_str(req.bdevtype),
                 c_str(req.bdevdata), req.newsize, hooks)
    if c2 == ffi.NULL:
        raise h.fail("clone failed")
    try:
        p = c2.config_file_name(c2)
        cfg = ffi.string(p).decode("utf-8", "surrogateescape")
        lib.free(p)
        h.strip_log_line(cfg)
    finally:
        lib.lxc_container_put(c2)
    return None


def op_rename(req: Rename, fds: list[int], reply: int) -> object:
    h = Handle(req)
    if not h.c.rename(h.c, c_str(req.newname)):
        raise h.fail("rename failed")
    # liblxc leaves the handle's name and config path on the old container.
    path = ffi.string(h.c.config_path).decode("utf-8", "surrogateescape")
    h.strip_log_line(os.path.join(path, req.newname, "config"))
    return None


def _simple(method: str, *names: str) -> Op:
    """An op that calls one bool-returning member with the request's string fields."""

    def op(req: HandleRequest, fds: list[int], reply: int) -> object:
        h = Handle(req)
        fn = getattr(h.c, method)
        if not fn(h.c, *[c_str(getattr(req, n)) for n in names]):
            raise h.fail(f"{method} failed")
        return None

    return op


def op_destroy(req: HandleRequest, fds: list[int], reply: int) -> object:
    """destroy, or destroy_with_snapshots: the op names the member."""
    method = req.op
    h = Handle(req)
    release_layer(h.c)
    unlink_symlinked_rootfs(h.c)
    if not getattr(h.c, method)(h.c):
        raise h.fail(f"{method} failed")
    return None


def op_mount(req: Mount, fds: list[int], reply: int) -> object:
    h = Handle(req)
    mnt = ffi.new("struct lxc_mount *")
    mnt.version = lib.LXC_MOUNT_API_V1
    data = ffi.NULL if req.data is None else ffi.new("char[]", c_str(req.data))
    ret = h.c.mount(h.c, c_str(req.source), c_str(req.target), c_str(req.fstype), req.flags, data,
                    mnt)
    if ret < 0:
        raise h.fail(f"mount failed ({os.strerror(-ret) if ret < -1 else ret})")
    return None


def op_umount(req: Umount, fds: list[int], reply: int) -> object:
    h = Handle(req)
    mnt = ffi.new("struct lxc_mount *")
    mnt.version = lib.LXC_MOUNT_API_V1
    ret = h.c.umount(h.c, c_str(req.target), req.flags, mnt)
    if ret < 0:
        raise h.fail(f"umount failed ({os.strerror(-ret) if ret < -1 else ret})")
    return None


def op_snapshot(req: Snapshot, fds: list[int], reply: int) -> object:
    h = Handle(req)
    n = h.c.snapshot(h.c, c_str(req.commentfile))
    if n < 0:
        raise h.fail("snapshot failed")
    path = ffi.string(h.c.config_path).decode("utf-8", "surrogateescape")
    h.strip_log_line(os.path.join(path, h.name, "snaps", f"snap{n}", "config"))
    return n


def op_checkpoint(req: Checkpoint, fds: list[int], reply: int) -> object:
    h = Handle(req)
    d = ffi.new("char[]", c_str(req.directory))
    if not h.c.checkpoint(h.c, d, req.stop, req.verbose):
        raise h.fail("checkpoint failed")
    return None


def op_restore(req: Restore, fds: list[int], reply: int) -> object:
    h = Handle(req)
    d = ffi.new("char[]", c_str(req.directory))
    if not h.c.restore(h.c, d, req.verbose):
        raise h.fail("restore failed")
    return None


def op_migrate(req: Migrate, fds: list[int], reply: int) -> object:
    h = Handle(req)
    opts = ffi.new("struct migrate_opts *")
    keep = []
    for field in ("directory", "predump_dir", "pageserver_address", "pageserver_port",
                  "action_script"):
        value = getattr(req, field)
        if value is not None:
            keep.append(ffi.new("char[]", c_str(value)))
            setattr(opts, field, keep[-1])
    for field in ("verbose", "stop", "preserves_inodes", "disable_skip_in_flight"):
        setattr(opts, field, bool(getattr(req, field)))
    opts.ghost_limit = req.ghost_limit
    opts.features_to_check = req.features_to_check
    ret = h.c.migrate(h.c, req.cmd, opts, ffi.sizeof("struct migrate_opts"))
    if ret != 0:
        raise h.fail(f"migrate failed ({ret})")
    return 0


def op_console(req: Console, fds: list[int], reply: int) -> object:
    h = Handle(req)
    stdin, stdout, stderr = fds[:3]
    ret = h.c.console(h.c, req.ttynum, stdin, stdout, stderr, req.escape)
    if ret != 0:
        raise h.fail("console failed")
    return None


def op_remove_stale_cgroups(req: RemoveStaleCgroups, fds: list[int], reply: int) -> object:
    """Remove the cgroups of a stopped container whose monitor was killed.

    A monitor removes ``lxc.payload.<name>`` and ``lxc.monitor.<name>`` as
    its last act; a SIGKILLed one leaves both, in every hierarchy.  Only
    empty ones of a container that is not running are removed.  Returns how
    many payload directories there were: none once a monitor ended normally,
    so the caller can tell a killed monitor from a normal end.
    """
    h = Handle(req)
    if h.c.is_running(h.c):
        return 0
    return remove_stale_cgroups(h.name)


OPS: dict[type[Request], Op] = {
    Start: op_start,
    CloneStart: op_clone_start,
    Create: op_create,
    Clone: op_clone,
    Rename: op_rename,
    Destroy: op_destroy,
    DestroyWithSnapshots: op_destroy,
    Snapshot: op_snapshot,
    SnapshotRestore: _simple("snapshot_restore", "snapname", "newname"),
    SnapshotDestroy: _simple("snapshot_destroy", "snapname"),
    SnapshotDestroyAll: _simple("snapshot_destroy_all"),
    AddDeviceNode: _simple("add_device_node", "src_path", "dest_path"),
    RemoveDeviceNode: _simple("remove_device_node", "src_path", "dest_path"),
    AttachInterface: _simple("attach_interface", "dev", "dst_dev"),
    DetachInterface: _simple("detach_interface", "dev", "dst_dev"),
    Mount: op_mount,
    Umount: op_umount,
    Checkpoint: op_checkpoint,
    Restore: op_restore,
    Migrate: op_migrate,
    Console: op_console,
    Attach: op_attach,
    RemoveStaleCgroups: op_remove_stale_cgroups,
    BoundLayer: op_bound_layer,
}
