"""Report reads: a broadcast's summary and progress, its records, and one call's record.

Records come from a server-side cursor in batches (`record_batches`), so a reader never needs a
whole report in memory; `records` gathers them for callers that want the list. A window
(`RecordWindow`) selects records by filter, from a cursor, up to a page size, in SQL.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import UTC
from typing import Any

from sqlalchemy import Row, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.elements import ColumnElement

from app.adapters.db.intake import UPLOADING
from app.adapters.db.rows import SUMMARY_COLUMNS, summary_of, utc
from app.adapters.db.tables import BroadcastRow, CallRow
from app.domain.broadcasts import BroadcastSummary, CallRecord, Progress
from app.domain.report_query import (
    Cursor,
    RecordFilter,
    RecordWindow,
    ReportSummary,
    call_duration,
)

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
    """A row of _RECORD_COLUMNS as a plain record. Unpacked by position: a report reads this
    for every record, and positions cost a tenth of names."""
    (call_id, broadcast_id, position, attempt, target, state, claimed_by, request_time,
     setup_time, ring_time, connect_time, disconnect_time, result, sip_code, sip_text,
     sip_code_source, q850_cause, q850_text, hangup_by, playback, speech, media_server,
     trunk, failed_over_from) = row[:len(_RECORD_COLUMNS)]
    return CallRecord(
        call_id, broadcast_id, position, attempt or 1, target, caller, state, claimed_by,
        request_time if request_time.tzinfo else request_time.replace(tzinfo=UTC),
        utc(setup_time), utc(ring_time), utc(connect_time),
        utc(disconnect_time), result, sip_code, sip_text, sip_code_source, q850_cause,
        q850_text, hangup_by, tuple(playback or ()), tuple(speech or broadcast_speech or ()),
        media_server, trunk, tuple(failed_over_from or ()))


def _matching(broadcast_id: str, chosen: RecordFilter) -> list[ColumnElement[bool]]:
    """The WHERE of a filter: what a record shows, said in columns (see api/records.py)."""
    where: list[ColumnElement[bool]] = [CallRow.broadcast_id == broadcast_id]
    if chosen.results is not None:
        named = sorted(chosen.results - {"pending"})
        either = [CallRow.result.in_(named)] if named else []
        if "pending" in chosen.results:
            either.append(CallRow.result.is_(None))
        where.append(or_(*either))
    if chosen.answered is not None:
        where.append(CallRow.connect_time.is_not(None) if chosen.answered
                     else CallRow.connect_time.is_(None))
    if chosen.sip_codes is not None:
        codes = sorted(code for code in chosen.sip_codes if code is not None)
        either = [CallRow.sip_code.in_(codes)] if codes else []
        if None in chosen.sip_codes:
            either.append(CallRow.sip_code.is_(None))
        where.append(or_(*either))
    return where


def _within(broadcast_id: str, window: RecordWindow) -> list[ColumnElement[bool]]:
    where = _matching(broadcast_id, window.filter)
    if window.after is not None:
        position, attempt = window.after.position, window.after.attempt
        where.append(or_(CallRow.position > position,
                         and_(CallRow.position == position, CallRow.attempt > attempt)))
    return where


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
                select(*SUMMARY_COLUMNS).where(which, BroadcastRow.tenant == tenant,
                                               BroadcastRow.media_state != UPLOADING))).first()
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

    async def record_batches(self, broadcast_id: str, window: RecordWindow | None = None,
                             size: int = RECORD_BATCH) -> AsyncGenerator[list[CallRecord], None]:
        """The window's records in order, `size` at a time, from one server-side cursor."""
        window = window or RecordWindow()
        async with self._reader.connect() as connection:
            parent = (await connection.execute(
                select(BroadcastRow.caller, BroadcastRow.speech)
                .where(BroadcastRow.id == broadcast_id))).first()
            if parent is None:
                return
            query = (select(*_RECORD_COLUMNS).where(*_within(broadcast_id, window))
                     .order_by(CallRow.position, CallRow.attempt)
                     .execution_options(yield_per=size))
            if window.limit is not None:
                query = query.limit(window.limit)
            rows = await connection.stream(query)
            async for batch in rows.partitions():
                yield [_record(row, parent.caller, parent.speech) for row in batch]

    async def page_end(self, broadcast_id: str, window: RecordWindow) -> Cursor | None:
        """Where the next page starts when this window (with a limit) leaves records after it;
        None when it reaches the end. Read before the page itself, so the answer's headers and
        first bytes can name the next page."""
        assert window.limit is not None  # noqa: S101 - only pages have a next page
        async with self._reader.connect() as connection:
            rows = (await connection.execute(
                select(CallRow.position, CallRow.attempt).where(*_within(broadcast_id, window))
                .order_by(CallRow.position, CallRow.attempt)
                .offset(window.limit - 1).limit(2))).all()
        return Cursor(rows[0].position, rows[0].attempt) if len(rows) == 2 else None

    async def summary(self, broadcast_id: str, chosen: RecordFilter) -> ReportSummary:
        """Counts by result and SIP code in SQL; durations added up from a cursor over the
        answered records with the very rule each record's `duration` follows."""
        where = _matching(broadcast_id, chosen)
        answered = CallRow.connect_time.is_not(None)
        async with self._reader.connect() as connection:
            groups = (await connection.execute(
                select(CallRow.result, CallRow.sip_code, answered.label("answered"),
                       CallRow.state, func.count())
                .where(*where)
                .group_by(CallRow.result, CallRow.sip_code, answered, CallRow.state))).all()
            seconds = 0
            times = await connection.stream(
                select(CallRow.connect_time, CallRow.disconnect_time).where(*where, answered)
                .execution_options(yield_per=RECORD_BATCH))
            async for batch in times.partitions():
                seconds += sum(call_duration(utc(row.connect_time), utc(row.disconnect_time))
                               for row in batch)
        by_result: dict[str, int] = {}
        by_sip_code: dict[str, int] = {}
        answered_count = ended_count = 0
        for result, sip_code, was_answered, state, count in groups:
            name = result or "pending"
            code = "none" if sip_code is None else str(sip_code)
            by_result[name] = by_result.get(name, 0) + count
            by_sip_code[code] = by_sip_code.get(code, 0) + count
            answered_count += count if was_answered else 0
            ended_count += count if state == "ended" else 0
        return ReportSummary(
            records=sum(by_result.values()), by_result=dict(sorted(by_result.items())),
            by_sip_code=dict(sorted(by_sip_code.items())), answered=answered_count,
            ended=ended_count, total_answered_seconds=seconds)

    async def call(self, call_id: str, tenant: str) -> CallRecord | None:
        async with self._reader.connect() as connection:
            row = (await connection.execute(
                select(*_RECORD_COLUMNS, BroadcastRow.caller,
                       BroadcastRow.speech.label("broadcast_speech"))
                .join(BroadcastRow, BroadcastRow.id == CallRow.broadcast_id)
                .where(CallRow.id == call_id, BroadcastRow.tenant == tenant))).first()
            return None if row is None else _record(row, row.caller, row.broadcast_speech)
