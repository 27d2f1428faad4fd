"""Between the tables and plain values: the column sets and translations several stores share."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row

from app.adapters.db.tables import BroadcastRow, CallRow
from app.domain.broadcasts import BroadcastSummary, ClaimedCall


def utc(value: datetime | None) -> datetime | None:
    """SQLite gives naive datetimes back; every time stored here is UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


SUMMARY_COLUMNS = (BroadcastRow.id, BroadcastRow.report_id, BroadcastRow.tenant,
                   BroadcastRow.caller, BroadcastRow.created_at, BroadcastRow.total_calls,
                   BroadcastRow.media_state, BroadcastRow.cancelled_at)


def summary_of(row: Row[Any]) -> BroadcastSummary:
    """A broadcast from a row of SUMMARY_COLUMNS."""
    created_at = utc(row.created_at)
    assert created_at is not None  # noqa: S101 - the column is NOT NULL
    return BroadcastSummary(row.id, row.report_id, row.tenant, row.caller, created_at,
                            row.total_calls, row.media_state, utc(row.cancelled_at))


def unplaced_final(result: str, reason: str, at: datetime) -> dict[str, Any]:
    """The final record of a call that was never placed: failed or cancelled, with the reason
    and no SIP code (nobody sent one)."""
    return {"state": "ended", "result": result, "disconnect_time": at,
            "sip_code": None, "sip_text": reason,
            "sip_code_source": "none", "playback": []}


# What a session needs from the call's row to dial it; the rest comes from its broadcast.
CLAIMED_COLUMNS = (CallRow.id, CallRow.broadcast_id, CallRow.target, CallRow.sounds,
                   CallRow.attempt, CallRow.requested_trunk)
# ... and from the broadcast, named apart from the call's own columns.
PARENT_COLUMNS = (BroadcastRow.caller, BroadcastRow.sounds.label("shared_sounds"),
                  BroadcastRow.retry)


def claimed_call(call: Row[Any], parent: Row[Any]) -> ClaimedCall:
    """From a row of CLAIMED_COLUMNS and one of PARENT_COLUMNS (they may be the same row)."""
    return ClaimedCall(call.id, call.broadcast_id, call.target, parent.caller,
                       tuple(call.sounds or parent.shared_sounds or ()), call.attempt,
                       parent.retry, call.requested_trunk)
