"""The fake ARI answers the real client and event stream the way Asterisk does."""

from __future__ import annotations

import asyncio

import pytest

from app.adapters.ari.client import AriClient, AriCredentials
from app.adapters.ari.errors import AriConflict, AriError, AriNotFound, AriUnavailable
from app.adapters.ari.events import (
    AriEventStream,
    ChannelAnswered,
    ChannelEvent,
    ChannelGone,
    ChannelRinging,
    PlaybackEnded,
)
from tests.support.fake_ari import BUSY, Behaviour, FakeAri
from tests.support.service import poll


async def _connected(ari: FakeAri) -> tuple[AriClient, AriEventStream, list[ChannelEvent],
                                              asyncio.Task[None]]:
    credentials = AriCredentials(ari.user, ari.password)
    client = AriClient(ari.url, credentials)
    await client.open()
    events: list[ChannelEvent] = []
    stream = AriEventStream(ari.url, "voxcast", credentials, events.append)
    task = asyncio.create_task(stream.run())
    await asyncio.wait_for(stream.connected.wait(), 5)
    return client, stream, events, task


async def _dial(client: AriClient, user: str, channel_id: str, ring_seconds: int = 5) -> None:
    await client.originate(channel_id=channel_id,
                           endpoint=f"PJSIP/voxcast-out/sip:{user}@127.0.0.1:5099",
                           app="voxcast", caller_id="me", timeout_seconds=ring_seconds)


async def _until(events: list[ChannelEvent], kind: type, what: str) -> list[ChannelEvent]:
    async def seen() -> tuple[bool, list[str]]:
        return any(isinstance(e, kind) for e in events), [type(e).__name__ for e in events]

    await poll(seen, limit=5.0, what=what, interval=0.02)
    return [e for e in events if isinstance(e, kind)]


async def test_calls_follow_their_scripts_in_asterisk_event_shapes(fake_ari: FakeAri) -> None:
    fake_ari.behave("busy", Behaviour(ring_after=0.01, reject=BUSY, reject_after=0.05))
    fake_ari.behave("slow", Behaviour(answer_after=None))
    fake_ari.behave("alice", Behaviour(ring_after=0.01, answer_after=0.05,
                                       playback_seconds=0.1))
    client, _stream, events, task = await _connected(fake_ari)
    try:
        await _dial(client, "busy", "c-busy")
        await _dial(client, "slow", "c-slow", ring_seconds=1)
        await _dial(client, "alice", "c-alice")
        with pytest.raises(AriConflict):
            await _dial(client, "alice", "c-alice")
        await _until(events, ChannelAnswered, "alice answered")
        with pytest.raises(AriNotFound):
            await client.play(channel_id="nobody", playback_id="p", media="sound:x")
        await client.play(channel_id="c-alice", playback_id="c-alice-p0", media="sound:x")
        assert await client.playback_exists("c-alice-p0")
        (finished,) = await _until(events, PlaybackEnded, "the playback ended")
        assert finished.succeeded and not await client.playback_exists("c-alice-p0")
        assert await client.channel_ids() >= {"c-alice"}
        await client.hangup("c-alice")
        with pytest.raises(AriNotFound):
            await client.hangup("c-alice")

        async def all_gone() -> tuple[bool, list[str]]:
            gone = [e.channel_id for e in events if isinstance(e, ChannelGone)]
            return len(gone) == 3, gone

        await poll(all_gone, limit=5.0, what="three ChannelDestroyed", interval=0.05)
    finally:
        task.cancel()
        await client.close()
    gone = {e.channel_id: e for e in events if isinstance(e, ChannelGone)}
    assert (gone["c-busy"].cause, gone["c-busy"].tech_cause) == (17, 486)
    assert (gone["c-slow"].cause, gone["c-slow"].tech_cause) == (19, 480)  # the timeout's
    assert (gone["c-alice"].cause, gone["c-alice"].tech_cause) == (16, None)  # our DELETE
    assert {e.channel_id for e in events if isinstance(e, ChannelRinging)} == {"c-busy",
                                                                              "c-alice"}
    assert fake_ari.max_live == 3 and fake_ari.live == 0
    assert [channel for _, channel in fake_ari.hangups] == ["c-alice"]


async def test_originate_faults_reach_the_client_as_asterisk_would_cause_them(
        fake_ari: FakeAri) -> None:
    fake_ari.behave("refused", Behaviour(originate_status=500))
    fake_ari.behave("reset", Behaviour(originate_reset=True))
    client = AriClient(fake_ari.url, AriCredentials(fake_ari.user, fake_ari.password))
    await client.open()
    try:
        with pytest.raises(AriError) as refused:
            await _dial(client, "refused", "c-1")
        assert refused.value.status == 500 and "Allocation failed" in str(refused.value)
        with pytest.raises(AriUnavailable):
            await _dial(client, "reset", "c-2")
        await fake_ari.stop_listening()
        with pytest.raises(AriUnavailable):
            await client.channel_ids()
        await fake_ari.start_listening()
        assert await client.channel_ids() == set()
    finally:
        await client.close()
    wrong = AriClient(fake_ari.url, AriCredentials(fake_ari.user, "wrong"))
    await wrong.open()
    try:
        with pytest.raises(AriError) as unauthorised:
            await wrong.channel_ids()
        assert unauthorised.value.status == 401
    finally:
        await wrong.close()


async def test_while_the_websocket_is_down_events_are_lost_and_answers_dropped(
        fake_ari: FakeAri) -> None:
    fake_ari.behave("late", Behaviour(answer_after=0.3))
    client, stream, events, task = await _connected(fake_ari)
    try:
        await _dial(client, "late", "c-late")
        await fake_ari.drop_events(refuse_for=0.5)  # the answer falls in the gap

        async def back() -> tuple[bool, int]:
            return stream.connected.is_set() and fake_ari.websocket_connects == 2, \
                fake_ari.websocket_connects

        await poll(back, limit=5.0, what="the event stream reconnected", interval=0.05)
    finally:
        task.cancel()
        await client.close()
    assert stream.disconnects == 1
    # Answered while no websocket listened: hung up at once ("Stasis app not active"), and
    # nobody hears of it.
    assert fake_ari.lost_events == ["ChannelStateChange", "ChannelDestroyed"]
    assert fake_ari.live == 0 and events == []
