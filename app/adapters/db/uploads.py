"""Uploads: which tenant uploaded which recording; only that tenant may play it."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from app.adapters.db.tables import UploadRow


class UploadStore:
    def __init__(self, writer: AsyncEngine, reader: AsyncEngine) -> None:
        self._writes = async_sessionmaker(writer, expire_on_commit=False)
        self._reads = async_sessionmaker(reader, expire_on_commit=False)

    async def add_upload(self, tenant: str, content_hash: str) -> None:
        async with self._writes.begin() as session:
            if await session.get(UploadRow, (tenant, content_hash)) is None:
                session.add(UploadRow(tenant=tenant, content_hash=content_hash,
                                      created_at=datetime.now(UTC)))

    async def has_upload(self, tenant: str, content_hash: str) -> bool:
        async with self._reads() as session:
            return await session.get(UploadRow, (tenant, content_hash)) is not None
