import asyncio
import uuid
from datetime import UTC, datetime

import pytest

from app.domain.broadcasts import (
    CallFinal,
    CallMedia,
    IdempotencyConflict,
    NewBroadcast,
    NewCall,
)

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def broadcast(count: int, created: datetime = NOW, tenant: str = "t1",
              idempotency: tuple[str, str] | None = None,
              retry: dict | None = None) -> NewBroadcast:
    return NewBroadcast(
        id=str(uuid.uuid4()), report_id=str(uuid.uuid4()), tenant=tenant, caller="me",
        idempotency=idempotency, retry=retry,
        playlist=[{"play": "http://127.0.0.1/x.wav"}], created_at=created,
        calls=[NewCall(str(uuid.uuid4()), f"sip:{i}@127.0.0.1") for i in range(count)])


async def test_intake_stores_every_recipient_and_nothing_is_claimable_before_media(store):
    new = broadcast(5)
    await store.intake.add_broadcast(new)
    progress = await store.reports.progress(new.id)
    assert (progress.total, progress.queued, progress.completed) == (5, 5, 0)
    assert await store.queue.claim_calls("n1", 10) == []
    await store.media.set_media_ready(new.id, ["sound:/x"])
    claimed = await store.queue.claim_calls("n1", 3)
    assert [c.target for c in claimed] == [f"sip:{i}@127.0.0.1" for i in range(3)]
    assert claimed[0].sounds == ("sound:/x",) and claimed[0].caller == "me"
    progress = await store.reports.progress(new.id)
    assert (progress.queued, progress.in_progress) == (2, 3)


async def test_concurrent_claims_never_share_a_call(store):
    new = broadcast(200)
    await store.intake.add_broadcast(new)
    await store.media.set_media_ready(new.id, ["sound:/x"])
    batches = await asyncio.gather(*(store.queue.claim_calls(f"n{i}", 30) for i in range(10)))
    ids = [c.call_id for batch in batches for c in batch]
    assert len(ids) == len(set(ids)) == 200


async def test_release_returns_only_undialled_calls(store):
    new = broadcast(2)
    await store.intake.add_broadcast(new)
    await store.media.set_media_ready(new.id, ["sound:/x"])
    first, second = await store.queue.claim_calls("n1", 2)
    await store.calls.mark_setup(first.call_id, NOW)
    await store.queue.release_calls([first.call_id, second.call_id])
    again = await store.queue.claim_calls("n1", 5)
    assert [c.call_id for c in again] == [second.call_id]
    in_flight = await store.queue.in_flight_calls("n1")
    assert {item.call.call_id: item.setup_time for item in in_flight} == {
        first.call_id: NOW, second.call_id: None}


async def test_media_failure_fails_every_queued_call(store):
    new = broadcast(3)
    await store.intake.add_broadcast(new)
    await store.media.fail_media(new.id, "media could not be prepared: 404", NOW)
    progress = await store.reports.progress(new.id)
    assert progress.finished
    calls = await store.reports.records(new.id)
    assert {c.result for c in calls} == {"failed"}
    assert "404" in calls[0].sip_text


async def test_final_record_is_written_once(store):
    new = broadcast(1)
    await store.intake.add_broadcast(new)
    await store.media.set_media_ready(new.id, ["sound:/x"])
    (call,) = await store.queue.claim_calls("n1", 1)
    final = CallFinal("completed", NOW, None, NOW, 200, "OK", "answered", 16, "Normal", "service",
                      ["done"])
    await store.calls.save_final(call.call_id, final)
    await store.calls.save_final(call.call_id, CallFinal("failed", NOW, None, None, 500, "x",
                                                         "none", None, None, None, []))
    await store.calls.save_progress(call.call_id, state="ringing", ring_time=NOW,
                                    connect_time=None)
    record = await store.reports.call(call.call_id, "t1")
    assert (record.result, record.sip_code, record.state, record.playback) == (
        "completed", 200, "ended", ("done",))
    assert record.broadcast_id == new.id and record.caller == "me"
    report_parent = await store.reports.broadcast_by_report(new.report_id, "t1")
    assert report_parent.id == new.id


async def test_older_broadcasts_are_dialled_first(store):
    later = broadcast(2, NOW.replace(minute=5))
    earlier = broadcast(2, NOW)
    for new in (later, earlier):
        await store.intake.add_broadcast(new)
        await store.media.set_media_ready(new.id, ["sound:/x"])
    claimed = await store.queue.claim_calls("n1", 4)
    assert [c.broadcast_id for c in claimed] == [earlier.id] * 2 + [later.id] * 2


async def test_personal_sounds_override_the_shared_ones(store):
    new = broadcast(3)
    await store.intake.add_broadcast(new)
    page = await store.media.recipients_page(new.id, -1, 2)
    assert [position for _id, position, _vars in page] == [0, 1]
    await store.media.set_call_media([CallMedia(page[0][0], ["sound:/mine"],
                                                [{"engine": "flite"}])])
    await store.media.set_media_ready(new.id, ["sound:/shared"])
    claimed = {c.call_id: c.sounds for c in await store.queue.claim_calls("n1", 3)}
    assert claimed[page[0][0]] == ("sound:/mine",)
    assert claimed[page[1][0]] == ("sound:/shared",)


async def test_tenants_never_see_each_other(store):
    new = broadcast(1, tenant="acme")
    await store.intake.add_broadcast(new)
    await store.media.set_media_ready(new.id, ["sound:/x"])
    (call,) = await store.queue.claim_calls("n1", 1)
    assert await store.reports.broadcast(new.id, "acme") is not None
    assert await store.reports.broadcast(new.id, "other") is None
    assert await store.reports.broadcast_by_report(new.report_id, "other") is None
    assert await store.reports.call(call.call_id, "other") is None
    await store.uploads.add_upload("acme", "ab" * 32)
    assert await store.uploads.has_upload("acme", "ab" * 32)
    assert not await store.uploads.has_upload("other", "ab" * 32)


async def test_idempotency_key_returns_the_first_request(store):
    first = broadcast(2, idempotency=("key-1", "hash-a"))
    assert (await store.intake.add_broadcast(first)).id == first.id
    replay = broadcast(2, idempotency=("key-1", "hash-a"))
    assert (await store.intake.add_broadcast(replay)).id == first.id
    assert (await store.reports.progress(first.id)).total == 2
    assert await store.reports.broadcast(replay.id, "t1") is None  # nothing new stored
    with pytest.raises(IdempotencyConflict):
        await store.intake.add_broadcast(broadcast(2, idempotency=("key-1", "hash-b")))
    other_tenant = broadcast(1, tenant="t2", idempotency=("key-1", "hash-b"))
    assert (await store.intake.add_broadcast(other_tenant)).id == other_tenant.id


async def test_concurrent_idempotent_submits_store_one_request(store):
    attempts = [broadcast(3, idempotency=("same", "h")) for _ in range(8)]
    stored = await asyncio.gather(*(store.intake.add_broadcast(b) for b in attempts))
    ids = {summary.id for summary in stored}
    assert len(ids) == 1
    assert (await store.reports.progress(ids.pop())).total == 3


async def test_cancel_ends_queued_calls_and_stops_claims(store):
    new = broadcast(3)
    await store.intake.add_broadcast(new)
    await store.media.set_media_ready(new.id, ["sound:/x"])
    (live,) = await store.queue.claim_calls("n1", 1)
    assert await store.queue.cancel(new.id, NOW) == 2
    assert await store.queue.claim_calls("n1", 5) == []
    calls = await store.reports.records(new.id)
    assert [c.result for c in calls] == [None, "cancelled", "cancelled"]
    assert calls[0].id == live.call_id


async def test_a_retry_is_queued_with_the_final_record(store):
    new = broadcast(1, retry={"on": ["busy"], "attempts": 2, "delay": 0})
    await store.intake.add_broadcast(new)
    await store.media.set_media_ready(new.id, ["sound:/x"])
    (call,) = await store.queue.claim_calls("n1", 1)
    assert call.retry == {"on": ["busy"], "attempts": 2, "delay": 0} and call.attempt == 1
    busy = CallFinal("completed", NOW, None, None, 486, "User Busy", "tech_cause", 17, "busy",
                     None, [])
    await store.calls.save_final(call.call_id, busy, retry_at=NOW)
    (again,) = await store.queue.claim_calls("n1", 1)
    assert again.attempt == 2 and again.target == call.target
    await store.calls.save_final(call.call_id, busy, retry_at=NOW)  # a second final is ignored
    assert [c.attempt for c in await store.reports.records(new.id)] == [1, 2]



async def test_records_come_in_batches_in_recipient_order(store):
    new = broadcast(25)
    await store.intake.add_broadcast(new)
    batches = [batch async for batch in store.reports.record_batches(new.id, size=10)]
    assert [len(batch) for batch in batches] == [10, 10, 5]
    assert [record.position for batch in batches for record in batch] == list(range(25))
    assert [r.id for r in await store.reports.records(new.id)] == [c.id for c in new.calls]
    assert [batch async for batch in store.reports.record_batches("no-such-id")] == []
