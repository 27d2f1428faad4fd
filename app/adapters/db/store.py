"""The store: opens the database, brings its schema up to date, and hands out one part per job.

SQLite (through aiosqlite) is the embedded default; PostgreSQL serves several nodes.
"""

from __future__ import annotations

from sqlalchemy import text

from app.adapters.db.api_keys import ApiKeyStore
from app.adapters.db.broadcast_list import BroadcastListReads
from app.adapters.db.call_queue import CallQueue
from app.adapters.db.call_writes import CallWrites
from app.adapters.db.engine import Engines, create_engines
from app.adapters.db.intake import IntakeStore
from app.adapters.db.media_state import MediaStateStore
from app.adapters.db.report_reads import ReportReads
from app.adapters.db.schema import bring_to_head
from app.adapters.db.uploads import UploadStore


class Store:
    def __init__(self, engines: Engines) -> None:
        writer, reader = engines.writer, engines.reader
        self.engines = engines
        self.intake = IntakeStore(writer, reader)
        self.media = MediaStateStore(writer, reader)
        self.queue = CallQueue(writer, reader)
        self.calls = CallWrites(writer)
        self.reports = ReportReads(reader)
        self.broadcasts = BroadcastListReads(reader)
        self.uploads = UploadStore(writer, reader)
        self.keys = ApiKeyStore(writer, reader)

    @classmethod
    async def open(cls, url: str) -> Store:
        """Connect, bring the schema to the newest revision, and start the call writer."""
        engines = create_engines(url)
        try:
            await bring_to_head(engines.writer)
        except BaseException:
            await engines.dispose()
            raise
        store = cls(engines)
        store.calls.start()
        return store

    async def close(self) -> None:
        await self.calls.close()
        await self.engines.dispose()

    async def ping(self) -> None:
        async with self.engines.reader.connect() as connection:
            await connection.execute(text("SELECT 1"))
