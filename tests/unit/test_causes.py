import pytest

from app.domain.causes import (
    HangupOrigin,
    SipCodeSource,
    outcome_of_destroyed_channel,
    sip_code_from_q850,
)


@pytest.mark.parametrize(
    ("answered", "cause", "tech", "expected_code", "source"),
    [
        (False, 17, 486, 486, SipCodeSource.TECH_CAUSE),
        (False, 1, 404, 404, SipCodeSource.TECH_CAUSE),
        (False, 34, 503, 503, SipCodeSource.TECH_CAUSE),
        (False, 21, 603, 603, SipCodeSource.TECH_CAUSE),
        (False, 19, 480, 480, SipCodeSource.TECH_CAUSE),
        (True, 16, None, 200, SipCodeSource.ANSWERED),
        (True, 0, None, 200, SipCodeSource.ANSWERED),
        (False, 17, None, 486, SipCodeSource.DERIVED),  # an Asterisk without tech_cause
        (False, 18, None, 408, SipCodeSource.DERIVED),
        (False, 21, None, 403, SipCodeSource.DERIVED),  # RFC 3398: lossy, hence "derived"
        (False, 99, None, 500, SipCodeSource.DERIVED),
        (False, None, None, 500, SipCodeSource.DERIVED),
    ],
)
def test_outcome_table(answered, cause, tech, expected_code, source):
    outcome = outcome_of_destroyed_channel(
        answered=answered, cause=cause, cause_text="x", tech_cause=tech)
    assert (outcome.sip_code, outcome.source) == (expected_code, source)
    assert outcome.q850_cause == cause


def test_texts_follow_the_founding_document():
    busy = outcome_of_destroyed_channel(answered=False, cause=17, cause_text="User busy",
                                        tech_cause=486)
    assert busy.sip_text == "User Busy"
    answered = outcome_of_destroyed_channel(answered=True, cause=16, cause_text="Normal",
                                            tech_cause=None)
    assert (answered.sip_code, answered.sip_text) == (200, "OK")


def test_cancelled_before_answer_is_487():
    outcome = outcome_of_destroyed_channel(answered=False, cause=16, cause_text="Normal",
                                           tech_cause=None, cancelled=True)
    assert outcome.sip_code == 487


def test_unknown_q850_maps_to_500():
    assert sip_code_from_q850(200) == 500
    assert sip_code_from_q850(17) == 486


RESPONSE_FROM_FAR_END = HangupOrigin(response_received=True, ended_by_asterisk=False)
RANG_OUT = HangupOrigin(response_received=True, ended_by_asterisk=True)
NOTHING_CAME_BACK = HangupOrigin(response_received=False, ended_by_asterisk=True)
NEVER_SENT = HangupOrigin(response_received=False, ended_by_asterisk=False)


@pytest.mark.parametrize(
    ("origin", "cause", "tech", "expected"),
    [
        # A far end's real final responses keep their code.
        (RESPONSE_FROM_FAR_END, 34, 503, (503, SipCodeSource.TECH_CAUSE, False)),
        (RESPONSE_FROM_FAR_END, 19, 480, (480, SipCodeSource.TECH_CAUSE, False)),
        # Asterisk's made-up 480 after the ring timeout: rang, or never heard anything.
        (RANG_OUT, 19, 480, (480, SipCodeSource.TIMEOUT, False)),
        (NOTHING_CAME_BACK, 19, 480, (408, SipCodeSource.TIMEOUT, False)),
        # Its made-up 503 when nothing could be sent: a local failure, no SIP code.
        (NEVER_SENT, 34, 503, (None, SipCodeSource.NONE, True)),
    ],
)
def test_made_up_codes_are_told_from_the_far_ends(origin, cause, tech, expected):
    outcome = outcome_of_destroyed_channel(answered=False, cause=cause, cause_text="x",
                                           tech_cause=tech, origin=origin)
    assert (outcome.sip_code, outcome.source, outcome.failed) == expected
    assert outcome.q850_cause == cause


def test_answered_and_cancelled_calls_ignore_the_origin():
    answered = outcome_of_destroyed_channel(answered=True, cause=16, cause_text="x",
                                            tech_cause=None, origin=NOTHING_CAME_BACK)
    assert (answered.sip_code, answered.failed) == (200, False)
    cancelled = outcome_of_destroyed_channel(answered=False, cause=16, cause_text="x",
                                             tech_cause=None, cancelled=True, origin=RANG_OUT)
    assert cancelled.sip_code == 487
