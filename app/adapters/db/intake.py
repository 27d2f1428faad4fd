"""Intake: a broadcast and every recipient's row stored in one transaction, idempotently."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from itertools import islice
from typing import Any, cast

from sqlalchemy import Table, delete, insert, literal, literal_column, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
)

from app.adapters.db.rows import SUMMARY_COLUMNS, summary_of
from app.adapters.db.tables import BroadcastRow, CallRow, IdempotencyRow
from app.domain.broadcasts import BroadcastSummary, IdempotencyConflict, NewBroadcast, NewCall

INSERT_CHUNK = 5000
DELETE_CHUNK = 10_000
UPLOADING = "uploading"  # media_state of a bulk upload still coming in
_CALLS = cast(Table, CallRow.__table__)


async def insert_calls(connection: AsyncConnection, broadcast_id: str, at: datetime,
                       calls: Iterable[tuple[int, NewCall]]) -> None:
    """Queue these (position, call) rows: a Core `executemany` a chunk at a time, so the rows'
    parameters never all exist at once and no ORM bookkeeping is paid per row."""
    # What every row shares is written into the statement once, as SQL literals of our own
    # values (rendered and quoted by the dialect): executemany then processes only the
    # per-row parameters.
    shared: dict[str, Any] = {name: literal_column(str(
        literal(value, _CALLS.c[name].type).compile(
            dialect=connection.dialect, compile_kwargs={"literal_binds": True})))
        for name, value in (("broadcast_id", broadcast_id), ("state", "queued"),
                            ("request_time", at))}
    rows = iter(calls)
    while chunk := list(islice(rows, INSERT_CHUNK)):
        # A chunk without variables leaves the column NULL rather than encoding JSON null.
        personal = any(call.variables is not None for _, call in chunk)
        trunked = any(call.trunk is not None for _, call in chunk)
        await connection.execute(insert(_CALLS).values(**shared), [
            {"id": call.id, "position": position, "target": call.target,
             **({"variables": call.variables} if personal else {}),
             **({"requested_trunk": call.trunk} if trunked else {})}
            for position, call in chunk])


class IntakeStore:
    def __init__(self, writer: AsyncEngine, reader: AsyncEngine) -> None:
        self._writes = async_sessionmaker(writer, expire_on_commit=False)
        self._reads = async_sessionmaker(reader, expire_on_commit=False)

    async def add_broadcast(self, new: NewBroadcast) -> BroadcastSummary:
        """Store the request and every recipient's row in one transaction.

        With an idempotency key already used for the same body, nothing is stored and the
        earlier request is returned; with another body, IdempotencyConflict.
        """
        for _attempt in range(2):
            try:
                async with self._writes.begin() as session:
                    earlier = await self._idempotent_match(session, new)
                    if earlier is not None:
                        return earlier
                    self._add(session, new)
                    await session.flush()
                    await insert_calls(await session.connection(), new.id, new.created_at,
                                       enumerate(new.calls))
                return BroadcastSummary(new.id, new.report_id, new.tenant, new.caller,
                                        new.created_at, len(new.calls), "pending", None)
            except IntegrityError:
                if new.idempotency is None:
                    raise
                # Another request with the same key won the race: answer as it did.
        raise IdempotencyConflict("the Idempotency-Key is being used concurrently")

    # --- bulk uploads: chunks committed one by one, the broadcast hidden until complete ---

    async def begin_upload(self, new: NewBroadcast) -> None:
        """Store the broadcast as `uploading`: no dialer claims its calls, no media is
        prepared for it and no lookup finds it until `finish_upload`."""
        async with self._writes.begin() as session:
            session.add(BroadcastRow(
                id=new.id, report_id=new.report_id, tenant=new.tenant, caller=new.caller,
                playlist=new.playlist, retry=new.retry, media_state=UPLOADING, total_calls=0,
                created_at=new.created_at))

    async def add_calls(self, broadcast_id: str, at: datetime, first_position: int,
                        calls: list[NewCall]) -> None:
        """One chunk of an upload, in a short transaction of its own, so other writers (the
        calls under way) never wait for a whole upload."""
        async with self._writes.begin() as session:
            await insert_calls(await session.connection(), broadcast_id, at,
                               enumerate(calls, start=first_position))

    async def finish_upload(self, broadcast_id: str, total: int) -> None:
        """Every chunk is in: the broadcast becomes a request like any other, at once."""
        async with self._writes.begin() as session:
            await session.execute(
                update(BroadcastRow).where(BroadcastRow.id == broadcast_id,
                                           BroadcastRow.media_state == UPLOADING)
                .values(media_state="pending", total_calls=total))

    async def discard_upload(self, broadcast_id: str) -> None:
        """Remove an upload that failed, a chunk at a time (a million rows at once would hold
        the single SQLite writer for long)."""
        while True:
            async with self._writes.begin() as session:
                chunk = select(CallRow.id).where(CallRow.broadcast_id == broadcast_id) \
                    .limit(DELETE_CHUNK).scalar_subquery()
                deleted = await session.execute(delete(CallRow).where(CallRow.id.in_(chunk)))
                if deleted.rowcount == 0:  # type: ignore[attr-defined]
                    await session.execute(delete(BroadcastRow).where(
                        BroadcastRow.id == broadcast_id, BroadcastRow.media_state == UPLOADING))
                    return

    async def discard_abandoned_uploads(self, started_before: datetime) -> int:
        """Uploads a crash left unfinished: older than any upload may last."""
        async with self._reads() as session:
            abandoned = (await session.execute(
                select(BroadcastRow.id).where(BroadcastRow.media_state == UPLOADING,
                                              BroadcastRow.created_at < started_before)
            )).scalars().all()
        for broadcast_id in abandoned:
            await self.discard_upload(broadcast_id)
        return len(abandoned)

    async def idempotent_replay(self, tenant: str, key: str,
                                body_hash: str) -> BroadcastSummary | None:
        """The broadcast an earlier use of this key created, checked before any work is done."""
        async with self._reads() as session:
            return await self._earlier(session, tenant, key, body_hash)

    async def _idempotent_match(self, session: AsyncSession,
                                new: NewBroadcast) -> BroadcastSummary | None:
        if new.idempotency is None:
            return None
        return await self._earlier(session, new.tenant, *new.idempotency)

    @staticmethod
    async def _earlier(session: AsyncSession, tenant: str, key: str,
                       body_hash: str) -> BroadcastSummary | None:
        earlier = await session.get(IdempotencyRow, (tenant, key))
        if earlier is None:
            return None
        if earlier.body_hash != body_hash:
            raise IdempotencyConflict("this Idempotency-Key was used with another body")
        broadcast = (await session.execute(
            select(*SUMMARY_COLUMNS).where(BroadcastRow.id == earlier.broadcast_id))).first()
        return None if broadcast is None else summary_of(broadcast)

    @staticmethod
    def _add(session: AsyncSession, new: NewBroadcast) -> None:
        session.add(BroadcastRow(
            id=new.id, report_id=new.report_id, tenant=new.tenant, caller=new.caller,
            playlist=new.playlist, retry=new.retry, media_state="pending",
            total_calls=len(new.calls), created_at=new.created_at, callback=new.callback))
        if new.idempotency is not None:
            session.add(IdempotencyRow(tenant=new.tenant, key=new.idempotency[0],
                                       body_hash=new.idempotency[1], broadcast_id=new.id))
