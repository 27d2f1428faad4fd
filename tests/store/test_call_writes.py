"""Group commit: calls share commits, each call's changes keep their order, nothing is lost,
and a call's audio never waits for the database."""

import asyncio
import logging
import sqlite3
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import event
from sqlalchemy.exc import OperationalError

from app.adapters.ari.events import ChannelAnswered, ChannelGone, PlaybackEnded
from app.adapters.ari.routing import ChannelEventRouter
from app.adapters.db import call_writes
from app.adapters.db.call_writes import CallWriterClosed
from app.adapters.db.store import Store
from app.domain.broadcasts import CallFinal, NewBroadcast, NewCall
from app.services.call_session import CallSession, playback_id_for

REPOSITORY = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
ANSWERED = CallFinal("completed", NOW, NOW, NOW, 200, "OK", "answered", 16, "Normal Clearing",
                     "service", ["done"])
BUSY = CallFinal("completed", NOW, None, None, 486, "User Busy", "tech_cause", 17, "User busy",
                 None, [])


async def _ready(store: Store, count: int, retry: dict | None = None) -> str:
    """A broadcast of `count` calls ready to be claimed: its id."""
    new = NewBroadcast(
        id=str(uuid.uuid4()), report_id=str(uuid.uuid4()), tenant="t", caller="me",
        playlist=[{"pause": 1}], created_at=NOW, retry=retry,
        calls=[NewCall(str(uuid.uuid4()), f"sip:{i}@127.0.0.1") for i in range(count)])
    await store.intake.add_broadcast(new)
    await store.media.set_media_ready(new.id, ["sound:/x"])
    return new.id


async def _claimed(store: Store, count: int, retry: dict | None = None):
    broadcast_id = await _ready(store, count, retry)
    return broadcast_id, await store.queue.claim_calls("n1", count)


def _count_commits(store: Store) -> list[int]:
    commits = [0]

    def committed(_connection) -> None:
        commits[0] += 1

    event.listen(store.engines.writer.sync_engine, "commit", committed)
    return commits


async def _answered_call(store: Store, call_id: str, *, ring: bool, start: float = 0) -> None:
    """What a session asks of the writer for an answered call, on a compressed clock."""
    await asyncio.sleep(start)
    await store.calls.mark_setup(call_id, NOW)  # awaited: before the originate
    if ring:
        await asyncio.sleep(0.01)
        store.calls.save_progress(call_id, state="ringing", ring_time=NOW, connect_time=None)
    await asyncio.sleep(0.02)
    store.calls.save_progress(call_id, state="answered", ring_time=NOW if ring else None,
                              connect_time=NOW)  # not awaited: the audio starts now
    await asyncio.sleep(0.05)  # the playlist plays
    await store.calls.save_final(call_id, ANSWERED)  # awaited: ends the session


async def test_a_lone_answered_call_costs_two_awaited_commits_and_its_progress(store):
    _id, calls = await _claimed(store, 2)
    commits = _count_commits(store)
    await _answered_call(store, calls[0].call_id, ring=False)
    assert 2 <= commits[0] <= 3  # setup, answer, final (two of them awaited): none shared
    alone = commits[0]
    await _answered_call(store, calls[1].call_id, ring=True)
    assert commits[0] - alone <= 4  # a 180 Ringing may add one, never awaited
    records = await store.reports.records(_id)
    assert {(r.state, r.result, r.sip_code) for r in records} == {("ended", "completed", 200)}


async def test_calls_under_load_share_their_commits(store):
    _id, calls = await _claimed(store, 200)
    commits = _count_commits(store)
    # 200 calls started 2 ms apart: about 60 live at once, 800 changes in all.
    await asyncio.gather(*(_answered_call(store, call.call_id, ring=True, start=0.002 * n)
                           for n, call in enumerate(calls)))
    records = await store.reports.records(_id)
    assert [r.state for r in records] == ["ended"] * 200
    assert all(r.setup_time and r.ring_time and r.connect_time for r in records)
    print(f"\n200 answered calls (800 changes): {commits[0]} commits, "
          f"{commits[0] / 200:.2f} a call")
    assert commits[0] < 800, "changes of different calls should share commits"


async def test_while_a_commit_waits_changes_queue_and_the_next_commit_takes_them_all(
        tmp_path):
    path = tmp_path / "store.db"
    store = await Store.open(f"sqlite+aiosqlite:///{path}")
    blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        broadcast_id, calls = await _claimed(store, 100)
        commits = _count_commits(store)
        blocker.execute("BEGIN IMMEDIATE")  # a slow disk, or another node writing
        first = store.calls.mark_setup(calls[0].call_id, NOW)
        await asyncio.sleep(0.2)  # the writer is waiting for the lock with one change
        rest = [store.calls.mark_setup(call.call_id, NOW) for call in calls[1:]]
        await asyncio.sleep(0.2)
        assert not first.done()
        blocker.execute("COMMIT")
        await asyncio.wait_for(asyncio.gather(first, *rest), 15)
        assert commits == [2]
        records = await store.reports.records(broadcast_id)
        assert all(record.setup_time == NOW for record in records)
    finally:
        blocker.close()
        await store.close()


async def test_a_late_progress_never_overwrites_the_final_record(store):
    _id, (first, second) = await _claimed(store, 2)
    store.calls.save_final(first.call_id, ANSWERED)  # in one batch: final, then a progress
    await store.calls.save_progress(first.call_id, state="ringing", ring_time=None,
                                    connect_time=None)
    await store.calls.save_final(second.call_id, ANSWERED)  # in two batches
    await store.calls.save_progress(second.call_id, state="answered", ring_time=None,
                                    connect_time=None)
    for call in (first, second):
        record = await store.reports.call(call.call_id, "t")
        assert (record.state, record.sip_code, record.connect_time) == ("ended", 200, NOW)


async def test_progress_in_one_batch_keeps_its_order(store):
    _id, (call,) = await _claimed(store, 1)
    later = NOW + timedelta(seconds=2)
    store.calls.save_progress(call.call_id, state="ringing", ring_time=NOW, connect_time=None)
    await store.calls.save_progress(call.call_id, state="answered", ring_time=NOW,
                                    connect_time=later)
    record = await store.reports.call(call.call_id, "t")
    assert (record.state, record.ring_time, record.connect_time) == ("answered", NOW, later)


async def test_a_second_final_in_the_same_batch_queues_no_second_retry(store):
    broadcast_id, (call,) = await _claimed(store, 1, retry={"on": ["busy"], "attempts": 3,
                                                            "delay": 0})
    first = store.calls.save_final(call.call_id, BUSY, retry_at=NOW)
    second = store.calls.save_final(call.call_id, BUSY, retry_at=NOW)
    await asyncio.gather(first, second)
    records = await store.reports.records(broadcast_id)
    assert [(r.attempt, r.state) for r in records] == [(1, "ended"), (2, "queued")]


def _failing_updates(store: Store, failures: int) -> list[int]:
    """The next `failures` UPDATEs of calls fail as a locked database would."""
    seen = [0]

    def before(_connection, _cursor, statement, _parameters, _context, _executemany):
        if statement.startswith("UPDATE calls") and seen[0] < failures:
            seen[0] += 1
            raise OperationalError(statement, None, Exception("database is locked"))

    event.listen(store.engines.writer.sync_engine, "before_cursor_execute", before)
    return seen


async def test_a_failing_batch_is_tried_again(store, caplog):
    _id, (call,) = await _claimed(store, 1)
    failed = _failing_updates(store, failures=2)
    await store.calls.mark_setup(call.call_id, NOW)
    assert failed == [2]
    assert (await store.reports.call(call.call_id, "t")).setup_time == NOW
    assert "call writes failed" in caplog.text and "trying again" in caplog.text


async def test_a_batch_that_keeps_failing_fails_loudly(store, caplog, monkeypatch):
    monkeypatch.setattr(call_writes, "RETRY_DELAYS", (0.01, 0.01))
    _id, (call,) = await _claimed(store, 1)
    _failing_updates(store, failures=3)
    with caplog.at_level(logging.ERROR), pytest.raises(OperationalError):
        await store.calls.mark_setup(call.call_id, NOW)
    assert "are not stored" in caplog.text and call.call_id in caplog.text
    await store.calls.mark_setup(call.call_id, NOW)  # the writer carries on
    assert (await store.reports.call(call.call_id, "t")).setup_time == NOW


async def test_closing_commits_what_is_queued_then_refuses_more(database_url):
    store = await Store.open(database_url)
    broadcast_id, calls = await _claimed(store, 20)
    for call in calls:
        store.calls.save_final(call.call_id, ANSWERED)  # nobody awaits them
    await store.close()
    with pytest.raises(CallWriterClosed):
        store.calls.save_final(calls[0].call_id, ANSWERED)
    reopened = await Store.open(database_url)
    try:
        records = await reopened.reports.records(broadcast_id)
        assert [r.result for r in records] == ["completed"] * 20
    finally:
        await reopened.close()


async def test_a_writer_stuck_at_close_is_stopped_and_says_so(tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(call_writes, "CLOSE_TIMEOUT", 0.3)
    path = tmp_path / "store.db"
    store = await Store.open(f"sqlite+aiosqlite:///{path}")
    blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        _id, (call,) = await _claimed(store, 1)
        blocker.execute("BEGIN IMMEDIATE")  # the commit cannot finish before close gives up
        final = store.calls.save_final(call.call_id, ANSWERED)
        await asyncio.sleep(0.1)
        closing = asyncio.create_task(store.calls.close())
        await asyncio.sleep(0.5)  # close gave up waiting and cancelled the writer
        blocker.execute("ROLLBACK")  # lets the cancelled commit's connection go
        await asyncio.wait_for(closing, 10)
        with pytest.raises(CallWriterClosed):
            await asyncio.wait_for(final, 5)
        assert "stopped with 1 changes not known to be stored" in caplog.text
    finally:
        blocker.close()
        await store.close()


class RecordingAri:
    """Stands in for Asterisk's REST side: records what the session asked for."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []
        self.originated = asyncio.Event()
        self.played = asyncio.Event()

    async def originate(self, *, channel_id: str, **_options) -> None:
        self.requests.append(("originate", channel_id))
        self.originated.set()

    async def play(self, *, channel_id: str, playback_id: str, media: str) -> None:
        self.requests.append(("play", playback_id))
        self.played.set()

    async def hangup(self, channel_id: str, reason: str = "normal") -> None:
        self.requests.append(("hangup", channel_id))


async def test_audio_starts_while_the_database_is_locked(tmp_path):
    """The answer's progress is not awaited before Play: a busy database delays no audio."""
    path = tmp_path / "store.db"
    store = await Store.open(f"sqlite+aiosqlite:///{path}")
    blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        broadcast_id, (call,) = await _claimed(store, 1)
        ari, router = RecordingAri(), ChannelEventRouter()
        session = CallSession(call, ari=ari, media_server="a", queue=store.queue,
                              writes=store.calls,
                              router=router, sip_endpoint="voxcast-out", ari_app="voxcast",
                              ring_timeout=30, max_call_seconds=60)
        running = asyncio.create_task(session.run())
        await asyncio.wait_for(ari.originated.wait(), 5)
        blocker.execute("BEGIN IMMEDIATE")  # another writer holds the lock from now on
        router.dispatch(ChannelAnswered(session.channel_id, datetime.now(UTC)))
        await asyncio.wait_for(ari.played.wait(), 2)  # the busy timeout is 10 s
        state = blocker.execute("SELECT state FROM calls WHERE id = ?", (call.call_id,))
        assert state.fetchone() == ("dialing",)  # the answer is not stored yet
        blocker.execute("COMMIT")
        now = datetime.now(UTC)
        router.dispatch(PlaybackEnded(session.channel_id,
                                      playback_id_for(session.channel_id, 0), True, now))
        router.dispatch(ChannelGone(session.channel_id, now, 16, "Normal Clearing", None))
        await asyncio.wait_for(running, 15)
        assert [kind for kind, _ in ari.requests] == ["originate", "play", "hangup"]
        record = await store.reports.call(call.call_id, "t")
        assert (record.state, record.sip_code, record.playback) == ("ended", 200, ("done",))
        assert record.broadcast_id == broadcast_id
    finally:
        blocker.close()
        await store.close()


# A node in its own process: claims the one queued call and stores its setup, then on "end"
# queues the final record (the database is locked by the test meanwhile) and waits to die.
_NODE = """
import asyncio, sys
from datetime import UTC, datetime
from app.adapters.db.store import Store
from app.domain.broadcasts import CallFinal

async def main(url):
    store = await Store.open(url)
    (call,) = await store.queue.claim_calls("node-1", 1)
    await store.calls.mark_setup(call.call_id, datetime.now(UTC))
    print("dialled", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    store.calls.save_final(call.call_id, CallFinal(
        "completed", datetime.now(UTC), None, None, 486, "Busy", "tech_cause", 17, "busy",
        None, []))
    print("ended", flush=True)
    await asyncio.sleep(60)

asyncio.run(main(sys.argv[1]))
"""


async def test_a_crash_before_the_final_commits_leaves_the_call_in_flight(tmp_path):
    path = tmp_path / "store.db"
    url = f"sqlite+aiosqlite:///{path}"
    store = await Store.open(url)
    try:
        broadcast_id = await _ready(store, 1)
    finally:
        await store.close()
    node = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _NODE, url, cwd=REPOSITORY, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE)
    blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        assert await asyncio.wait_for(node.stdout.readline(), 30) == b"dialled\n"
        blocker.execute("BEGIN IMMEDIATE")
        node.stdin.write(b"end\n")
        await node.stdin.drain()
        assert await asyncio.wait_for(node.stdout.readline(), 30) == b"ended\n"
        await asyncio.sleep(0.3)  # its writer is waiting for the lock with the final record
        node.kill()  # kill -9 between ChannelDestroyed and the commit
        await node.wait()
        blocker.execute("ROLLBACK")
    finally:
        blocker.close()
        if node.returncode is None:
            node.kill()
            await node.wait()
    store = await Store.open(url)
    try:
        (left,) = await store.queue.in_flight_calls("node-1")
        assert left.setup_time is not None  # recovery sees a call that was dialled
        (record,) = await store.reports.records(broadcast_id)
        assert (record.state, record.result) == ("dialing", None)
    finally:
        await store.close()


async def test_the_trunk_a_call_was_placed_through_is_known_to_recovery(store):
    _id, calls = await _claimed(store, 2)
    await store.calls.mark_setup(calls[0].call_id, NOW, "asterisk-1", "carrier-a")
    await store.calls.mark_setup(calls[1].call_id, NOW, "asterisk-1")
    in_flight = {item.call.call_id: item.trunk
                 for item in await store.queue.in_flight_calls("n1")}
    assert in_flight == {calls[0].call_id: "carrier-a", calls[1].call_id: None}
