"""The event outbox with several nodes on one database (SQLite and PostgreSQL): each event is
sealed once, a broadcast completes once, and each delivery is claimed by one node at a time."""

import asyncio
import json
from collections import Counter
from datetime import UTC, datetime, timedelta

from app.adapters.db.store import Store
from app.domain.events import EventFacts
from tests.store.test_claims import _queue_calls

CALLS = 120


def _render(facts: EventFacts) -> str:
    return json.dumps({"type": facts.type, "id": facts.event_id,
                       "call": facts.call.id if facts.call else None})


async def _seal_all(store: Store) -> list[EventFacts]:
    sealed: list[EventFacts] = []
    while batch := await store.events.seal(_render, limit=9):
        sealed.extend(batch)
    return sealed


async def _claim_all(store: Store) -> list[str]:
    claimed: list[str] = []
    while batch := await store.webhooks.claim_due(5, timedelta(minutes=5)):
        claimed.extend(delivery.id for delivery in batch)
    return claimed


async def test_two_nodes_seal_and_claim_each_event_once(database_url):
    nodes = [await Store.open(database_url) for _ in range(2)]
    try:
        await nodes[0].webhooks.add_subscription("t", "https://hooks.example/a", None)
        await nodes[0].webhooks.add_subscription("t", "https://hooks.example/b",
                                                 ["broadcast.completed"])
        broadcast_id, calls = await _queue_calls(nodes[0], CALLS)
        assert await nodes[1].queue.cancel(broadcast_id, datetime.now(UTC)) == CALLS
        sealed = await asyncio.gather(*(_seal_all(nodes[n % 2]) for n in range(4)))
        facts = [event for batch in sealed for event in batch]
        assert Counter(event.type for event in facts) == {"call.ended": CALLS,
                                                          "broadcast.completed": 1}
        assert len({event.event_id for event in facts}) == CALLS + 1  # each sealed once
        assert {event.call.id for event in facts if event.call} == set(calls)
        completed = next(event for event in facts if event.type == "broadcast.completed")
        assert completed.summary == {"recipients": CALLS, "calls": CALLS, "answered": 0,
                                     "by_result": {"cancelled": CALLS}}

        claims = await asyncio.gather(*(_claim_all(nodes[n % 2]) for n in range(4)))
        claimed = [delivery_id for batch in claims for delivery_id in batch]
        assert len(claimed) == len(set(claimed)) == CALLS + 2  # /a: all, /b: the completion
        assert await nodes[0].webhooks.pending_count() == CALLS + 2  # claimed, not yet sent
        events, last = await nodes[1].events.sealed_after(0, tenant="t", broadcast_id=None)
        # PostgreSQL holds back events sealed less than a second ago (a late commit's gap).
        if nodes[1].engines.dialect == "postgresql":
            assert events == []
            await asyncio.sleep(1.1)
            events, last = await nodes[1].events.sealed_after(0, tenant="t",
                                                              broadcast_id=None)
        assert [e.seq for e in events] == sorted(e.seq for e in events)
        assert len(events) == CALLS + 1 and last == events[-1].seq
        other, _ = await nodes[1].events.sealed_after(0, tenant="u", broadcast_id=broadcast_id)
        assert other == []  # another tenant's broadcast shows nothing
    finally:
        for node in nodes:
            await node.close()


async def test_events_taken_by_a_pass_that_died_are_taken_again_after_the_lease(
        store, monkeypatch):
    broadcast_id, calls = await _queue_calls(store, 3)
    await store.queue.cancel(broadcast_id, datetime.now(UTC))

    def crash(_facts: EventFacts) -> str:
        raise RuntimeError("the node died while rendering")

    try:
        await store.events.seal(crash)
    except RuntimeError:
        pass
    assert await store.events.seal(_render) == []  # still taken by the dead pass
    monkeypatch.setattr("app.adapters.db.event_log.TAKE_LEASE", timedelta(0))
    sealed = await _seal_all(store)
    assert Counter(event.type for event in sealed) == {"call.ended": 3,
                                                       "broadcast.completed": 1}
