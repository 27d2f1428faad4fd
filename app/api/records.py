"""The report's record shape: the founding field names, in one place."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from app.domain.broadcasts import CallRecord, Progress
from app.domain.report_query import call_duration

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"  # UTC


def format_time(value: datetime | None) -> str | None:
    """TIME_FORMAT in UTC. isoformat's first 19 characters are exactly that, at a fraction of
    strftime's cost (a report formats five times a record)."""
    if value is None:
        return None
    if value.tzinfo is not None and value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.isoformat(" ")[:19]


def call_record(call: CallRecord) -> dict[str, Any]:
    """One call as the report shows it. `connect_time` is absent when not answered.

    Built key by key in the documented order; a report calls this for every record."""
    record: dict[str, Any] = {
        "type": "voice",
        "id": call.id,
        "result": call.result or "pending",
        "request_time": format_time(call.request_time),
        "to": call.target,
        "from": call.caller,
        "setup_time": format_time(call.setup_time),
    }
    if call.ring_time is not None:
        record["ring_time"] = format_time(call.ring_time)
    if call.connect_time is not None:
        record["connect_time"] = format_time(call.connect_time)
    record["disconnect_time"] = format_time(call.disconnect_time)
    record["disconnect_cause_code"] = None if call.sip_code is None else str(call.sip_code)
    record["disconnect_cause_text"] = call.sip_text
    record["duration"] = call_duration(call.connect_time, call.disconnect_time)
    record["answered"] = call.connect_time is not None
    record["sip_code_source"] = call.sip_code_source
    record["q850_cause"] = call.q850_cause
    record["q850_text"] = call.q850_text
    record["hangup_by"] = call.hangup_by
    record["playback"] = list(call.playback)
    record["speech"] = list(call.speech)
    record["state"] = call.state
    record["attempt"] = call.attempt
    record["media_server"] = call.media_server
    record["trunk"] = call.trunk
    # null unless a trunk carried the call
    record["failed_over_from"] = list(call.failed_over_from) if call.trunk else None
    return record


def progress_object(progress: Progress) -> dict[str, int]:
    return {"total": progress.total, "queued": progress.queued,
            "in_progress": progress.in_progress, "completed": progress.completed}


def report_location(report_id: str) -> str:
    """Where the report is: a path this service answers (GET it with the same key)."""
    return f"/report/{report_id}"
