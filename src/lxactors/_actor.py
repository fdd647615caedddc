"""``ContainerActor``: one pykka actor per container, owning its liblxc handle.

Every operation on a spawned container runs in its actor's thread, so calls
are serialized.  The actor boots the container (config, create or clone,
chroot, start, cgroup, console), learns from the console thread when init
exits, tells the owner, and applies the container-end half of the policy
table (the owner-death half is the supervisor's).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
import tty
from typing import Any

import pykka
from pykka.messages import ProxyCall

from lxactors import _base
from lxactors._configure import check_userns, configure, log_level
from lxactors._console import Console, hub
from lxactors._errors import LxcError, LxcTimeoutError
from lxactors._exits import exit_message, init_running
from lxactors._helperclient import Helper, helper
from lxactors._layer import bound_layer
from lxactors._limits import host_layout, limit_config
from lxactors._messages import ConsoleOutput, ContainerExited, ContainerRestarted, GaveUp
from lxactors._monitor import MonitorWatch
from lxactors._options import SpawnOptions
from lxactors._owner import Owner
from lxactors._policy import Intensity, Type, on_container_end, on_owner_exit
from lxactors._userns import reach_problem
from lxactors.liblxc import Container, config_item_is_supported, default_lxcpath

__all__ = ["ContainerActor", "ask"]

log = logging.getLogger("lxactors")

#: Seconds a spawn waits for a console tty its last holder is letting go.
CONSOLE_BUSY_WAIT = 2.0


def ask(actor: pykka.ActorRef[ContainerActor], method: str, *args: Any) -> pykka.Future[Any]:
    """Ask *actor* to run its *method*: pykka's own ProxyCall message, without
    building a proxy (pykka inspects the whole actor for each one: ~0.5 ms of
    a spawn's CPU).  A dead actor's future raises ActorDeadError."""
    return actor.ask(ProxyCall(attr_path=(method,), args=args, kwargs={}), block=False)


class ContainerActor(pykka.ThreadingActor):
    """The actor behind a :class:`~lxactors.ContainerRef`."""

    # Daemon: a forgotten container must not keep the interpreter alive; the
    # supervisor's exit hook applies the policies instead.
    use_daemon_thread = True

    def __init__(self, name: str, named: bool, options: SpawnOptions, owner: Owner,
                 type_: Type, intensity: Intensity, on_end: Any = None) -> None:
        super().__init__()
        self.name = name
        self.named = named
        self.options = options
        self.owner = owner
        self.type: Type = type_
        self.intensity = intensity
        self.handle: Container | None = None
        self.console: Console | None = None
        self.init_pid: int | None = None
        self._cancel_watch: Any = None
        self._monitor: MonitorWatch | None = None
        self._log_offset = 0
        self._exit_reason: str | None = None
        self._created = False
        self._started = False
        #: The helper told of this container before its spawn's one request.
        self._registered: Helper | None = None
        self._on_end = on_end
        self._helper = Helper(options.exec) if options.exec else None

    # ------------------------------------------------------------ boot

    def boot(self) -> str:
        """Open, configure, create or clone, start; return the lxcpath."""
        try:
            self._boot()
        except BaseException:
            self._cleanup_failed_boot()
            raise
        assert self.handle is not None
        return self.handle.get_config_path()

    def _boot(self) -> None:
        o = self.options
        ephemeral = not self.named and o.create is None
        if ephemeral:
            # A new random name: nothing to adopt or to check, no handle
            # needed before the clone's.
            h = None
            problem = reach_problem(o.path or default_lxcpath(), o.userns) if o.userns else None
        else:
            h = Container(self.name, o.path, helper=self._helper)
            self.handle = h
            if h.is_defined():
                check_userns(self.name, h, o.userns)
            problem = reach_problem(h.get_config_path(), o.userns) if o.userns else None
        if problem:
            raise LxcError(self.name, "spawn", problem)
        if h is not None and h.is_running():
            self._connect()
            return
        if h is None or not h.is_defined():
            if h is None and self._one_request():
                self._clone_and_start()
                return
            if h is None:
                self.handle = h = _base.ephemeral_clone(self.name, o.path, o.userns,
                                                        helper=self._helper)
                self._created = True
                configure(h, o)
                if o.limits is not None and o.limits.disk is not None:
                    bound_layer(h, o.limits.disk)
            else:
                configure(h, o)
                for key, value in o.userns.config if o.userns else ():
                    h.set_config_item(key, value)
                c = dict(o.create or {})
                template = c.get("template", "busybox")
                h.create(template, c.get("bdevtype"), c.get("bdevspec"),
                         c.get("flags", 0), c.get("argv", ()))
                self._created = True
                # The template wrote its own config: the user's items win.
                configure(h, o, clear=False)
                if template == "busybox":
                    _base.shell_on_tty1(h)
        else:
            configure(h, o)
        if o.userns is not None:
            check_userns(self.name, h, o.userns,
                         "the config steps changed the container's id mapping")
        if o.chroot:
            _base.make_in_rootfs(h, o.chroot)
        if o.limits is not None:
            # In the config, not set once running: liblxc writes them before
            # init runs, so nothing in the container starts unbounded.
            for key, value in limit_config(o.limits, host_layout()):
                h.set_config_item(key, value)
        self._start()

    def _one_request(self) -> bool:
        """Whether the ephemeral clone and its start can be one helper request:
        nothing to do between them but set config items (no chroot files, no
        loaded or cleared config, no id mapping changed, a daemonized start)."""
        o = self.options
        # Unprivileged, the gate authorizes each step (it has no such request);
        # a disk limit mounts the clone's layer between clone and start.
        # Limits are set key by key (cgroup keys liblxc's key check does not
        # know), as are keys that check cannot vouch for (lxc.net.N.*).
        if os.geteuid() != 0 or o.limits is not None:
            return False
        return not (o.chroot or o.nodaemonize) and all(
            step[0] in ("set", "clear_item")
            and not step[1].startswith(("lxc.idmap", "lxc.include", "lxc.log.file"))
            and config_item_is_supported(step[1])
            for step in o.config)

    def _clone_and_start(self) -> None:
        """Clone and start in one request (see _one_request)."""
        o = self.options
        h = Container(self.name, o.path, helper=self._helper)
        self.handle = h
        h.want_close_all_fds(not o.nocloseallfds)
        via = self._helper or helper()
        path = h.get_config_path()
        # Registered before the request is sent (the helper reads its socket
        # in order, and lets a request under way end before it applies the
        # policies): if this process dies mid-spawn, nothing is left.
        via.register(path, self.name, self.type)
        self._registered = via
        items: list[tuple[str, str | None]] = [
            (step[1], step[2] if step[0] == "set" else None) for step in o.config]
        items.append(("lxc.log.level", log_level(o)))
        self._log_offset = h.log_size()
        self._exit_reason = None
        argv = o.start.get("argv")
        self._created = self._started = True
        try:
            pid = _base.ephemeral_start(h, o.userns, items, bool(o.start.get("useinit", False)),
                                        argv or None, o.timeout)
        except LxcTimeoutError:
            self._registered = None  # the request may still make it: the helper keeps the policy
            raise
        self._started_as(pid)

    def _start(self) -> None:
        h = self.handle
        assert h is not None
        o = self.options
        h.want_daemonize(not o.nodaemonize)
        h.want_close_all_fds(not o.nocloseallfds)
        self._log_offset = h.log_size()
        self._exit_reason = None
        argv = o.start.get("argv")
        self._started = True
        self._started_as(h.start(bool(o.start.get("useinit", False)), argv or None,
                                 timeout=o.timeout))

    def _started_as(self, pid: int | None) -> None:
        """The start returned init's *pid*: watch it, set cgroup items, open the console."""
        h = self.handle
        assert h is not None
        o = self.options
        if pid is None:
            # init already ended: report it as soon as this call is done.
            self.init_pid = 0
            self.actor_ref.tell(("init_exited", 0))
            return
        self.init_pid = pid
        self._watch(pid)
        try:
            for key, value in o.cgroup:
                h.set_cgroup_item(key, value)
            if o.console_tty is not None:
                self._open_console()
        except LxcError:
            # A command that ended at once takes its cgroups and consoles
            # with it: a normal exit, reported through the watch above.
            if not init_running(h, pid):
                return
            raise

    def _connect(self) -> None:
        """Take over a running container (adoption, or reuse of a name)."""
        h = self.handle
        assert h is not None
        self._log_offset = h.log_size()
        pid = h.init_pid()
        if pid is None:
            raise LxcError(self.name, "connect", "the container stopped while connecting")
        self.init_pid = pid
        self._watch(pid)
        if self.options.console_tty is not None:
            self._open_console()

    def _open_console(self) -> None:
        assert self.handle is not None
        ttynum = self.options.console_tty
        assert ttynum is not None
        # The tty's last holder (an owner that just ended) may still be
        # letting it go: its fds are closed by the console thread, and the
        # monitor frees the tty when it sees them closed.
        deadline = time.monotonic() + CONSOLE_BUSY_WAIT
        while True:
            try:
                cfd = self.handle.console_getfd(ttynum)
                break
            except LxcError:
                if time.monotonic() > deadline or not self.handle.is_running():
                    raise
                time.sleep(0.02)
        if ttynum == 0:
            # liblxc relays /dev/console through a second pty; raw mode on
            # it passes the container's bytes through unchanged.
            tty.setraw(cfd.ptx)
        self.console = Console(self.name, cfd.ptx, cfd.fd, self.owner, self.options.window)
        hub().add(self.console)

    def _watch(self, pid: int) -> None:
        if self._monitor is not None:
            self._monitor.close()
        self._monitor = MonitorWatch(pid)
        try:
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            self.actor_ref.tell(("init_exited", pid))
            return
        ref = self.actor_ref

        def exited() -> None:
            try:
                ref.tell(("init_exited", pid))
            except pykka.ActorDeadError:
                pass  # the actor ended first (exit, owner gone); its cancel raced this event

        self._cancel_watch = hub().watch(pidfd, exited)

    def _cleanup_failed_boot(self) -> None:
        h = self.handle
        if h is None or h.closed:
            return
        if self._registered is not None:
            with contextlib.suppress(LxcError):
                self._registered.unregister(h.get_config_path(), self.name)
        with contextlib.suppress(LxcError):
            # A container this spawn did not start (adopted) keeps running.
            if self._started and h.is_running():
                h.stop()
            if self._created and h.is_defined():
                h.destroy()
        self._release()

    # ------------------------------------------------------------ messages

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, tuple) and message and message[0] == "init_exited":
            self._init_exited(message[1])
            return None
        return super().on_receive(message)

    def _init_exited(self, pid: int) -> None:
        h = self.handle
        if h is None or pid != self.init_pid:
            return  # stale: already handled by exit() or a restart
        h.wait("STOPPED", 10)
        new_pid = h.init_pid()
        if new_pid is not None and new_pid != pid:
            # Rebooted: init was replaced inside the same monitor.
            self.init_pid = new_pid
            self._watch(new_pid)
            return
        exited = self._exit_message()
        if exited.reason == "normal" and exited.signal is None and self._monitor is not None \
                and self._monitor.lost(self._helper or helper(), self.name, h.get_config_path()):
            exited = ContainerExited(self.name, "lost")
        self._ended(exited)

    def _exit_message(self) -> ContainerExited:
        assert self.handle is not None
        return exit_message(self.name, self.handle.log_lines_since(self._log_offset),
                            self.init_pid, self._exit_reason)

    def _ended(self, exited: ContainerExited) -> None:
        """The container stopped: tell the owner, then restart, destroy or stop."""
        self.init_pid = None
        self._close_console()
        self.owner.deliver(exited)
        action = on_container_end(self.type, exited.normal, requested=self._exit_reason is not None)
        if action.restart:
            if self.intensity.allow():
                try:
                    self._start()
                except LxcError as exc:
                    log.warning("restart of %s failed: %s", self.name, exc)
                else:
                    self.owner.deliver(ContainerRestarted(self.name, self.intensity.count, exited))
                    return
            self.owner.deliver(GaveUp(self.name, self.intensity.count, self.intensity.period,
                                      exited))
        if action.destroy:
            self._destroy()
        self._finish()

    def _destroy(self) -> None:
        h = self.handle
        if h is None:
            return
        try:
            # After init died the monitor may still be tearing down (slow on a
            # loaded host), and liblxc refuses to destroy a running container.
            if h.is_running() and not h.wait("STOPPED", 30):
                h.stop()
            if h.is_defined():
                h.destroy()
        except LxcError as exc:
            log.warning("cannot delete temporary container %s: %s", self.name, exc)

    def _finish(self) -> None:
        self._release()
        if self._on_end is not None:
            self._on_end(self)
        self.stop()

    def _unwatch(self) -> None:
        """Stop waiting for init's exit (this actor handles it, or has ended)."""
        if self._cancel_watch is not None:
            self._cancel_watch()
            self._cancel_watch = None
        if self._monitor is not None:
            self._monitor.close()
            self._monitor = None

    def _close_console(self) -> None:
        if self.console is not None:
            self.console.close()
            self.console = None

    def _release(self) -> None:
        self._unwatch()
        self._close_console()
        if self.handle is not None:
            self.handle.close()
            self.handle = None
        if self._helper is not None:  # this container's own (exec-wrapped) helper
            self._helper.close()
            self._helper = None

    # ------------------------------------------------------------ API (asked: see ask)

    def exit(self, reason: str, timeout: float) -> ContainerExited | None:
        """Halt: ``"normal"`` shuts down (killed after *timeout*), ``"kill"`` kills."""
        h = self.handle
        if h is None:
            return None
        self._exit_reason = reason
        # First: a full console relay (tty 0) would keep the monitor from
        # answering the calls below.
        self._close_console()
        if reason == "kill":
            self._kill_init()
        if h.is_running():
            if reason == "normal" and not h.shutdown(timeout):
                self._kill_init()
            h.stop()
            h.wait("STOPPED", 10)
        self._unwatch()
        exited = (self._exit_message() if self.init_pid is not None
                  else ContainerExited(self.name, reason))
        self._ended(exited)
        return exited

    def _kill_init(self) -> None:
        """SIGKILL init through a pidfd: works even when the monitor is stuck
        (a tty 0 console it cannot write to) and cannot hit a reused pid."""
        if not self.init_pid:
            return
        try:
            pidfd = os.pidfd_open(self.init_pid)
        except OSError:
            return
        try:
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        except OSError:
            pass
        finally:
            os.close(pidfd)

    def abandon(self) -> None:
        """The owner died: apply the owner-death policy of the current type."""
        h = self.handle
        if h is None:
            return
        action = on_owner_exit(self.type)
        if not action.stop:
            log.info("owner of %s container %s died; left running", self.type, self.name)
            self._finish()
            return
        self._exit_reason = "kill"
        self._close_console()
        self._kill_init()
        with contextlib.suppress(LxcError):
            if h.is_running():
                h.stop()
        self._unwatch()
        self.init_pid = None
        if action.destroy:
            self._destroy()
        self._finish()

    def send(self, data: bytes, timeout: float) -> None:
        if self.console is None:
            raise LxcError(self.name, "send", "the container has no console (stopped, or console=False)")
        self.console.send(data, timeout)

    def get_type(self) -> Type:
        return self.type

    def set_type(self, new: Type) -> None:
        self.type = new

    def get_console(self) -> Console | None:
        return self.console

    def call(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Run a low-level handle method in the actor's thread."""
        if self.handle is None:
            raise LxcError(self.name, method, "the container actor has ended")
        if method.startswith("_"):
            raise AttributeError(method)
        return getattr(self.handle, method)(*args, **kwargs)

    def state(self) -> str:
        return self.handle.state() if self.handle is not None else "STOPPED"

    def hand_over(self, owner: Owner, window: int | None, boot_log: bytes | None) -> None:
        """A pool hands this container to *owner*: the console from now on
        (the boot's output first, if asked), and a fresh shell prompt."""
        self.owner = owner
        if self.console is None:
            return
        if window is not None:
            self.console.window = window
        if boot_log:
            owner.deliver(ConsoleOutput(self.name, boot_log))
        self.console.set_owner(owner)
        if not self.options.start.get("argv"):
            # The base's shell on tty1 answers a newline with a new prompt; a
            # custom command's console is its input, left alone.
            self.console.send(b"\n", 1.0)

    def set_owner(self, owner: Owner) -> None:
        self.owner = owner
        if self.console is not None:
            self.console.set_owner(owner)

    # ------------------------------------------------------------ pykka hooks

    def on_stop(self) -> None:
        self._release()

    def on_failure(self, *exc_info: Any) -> None:
        self._release()
