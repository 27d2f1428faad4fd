"""API keys administered on the service's database: what `voxcast keys` and `python -m app keys`
do, where the service runs (no HTTP API involved)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from app.adapters.db.api_keys import ApiKeyInfo, ApiKeyStore
from app.adapters.db.store import Store
from app.settings import Settings


@asynccontextmanager
async def _keys(settings: Settings) -> AsyncIterator[ApiKeyStore]:
    settings.runtime_dir.mkdir(parents=True, exist_ok=True)
    store = await Store.open(settings.resolved_database_url)
    try:
        yield store.keys
    finally:
        await store.close()


async def create_key(settings: Settings, tenant: str, label: str) -> tuple[str, str]:
    """(key id, key): the key itself exists only in this answer."""
    async with _keys(settings) as keys:
        return await keys.create(tenant, label)


async def list_keys(settings: Settings) -> list[ApiKeyInfo]:
    async with _keys(settings) as keys:
        return list(await keys.list())


async def revoke_key(settings: Settings, key_id: str) -> bool:
    async with _keys(settings) as keys:
        return await keys.revoke(key_id)
