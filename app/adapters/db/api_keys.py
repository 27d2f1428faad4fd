"""API keys: created and revoked from the command line, checked on every request.

Only the SHA-256 of a key is stored. Keys are 256-bit random tokens, so a fast hash is enough:
nobody can guess one from its hash, and a lookup stays a single indexed read.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from app.adapters.db.tables import ApiKeyRow

KEY_PREFIX = "vx_"


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def parse_configured_keys(text: str) -> dict[str, str]:
    """`tenant:key,tenant:key` -> {sha256(key): tenant}; raise ValueError naming the entry."""
    keys: dict[str, str] = {}
    for position, entry in enumerate(filter(None, (e.strip() for e in text.split(",")))):
        tenant, separator, key = entry.partition(":")
        if not separator or not tenant or len(key) < 20:
            raise ValueError(f"entry {position + 1} must be tenant:key with a key of at least "
                             "20 characters")
        keys[key_hash(key)] = tenant
    return keys


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class ApiKeyInfo:
    id: str
    tenant: str
    label: str
    created_at: datetime
    revoked_at: datetime | None


class ApiKeyStore:
    def __init__(self, writer: AsyncEngine, reader: AsyncEngine) -> None:
        self._writes = async_sessionmaker(writer, expire_on_commit=False)
        self._reads = async_sessionmaker(reader, expire_on_commit=False)

    async def create(self, tenant: str, label: str = "") -> tuple[str, str]:
        """A new key for `tenant`: (key id, the key). The key is shown once, never stored."""
        key = new_key()
        key_id = uuid.uuid4().hex[:12]
        async with self._writes.begin() as session:
            session.add(ApiKeyRow(id=key_id, tenant=tenant, key_hash=key_hash(key), label=label,
                                  created_at=datetime.now(UTC)))
        return key_id, key

    async def revoke(self, key_id: str) -> bool:
        async with self._writes.begin() as session:
            result = await session.execute(
                update(ApiKeyRow).where(ApiKeyRow.id == key_id, ApiKeyRow.revoked_at.is_(None))
                .values(revoked_at=datetime.now(UTC)))
            return bool(result.rowcount)  # type: ignore[attr-defined]

    async def list(self) -> list[ApiKeyInfo]:
        async with self._reads() as session:
            rows = await session.scalars(select(ApiKeyRow).order_by(ApiKeyRow.created_at))
            return [ApiKeyInfo(r.id, r.tenant, r.label, r.created_at, r.revoked_at)
                    for r in rows]

    async def tenant_for(self, key: str) -> str | None:
        async with self._reads() as session:
            tenant: str | None = await session.scalar(
                select(ApiKeyRow.tenant).where(ApiKeyRow.key_hash == key_hash(key),
                                               ApiKeyRow.revoked_at.is_(None)))
            return tenant

    async def any_active(self) -> bool:
        async with self._reads() as session:
            found = await session.scalar(
                select(ApiKeyRow.id).where(ApiKeyRow.revoked_at.is_(None)).limit(1))
            return found is not None
