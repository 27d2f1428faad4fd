"""Listing broadcasts on SQLite and PostgreSQL: status from the calls' real write path, retries
counted as calls, and keyset pages that neither skip nor repeat broadcasts made in one second."""

from __future__ import annotations

from datetime import timedelta

from app.domain.broadcasts import BroadcastFilter, CallFinal
from tests.store.test_store import NOW, broadcast

BUSY = CallFinal("completed", NOW, None, None, 486, "User Busy", "tech_cause", 17, "busy", None,
                 [])
ANSWERED = CallFinal("completed", NOW, None, NOW, 200, "OK", "answered", 16, "Normal",
                     "service", ["done"])


ANY = BroadcastFilter()


async def _listed(store, which=ANY, tenant="t1", limit=100, after=None):
    return [(item.summary.id, item) for item in
            await store.broadcasts.page(tenant, which, limit, after)]


async def test_status_progress_and_answered_follow_the_calls(store):
    untouched, retried = broadcast(2), broadcast(
        2, NOW + timedelta(minutes=1), retry={"on": ["busy"], "attempts": 2, "delay": 0})
    for new in (untouched, retried):
        await store.intake.add_broadcast(new)
    await store.media.set_media_ready(retried.id, ["sound:/x"])
    first, second = await store.queue.claim_calls("n1", 2)
    await store.calls.save_final(first.call_id, BUSY, retry_at=NOW)  # a second attempt queued
    await store.calls.save_progress(second.call_id, state="answered", ring_time=NOW,
                                    connect_time=NOW)
    listed = dict(await _listed(store))
    item = listed[retried.id]
    assert (item.progress.total, item.progress.queued, item.progress.in_progress,
            item.progress.completed, item.answered) == (3, 1, 1, 1, 1)
    assert [i for i, _ in await _listed(store, BroadcastFilter(status="running"))] == \
        [retried.id]
    assert [i for i, _ in await _listed(store, BroadcastFilter(status="queued"))] == \
        [untouched.id]
    (again,) = await store.queue.claim_calls("n1", 1)
    await store.calls.save_final(again.call_id, ANSWERED)
    await store.calls.save_final(second.call_id, ANSWERED)
    assert [i for i, _ in await _listed(store, BroadcastFilter(status="ready"))] == [retried.id]
    assert dict(await _listed(store))[retried.id].answered == 2


async def test_pages_through_broadcasts_made_in_the_same_second(store):
    made = [broadcast(1) for _ in range(7)]  # all at NOW: ordered by id among themselves
    for new in made:
        await store.intake.add_broadcast(new)
    seen: list[str] = []
    after = None
    for _ in range(10):
        page = [i for i, _ in await _listed(store, limit=3, after=after)]
        if not page:
            break
        seen += page
        after = page[-1]
    assert seen == sorted((new.id for new in made), reverse=True)
    window = BroadcastFilter(created_after=NOW - timedelta(seconds=1), created_before=NOW)
    assert await _listed(store, window) == []  # both bounds exclusive
    assert await _listed(store, tenant="t2") == []
