"""The report store: durable intake, the call queue, call progress and the report queries.

SQLite (through aiosqlite) is the embedded default; PostgreSQL serves several nodes, which then
claim queued calls with `FOR UPDATE SKIP LOCKED` so no call is claimed twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, event, func, insert, inspect, or_, select, update
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry

from app.adapters.db.tables import Base, BroadcastRow, CallRow, IdempotencyRow, UploadRow

IN_FLIGHT_STATES = ("dialing", "ringing", "answered")


@dataclass(frozen=True, slots=True)
class NewCall:
    id: str
    target: str
    variables: dict[str, str] | None = None


@dataclass(frozen=True, slots=True)
class NewBroadcast:
    id: str
    report_id: str
    tenant: str
    caller: str
    playlist: list[dict[str, Any]]
    created_at: datetime
    calls: Sequence[NewCall]  # in recipient order
    retry: dict[str, Any] | None = None
    idempotency: tuple[str, str] | None = None  # (Idempotency-Key, hash of the body)


class IdempotencyConflict(Exception):
    """The Idempotency-Key was already used with another body."""


@dataclass(frozen=True, slots=True)
class CallMedia:
    """One recipient's own sounds, for a personalised playlist."""

    call_id: str
    sounds: list[str]
    speech: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class ClaimedCall:
    call_id: str
    broadcast_id: str
    target: str
    caller: str
    sounds: tuple[str, ...]
    attempt: int = 1
    retry: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class InFlightCall:
    """A call this node dialled and has not seen end, with what was saved of its progress."""

    call: ClaimedCall
    setup_time: datetime | None
    ring_time: datetime | None
    connect_time: datetime | None


@dataclass(frozen=True, slots=True)
class Progress:
    total: int
    queued: int
    in_progress: int
    completed: int

    @property
    def finished(self) -> bool:
        return self.completed >= self.total


@dataclass(frozen=True, slots=True)
class CallFinal:
    """What a call's final record stores."""

    result: str
    disconnect_time: datetime | None
    ring_time: datetime | None
    connect_time: datetime | None
    sip_code: int | None
    sip_text: str
    sip_code_source: str
    q850_cause: int | None
    q850_text: str | None
    hangup_by: str | None
    playback: list[str]


CANCELLED_TEXT = "cancelled before it was dialled"


def _unplaced(result: str, reason: str, at: datetime) -> dict[str, Any]:
    """The final record of a call that was never placed: failed (500) or cancelled (no code)."""
    return {"state": "ended", "result": result, "disconnect_time": at,
            "sip_code": 500 if result == "failed" else None, "sip_text": reason,
            "sip_code_source": "none", "playback": []}


def _utc(value: datetime | None) -> datetime | None:
    """SQLite gives naive datetimes back; every time stored here is UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


class SchemaMismatch(RuntimeError):
    """The database's tables do not have the columns this version needs."""


def _missing_columns(connection: Connection) -> list[str]:
    inspector = inspect(connection)
    missing: list[str] = []
    for table in Base.metadata.sorted_tables:
        present = {column["name"] for column in inspector.get_columns(table.name)}
        missing.extend(f"{table.name}.{column.name}" for column in table.columns
                       if column.name not in present)
    return missing


def _tune_sqlite(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()
    # WAL keeps readers off the writer's back; NORMAL is durable across process crashes.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def create_engine(url: str) -> AsyncEngine:
    if url.startswith("sqlite"):
        # One connection: SQLite has one writer anyway, and a single connection can never
        # meet SQLITE_BUSY on a read-to-write upgrade.
        engine = create_async_engine(url, pool_size=1, max_overflow=0, pool_timeout=60)
        event.listen(engine.sync_engine, "connect", _tune_sqlite)
        return engine
    return create_async_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)


class ReportStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._skip_locked = engine.dialect.name == "postgresql"

    @classmethod
    async def open(cls, url: str) -> ReportStore:
        """Create missing tables; refuse a database whose tables lack columns we need."""
        engine = create_engine(url)
        try:
            async with engine.begin() as connection:
                await connection.run_sync(Base.metadata.create_all)
                missing = await connection.run_sync(_missing_columns)
        except BaseException:
            await engine.dispose()
            raise
        if missing:
            await engine.dispose()
            raise SchemaMismatch(
                "the database was made by an older Voxcast and lacks "
                f"{', '.join(missing[:8])}; nothing migrates it yet, so move it aside "
                "(or point VOXCAST_DATABASE_URL elsewhere)")
        return cls(engine)

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    async def close(self) -> None:
        await self._engine.dispose()

    async def ping(self) -> None:
        async with self._sessions() as session:
            await session.execute(select(1))

    # --- intake ------------------------------------------------------------------------------

    async def add_broadcast(self, new: NewBroadcast) -> str:
        """Store the request and every recipient's row in one transaction; return its id.

        With an idempotency key already used for the same body, nothing is stored and the
        earlier request's id is returned; with another body, IdempotencyConflict.
        """
        for _attempt in range(2):
            try:
                async with self._sessions.begin() as session:
                    earlier = await self._idempotent_match(session, new)
                    if earlier is not None:
                        return earlier
                    self._add(session, new)
                    await session.flush()
                    await session.execute(insert(CallRow), [
                        {"id": call.id, "broadcast_id": new.id, "position": position,
                         "target": call.target, "variables": call.variables,
                         "state": "queued", "request_time": new.created_at}
                        for position, call in enumerate(new.calls)
                    ])
                return new.id
            except IntegrityError:
                if new.idempotency is None:
                    raise
                # Another request with the same key won the race: answer as it did.
        raise IdempotencyConflict("the Idempotency-Key is being used concurrently")

    async def idempotent_replay(self, tenant: str, key: str,
                                body_hash: str) -> BroadcastRow | None:
        """The broadcast an earlier use of this key created, checked before any work is done."""
        async with self._sessions() as session:
            earlier = await session.get(IdempotencyRow, (tenant, key))
            if earlier is None:
                return None
            if earlier.body_hash != body_hash:
                raise IdempotencyConflict("this Idempotency-Key was used with another body")
            return await session.get(BroadcastRow, earlier.broadcast_id)

    @staticmethod
    async def _idempotent_match(session: AsyncSession, new: NewBroadcast) -> str | None:
        if new.idempotency is None:
            return None
        key, body_hash = new.idempotency
        earlier = await session.get(IdempotencyRow, (new.tenant, key))
        if earlier is None:
            return None
        if earlier.body_hash != body_hash:
            raise IdempotencyConflict("this Idempotency-Key was used with another body")
        return earlier.broadcast_id

    @staticmethod
    def _add(session: AsyncSession, new: NewBroadcast) -> None:
        session.add(BroadcastRow(
            id=new.id, report_id=new.report_id, tenant=new.tenant, caller=new.caller,
            playlist=new.playlist, retry=new.retry, media_state="pending",
            total_calls=len(new.calls), created_at=new.created_at))
        if new.idempotency is not None:
            session.add(IdempotencyRow(tenant=new.tenant, key=new.idempotency[0],
                                       body_hash=new.idempotency[1], broadcast_id=new.id))

    # --- media -------------------------------------------------------------------------------

    async def broadcasts_awaiting_media(self, limit: int = 20) -> list[BroadcastRow]:
        async with self._sessions() as session:
            rows = await session.scalars(
                select(BroadcastRow).where(BroadcastRow.media_state == "pending")
                .order_by(BroadcastRow.created_at).limit(limit))
            return list(rows)

    async def set_media_ready(self, broadcast_id: str, sounds: list[str] | None,
                              speech: list[dict[str, Any]] | None = None) -> None:
        """Calls become claimable. `sounds` is None when every call has its own."""
        async with self._sessions.begin() as session:
            await session.execute(
                update(BroadcastRow).where(BroadcastRow.id == broadcast_id)
                .values(media_state="ready", sounds=sounds, speech=speech or None))

    async def recipients_page(self, broadcast_id: str, after_position: int,
                              limit: int) -> list[tuple[str, int, dict[str, Any]]]:
        """(call id, position, variables) of queued calls, for personalising their media."""
        async with self._sessions() as session:
            rows = await session.execute(
                select(CallRow.id, CallRow.position, CallRow.variables)
                .where(CallRow.broadcast_id == broadcast_id, CallRow.position > after_position,
                       CallRow.state == "queued")
                .order_by(CallRow.position).limit(limit))
            return [(row.id, row.position, row.variables or {}) for row in rows]

    async def set_call_media(self, media: Sequence[CallMedia]) -> None:
        if not media:
            return
        async with self._sessions.begin() as session:
            await session.execute(update(CallRow), [
                {"id": item.call_id, "sounds": item.sounds, "speech": item.speech or None}
                for item in media])

    async def fail_calls(self, call_ids: Sequence[str], reason: str, at: datetime) -> None:
        """Queued calls that will never be placed (their own media failed)."""
        async with self._sessions.begin() as session:
            await session.execute(
                update(CallRow).where(CallRow.id.in_(list(call_ids)), CallRow.state == "queued")
                .values(**_unplaced("failed", reason, at)))

    async def fail_media(self, broadcast_id: str, reason: str, at: datetime) -> None:
        """The media could not be prepared: no call is placed, every queued one fails."""
        async with self._sessions.begin() as session:
            await session.execute(
                update(BroadcastRow).where(BroadcastRow.id == broadcast_id)
                .values(media_state="failed", media_error=reason))
            await session.execute(
                update(CallRow)
                .where(CallRow.broadcast_id == broadcast_id, CallRow.state == "queued")
                .values(**_unplaced("failed", reason, at)))

    # --- the queue ---------------------------------------------------------------------------

    async def claim_calls(self, node_id: str, limit: int) -> list[ClaimedCall]:
        """Take up to `limit` queued calls whose media is ready and that are due, oldest first."""
        now = datetime.now(UTC)
        async with self._sessions.begin() as session:
            query = (
                select(CallRow.id)
                .join(BroadcastRow, BroadcastRow.id == CallRow.broadcast_id)
                .where(CallRow.state == "queued", BroadcastRow.media_state == "ready",
                       BroadcastRow.cancelled_at.is_(None),
                       or_(CallRow.not_before.is_(None), CallRow.not_before <= now))
                .order_by(CallRow.request_time, CallRow.broadcast_id, CallRow.position)
                .limit(limit))
            if self._skip_locked:
                query = query.with_for_update(skip_locked=True, of=CallRow)
            ids = list(await session.scalars(query))
            if not ids:
                return []
            await session.execute(
                update(CallRow).where(CallRow.id.in_(ids))
                .values(state="dialing", claimed_by=node_id))
            rows = await session.execute(
                select(CallRow.id, CallRow.broadcast_id, CallRow.target, BroadcastRow.caller,
                       func.coalesce(CallRow.sounds, BroadcastRow.sounds).label("sounds"),
                       CallRow.attempt, BroadcastRow.retry)
                .join(BroadcastRow, BroadcastRow.id == CallRow.broadcast_id)
                .where(CallRow.id.in_(ids))
                .order_by(CallRow.request_time, CallRow.broadcast_id, CallRow.position))
            return [ClaimedCall(row.id, row.broadcast_id, row.target, row.caller,
                                tuple(row.sounds or ()), row.attempt, row.retry)
                    for row in rows]

    async def release_calls(self, call_ids: Sequence[str]) -> None:
        """Give back claimed calls that were never dialled."""
        if not call_ids:
            return
        async with self._sessions.begin() as session:
            await session.execute(
                update(CallRow)
                .where(CallRow.id.in_(list(call_ids)), CallRow.state == "dialing",
                       CallRow.setup_time.is_(None))
                .values(state="queued", claimed_by=None))

    async def requeue(self, call_id: str) -> None:
        """A claimed call whose originate provably never reached Asterisk."""
        async with self._sessions.begin() as session:
            await session.execute(
                update(CallRow).where(CallRow.id == call_id, CallRow.state == "dialing")
                .values(state="queued", claimed_by=None, setup_time=None))

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

    async def cancel(self, broadcast_id: str, at: datetime) -> int:
        """Stop a broadcast: no more claims, queued calls end `cancelled`. Returns how many."""
        async with self._sessions.begin() as session:
            await session.execute(
                update(BroadcastRow).where(BroadcastRow.id == broadcast_id,
                                           BroadcastRow.cancelled_at.is_(None))
                .values(cancelled_at=at))
            result = await session.execute(
                update(CallRow)
                .where(CallRow.broadcast_id == broadcast_id, CallRow.state == "queued")
                .values(**_unplaced("cancelled", CANCELLED_TEXT, at)))
            return int(result.rowcount)  # type: ignore[attr-defined]

    async def cancelled_among(self, broadcast_ids: set[str]) -> set[str]:
        async with self._sessions() as session:
            rows = await session.scalars(
                select(BroadcastRow.id).where(BroadcastRow.id.in_(list(broadcast_ids)),
                                              BroadcastRow.cancelled_at.is_not(None)))
            return set(rows)

    async def cancel_calls(self, call_ids: Sequence[str], at: datetime) -> None:
        """Claimed calls of a cancelled broadcast that were never dialled."""
        async with self._sessions.begin() as session:
            await session.execute(
                update(CallRow).where(CallRow.id.in_(list(call_ids)), CallRow.state != "ended")
                .values(**_unplaced("cancelled", CANCELLED_TEXT, at)))

    # --- uploads -----------------------------------------------------------------------------

    async def add_upload(self, tenant: str, content_hash: str) -> None:
        async with self._sessions.begin() as session:
            if await session.get(UploadRow, (tenant, content_hash)) is None:
                session.add(UploadRow(tenant=tenant, content_hash=content_hash,
                                      created_at=datetime.now(UTC)))

    async def has_upload(self, tenant: str, content_hash: str) -> bool:
        async with self._sessions() as session:
            return await session.get(UploadRow, (tenant, content_hash)) is not None

    async def in_flight_calls(self, node_id: str) -> list[InFlightCall]:
        """Calls this node had claimed but not seen end (after a crash or a lost stream)."""
        async with self._sessions() as session:
            rows = await session.execute(
                select(CallRow.id, CallRow.broadcast_id, CallRow.target, BroadcastRow.caller,
                       func.coalesce(CallRow.sounds, BroadcastRow.sounds).label("sounds"),
                       CallRow.attempt, BroadcastRow.retry, CallRow.setup_time,
                       CallRow.ring_time, CallRow.connect_time)
                .join(BroadcastRow, BroadcastRow.id == CallRow.broadcast_id)
                .where(CallRow.state.in_(IN_FLIGHT_STATES), CallRow.claimed_by == node_id))
            return [InFlightCall(ClaimedCall(row.id, row.broadcast_id, row.target, row.caller,
                                             tuple(row.sounds or ()), row.attempt, row.retry),
                                 _utc(row.setup_time), _utc(row.ring_time),
                                 _utc(row.connect_time))
                    for row in rows]

    # --- queries -----------------------------------------------------------------------------

    async def broadcast(self, broadcast_id: str, tenant: str) -> BroadcastRow | None:
        """The tenant's broadcast; another tenant's is as unknown as a missing one."""
        async with self._sessions() as session:
            found: BroadcastRow | None = await session.scalar(
                select(BroadcastRow).where(BroadcastRow.id == broadcast_id,
                                           BroadcastRow.tenant == tenant))
            return found

    async def broadcast_by_report(self, report_id: str, tenant: str) -> BroadcastRow | None:
        async with self._sessions() as session:
            found: BroadcastRow | None = await session.scalar(
                select(BroadcastRow).where(BroadcastRow.report_id == report_id,
                                           BroadcastRow.tenant == tenant))
            return found

    async def progress(self, broadcast_id: str) -> Progress:
        async with self._sessions() as session:
            result = await session.execute(
                select(CallRow.state, func.count())
                .where(CallRow.broadcast_id == broadcast_id).group_by(CallRow.state))
            counts = {state: count for state, count in result.tuples()}
        queued = counts.get("queued", 0)
        completed = counts.get("ended", 0)
        in_progress = sum(counts.get(state, 0) for state in IN_FLIGHT_STATES)
        return Progress(queued + completed + in_progress, queued, in_progress, completed)

    async def calls_of(self, broadcast_id: str) -> list[CallRow]:
        async with self._sessions() as session:
            rows = await session.scalars(
                select(CallRow).where(CallRow.broadcast_id == broadcast_id)
                .order_by(CallRow.position, CallRow.attempt))
            return list(rows)

    async def call(self, call_id: str, tenant: str) -> tuple[CallRow, BroadcastRow] | None:
        async with self._sessions() as session:
            row = (await session.execute(
                select(CallRow, BroadcastRow)
                .join(BroadcastRow, BroadcastRow.id == CallRow.broadcast_id)
                .where(CallRow.id == call_id, BroadcastRow.tenant == tenant))).first()
            return None if row is None else (row[0], row[1])
