from datetime import UTC, datetime

from app.adapters.ari.events import (
    ChannelAnswered,
    ChannelGone,
    ChannelRinging,
    PlaybackEnded,
    parse_event,
)
from app.domain.causes import HangupOrigin

STAMP = "2026-11-26T14:10:37.123+0000"


def channel(state: str) -> dict:
    return {"id": "voxcast-c1", "state": state}


def test_ringing_and_answer():
    assert parse_event({"type": "ChannelStateChange", "channel": channel("Ringing"),
                        "timestamp": STAMP}) == ChannelRinging(
        "voxcast-c1", datetime(2026, 11, 26, 14, 10, 37, 123000, tzinfo=UTC))
    # Up alone is not the answer: playing is refused until the channel is in Stasis.
    assert parse_event({"type": "ChannelStateChange", "channel": channel("Up")}) is None
    answered = parse_event({"type": "StasisStart", "channel": channel("Up"), "timestamp": STAMP})
    assert isinstance(answered, ChannelAnswered) and answered.channel_id == "voxcast-c1"


def test_destroyed_carries_q850_and_sip_code():
    gone = parse_event({"type": "ChannelDestroyed", "channel": channel("Down"), "cause": 17,
                        "cause_txt": "User busy", "tech_cause": 486, "timestamp": STAMP})
    assert isinstance(gone, ChannelGone)
    assert (gone.cause, gone.cause_text, gone.tech_cause) == (17, "User busy", 486)
    older = parse_event({"type": "ChannelDestroyed", "channel": channel("Up"), "cause": 16,
                         "cause_txt": "Normal Clearing"})
    assert isinstance(older, ChannelGone) and older.tech_cause is None


def test_playback_finished():
    done = parse_event({"type": "PlaybackFinished", "playback": {
        "id": "voxcast-c1-item-0", "target_uri": "channel:voxcast-c1", "state": "done"}})
    assert done == PlaybackEnded("voxcast-c1", "voxcast-c1-item-0", True, done.at)
    failed = parse_event({"type": "PlaybackFinished", "playback": {
        "id": "x", "target_uri": "channel:voxcast-c1", "state": "failed"}})
    assert isinstance(failed, PlaybackEnded) and not failed.succeeded


def test_malformed_and_unused_events_are_none():
    for raw in ({"type": "ChannelDialplan"}, {"type": "StasisStart"}, {"type": "ChannelDestroyed",
                "channel": "not an object"}, {"type": "PlaybackFinished", "playback": {
                    "target_uri": "bridge:b1"}}, {}):
        assert parse_event(raw) is None


def test_destroyed_says_whether_a_response_came_back_and_who_ended_it():
    def destroyed(keys: str, source: str) -> ChannelGone:
        snapshot = {**channel("Down"), "channelvars": {"HANGUPCAUSE_KEYS()": keys,
                                                       "CHANNEL(hangupsource)": source}}
        gone = parse_event({"type": "ChannelDestroyed", "channel": snapshot, "cause": 34,
                            "tech_cause": 503, "timestamp": STAMP})
        assert isinstance(gone, ChannelGone)
        return gone

    chan = "PJSIP/voxcast-out-00000001"
    assert destroyed(chan, chan).origin == HangupOrigin(True, False)  # the far end's 503
    assert destroyed("", chan).origin == HangupOrigin(False, False)  # never sent
    assert destroyed("", "").origin == HangupOrigin(False, True)  # the ring timeout
    plain = parse_event({"type": "ChannelDestroyed", "channel": channel("Down"), "cause": 34})
    assert isinstance(plain, ChannelGone) and plain.origin is None  # not configured
