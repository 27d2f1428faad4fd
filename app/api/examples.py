"""Example requests and answers for the OpenAPI document, one set per operation.

Addresses are from the documentation ranges (192.0.2.0/24, `.example`); ids are fixed UUIDs so
the examples read the same in every build. A test checks each example against its schema and
each request example against the request model.
"""

from __future__ import annotations

from typing import Any

from app.api.envelope import ERROR_CODES
from app.api.report_output import CSV_FIELDS, csv_rows, ndjson_lines

REQUEST_ID = "3f0c1e2a-8b4d-4c6e-9f10-2a3b4c5d6e7f"
REPORT_ID = "9a1e5b7c-2d3f-4a5b-8c6d-7e8f9a0b1c2d"
CALL_ID = "c1d2e3f4-a5b6-4c7d-8e9f-0a1b2c3d4e5f"
MEDIA_HASH = "5d41402abc4b2a76b9719d911017c592" * 2
REPORT_LOCATION = f"/report/{REPORT_ID}"
OLDER_REQUEST_ID = "7b2c4d6e-8f0a-4b1c-9d2e-3f4a5b6c7d8e"

PLAY_REQUESTS: dict[str, dict[str, Any]] = {
    "many": {"summary": "Several recipients, personalised speech, then a recording", "value": {
        "recipients": [
            {"to": "sip:123456@192.0.2.10:5060", "variables": {"name": "Alice"}},
            {"to": "sip:bob@192.0.2.10:5060", "variables": {"name": "Bob"}},
        ],
        "from": "acme",
        "playlist": [{"say": "Hello {name}, this is Acme.", "language": "en"},
                     {"pause": 0.5},
                     {"play": "https://media.example/voices/hello.wav"}],
        "retry": {"on": ["busy", "no_answer"], "attempts": 2, "delay": 60},
    }},
    "trunks": {"summary": "Numbers through SIP trunks: by prefix, or a named trunk", "value": {
        "recipients": [{"to": "+4930123456789"},
                       {"to": "tel:+442071234567", "trunk": "carrier-b"}],
        "from": "+4930555000",
        "playlist": [{"play": "https://media.example/voices/hello.wav"}],
    }},
    "callback": {"summary": "Signed webhooks for this request's calls as they end", "value": {
        "to": "sip:alice@192.0.2.10:5060", "from": "me",
        "playlist": [{"play": "https://media.example/voices/hello.wav"}],
        "callback_url": "https://hooks.example/voxcast",
        "callback_events": ["call.ended", "broadcast.completed"],
    }},
    "one": {"summary": "The one-recipient form", "value": {
        "to": "sip:alice@192.0.2.10:5060", "from": "me",
        "playlist": [{"play": "https://media.example/voices/hello.wav", "loop": 2}],
    }},
}


def _envelope(request_id: str, **payload: Any) -> dict[str, Any]:
    return {"code": 0, "status": 200, "data": "accepted", "request_id": request_id, **payload}


PROGRESS_PENDING = {"total": 2, "queued": 0, "in_progress": 1, "completed": 1}
PROGRESS_DONE = {"total": 2, "queued": 0, "in_progress": 0, "completed": 2}

ANSWERED_RECORD: dict[str, Any] = {
    "type": "voice", "id": CALL_ID, "result": "completed",
    "request_time": "2026-11-26 14:10:37", "to": "sip:123456@192.0.2.10:5060", "from": "acme",
    "setup_time": "2026-11-26 14:10:37", "ring_time": "2026-11-26 14:10:38",
    "connect_time": "2026-11-26 14:10:39", "disconnect_time": "2026-11-26 14:10:42",
    "disconnect_cause_code": "200", "disconnect_cause_text": "OK", "duration": 3,
    "answered": True, "sip_code_source": "answered", "q850_cause": 16,
    "q850_text": "Normal Clearing", "hangup_by": "service", "playback": ["done", "done", "done"],
    "speech": [{"item": 0, "engine": "piper", "fallbacks": [], "seconds": 1.6}], "state": "ended",
    "attempt": 1,
}
BUSY_RECORD: dict[str, Any] = {
    "type": "voice", "id": "d2e3f4a5-b6c7-4d8e-9f0a-1b2c3d4e5f60", "result": "completed",
    "request_time": "2026-11-26 14:10:37", "to": "sip:bob@192.0.2.10:5060", "from": "acme",
    "setup_time": "2026-11-26 14:10:37", "disconnect_time": "2026-11-26 14:10:37",
    "disconnect_cause_code": "486", "disconnect_cause_text": "User Busy", "duration": 0,
    "answered": False, "sip_code_source": "tech_cause", "q850_cause": 17,
    "q850_text": "User busy", "hangup_by": None, "playback": [], "speech": [],
    "state": "ended", "attempt": 1,
}

ACCEPTED = _envelope(REQUEST_ID)
BULK_UPLOAD = (
    '{"from": "acme", "playlist": [{"say": "Hello {name}, this is Acme."}]}\n'
    '{"to": "sip:123456@192.0.2.10:5060", "variables": {"name": "Alice"}}\n'
    '{"to": "+15551234567", "variables": {"name": "Bob"}}\n')
BULK_ACCEPTED = _envelope(REQUEST_ID, recipients=2)
REQUEST_STATUS = _envelope(REQUEST_ID, report={
    "id": REPORT_ID, "location": REPORT_LOCATION, "status": "pending",
    "progress": PROGRESS_PENDING})
CALL_STATUS = _envelope(CALL_ID, record=ANSWERED_RECORD)
REPORT_READY = _envelope(REPORT_ID, report_status="ready", progress=PROGRESS_DONE,
                         records=[ANSWERED_RECORD, BUSY_RECORD], report_request_id=REQUEST_ID)
REPORT_PAGE = _envelope(REPORT_ID, report_status="ready", progress=PROGRESS_DONE,
                        next=f"/report/{REPORT_ID}?limit=1&after=0.1",
                        records=[ANSWERED_RECORD], report_request_id=REQUEST_ID)
# Built the way the service writes them: every field of every record, in the documented order.
REPORT_CSV = (",".join(CSV_FIELDS) + "\n"
              + csv_rows([ANSWERED_RECORD, BUSY_RECORD]).decode())
REPORT_NDJSON = ndjson_lines([ANSWERED_RECORD, BUSY_RECORD]).decode()
REPORT_SUMMARY = _envelope(REPORT_ID, report_status="ready", progress=PROGRESS_DONE, summary={
    "records": 2, "by_result": {"completed": 2}, "by_sip_code": {"200": 1, "486": 1},
    "answered": 1, "ended": 2, "answer_rate": 0.5, "mean_duration": 3.0})
REPORT_PENDING = _envelope(REPORT_ID, report_status="pending", progress=PROGRESS_PENDING,
                           records=[], report_request_id=REQUEST_ID)
BROADCASTS = _envelope("", broadcasts=[
    {"request_id": REQUEST_ID, "created_time": "2026-11-26 14:10:37", "from": "acme",
     "status": "running", "cancelled": False, "progress": PROGRESS_PENDING, "answered": 1,
     "report": {"id": REPORT_ID, "location": REPORT_LOCATION}},
], next=f"/voice/calls?status=running&limit=1&after={REQUEST_ID}")
BROADCASTS_LAST_PAGE = _envelope("", broadcasts=[], next=None)
CANCELLED = _envelope(REQUEST_ID, cancelled=12, hung_up=3,
                      report={"id": REPORT_ID, "location": REPORT_LOCATION})
MEDIA_UPLOADED = _envelope(MEDIA_HASH, media=f"media:{MEDIA_HASH}", duration=3.2)
MONITOR = _envelope("", monitor={
    "ami": {"connected": True, "live_channels": 4, "hangups": 120,
            "by_sip_code": {"486": 9, "none": 111}, "by_q850_cause": {"16": 100, "17": 9}},
    "ari": {"connected": True, "disconnects": 0, "ignored_events": 0, "unrouted_events": 0},
    "dialer": {"live_calls": 4, "peak_live_calls": 50}})
TRUNKS = _envelope("", trunks=[{
    "name": "carrier-a", "state": "ready", "registration": "Registered",
    "contacts": [{"uri": "sip:192.0.2.20:5060", "status": "Reachable", "rtt_ms": 12.4}],
    "hosts": ["sip:192.0.2.20:5060"], "prefixes": ["+49"], "priority": 100, "live_calls": 3,
    "peak_live_calls": 10, "max_concurrent": 10, "calls_per_second": 1.8,
    "max_calls_per_second": 2.0, "calls": 120, "outcomes": {"200": 101, "486": 19},
    "recent_outcomes": ["200", "486", "200"]}])
HEALTH = _envelope("", health="alive")
READY = _envelope("", ready=True)


def error(status: int, name: str, message: str,
          details: list[dict[str, str]] | None = None) -> dict[str, Any]:
    """An error answer exactly as the service builds it (see envelope.error_response)."""
    body: dict[str, Any] = {"code": ERROR_CODES[name], "status": status, "data": name,
                            "error": name, "message": message}
    if details:
        body["details"] = details
    return body


INVALID_TARGET = error(
    400, "invalid_request", "recipients[1].to: must be a SIP URI like sip:alice@192.0.2.10:5060",
    [{"field": "recipients[1].to", "message": "must be a SIP URI like sip:alice@192.0.2.10:5060"}])
UNAUTHORIZED = error(401, "unauthorized", "the API key is unknown or revoked")
NOT_FOUND = error(404, "not_found", "no request or call with that id")
CURSOR_NOT_FOUND = error(404, "not_found", "after: no request with that id",
                         [{"field": "after", "message": "no request with that id"}])
INVALID_LIMIT = error(400, "invalid_request", "limit: must be a whole number from 1 to 100",
                      [{"field": "limit", "message": "must be a whole number from 1 to 100"}])
REPORT_NOT_FOUND = error(404, "not_found", "no report with that id")
INVALID_UPLOAD = error(
    422, "invalid_upload", "line 3: to: must be a SIP URI like sip:alice@192.0.2.10:5060; "
    "line 9: not a JSON object",
    [{"field": "line 3: to", "message": "must be a SIP URI like sip:alice@192.0.2.10:5060"},
     {"field": "line 9", "message": "not a JSON object"}])
BULK_MEDIA_UNUSABLE = error(
    422, "media_unusable", "line 1: playlist[0].play: the URL answered 404",
    [{"field": "line 1: playlist[0].play", "message": "the URL answered 404"}])
TOO_MANY_IN_UPLOAD = error(400, "too_many_recipients",
                           "line 1000002: at most 1000000 recipients are allowed in one upload")
UPLOAD_TIMEOUT = error(408, "upload_timeout",
                       "the upload took longer than 3600 s; nothing was stored")
NOT_NDJSON = error(415, "unsupported_media_type",
                   "send the upload as application/x-ndjson (one JSON object a line)")
INVALID_QUERY = error(400, "invalid_request", "limit: must be a whole number from 1 to 10000",
                      [{"field": "limit", "message": "must be a whole number from 1 to 10000"}])
REPORT_PENDING_EXPORT = error(409, "report_pending",
                              "the report is not ready: 1 of 2 calls have ended; try again later")
IDEMPOTENCY_CONFLICT = error(409, "idempotency_conflict",
                             "Idempotency-Key: already used with another body")
BODY_TOO_LARGE = error(413, "body_too_large", "the request body is too large")
NOT_JSON = error(415, "unsupported_media_type", "send the body as application/json")
MEDIA_UNUSABLE = error(
    422, "media_unusable", "playlist[2].play: the URL answered 404",
    [{"field": "playlist[2].play", "message": "the URL answered 404"}])
MISSING_VARIABLES = error(
    422, "missing_variables", "recipients[1].variables: misses 'name', used by playlist[0].say",
    [{"field": "recipients[1].variables", "message": "misses 'name', used by playlist[0].say"}])
NOT_AUDIO = error(422, "media_unusable", "body: is not usable audio: Format not recognised.")
MULTIPART = error(415, "unsupported_media_type",
                  "send the audio file itself as the body (e.g. Content-Type: audio/wav)")
NOT_OPERATOR = error(404, "not_found", "no resource with that id")
NOT_READY = error(503, "not_ready", "ARI event stream not connected")
