"""Finding broadcasts: one tenant's, newest first, filtered, a page at a time, with progress.

Pages are keyset pages on (created_at, id), so a page costs the same however deep it is and a
broadcast accepted meanwhile never shifts the next page. The status filter is evaluated per
broadcast from its calls (correlated counts on the calls' broadcast index), so it scans only as
many broadcasts as it needs to fill the page.
"""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import Integer, and_, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.elements import ColumnElement

from app.adapters.db.intake import UPLOADING
from app.adapters.db.rows import SUMMARY_COLUMNS, summary_of
from app.adapters.db.tables import BroadcastRow, CallRow
from app.domain.broadcasts import (
    BroadcastFilter,
    BroadcastStatus,
    ListedBroadcast,
    Progress,
)


class CursorNotFound(Exception):
    """The `after` cursor names no broadcast of this tenant."""


def _calls_where(*conditions: ColumnElement[bool]) -> ColumnElement[int]:
    """How many of the outer broadcast's calls meet the conditions (a correlated count)."""
    return (select(func.count()).select_from(CallRow)
            .where(CallRow.broadcast_id == BroadcastRow.id, *conditions)
            .correlate(BroadcastRow).scalar_subquery())


def _status_is(status: BroadcastStatus) -> ColumnElement[bool]:
    """The same rule as `domain.broadcasts.broadcast_status`, in SQL."""
    total = _calls_where()
    ended = _calls_where(CallRow.state == "ended")
    queued = _calls_where(CallRow.state == "queued")
    if status == "ready":
        return ended >= total
    if status == "queued":
        return and_(queued >= total, ended < total)
    return and_(ended < total, queued < total)


class BroadcastListReads:
    def __init__(self, reader: AsyncEngine) -> None:
        self._reader = reader

    async def page(self, tenant: str, which: BroadcastFilter, limit: int,
                   after: str | None) -> list[ListedBroadcast]:
        """Up to `limit` broadcasts after the one named `after` (newest first)."""
        # A bulk upload still coming in is no broadcast yet.
        conditions: list[ColumnElement[bool]] = [BroadcastRow.tenant == tenant,
                                                 BroadcastRow.media_state != UPLOADING]
        if which.created_after is not None:
            conditions.append(BroadcastRow.created_at > which.created_after)
        if which.created_before is not None:
            conditions.append(BroadcastRow.created_at < which.created_before)
        if which.status is not None:
            conditions.append(_status_is(which.status))
        async with self._reader.connect() as connection:
            if after is not None:
                cursor = (await connection.execute(
                    select(BroadcastRow.created_at, BroadcastRow.id)
                    .where(BroadcastRow.id == after, BroadcastRow.tenant == tenant))).first()
                if cursor is None:
                    raise CursorNotFound(after)
                conditions.append(or_(
                    BroadcastRow.created_at < cursor.created_at,
                    and_(BroadcastRow.created_at == cursor.created_at,
                         BroadcastRow.id < cursor.id)))
            rows = (await connection.execute(
                select(*SUMMARY_COLUMNS).where(*conditions)
                .order_by(BroadcastRow.created_at.desc(), BroadcastRow.id.desc())
                .limit(limit))).all()
            ids = [row.id for row in rows]
            counts: dict[str, dict[str, int]] = defaultdict(dict)
            answered: dict[str, int] = defaultdict(int)
            if ids:
                result = await connection.execute(
                    select(CallRow.broadcast_id, CallRow.state, func.count(),
                           func.sum(case((CallRow.connect_time.is_not(None), 1), else_=0),
                                    type_=Integer))
                    .where(CallRow.broadcast_id.in_(ids))
                    .group_by(CallRow.broadcast_id, CallRow.state))
                for broadcast_id, state, count, connected in result.tuples():
                    counts[broadcast_id][state] = count
                    answered[broadcast_id] += connected or 0
        return [ListedBroadcast(summary_of(row), Progress.of_states(counts[row.id]),
                                answered[row.id])
                for row in rows]

