"""Events a tenant can receive (webhooks, live events): their types and what each one says."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.domain.broadcasts import CallRecord

CALL_RINGING = "call.ringing"
CALL_ANSWERED = "call.answered"
CALL_ENDED = "call.ended"
BROADCAST_COMPLETED = "broadcast.completed"
EVENT_TYPES = (CALL_RINGING, CALL_ANSWERED, CALL_ENDED, BROADCAST_COMPLETED)

# A call's progress that makes an event, by the state it enters.
PROGRESS_EVENTS = {"ringing": CALL_RINGING, "answered": CALL_ANSWERED}


@dataclass(frozen=True, slots=True)
class BroadcastFacts:
    """What every event of a broadcast names."""

    broadcast_id: str
    report_id: str
    tenant: str


@dataclass(frozen=True, slots=True)
class EventFacts:
    """Everything an event's body is made of, read once when the event is sealed."""

    event_id: str
    type: str
    created_at: datetime
    broadcast: BroadcastFacts
    call: CallRecord | None  # call events: the call's row (final once it ended)
    data: dict[str, Any] | None  # call progress as it was when the event happened
    summary: dict[str, Any] | None  # broadcast.completed: counts by result


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """A sealed event as live-event readers get it."""

    seq: int
    event_id: str
    type: str
    broadcast_id: str
    body: str
