import pytest

from app.domain.causes import SipCodeSource, outcome_of_destroyed_channel, sip_code_from_q850


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
