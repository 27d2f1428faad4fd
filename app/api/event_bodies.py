"""The body of each event, as webhooks and live events carry it (Standard Webhooks' shape:
`type`, `timestamp`, `data`)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from app.api.records import call_record, format_time
from app.domain.events import BROADCAST_COMPLETED, CALL_ENDED, EventFacts


def report_location(report_id: str) -> str:
    return f"/reports/{report_id}"


def _times(data: dict[str, Any]) -> dict[str, str]:
    """The progress times in the report's own format; absent when not reached, as there."""
    return {name: str(format_time(datetime.fromisoformat(value)))
            for name, value in data.items() if name in ("ring_time", "connect_time") and value}


def event_body(facts: EventFacts) -> str:
    """The JSON text of an event; rendered once, so every delivery signs the same bytes."""
    broadcast = facts.broadcast
    data: dict[str, Any] = {"request_id": broadcast.broadcast_id}
    if facts.type == BROADCAST_COMPLETED:
        data["report"] = {"id": broadcast.report_id,
                          "location": report_location(broadcast.report_id)}
        data["summary"] = facts.summary or {}
    elif facts.call is not None:
        call = facts.call
        if facts.type == CALL_ENDED:
            data["record"] = call_record(call)
        else:  # progress: the call as it was then, not as it is when sealed
            data["record"] = {"type": "voice", "id": call.id, "to": call.target,
                              "from": call.caller, "attempt": call.attempt,
                              "state": facts.type.removeprefix("call."),
                              **_times(facts.data or {})}
    timestamp = facts.created_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return json.dumps({"type": facts.type, "timestamp": timestamp, "data": data},
                      separators=(",", ":"), ensure_ascii=False)
