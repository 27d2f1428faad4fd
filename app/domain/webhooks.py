"""Webhooks as the rest of the app sees them: subscriptions, deliveries, and when to retry."""

from __future__ import annotations

import email.utils
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

# After a failed attempt, wait this long before the next one (Standard Webhooks' suggested
# schedule: about a day in all); after the last, the delivery has failed for good.
RETRY_SCHEDULE = (timedelta(seconds=5), timedelta(minutes=5), timedelta(minutes=30),
                  timedelta(hours=2), timedelta(hours=5), timedelta(hours=10),
                  timedelta(hours=10))
MAX_RETRY_AFTER = timedelta(hours=10)  # a Retry-After longer than this is not believed


@dataclass(frozen=True, slots=True)
class Subscription:
    id: str
    tenant: str
    url: str
    events: tuple[str, ...] | None  # None: every type
    created_at: datetime
    disabled_at: datetime | None
    disabled_reason: str | None


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event to one URL, as listed to its tenant."""

    id: str
    webhook_id: str
    event_type: str
    broadcast_id: str
    subscription_id: str | None  # None: the request's own callback_url
    url: str
    state: str  # pending, delivered, failed, gone
    attempts: int
    next_attempt_at: datetime | None
    last_status: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


@dataclass(frozen=True, slots=True)
class DueDelivery:
    """A delivery claimed for one attempt, with what the attempt sends."""

    id: str
    tenant: str
    url: str
    webhook_id: str
    body: str
    attempts: int  # before this one
    subscription_id: str | None
    broadcast_id: str


@dataclass(frozen=True, slots=True)
class SigningSecrets:
    """A tenant's current secret, and the previous one while a rotation lasts."""

    current: str
    previous: str | None
    previous_until: datetime | None


def next_attempt_delay(attempts: int, retry_after: timedelta | None,
                       scale: float = 1.0) -> timedelta | None:
    """How long to wait after failed attempt number `attempts` (1 = the first); None: give up.

    A receiver's Retry-After is honoured (up to MAX_RETRY_AFTER). `scale` shrinks the schedule
    (tests run hours of backoff in seconds).
    """
    if attempts > len(RETRY_SCHEDULE):
        return None
    if retry_after is not None:
        return min(retry_after, MAX_RETRY_AFTER)
    return RETRY_SCHEDULE[attempts - 1] * scale


def parse_retry_after(value: str | None, now: datetime) -> timedelta | None:
    """`Retry-After` as seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return timedelta(seconds=int(text))
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(timedelta(0), when - now)
