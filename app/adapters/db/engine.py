"""Connections to the database: one engine that writes and one that reads.

SQLite (through aiosqlite) has a single writer: writes share one connection, which can never
meet SQLITE_BUSY on a read-to-write upgrade, and WAL lets a small pool of readers run beside it,
so status and report reads never queue behind writes. PostgreSQL uses one pooled engine for both.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

SQLITE_READERS = 4


def _tune_sqlite(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()
    # WAL keeps readers off the writer's back; NORMAL is durable across process crashes.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # Another process (a second node, the command line) may hold the write lock for a while.
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_engine(url: str, pool_size: int) -> AsyncEngine:
    engine = create_async_engine(url, pool_size=pool_size, max_overflow=0, pool_timeout=60)
    event.listen(engine.sync_engine, "connect", _tune_sqlite)
    return engine


@dataclass(frozen=True, slots=True)
class Engines:
    writer: AsyncEngine
    reader: AsyncEngine  # the writer itself where the database has no separate readers

    @property
    def dialect(self) -> str:
        return self.writer.dialect.name

    async def dispose(self) -> None:
        if self.reader is not self.writer:
            await self.reader.dispose()
        await self.writer.dispose()


def create_engines(url: str) -> Engines:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        engine = create_async_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)
        return Engines(engine, engine)
    writer = _sqlite_engine(url, pool_size=1)
    if parsed.database in (None, "", ":memory:"):
        return Engines(writer, writer)  # a private in-memory database: one connection sees it
    return Engines(writer, _sqlite_engine(url, pool_size=SQLITE_READERS))
