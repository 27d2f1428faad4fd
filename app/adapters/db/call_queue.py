"""The queue: claiming due calls, giving back undialled ones, and cancelling.

A claim is one `UPDATE ... WHERE id IN (due calls) AND state = 'queued' RETURNING ...` (then
a read of the claimed calls' broadcasts, in the same transaction): the re-check makes it
correct when several nodes claim from one database, SQLite included (each claim waits its turn
for the write lock), and PostgreSQL's `FOR UPDATE SKIP LOCKED` lets concurrent claims pass
each other instead of queueing on the same rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from app.adapters.db.rows import (
    CLAIMED_COLUMNS,
    PARENT_COLUMNS,
    claimed_call,
    unplaced_final,
    utc,
)
from app.adapters.db.tables import BroadcastRow, CallRow
from app.domain.broadcasts import (
    CANCELLED_TEXT,
    IN_FLIGHT_STATES,
    ClaimedCall,
    InFlightCall,
)


class CallQueue:
    def __init__(self, writer: AsyncEngine, reader: AsyncEngine) -> None:
        self._writer = writer
        self._reader = reader
        self._skip_locked = writer.dialect.name == "postgresql"

    async def claim_calls(self, node_id: str, limit: int) -> list[ClaimedCall]:
        """Take up to `limit` queued calls whose media is ready and that are due, oldest first."""
        due = (
            select(CallRow.id)
            .join(BroadcastRow, BroadcastRow.id == CallRow.broadcast_id)
            .where(CallRow.state == "queued", BroadcastRow.media_state == "ready",
                   BroadcastRow.cancelled_at.is_(None),
                   or_(CallRow.not_before.is_(None), CallRow.not_before <= datetime.now(UTC)))
            .order_by(CallRow.request_time, CallRow.broadcast_id, CallRow.position).limit(limit))
        if self._skip_locked:
            due = due.with_for_update(skip_locked=True, of=CallRow)
        # Materialised: PostgreSQL may otherwise run a plain `IN (subquery)` more than once,
        # and each run locks (and claims) `limit` more rows.
        chosen = due.cte("due").prefix_with("MATERIALIZED", dialect="postgresql")
        claim = (update(CallRow)
                 .where(CallRow.id.in_(select(chosen.c.id)), CallRow.state == "queued")
                 .values(state="dialing", claimed_by=node_id)
                 .returning(*CLAIMED_COLUMNS, CallRow.request_time, CallRow.position))
        async with self._writer.begin() as connection:
            rows = (await connection.execute(claim)).all()
            if not rows:
                return []
            parents = {parent.id: parent for parent in await connection.execute(
                select(BroadcastRow.id, *PARENT_COLUMNS)
                .where(BroadcastRow.id.in_({row.broadcast_id for row in rows})))}
        # RETURNING comes in no particular order.
        rows = sorted(rows, key=lambda row: (utc(row.request_time), row.broadcast_id,
                                             row.position))
        return [claimed_call(row, parents[row.broadcast_id]) for row in rows]

    async def release_calls(self, call_ids: Sequence[str]) -> None:
        """Give back claimed calls that were never dialled."""
        if not call_ids:
            return
        async with self._writer.begin() as connection:
            await connection.execute(
                update(CallRow)
                .where(CallRow.id.in_(list(call_ids)), CallRow.state == "dialing",
                       CallRow.setup_time.is_(None))
                .values(state="queued", claimed_by=None))

    async def requeue(self, call_id: str) -> None:
        """A claimed call whose originate provably never reached Asterisk."""
        async with self._writer.begin() as connection:
            await connection.execute(
                update(CallRow).where(CallRow.id == call_id, CallRow.state == "dialing")
                .values(state="queued", claimed_by=None, setup_time=None))

    async def in_flight_calls(self, node_id: str) -> list[InFlightCall]:
        """Calls this node claimed but has not seen end (after a crash)."""
        async with self._reader.connect() as connection:
            rows = await connection.execute(
                select(*CLAIMED_COLUMNS, *PARENT_COLUMNS, CallRow.setup_time,
                       CallRow.ring_time, CallRow.connect_time, CallRow.media_server,
                       CallRow.trunk)
                .join(BroadcastRow, BroadcastRow.id == CallRow.broadcast_id)
                .where(CallRow.state.in_(IN_FLIGHT_STATES), CallRow.claimed_by == node_id))
            return [InFlightCall(claimed_call(row, row), utc(row.setup_time),
                                 utc(row.ring_time), utc(row.connect_time), row.media_server,
                                 row.trunk)
                    for row in rows]

    async def live_elsewhere(self, node_id: str) -> dict[str, int]:
        """Calls other nodes have live, by media server: their share of each server."""
        async with self._reader.connect() as connection:
            rows = await connection.execute(
                select(CallRow.media_server, func.count())
                .where(CallRow.state.in_(IN_FLIGHT_STATES), CallRow.claimed_by != node_id,
                       CallRow.media_server.is_not(None))
                .group_by(CallRow.media_server))
            return {server: count for server, count in rows.tuples() if server is not None}

    async def cancel(self, broadcast_id: str, at: datetime) -> int:
        """Stop a broadcast: no more claims, queued calls end `cancelled`. Returns how many."""
        async with self._writer.begin() as connection:
            await connection.execute(
                update(BroadcastRow).where(BroadcastRow.id == broadcast_id,
                                           BroadcastRow.cancelled_at.is_(None))
                .values(cancelled_at=at))
            result = await connection.execute(
                update(CallRow)
                .where(CallRow.broadcast_id == broadcast_id, CallRow.state == "queued")
                .values(**unplaced_final("cancelled", CANCELLED_TEXT, at)))
            return result.rowcount

    async def cancelled_among(self, broadcast_ids: set[str]) -> set[str]:
        async with self._reader.connect() as connection:
            rows = await connection.scalars(
                select(BroadcastRow.id).where(BroadcastRow.id.in_(list(broadcast_ids)),
                                              BroadcastRow.cancelled_at.is_not(None)))
            return set(rows)

    async def cancel_calls(self, call_ids: Sequence[str], at: datetime) -> None:
        """Claimed calls of a cancelled broadcast that were never dialled."""
        async with self._writer.begin() as connection:
            await connection.execute(
                update(CallRow).where(CallRow.id.in_(list(call_ids)), CallRow.state != "ended")
                .values(**unplaced_final("cancelled", CANCELLED_TEXT, at)))
