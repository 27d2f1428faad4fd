"""Broadcasts and their calls as the rest of the app sees them: plain, frozen values.

The database layer takes these and gives them back; its ORM rows never leave `adapters/db`.
Times are timezone-aware UTC.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

IN_FLIGHT_STATES = ("dialing", "ringing", "answered")
CANCELLED_TEXT = "cancelled before it was dialled"


# --- intake ----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class NewCall:
    id: str
    target: str
    variables: dict[str, str] | None = None
    trunk: str | None = None  # the trunk the request named; None: routed by prefix


@dataclass(frozen=True, slots=True)
class NewBroadcast:
    id: str
    report_id: str
    tenant: str
    caller: str
    playlist: list[dict[str, Any]]
    created_at: datetime
    calls: Sequence[NewCall]  # in recipient order
    retry: dict[str, Any] | None = None
    idempotency: tuple[str, str] | None = None  # (Idempotency-Key, hash of the body)


class IdempotencyConflict(Exception):
    """The Idempotency-Key was already used with another body."""


# --- media -----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class AwaitingMedia:
    """A broadcast whose playlist is not prepared yet."""

    broadcast_id: str
    playlist: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class CallMedia:
    """One recipient's own sounds, for a personalised playlist."""

    call_id: str
    sounds: list[str]
    speech: list[dict[str, Any]]


# --- the queue and call writes ---------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ClaimedCall:
    call_id: str
    broadcast_id: str
    target: str
    caller: str
    sounds: tuple[str, ...]
    attempt: int = 1
    retry: dict[str, Any] | None = None
    trunk: str | None = None  # the trunk the request named


@dataclass(frozen=True, slots=True)
class InFlightCall:
    """A call this node claimed and has not seen end, with what was saved of its progress."""

    call: ClaimedCall
    setup_time: datetime | None
    ring_time: datetime | None
    connect_time: datetime | None
    media_server: str | None = None  # the Asterisk that placed it, when it was placed
    trunk: str | None = None  # the trunk it was placed through


@dataclass(frozen=True, slots=True)
class CallFinal:
    """What a call's final record stores."""

    result: str
    disconnect_time: datetime | None
    ring_time: datetime | None
    connect_time: datetime | None
    sip_code: int | None  # None: no SIP final response is known (never a made-up one)
    sip_text: str
    sip_code_source: str
    q850_cause: int | None
    q850_text: str | None
    hangup_by: str | None
    playback: list[str]
    trunk: str | None = None  # the trunk that carried the call
    failed_over_from: list[str] | None = None  # "trunk: why", in the order tried


# --- reads -----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class BroadcastSummary:
    id: str
    report_id: str
    tenant: str
    caller: str
    created_at: datetime
    total_calls: int
    media_state: str  # pending, ready or failed
    cancelled_at: datetime | None


@dataclass(frozen=True, slots=True)
class Progress:
    total: int
    queued: int
    in_progress: int
    completed: int

    @property
    def finished(self) -> bool:
        return self.completed >= self.total

    @classmethod
    def of_states(cls, counts: Mapping[str, int]) -> Progress:
        """From the number of calls in each state."""
        queued = counts.get("queued", 0)
        completed = counts.get("ended", 0)
        in_progress = sum(counts.get(state, 0) for state in IN_FLIGHT_STATES)
        return cls(queued + completed + in_progress, queued, in_progress, completed)


# A broadcast as a whole: no call has left the queue yet, some have, or every call has ended
# (its report is ready).
BroadcastStatus = Literal["queued", "running", "ready"]
BROADCAST_STATUSES: tuple[BroadcastStatus, ...] = ("queued", "running", "ready")


def broadcast_status(progress: Progress) -> BroadcastStatus:
    if progress.finished:
        return "ready"
    if progress.queued >= progress.total:
        return "queued"
    return "running"


@dataclass(frozen=True, slots=True)
class BroadcastFilter:
    """Which of a tenant's broadcasts to list; None means any."""

    status: BroadcastStatus | None = None
    created_after: datetime | None = None  # exclusive, UTC
    created_before: datetime | None = None  # exclusive, UTC


@dataclass(frozen=True, slots=True)
class ListedBroadcast:
    summary: BroadcastSummary
    progress: Progress
    answered: int  # calls that were answered (connected), every attempt counted


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One attempt at one recipient, as stored: the report's record before it is shaped."""

    id: str
    broadcast_id: str
    position: int  # the recipient's index in the request
    attempt: int
    target: str
    caller: str
    state: str  # queued, dialing, ringing, answered, ended
    claimed_by: str | None
    request_time: datetime
    setup_time: datetime | None = None
    ring_time: datetime | None = None
    connect_time: datetime | None = None
    disconnect_time: datetime | None = None
    result: str | None = None
    sip_code: int | None = None
    sip_text: str | None = None
    sip_code_source: str | None = None
    q850_cause: int | None = None
    q850_text: str | None = None
    hangup_by: str | None = None
    playback: tuple[str, ...] = ()
    speech: tuple[dict[str, Any], ...] = ()  # the call's own notes, else the broadcast's
    media_server: str | None = None
    trunk: str | None = None
    failed_over_from: tuple[str, ...] = ()
