"""Intake: a broadcast and every recipient's row stored in one transaction, idempotently."""

from __future__ import annotations

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.adapters.db.rows import SUMMARY_COLUMNS, summary_of
from app.adapters.db.tables import BroadcastRow, CallRow, IdempotencyRow
from app.domain.broadcasts import BroadcastSummary, IdempotencyConflict, NewBroadcast


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
                    await session.execute(insert(CallRow), [
                        {"id": call.id, "broadcast_id": new.id, "position": position,
                         "target": call.target, "variables": call.variables,
                         "requested_trunk": call.trunk,
                         "state": "queued", "request_time": new.created_at}
                        for position, call in enumerate(new.calls)
                    ])
                return BroadcastSummary(new.id, new.report_id, new.tenant, new.caller,
                                        new.created_at, len(new.calls), "pending", None)
            except IntegrityError:
                if new.idempotency is None:
                    raise
                # Another request with the same key won the race: answer as it did.
        raise IdempotencyConflict("the Idempotency-Key is being used concurrently")

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
