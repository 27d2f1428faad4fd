"""The event log: events written in the transaction that makes them true, then sealed.

A call's progress and final record are committed together with their events (see
call_writes), so a crash loses no event and invents none. Sealing renders each event's body
once (the body a webhook signs and a live-event reader gets) and, in the same transaction,
fans it out into one delivery row per webhook that wants it, and notes a broadcast's
completion as its own event. Several nodes seal side by side: PostgreSQL's
`FOR UPDATE SKIP LOCKED` lets each take different events.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    String,
    and_,
    bindparam,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.adapters.db.report_reads import call_records
from app.adapters.db.rows import utc
from app.adapters.db.tables import (
    BroadcastRow,
    CallRow,
    EventRow,
    WebhookDeliveryRow,
    WebhookSubscriptionRow,
)
from app.domain.events import (
    BROADCAST_COMPLETED,
    CALL_ENDED,
    PROGRESS_EVENTS,
    BroadcastFacts,
    EventFacts,
    StoredEvent,
)

EventRenderer = Callable[[EventFacts], str]
SEAL_BATCH = 500
TAKE_LEASE = timedelta(seconds=30)  # a take by a node that died is taken again after this
POSTGRES_SETTLE = timedelta(seconds=1)

_CALL_EVENT = insert(EventRow).from_select(
    ["id", "tenant", "broadcast_id", "call_id", "type", "data", "created_at"],
    select(bindparam("event_id", type_=String()), BroadcastRow.tenant, CallRow.broadcast_id,
           CallRow.id, bindparam("event_type", type_=String()),
           bindparam("event_data", type_=EventRow.data.type),
           bindparam("at", type_=EventRow.created_at.type))
    .join(BroadcastRow, BroadcastRow.id == CallRow.broadcast_id)
    .where(CallRow.id == bindparam("call_id")))


def new_event_id() -> str:
    """A webhook-id: unique per event, the same on every delivery attempt of it."""
    return f"msg_{uuid.uuid4().hex}"


@dataclass(frozen=True, slots=True)
class CallChange:
    """One change of a call in a batch, in the order it happened: a state it entered."""

    call_id: str
    state: str  # ringing, answered, ended
    data: dict[str, Any] | None = None


def call_events(changes: Iterable[CallChange], prior_states: dict[str, str],
                at: datetime) -> list[dict[str, Any]]:
    """The events a batch of changes makes, given each call's state before the batch.

    A state a call already passed makes no event again, so a repeated 180 Ringing or a
    second final record stays one event. A final record that shows a ring or an answer whose
    progress was never stored (lost in a crash, or recovered afterwards) makes those events
    first, so every call's events are complete.
    """
    order = {"queued": 0, "dialing": 1, "ringing": 2, "answered": 3, "ended": 4}
    states = dict(prior_states)
    events = []
    for change in changes:
        before = order.get(states.get(change.call_id, "queued"), 0)
        if order.get(change.state, 0) <= before:
            continue
        if change.state == "ended" and change.data:
            for passed in ("ringing", "answered"):
                if change.data.get(f"{passed}_at") and order[passed] > before:
                    before = order[passed]
                    events.append(_event(PROGRESS_EVENTS[passed], change.call_id, {
                        "ring_time": change.data.get("ringing_at"),
                        "connect_time": change.data.get("answered_at")
                        if passed == "answered" else None}, at))
        states[change.call_id] = change.state
        if change.state != "ended" and change.state not in PROGRESS_EVENTS:
            continue
        if change.state == "ended":
            events.append(_event(CALL_ENDED, change.call_id, None, at))
        else:
            events.append(_event(PROGRESS_EVENTS[change.state], change.call_id, change.data, at))
    return events


def _event(kind: str, call_id: str, data: dict[str, Any] | None,
           at: datetime) -> dict[str, Any]:
    return {"event_id": new_event_id(), "event_type": kind, "call_id": call_id,
            "event_data": data, "at": at}


async def prior_states(connection: AsyncConnection, call_ids: set[str]) -> dict[str, str]:
    if not call_ids:
        return {}
    rows = await connection.execute(
        select(CallRow.id, CallRow.state).where(CallRow.id.in_(list(call_ids))))
    return {call_id: state for call_id, state in rows.tuples()}


async def add_call_events(connection: AsyncConnection, events: list[dict[str, Any]]) -> None:
    if events:
        await connection.execute(_CALL_EVENT, events)


async def add_ended_events(connection: AsyncConnection, call_ids: Sequence[str],
                           at: datetime) -> None:
    """call.ended for calls this transaction ended without placing them (cancel, bad media)."""
    await add_call_events(connection, [_event(CALL_ENDED, call_id, None, at)
                                       for call_id in call_ids])


def _matches(wanted: list[Any] | None, event_type: str) -> bool:
    return wanted is None or event_type in wanted


class EventLog:
    def __init__(self, writer: AsyncEngine, reader: AsyncEngine) -> None:
        self._writer = writer
        self._reader = reader
        self._skip_locked = writer.dialect.name == "postgresql"

    async def seal(self, render: EventRenderer, limit: int = SEAL_BATCH) -> list[EventFacts]:
        """Render and fan out up to `limit` unsealed events, oldest first; what they said.

        Three short steps, so the writer (SQLite has one connection to write with, shared
        with every call's writes) is never held while events are read and rendered: take the
        events with one guarded UPDATE (two nodes never take the same one; a take whose node
        died runs out after TAKE_LEASE), read and render them through a reader, then store
        the bodies, fan out and note completions, for the events still taken by this pass.
        """
        if not await self._any_unsealed():  # a look through a reader keeps the writer free
            return []
        token = datetime.now(UTC)  # marks this pass's take
        pending = (select(EventRow.seq)
                   .where(EventRow.sealed_at.is_(None),
                          or_(EventRow.taken_at.is_(None),
                              EventRow.taken_at < token - TAKE_LEASE))
                   .order_by(EventRow.seq).limit(limit))
        if self._skip_locked:
            pending = pending.with_for_update(skip_locked=True)
        chosen = pending.cte("unsealed").prefix_with("MATERIALIZED", dialect="postgresql")
        take = (update(EventRow)
                .where(EventRow.seq.in_(select(chosen.c.seq)), EventRow.sealed_at.is_(None))
                .values(taken_at=token).returning(EventRow.seq))
        async with self._writer.begin() as connection:
            taken = (await connection.execute(take)).scalars().all()
        if not taken:
            return []
        async with self._reader.connect() as connection:
            events, parents, sealed = await _facts(connection, taken, token)
        bodies = [{"sealed_seq": event.seq, "new_body": render(facts)}
                  for event, facts in zip(events, sealed, strict=True)]
        now = datetime.now(UTC)
        async with self._writer.begin() as connection:
            await connection.execute(
                update(EventRow).where(EventRow.seq == bindparam("sealed_seq"),
                                       EventRow.taken_at == token,
                                       EventRow.sealed_at.is_(None))
                .values(body=bindparam("new_body"), sealed_at=now), bodies)
            # Only what this pass sealed (not re-taken by another node after a long stall).
            mine = set((await connection.execute(
                select(EventRow.seq).where(EventRow.seq.in_(taken), EventRow.taken_at == token,
                                           EventRow.sealed_at == now))).scalars())
            kept = [(event, facts) for event, facts in zip(events, sealed, strict=True)
                    if event.seq in mine]
            await self._fan_out(connection, [event for event, _ in kept], parents, now)
            await self._note_completions(connection, {
                event.broadcast_id for event, _ in kept if event.type == CALL_ENDED}, now)
        return [facts for _, facts in kept]

    async def _fan_out(self, connection: AsyncConnection, events: Sequence[Any],
                       parents: dict[str, Any], now: datetime) -> None:
        tenants = {event.tenant for event in events}
        subscriptions = (await connection.execute(
            select(WebhookSubscriptionRow.id, WebhookSubscriptionRow.tenant,
                   WebhookSubscriptionRow.url, WebhookSubscriptionRow.events)
            .where(WebhookSubscriptionRow.tenant.in_(tenants),
                   WebhookSubscriptionRow.disabled_at.is_(None)))).all()
        deliveries: list[dict[str, Any]] = []
        for event in events:
            targets = [(sub.id, sub.url) for sub in subscriptions
                       if sub.tenant == event.tenant and _matches(sub.events, event.type)]
            callback = parents[event.broadcast_id].callback
            if callback and _matches(callback.get("events"), event.type):
                targets.append((None, callback["url"]))
            deliveries.extend(
                {"id": str(uuid.uuid4()), "event_seq": event.seq, "tenant": event.tenant,
                 "broadcast_id": event.broadcast_id, "subscription_id": subscription_id,
                 "url": url, "state": "pending", "attempts": 0, "next_attempt_at": now,
                 "created_at": now} for subscription_id, url in targets)
        if deliveries:
            await connection.execute(insert(WebhookDeliveryRow), deliveries)

    @staticmethod
    async def _note_completions(connection: AsyncConnection, broadcast_ids: set[str],
                                now: datetime) -> None:
        """A broadcast whose every call has ended gets its broadcast.completed, once: the
        guarded update lets only one node's transaction claim it."""
        for broadcast_id in sorted(broadcast_ids):
            unfinished = exists().where(CallRow.broadcast_id == broadcast_id,
                                        CallRow.state != "ended")
            claimed = await connection.execute(
                update(BroadcastRow)
                .where(BroadcastRow.id == broadcast_id, BroadcastRow.completed_at.is_(None),
                       ~unfinished)
                .values(completed_at=now))
            if claimed.rowcount:
                tenant = await connection.scalar(
                    select(BroadcastRow.tenant).where(BroadcastRow.id == broadcast_id))
                await connection.execute(insert(EventRow).values(
                    id=new_event_id(), tenant=tenant, broadcast_id=broadcast_id,
                    type=BROADCAST_COMPLETED, created_at=now))

    async def sealed_after(self, after_seq: int, *, tenant: str, broadcast_id: str | None,
                           limit: int = 500) -> tuple[list[StoredEvent], int]:
        """Sealed events after `after_seq` in order, stopping before the first unsealed one
        (so a reader never skips an event sealed later); and the last seq looked at."""
        query = (select(EventRow.seq, EventRow.id, EventRow.type, EventRow.broadcast_id,
                        EventRow.body, EventRow.tenant, EventRow.sealed_at)
                 .where(EventRow.seq > after_seq).order_by(EventRow.seq).limit(limit))
        if broadcast_id is not None:
            query = query.where(EventRow.broadcast_id == broadcast_id)
        else:
            query = query.where(EventRow.tenant == tenant)
        async with self._reader.connect() as connection:
            rows = (await connection.execute(query)).all()
        # On PostgreSQL a transaction may commit a lower seq after a higher one is visible;
        # events sealed less than SETTLE ago are held back so such a late one is not passed.
        settled = datetime.now(UTC) - (POSTGRES_SETTLE if self._skip_locked else timedelta(0))
        found = []
        for row in rows:
            sealed_at = utc(row.sealed_at)
            if row.body is None or sealed_at is None or sealed_at > settled:
                break
            if row.tenant == tenant:
                found.append(StoredEvent(row.seq, row.id, row.type, row.broadcast_id, row.body))
        return found, (found[-1].seq if found else after_seq)

    async def _any_unsealed(self) -> bool:
        async with self._reader.connect() as connection:
            return (await connection.scalar(
                select(EventRow.seq).where(EventRow.sealed_at.is_(None)).limit(1))) is not None

    async def unsealed_count(self) -> int:
        async with self._reader.connect() as connection:
            return int(await connection.scalar(
                select(func.count()).select_from(EventRow)
                .where(EventRow.sealed_at.is_(None))) or 0)


async def _facts(connection: AsyncConnection, taken: Sequence[int],
                 fallback_time: datetime) -> tuple[list[Any], dict[str, Any], list[EventFacts]]:
    """The taken events in order, their broadcasts, and what each event says."""
    events = (await connection.execute(
        select(EventRow.seq, EventRow.id, EventRow.tenant, EventRow.broadcast_id,
               EventRow.call_id, EventRow.type, EventRow.data, EventRow.created_at)
        .where(EventRow.seq.in_(taken)).order_by(EventRow.seq))).all()
    parents = {row.id: row for row in await connection.execute(
        select(BroadcastRow.id, BroadcastRow.report_id, BroadcastRow.tenant,
               BroadcastRow.callback)
        .where(BroadcastRow.id.in_({event.broadcast_id for event in events})))}
    calls = await call_records(connection, {e.call_id for e in events if e.call_id})
    summaries = {broadcast_id: await _summary(connection, broadcast_id)
                 for broadcast_id in {e.broadcast_id for e in events
                                      if e.type == BROADCAST_COMPLETED}}
    sealed = []
    for event in events:
        parent = parents[event.broadcast_id]
        sealed.append(EventFacts(
            event.id, event.type, utc(event.created_at) or fallback_time,
            BroadcastFacts(parent.id, parent.report_id, parent.tenant),
            calls.get(event.call_id or ""), event.data, summaries.get(event.broadcast_id)))
    return list(events), parents, sealed


async def _summary(connection: AsyncConnection, broadcast_id: str) -> dict[str, Any]:
    rows = await connection.execute(
        select(CallRow.result, func.count()).where(CallRow.broadcast_id == broadcast_id)
        .group_by(CallRow.result))
    by_result = {result or "pending": count for result, count in rows.tuples()}
    recipients = await connection.scalar(
        select(BroadcastRow.total_calls).where(BroadcastRow.id == broadcast_id))
    answered = await connection.scalar(
        select(func.count()).select_from(CallRow)
        .where(and_(CallRow.broadcast_id == broadcast_id, CallRow.connect_time.is_not(None))))
    return {"recipients": recipients, "calls": sum(by_result.values()),
            "answered": answered or 0, "by_result": by_result}
