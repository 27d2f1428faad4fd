"""A service's calls read straight from its database, for moments no API answers (a crash).

The one place tests reach past the API into the store, so a change of the store's shape is
mended here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from app.adapters.db.store import Store


@dataclass(frozen=True)
class StoredCall:
    call_id: str
    target: str
    state: str  # queued, dialing, ringing, answered, ended
    setup_time: datetime | None  # UTC: the originate was about to be sent
    claimed_by: str | None

    @property
    def user(self) -> str:
        return self.target.removeprefix("sip:").split("@")[0]

    @property
    def dialled(self) -> bool:
        return self.setup_time is not None


async def stored_calls(database_url: str, request_id: str) -> list[StoredCall]:
    store = await Store.open(database_url)
    try:
        records = await store.reports.records(request_id)
    finally:
        await store.close()
    return [StoredCall(record.id, record.target, record.state, _utc(record.setup_time),
                       record.claimed_by) for record in records]


def _utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)  # SQLite gives back naive datetimes; we store UTC


async def stored_rows(store: Store) -> tuple[int, int]:
    """(broadcasts, calls) in the store, whatever their state: what an intake left behind."""
    from sqlalchemy import func, select

    from app.adapters.db.tables import BroadcastRow, CallRow

    async with store.engines.reader.connect() as connection:
        broadcasts = (await connection.execute(select(func.count(BroadcastRow.id)))).scalar()
        calls = (await connection.execute(select(func.count(CallRow.id)))).scalar()
    return int(broadcasts or 0), int(calls or 0)
