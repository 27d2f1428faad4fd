"""Media state: broadcasts awaiting their media, each call's own media, calls it failed.

A broadcast's calls become claimable only once its media is ready; when it cannot be prepared,
its queued calls end `failed` and none is placed.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from app.adapters.db.event_log import add_ended_events
from app.adapters.db.rows import unplaced_final
from app.adapters.db.tables import BroadcastRow, CallRow
from app.domain.broadcasts import AwaitingMedia, CallMedia

_SET_CALL_MEDIA = (update(CallRow).where(CallRow.id == bindparam("call_id"))
                   .values(sounds=bindparam("new_sounds", type_=CallRow.sounds.type),
                           speech=bindparam("new_speech", type_=CallRow.speech.type)))


class MediaStateStore:
    def __init__(self, writer: AsyncEngine, reader: AsyncEngine) -> None:
        self._writer = writer
        self._reader = reader

    async def broadcasts_awaiting_media(self, limit: int = 20) -> list[AwaitingMedia]:
        async with self._reader.connect() as connection:
            rows = await connection.execute(
                select(BroadcastRow.id, BroadcastRow.playlist)
                .where(BroadcastRow.media_state == "pending")
                .order_by(BroadcastRow.created_at).limit(limit))
            return [AwaitingMedia(row.id, row.playlist) for row in rows]

    async def set_media_ready(self, broadcast_id: str, sounds: list[str] | None,
                              speech: list[dict[str, Any]] | None = None) -> None:
        """Calls become claimable. `sounds` is None when every call has its own."""
        async with self._writer.begin() as connection:
            await connection.execute(
                update(BroadcastRow).where(BroadcastRow.id == broadcast_id)
                .values(media_state="ready", sounds=sounds, speech=speech or None))

    async def recipients_page(self, broadcast_id: str, after_position: int,
                              limit: int) -> list[tuple[str, int, dict[str, Any]]]:
        """(call id, position, variables) of queued calls, for personalising their media."""
        async with self._reader.connect() as connection:
            rows = await connection.execute(
                select(CallRow.id, CallRow.position, CallRow.variables)
                .where(CallRow.broadcast_id == broadcast_id, CallRow.position > after_position,
                       CallRow.state == "queued")
                .order_by(CallRow.position).limit(limit))
            return [(row.id, row.position, row.variables or {}) for row in rows]

    async def set_call_media(self, media: Sequence[CallMedia]) -> None:
        if not media:
            return
        async with self._writer.begin() as connection:
            await connection.execute(_SET_CALL_MEDIA, [
                {"call_id": item.call_id, "new_sounds": item.sounds,
                 "new_speech": item.speech or None}
                for item in media])

    async def fail_calls(self, call_ids: Sequence[str], reason: str, at: datetime) -> None:
        """Queued calls that will never be placed (their own media failed)."""
        async with self._writer.begin() as connection:
            ended = (await connection.execute(
                update(CallRow).where(CallRow.id.in_(list(call_ids)), CallRow.state == "queued")
                .values(**unplaced_final("failed", reason, at))
                .returning(CallRow.id))).scalars().all()
            await add_ended_events(connection, ended, at)

    async def fail_media(self, broadcast_id: str, reason: str, at: datetime) -> None:
        """The media could not be prepared: no call is placed, every queued one fails."""
        async with self._writer.begin() as connection:
            await connection.execute(
                update(BroadcastRow).where(BroadcastRow.id == broadcast_id)
                .values(media_state="failed", media_error=reason))
            ended = (await connection.execute(
                update(CallRow)
                .where(CallRow.broadcast_id == broadcast_id, CallRow.state == "queued")
                .values(**unplaced_final("failed", reason, at))
                .returning(CallRow.id))).scalars().all()
            await add_ended_events(connection, ended, at)
