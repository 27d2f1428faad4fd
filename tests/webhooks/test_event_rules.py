"""The pure rules: which events a batch of call changes makes, and when to retry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.adapters.db.event_log import CallChange, call_events
from app.domain.webhooks import RETRY_SCHEDULE, next_attempt_delay, parse_retry_after

AT = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
RANG = {"ringing_at": "2026-12-03T12:00:01+00:00", "answered_at": None}
ANSWERED = {"ringing_at": "2026-12-03T12:00:01+00:00",
            "answered_at": "2026-12-03T12:00:02+00:00"}


def _kinds(changes: list[CallChange], prior: dict[str, str]) -> list[tuple[str, str]]:
    return [(event["call_id"], event["event_type"]) for event in call_events(changes, prior, AT)]


@pytest.mark.parametrize(("changes", "prior", "expected"), [
    ([CallChange("a", "ringing"), CallChange("a", "answered"), CallChange("a", "ended")],
     {"a": "dialing"}, [("a", "call.ringing"), ("a", "call.answered"), ("a", "call.ended")]),
    # A second 180 and a second final change nothing.
    ([CallChange("a", "ringing"), CallChange("a", "ringing")], {"a": "dialing"},
     [("a", "call.ringing")]),
    ([CallChange("a", "ended")], {"a": "ended"}, []),
    ([CallChange("a", "answered")], {"a": "answered"}, []),
    # States without an event: dialing, hanging up.
    ([CallChange("a", "dialing"), CallChange("a", "hanging_up")], {"a": "queued"}, []),
    # A final whose progress never got stored (a crash, a recovery) catches up first.
    ([CallChange("a", "ended", ANSWERED)], {"a": "dialing"},
     [("a", "call.ringing"), ("a", "call.answered"), ("a", "call.ended")]),
    ([CallChange("a", "ended", ANSWERED)], {"a": "ringing"},
     [("a", "call.answered"), ("a", "call.ended")]),
    ([CallChange("a", "ended", RANG)], {"a": "dialing"}, [("a", "call.ringing"),
                                                          ("a", "call.ended")]),
    ([CallChange("a", "ended", {"ringing_at": None, "answered_at": None})], {},
     [("a", "call.ended")]),
    # Calls are independent.
    ([CallChange("a", "ringing"), CallChange("b", "ended")], {"a": "dialing", "b": "dialing"},
     [("a", "call.ringing"), ("b", "call.ended")]),
])
def test_events_of_a_batch(changes: list[CallChange], prior: dict[str, str],
                           expected: list[tuple[str, str]]) -> None:
    assert _kinds(changes, prior) == expected


def test_each_event_has_its_own_webhook_id() -> None:
    events = call_events([CallChange("a", "ended", ANSWERED)], {}, AT)
    assert len({event["event_id"] for event in events}) == 3
    assert all(event["event_id"].startswith("msg_") for event in events)


def test_retry_schedule_scaling_and_retry_after() -> None:
    assert next_attempt_delay(1, None) == timedelta(seconds=5)
    assert next_attempt_delay(2, None, scale=0.01) == timedelta(seconds=3)
    assert next_attempt_delay(len(RETRY_SCHEDULE), None) == RETRY_SCHEDULE[-1]
    assert next_attempt_delay(len(RETRY_SCHEDULE) + 1, None) is None  # failed for good
    assert sum(RETRY_SCHEDULE, timedelta()) > timedelta(hours=24)  # over hours
    assert next_attempt_delay(1, timedelta(seconds=120), scale=0.01) == timedelta(seconds=120)
    assert next_attempt_delay(1, timedelta(days=3)) == timedelta(hours=10)  # not believed


@pytest.mark.parametrize(("header", "expected"), [
    ("120", timedelta(seconds=120)),
    ("Thu, 03 Dec 2026 12:01:00 GMT", timedelta(minutes=1)),
    ("Thu, 03 Dec 2026 11:00:00 GMT", timedelta(0)),  # in the past: now
    ("soon", None), ("", None), (None, None), ("-5", None),
])
def test_retry_after_header(header: str | None, expected: timedelta | None) -> None:
    assert parse_retry_after(header, AT) == expected
