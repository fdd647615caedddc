#!/usr/bin/env python3
"""tcpvm on asyncio: a shell in a new container for every TCP client.

    sudo ./aio_tcpvm.py [--listen ADDR:PORT] [--max-clients N] [--path LXCPATH]

The same service as ``lxactors tcpvm`` (see README.md), written on
``asyncio.start_server`` and :mod:`lxactors.aio` alone: each connection's
task owns its container, so a connection that ends for any reason takes
its container with it.  Console output reaches the client at the client's
pace (``await writer.drain()``): a client that does not read slows its
container's writer down and nothing is dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Mapping
from typing import Any

import lxactors
from lxactors import aio

log = logging.getLogger("aio_tcpvm")

Address = tuple[str, int]
#: Every client is bounded unless spawn_options say otherwise (``"limits": None``): as
#: lxactors tcpvm's defaults (see the README's security section).
DEFAULT_LIMITS = lxactors.Limits(pids=256, memory="256M", cpu=1.0, disk="128M")


class AioTcpVm:
    """``await AioTcpVm(listen, max_clients, spawn_options).start()``, then ``await close()``."""

    def __init__(self, listen: Address = ("127.0.0.1", 31337), max_clients: int = 32,
                 spawn_options: Mapping[str, Any] | None = None) -> None:
        if isinstance(max_clients, bool) or not isinstance(max_clients, int) or max_clients < 1:
            raise ValueError(f"max_clients must be a positive int, not {max_clients!r}")
        options = dict(spawn_options or {})
        for bad in ("name", "owner"):
            if bad in options:
                raise ValueError(f"spawn_options must not set {bad!r}: each client gets its own")
        # The disk bound is for overlay clones of the base, not template-made containers.
        options.setdefault("limits", DEFAULT_LIMITS.replace(disk=None) if options.get("create")
                           else DEFAULT_LIMITS)
        self.listen = listen
        self.max_clients = max_clients
        self.spawn_options = options
        self.refusal = (f"lxactors tcpvm: too many clients (at most {max_clients}); "
                        "try again later\r\n").encode()
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.Task[None]] = set()

    @property
    def clients(self) -> int:
        """Connections being served."""
        return len(self._clients)

    async def start(self) -> Address:
        """Listen; return the address bound (the port when 0 was asked)."""
        self._server = await asyncio.start_server(self._serve, *self.listen, backlog=128)
        name = self._server.sockets[0].getsockname()
        return name[0], name[1]

    async def close(self) -> int:
        """Stop listening, end every connection (exiting its container); how many there were."""
        if self._server is not None:
            self._server.close()
        clients = list(self._clients)
        for task in clients:
            task.cancel()
        await asyncio.gather(*clients, return_exceptions=True)
        return len(clients)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if len(self._clients) >= self.max_clients:
            writer.write(self.refusal)
            await _close(writer)
            return
        self._clients.add(task)
        peer = writer.get_extra_info("peername")
        try:
            try:
                ref = await aio.spawn(**self.spawn_options)  # owned by this connection's task
            except lxactors.LxcError as exc:
                log.warning("client %s: cannot start a container: %s", peer, exc)
                line = str(exc).strip().splitlines()[0]
                writer.write(f"lxactors tcpvm: cannot start a container: {line}\r\n".encode())
                return
            log.info("client %s: container %s", peer, ref.name)
            async with ref:  # leaving it (disconnect, poweroff, close()) exits the container
                relay = asyncio.create_task(_relay(ref, writer))
                pump = asyncio.create_task(_pump(reader, ref))
                try:
                    await asyncio.wait({relay, pump}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    relay.cancel()
                    pump.cancel()
                    await asyncio.gather(relay, pump, return_exceptions=True)
        finally:
            self._clients.discard(task)
            await _close(writer)


async def _relay(ref: aio.ContainerRef, writer: asyncio.StreamWriter) -> None:
    """Console -> client, at the client's pace, until the container ends."""
    async for msg in ref:
        if isinstance(msg, lxactors.ConsoleOutput):
            writer.write(msg.data)
            await writer.drain()
        elif isinstance(msg, lxactors.ContainerExited):
            return


async def _pump(reader: asyncio.StreamReader, ref: aio.ContainerRef) -> None:
    """Client -> console, until the client disconnects."""
    while data := await reader.read(65536):
        try:
            await aio.send(ref, data)
        except lxactors.LxcError:
            return  # the container ended


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


async def serve(listen: Address, max_clients: int, spawn_options: Mapping[str, Any]) -> None:
    """Serve until SIGINT or SIGTERM, then exit every container."""
    server = AioTcpVm(listen, max_clients, spawn_options)
    address = await server.start()
    print(f"aio tcpvm: listening on {address[0]}:{address[1]}", file=sys.stderr)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    print(f"aio tcpvm: stopped; {await server.close()} client(s) disconnected", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="127.0.0.1:31337", metavar="ADDR:PORT")
    parser.add_argument("--max-clients", type=int, default=32, metavar="N")
    parser.add_argument("--path", help="lxcpath (default: liblxc's)")
    args = parser.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    options = {"path": args.path} if args.path else {}
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        import uvloop  # optional: the same code runs on either loop
    except ImportError:
        asyncio.run(serve((host or "127.0.0.1", int(port)), args.max_clients, options))
    else:
        uvloop.run(serve((host or "127.0.0.1", int(port)), args.max_clients, options))
    return 0


if __name__ == "__main__":
    sys.exit(main())
