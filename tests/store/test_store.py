import asyncio
import uuid
from datetime import UTC, datetime

from app.adapters.db.store import CallFinal, CallMedia, NewBroadcast, NewCall

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def broadcast(count: int, created: datetime = NOW) -> NewBroadcast:
    return NewBroadcast(
        id=str(uuid.uuid4()), report_id=str(uuid.uuid4()), caller="me",
        playlist=[{"play": "http://127.0.0.1/x.wav"}], created_at=created,
        calls=[NewCall(str(uuid.uuid4()), f"sip:{i}@127.0.0.1") for i in range(count)])


async def test_intake_stores_every_recipient_and_nothing_is_claimable_before_media(store):
    new = broadcast(5)
    await store.add_broadcast(new)
    progress = await store.progress(new.id)
    assert (progress.total, progress.queued, progress.completed) == (5, 5, 0)
    assert await store.claim_calls("n1", 10) == []
    await store.set_media_ready(new.id, ["sound:/x"])
    claimed = await store.claim_calls("n1", 3)
    assert [c.target for c in claimed] == [f"sip:{i}@127.0.0.1" for i in range(3)]
    assert claimed[0].sounds == ("sound:/x",) and claimed[0].caller == "me"
    progress = await store.progress(new.id)
    assert (progress.queued, progress.in_progress) == (2, 3)


async def test_concurrent_claims_never_share_a_call(store):
    new = broadcast(200)
    await store.add_broadcast(new)
    await store.set_media_ready(new.id, ["sound:/x"])
    batches = await asyncio.gather(*(store.claim_calls(f"n{i}", 30) for i in range(10)))
    ids = [c.call_id for batch in batches for c in batch]
    assert len(ids) == len(set(ids)) == 200


async def test_release_returns_only_undialled_calls(store):
    new = broadcast(2)
    await store.add_broadcast(new)
    await store.set_media_ready(new.id, ["sound:/x"])
    first, second = await store.claim_calls("n1", 2)
    await store.mark_setup(first.call_id, NOW)
    await store.release_calls([first.call_id, second.call_id])
    again = await store.claim_calls("n1", 5)
    assert [c.call_id for c in again] == [second.call_id]
    in_flight = await store.in_flight_calls("n1")
    assert {row.id for row in in_flight} == {first.call_id, second.call_id}


async def test_media_failure_fails_every_queued_call(store):
    new = broadcast(3)
    await store.add_broadcast(new)
    await store.fail_media(new.id, "media could not be prepared: 404", NOW)
    progress = await store.progress(new.id)
    assert progress.finished
    calls = await store.calls_of(new.id)
    assert {c.result for c in calls} == {"failed"}
    assert "404" in calls[0].sip_text


async def test_final_record_is_written_once(store):
    new = broadcast(1)
    await store.add_broadcast(new)
    await store.set_media_ready(new.id, ["sound:/x"])
    (call,) = await store.claim_calls("n1", 1)
    final = CallFinal("completed", NOW, None, NOW, 200, "OK", "answered", 16, "Normal", "service",
                      ["done"])
    await store.save_final(call.call_id, final)
    await store.save_final(call.call_id, CallFinal("failed", NOW, None, None, 500, "x", "none",
                                                   None, None, None, []))
    await store.save_progress(call.call_id, state="ringing", ring_time=NOW, connect_time=None)
    row, parent = await store.call(call.call_id)
    assert (row.result, row.sip_code, row.state, row.playback) == ("completed", 200, "ended",
                                                                   ["done"])
    assert parent.id == new.id
    report_parent = await store.broadcast_by_report(new.report_id)
    assert report_parent.id == new.id


async def test_older_broadcasts_are_dialled_first(store):
    later = broadcast(2, NOW.replace(minute=5))
    earlier = broadcast(2, NOW)
    for new in (later, earlier):
        await store.add_broadcast(new)
        await store.set_media_ready(new.id, ["sound:/x"])
    claimed = await store.claim_calls("n1", 4)
    assert [c.broadcast_id for c in claimed] == [earlier.id] * 2 + [later.id] * 2


async def test_personal_sounds_override_the_shared_ones(store):
    new = broadcast(3)
    await store.add_broadcast(new)
    page = await store.recipients_page(new.id, -1, 2)
    assert [position for _id, position, _vars in page] == [0, 1]
    await store.set_call_media([CallMedia(page[0][0], ["sound:/mine"], [{"engine": "flite"}])])
    await store.set_media_ready(new.id, ["sound:/shared"])
    claimed = {c.call_id: c.sounds for c in await store.claim_calls("n1", 3)}
    assert claimed[page[0][0]] == ("sound:/mine",)
    assert claimed[page[1][0]] == ("sound:/shared",)
