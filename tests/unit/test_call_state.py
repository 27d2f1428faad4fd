from datetime import UTC, datetime, timedelta

from app.domain.call_state import (
    Answered,
    CallState,
    ChannelLost,
    Destroyed,
    EndedUnobserved,
    Hangup,
    HangupBy,
    HangupWanted,
    OriginateFailed,
    Phase,
    Play,
    PlaybackFinished,
    Result,
    Ringing,
    SaveFinal,
    SaveProgress,
    advance,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def run(state, *events):
    transitions = []
    for event in events:
        transition = advance(state, event)
        transitions.append(transition)
        state = transition.state
    return state, transitions


def test_answered_call_plays_every_item_then_hangs_up():
    state, steps = run(
        CallState(playlist_length=2),
        Ringing(T0), Answered(T0 + timedelta(seconds=2)),
        PlaybackFinished(0, True), PlaybackFinished(1, True),
        Destroyed(T0 + timedelta(seconds=9), 16, "Normal Clearing", None))
    assert [s.actions for s in steps] == [
        (SaveProgress(),), (SaveProgress(), Play(0)), (Play(1),),
        (Hangup("playlist finished"),), (SaveFinal(),)]
    assert state.phase is Phase.ENDED and state.result is Result.COMPLETED
    assert state.outcome.sip_code == 200
    assert state.playback == ("done", "done")
    assert state.hangup_by is HangupBy.SERVICE
    assert state.ring_time == T0


def test_failed_playback_is_recorded_and_the_next_item_still_plays():
    state, steps = run(CallState(playlist_length=2), Answered(T0), PlaybackFinished(0, False))
    assert steps[-1].actions == (Play(1),)
    assert state.playback == ("failed",)


def test_far_end_busy():
    state, _ = run(CallState(playlist_length=1), Destroyed(T0, 17, "User busy", 486))
    assert state.outcome.sip_code == 486 and state.connect_time is None
    assert state.hangup_by is None


def test_far_end_hangs_up_during_playback():
    state, _ = run(CallState(playlist_length=1), Answered(T0),
                   Destroyed(T0 + timedelta(seconds=1), 0, "Unknown", None))
    assert state.hangup_by is HangupBy.FAR_END
    assert state.outcome.sip_code == 200


def test_originate_failure_is_a_failed_result():
    state, steps = run(CallState(playlist_length=1), OriginateFailed("Allocation failed"))
    assert state.result is Result.FAILED and steps[0].actions == (SaveFinal(),)
    assert "Allocation failed" in state.outcome.sip_text


def test_events_after_the_end_are_ignored():
    state, _ = run(CallState(playlist_length=1), Destroyed(T0, 17, "busy", 486))
    for event in (Answered(T0), Destroyed(T0, 16, "x", None), HangupWanted("x"),
                  PlaybackFinished(0, True)):
        assert advance(state, event).ignored


def test_out_of_order_events_are_ignored_not_guessed():
    state = CallState(playlist_length=2)
    assert advance(state, PlaybackFinished(0, True)).ignored  # not answered yet
    answered = advance(state, Answered(T0)).state
    assert advance(answered, Answered(T0)).ignored  # StasisStart after ChannelStateChange Up
    assert advance(answered, PlaybackFinished(1, True)).ignored  # item 0 has not finished


def test_shutdown_before_answer_cancels_and_reads_487():
    state, steps = run(CallState(playlist_length=1), Ringing(T0), HangupWanted("shutdown"),
                       Destroyed(T0, 16, "Normal Clearing", None))
    assert steps[1].actions == (Hangup("shutdown"),)
    assert state.outcome.sip_code == 487 and state.hangup_by is HangupBy.SERVICE


def test_hangup_wanted_twice_sends_one_hangup():
    state, steps = run(CallState(playlist_length=1), Answered(T0), HangupWanted("a"),
                       HangupWanted("b"))
    assert steps[2].ignored


def test_lost_channel_ends_failed():
    state, _ = run(CallState(playlist_length=1), Answered(T0),
                   ChannelLost(T0 + timedelta(seconds=4), "media server lost"))
    assert state.result is Result.FAILED and state.phase is Phase.ENDED
    # Answered as observed, ended when lost, and no SIP code nobody sent.
    assert state.connect_time == T0 and state.disconnect_time == T0 + timedelta(seconds=4)
    assert state.outcome.sip_code is None and state.outcome.sip_text == "media server lost"


def test_a_failed_originate_carries_no_sip_code():
    state, _ = run(CallState(playlist_length=1), OriginateFailed("Allocation failed"))
    assert state.outcome.sip_code is None and state.outcome.source.value == "none"


def test_an_answered_call_that_ended_unobserved_keeps_its_answer():
    state, steps = run(CallState(playlist_length=1),
                       EndedUnobserved(T0 + timedelta(seconds=5), T0, 16))
    assert steps[0].actions == (SaveFinal(),)
    assert state.result is Result.COMPLETED and state.connect_time == T0
    assert (state.outcome.sip_code, state.outcome.source.value) == (200, "answered")
    assert state.disconnect_time == T0 + timedelta(seconds=5)


def test_an_unanswered_call_that_ended_unobserved_says_where_its_code_came_from():
    state, _ = run(CallState(playlist_length=1), EndedUnobserved(T0, None, 17))
    assert (state.outcome.sip_code, state.outcome.source.value) == (486, "channel_log")
    assert state.connect_time is None and state.outcome.q850_cause == 17
    state, _ = run(CallState(playlist_length=1), EndedUnobserved(T0, None, None))
    assert state.outcome.sip_code is None


def test_empty_playlist_hangs_up_on_answer():
    _, steps = run(CallState(playlist_length=0), Answered(T0))
    assert steps[0].actions == (SaveProgress(), Hangup("playlist finished"))


def test_far_end_hung_up_before_our_hangup():
    from app.domain.call_state import HangupFoundNoChannel

    state, _ = run(CallState(playlist_length=1), Answered(T0), PlaybackFinished(0, False),
                   HangupFoundNoChannel(), Destroyed(T0, 0, "Unknown", None))
    assert state.hangup_by is HangupBy.FAR_END
