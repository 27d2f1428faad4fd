"""A loopback TCP relay that can cut chosen connections: network faults on demand.

Put it between the service and Asterisk's HTTP port to break the ARI event websocket alone
(its connection starts with `GET /ari/events`) while REST requests keep working.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass

from tests.support.ports import free_tcp_port


@dataclass
class _Relay:
    first_bytes: bytes
    writers: tuple[asyncio.StreamWriter, asyncio.StreamWriter]


class TcpProxy:
    """Relays 127.0.0.1:`port` to 127.0.0.1:`target_port`; use with `async with`."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_tcp_port()
        self._server: asyncio.Server | None = None
        self._relays: set[asyncio.Task[None]] = set()
        self._open: list[_Relay] = []
        self._refused_prefix = b""
        self._refuse_until = 0.0
        self.cut_count = 0
        self.refused_count = 0

    async def __aenter__(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._server is not None:
            self._server.close()
        for relay in list(self._open):
            self._close(relay)
        for task in list(self._relays):
            task.cancel()
        await asyncio.gather(*self._relays, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    def cut(self, prefix: bytes, refuse_for: float = 0.0) -> int:
        """Close every open connection that began with `prefix`, and refuse new ones
        beginning with it for `refuse_for` seconds. Returns how many were cut."""
        self._refused_prefix = prefix
        self._refuse_until = time.monotonic() + refuse_for
        matching = [relay for relay in self._open if relay.first_bytes.startswith(prefix)]
        for relay in matching:
            self._close(relay)
        self.cut_count += len(matching)
        return len(matching)

    @staticmethod
    def _close(relay: _Relay) -> None:
        for writer in relay.writers:
            writer.transport.abort()  # no FIN handshake: the peer sees the link drop

    async def _accept(self, client_reader: asyncio.StreamReader,
                      client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._relays.add(task)
        try:
            await self._relay(client_reader, client_writer)
        finally:
            self._relays.discard(task)
            client_writer.transport.abort()

    async def _relay(self, client_reader: asyncio.StreamReader,
                     client_writer: asyncio.StreamWriter) -> None:
        first = await client_reader.read(65536)
        if not first:
            return
        if time.monotonic() < self._refuse_until and first.startswith(self._refused_prefix):
            self.refused_count += 1
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(
                "127.0.0.1", self.target_port)
        except OSError:
            return
        relay = _Relay(first, (client_writer, upstream_writer))
        self._open.append(relay)
        try:
            upstream_writer.write(first)
            await asyncio.gather(self._pump(client_reader, upstream_writer),
                                 self._pump(upstream_reader, client_writer))
        finally:
            with contextlib.suppress(ValueError):
                self._open.remove(relay)
            upstream_writer.transport.abort()

    @staticmethod
    async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.transport.abort()
