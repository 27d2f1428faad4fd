import pytest
from pydantic import ValidationError

from app.api.models import PlayRequest
from app.api.routes import validation_error
from app.domain.dial_target import InvalidDialTarget, normalise_sip_uri, validate_caller_id

GOOD = {"from": "me", "playlist": [{"play": "http://127.0.0.1:9/hello.wav"}]}


@pytest.mark.parametrize("uri", [
    "sip:123456@192.168.1.1:5060", "sip:alice@127.0.0.1", "sips:bob@example.com:5061",
    "sip:+15551234567@127.0.0.1;transport=udp", "sip:127.0.0.1:5070", "sip:a@[::1]:5060",
])
def test_good_targets(uri):
    assert normalise_sip_uri(uri) == uri


@pytest.mark.parametrize("uri", [
    "sip:a,b@127.0.0.1", "sip:a&b@127.0.0.1", "sip:a(b)@127.0.0.1", "sip:\"a\"@127.0.0.1",
    "sip:a b@127.0.0.1", "sip:a@127.0.0.1\r\nVia: x", "sip:a@127.0.0.1\x00", "tel:+1555",
    "http://127.0.0.1", "sip:a@999.1.1.1", "sip:a@127.0.0.1:70000", "sip:a@[zz::1]",
    "sip:a@127.0.0.1;transport=sctp", "sip:" + "a" * 300 + "@127.0.0.1", "",
    "sip:a@127.0.0.1/PJSIP/other",
])
def test_hostile_targets(uri):
    with pytest.raises(InvalidDialTarget):
        normalise_sip_uri(uri)


@pytest.mark.parametrize("caller", ['me" <1>', "a\r\nb", "a b", "", "x" * 65, "a;b", "a,b"])
def test_hostile_caller_ids(caller):
    with pytest.raises(InvalidDialTarget):
        validate_caller_id(caller)


def test_both_forms_are_accepted():
    many = PlayRequest.model_validate({**GOOD, "recipients": [{"to": "sip:a@127.0.0.1"}]})
    one = PlayRequest.model_validate({**GOOD, "to": "sip:a@127.0.0.1"})
    assert many.targets() == one.targets() == ["sip:a@127.0.0.1"]


def _fields(body, context=None):
    with pytest.raises(ValidationError) as raised:
        PlayRequest.model_validate(body, context=context)
    return [detail["field"] for detail in validation_error(raised.value).details]


def test_error_names_the_field_at_fault():
    body = {**GOOD, "recipients": [{"to": "sip:a@127.0.0.1"}] * 3 + [{"to": "sip:a b"}]}
    assert _fields(body) == ["recipients[3].to"]


def test_every_field_at_fault_is_listed():
    body = {"recipients": [{"to": 5}], "from": "a b", "playlist": [{"play": "ftp://x"}],
            "extra": 1}
    assert set(_fields(body)) == {"recipients[0].to", "from", "playlist[0].play", "extra"}


def test_recipient_limit_is_checked_before_items():
    body = {**GOOD, "recipients": ["not even an object"] * 11}
    assert _fields(body, {"max_recipients": 10}) == ["recipients"]


def test_one_form_only():
    assert _fields({**GOOD, "to": "sip:a@127.0.0.1", "recipients": [{"to": "sip:b@127.0.0.1"}]})
    assert _fields({**GOOD})
    assert _fields({**GOOD, "recipients": []})


def test_wrong_types_are_refused_not_coerced():
    assert _fields({**GOOD, "to": ["sip:a@127.0.0.1"]}) == ["to"]
    assert _fields({**GOOD, "to": "sip:a@127.0.0.1", "playlist": "x"}) == ["playlist"]


@pytest.mark.parametrize(("target", "uri"), [
    ("+15551234567", "sip:+15551234567@trunk.example:5060"),
    ("tel:+442071234567", "sip:+442071234567@trunk.example:5060"),
    ("sip:alice@127.0.0.1", "sip:alice@127.0.0.1"),
])
def test_numbers_go_through_the_trunk(target, uri):
    from app.domain.dial_target import dial_uri, normalise_target

    assert dial_uri(normalise_target(target), "trunk.example:5060") == uri


@pytest.mark.parametrize("number", ["+0123456789", "+123", "tel:15551234567", "+1555123456789012",
                                    "+1 555 1234", "tel:+1555;phone-context=x"])
def test_malformed_numbers(number):
    from app.domain.dial_target import normalise_target

    with pytest.raises(InvalidDialTarget):
        normalise_target(number)
