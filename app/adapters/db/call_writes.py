"""Call writes: each call's setup, progress and final record, and a retry's next attempt."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from app.adapters.db.tables import CallRow
from app.domain.broadcasts import CallFinal


class CallWrites:
    def __init__(self, writer: AsyncEngine) -> None:
        self._sessions = async_sessionmaker(writer, expire_on_commit=False)

    async def mark_setup(self, call_id: str, at: datetime) -> None:
        async with self._sessions.begin() as session:
            await session.execute(
                update(CallRow).where(CallRow.id == call_id).values(setup_time=at))

    async def save_progress(self, call_id: str, *, state: str, ring_time: datetime | None,
                            connect_time: datetime | None) -> None:
        async with self._sessions.begin() as session:
            await session.execute(
                update(CallRow).where(CallRow.id == call_id, CallRow.state != "ended")
                .values(state=state, ring_time=ring_time, connect_time=connect_time))

    async def save_final(self, call_id: str, final: CallFinal,
                         retry_at: datetime | None = None) -> None:
        """Write the final record; with `retry_at`, queue the next attempt in the same commit."""
        async with self._sessions.begin() as session:
            result = await session.execute(
                update(CallRow).where(CallRow.id == call_id, CallRow.state != "ended")
                .values(state="ended", result=final.result,
                        disconnect_time=final.disconnect_time, ring_time=final.ring_time,
                        connect_time=final.connect_time, sip_code=final.sip_code,
                        sip_text=final.sip_text, sip_code_source=final.sip_code_source,
                        q850_cause=final.q850_cause, q850_text=final.q850_text,
                        hangup_by=final.hangup_by, playback=final.playback))
            if retry_at is None or not result.rowcount:  # type: ignore[attr-defined]
                return
            ended = await session.get(CallRow, call_id)
            if ended is None:
                return
            session.add(CallRow(
                id=str(uuid.uuid4()), broadcast_id=ended.broadcast_id, position=ended.position,
                attempt=ended.attempt + 1, not_before=retry_at, target=ended.target,
                variables=ended.variables, sounds=ended.sounds, speech=ended.speech,
                state="queued", request_time=ended.request_time))
