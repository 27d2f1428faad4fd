"""Report reads: a broadcast's summary and progress, its records, and one call's record.

Records come from a server-side cursor in batches (`record_batches`), so a reader never needs a
whole report in memory; `records` gathers them for callers that want the list.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import Row, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.elements import ColumnElement

from app.adapters.db.rows import SUMMARY_COLUMNS, summary_of, utc
from app.adapters.db.tables import BroadcastRow, CallRow
from app.domain.broadcasts import BroadcastSummary, CallRecord, Progress

RECORD_BATCH = 1000

_RECORD_COLUMNS = (
    CallRow.id, CallRow.broadcast_id, CallRow.position, CallRow.attempt, CallRow.target,
    CallRow.state, CallRow.claimed_by, CallRow.request_time, CallRow.setup_time,
    CallRow.ring_time, CallRow.connect_time, CallRow.disconnect_time, CallRow.result,
    CallRow.sip_code, CallRow.sip_text, CallRow.sip_code_source, CallRow.q850_cause,
    CallRow.q850_text, CallRow.hangup_by, CallRow.playback, CallRow.speech,
    CallRow.media_server, CallRow.trunk, CallRow.failed_over_from,
)


def _record(row: Row[Any], caller: str, broadcast_speech: list[Any] | None) -> CallRecord:
    request_time = utc(row.request_time)
    assert request_time is not None  # noqa: S101 - the column is NOT NULL
    return CallRecord(
        id=row.id, broadcast_id=row.broadcast_id, position=row.position,
        attempt=row.attempt or 1, target=row.target, caller=caller, state=row.state,
        claimed_by=row.claimed_by, request_time=request_time, setup_time=utc(row.setup_time),
        ring_time=utc(row.ring_time), connect_time=utc(row.connect_time),
        disconnect_time=utc(row.disconnect_time), result=row.result, sip_code=row.sip_code,
        sip_text=row.sip_text, sip_code_source=row.sip_code_source,
        q850_cause=row.q850_cause, q850_text=row.q850_text, hangup_by=row.hangup_by,
        playback=tuple(row.playback or ()), speech=tuple(row.speech or broadcast_speech or ()),
        media_server=row.media_server, trunk=row.trunk,
        failed_over_from=tuple(row.failed_over_from or ()))


async def call_records(connection: AsyncConnection,
                       call_ids: set[str]) -> dict[str, CallRecord]:
    """Records of the given calls by id, as the report shows them (the event log's bodies)."""
    if not call_ids:
        return {}
    rows = await connection.execute(
        select(*_RECORD_COLUMNS, BroadcastRow.caller,
               BroadcastRow.speech.label("broadcast_speech"))
        .join(BroadcastRow, BroadcastRow.id == CallRow.broadcast_id)
        .where(CallRow.id.in_(list(call_ids))))
    return {row.id: _record(row, row.caller, row.broadcast_speech) for row in rows}


class ReportReads:
    def __init__(self, reader: AsyncEngine) -> None:
        self._reader = reader

    async def broadcast(self, broadcast_id: str, tenant: str) -> BroadcastSummary | None:
        """The tenant's broadcast; another tenant's is as unknown as a missing one."""
        return await self._summary(BroadcastRow.id == broadcast_id, tenant)

    async def broadcast_by_report(self, report_id: str, tenant: str) -> BroadcastSummary | None:
        return await self._summary(BroadcastRow.report_id == report_id, tenant)

    async def _summary(self, which: ColumnElement[bool],
                       tenant: str) -> BroadcastSummary | None:
        async with self._reader.connect() as connection:
            row = (await connection.execute(
                select(*SUMMARY_COLUMNS).where(which, BroadcastRow.tenant == tenant))).first()
            return None if row is None else summary_of(row)

    async def progress(self, broadcast_id: str) -> Progress:
        async with self._reader.connect() as connection:
            result = await connection.execute(
                select(CallRow.state, func.count())
                .where(CallRow.broadcast_id == broadcast_id).group_by(CallRow.state))
            return Progress.of_states(dict(result.tuples().all()))

    async def records(self, broadcast_id: str) -> list[CallRecord]:
        """Every attempt at every recipient, in recipient order."""
        return [record async for batch in self.record_batches(broadcast_id)
                for record in batch]

    async def record_batches(self, broadcast_id: str,
                             size: int = RECORD_BATCH) -> AsyncIterator[list[CallRecord]]:
        async with self._reader.connect() as connection:
            parent = (await connection.execute(
                select(BroadcastRow.caller, BroadcastRow.speech)
                .where(BroadcastRow.id == broadcast_id))).first()
            if parent is None:
                return
            rows = await connection.stream(
                select(*_RECORD_COLUMNS).where(CallRow.broadcast_id == broadcast_id)
                .order_by(CallRow.position, CallRow.attempt)
                .execution_options(yield_per=size))
            async for batch in rows.partitions():
                yield [_record(row, parent.caller, parent.speech) for row in batch]

    async def call(self, call_id: str, tenant: str) -> CallRecord | None:
        async with self._reader.connect() as connection:
            row = (await connection.execute(
                select(*_RECORD_COLUMNS, BroadcastRow.caller,
                       BroadcastRow.speech.label("broadcast_speech"))
                .join(BroadcastRow, BroadcastRow.id == CallRow.broadcast_id)
                .where(CallRow.id == call_id, BroadcastRow.tenant == tenant))).first()
            return None if row is None else _record(row, row.caller, row.broadcast_speech)
