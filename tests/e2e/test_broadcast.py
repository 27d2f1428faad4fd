"""The founding API end to end: real Asterisk, real SIP far ends, every record checked."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest

from tests.e2e.conftest import WAV_SECONDS, MediaPlane, Service

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

FOUNDING_FIELDS = {"type", "id", "result", "request_time", "to", "from", "setup_time",
                   "disconnect_time", "disconnect_cause_code", "disconnect_cause_text",
                   "duration", "answered"}
TIME = "%Y-%m-%d %H:%M:%S"


def _time(text: str) -> datetime:
    return datetime.strptime(text, TIME)


async def test_founding_request_reports_every_sip_outcome(media_plane: MediaPlane,
                                                          service: Service) -> None:
    behaviours = ["answer", "reject_486", "reject_404", "reject_503", "reject_603", "ring",
                  "silent"]
    body = {"recipients": [{"to": media_plane.uri(b, user=f"u{i}")}
                           for i, b in enumerate(behaviours)],
            "from": "me", "playlist": [{"play": media_plane.media_url}]}
    status, accepted = await service.post("/voice/call/play", body)
    assert status == 200, accepted
    assert accepted["code"] == 0 and accepted["status"] == 200 and accepted["data"] == "accepted"
    request_id = accepted["request_id"]

    _, pending = await service.get(f"/voice/call/status/{request_id}")
    assert pending["report"]["status"] == "pending"
    assert pending["report"]["location"] == "/reports"
    assert pending["report"]["progress"]["total"] == len(behaviours)
    _, early = await service.get(f"/report/{pending['report']['id']}")
    assert early["status"] == 200 and early["report_status"] == "pending"
    assert early["records"] == []

    report = await service.wait_for_report(request_id, limit=45)
    assert report["code"] == 0 and report["status"] == 200 and report["report_status"] == "ready"
    assert report["request_id"] == pending["report"]["id"]
    records = {record["to"]: record for record in report["records"]}
    assert len(records) == len(behaviours)
    by = {b: records[media_plane.uri(b, user=f"u{i}")] for i, b in enumerate(behaviours)}

    for record in by.values():
        assert FOUNDING_FIELDS <= record.keys()
        assert record["type"] == "voice" and record["from"] == "me"
        assert record["result"] == "completed"
        assert _time(record["request_time"]) <= _time(record["setup_time"])
        assert _time(record["setup_time"]) <= _time(record["disconnect_time"])

    answered = by["answer"]
    assert answered["answered"] is True
    assert (answered["disconnect_cause_code"], answered["disconnect_cause_text"]) == ("200", "OK")
    assert abs(answered["duration"] - WAV_SECONDS) <= 1, answered
    assert _time(answered["setup_time"]) <= _time(answered["connect_time"])
    assert answered["playback"] == ["done"]
    assert answered["hangup_by"] == "service"

    expected = {"reject_486": ("486", "User Busy", "tech_cause"),
                "reject_404": ("404", "Not Found", "tech_cause"),
                "reject_503": ("503", "Service Unavailable", "tech_cause"),
                "reject_603": ("603", "Decline", "tech_cause"),
                # Asterisk says 480 for both; the far end rang in one, said nothing in the other.
                "ring": ("480", "No answer before the ring timeout", "timeout"),
                "silent": ("408", "No response before the ring timeout",
                           "timeout")}
    for behaviour, (code, text, source) in expected.items():
        record = by[behaviour]
        assert (record["disconnect_cause_code"], record["disconnect_cause_text"]) == (code, text)
        assert record["answered"] is False and record["duration"] == 0
        assert "connect_time" not in record
        assert record["sip_code_source"] == source
    assert "ring_time" in by["ring"]
    assert by["reject_486"]["q850_cause"] == 17

    for record in report["records"]:
        status, alone = await service.get(f"/voice/call/status/{record['id']}")
        assert status == 200 and alone["request_id"] == record["id"]
        assert alone["record"] == record

    _, done = await service.get(f"/voice/call/status/{request_id}")
    assert done["report"]["status"] == "ready"
    assert done["report"]["progress"] == {"total": 7, "queued": 0, "in_progress": 0,
                                          "completed": 7}


async def test_one_recipient_form(media_plane: MediaPlane, service: Service) -> None:
    status, accepted = await service.post("/voice/call/play", {
        "to": media_plane.uri("reject_486"), "from": "+15550100",
        "playlist": [{"play": media_plane.media_url}]})
    assert status == 200
    report = await service.wait_for_report(accepted["request_id"])
    (record,) = report["records"]
    assert record["disconnect_cause_code"] == "486" and record["from"] == "+15550100"


async def test_media_failing_at_submit_is_refused(media_plane: MediaPlane,
                                                   service: Service) -> None:
    status, refused = await service.post("/voice/call/play", {
        "to": media_plane.uri("answer"), "from": "me",
        "playlist": [{"play": media_plane.media_base + "/voices/missing.wav"}]})
    assert status == 422 and refused["details"][0]["field"] == "playlist[0].play"


async def test_media_failing_after_the_answer_fails_every_call_and_places_none(
        media_plane: MediaPlane, service: Service) -> None:
    answer_invites = media_plane.far_ends["answer"].received_invites()
    status, accepted = await service.post("/voice/call/play", {
        "recipients": [{"to": media_plane.uri("answer")}, {"to": media_plane.uri("ring")}],
        "from": "me",
        "playlist": [{"play": media_plane.media_base + "/voices/slow-missing.wav"}]})
    assert status == 200
    report = await service.wait_for_report(accepted["request_id"])
    for record in report["records"]:
        assert record["result"] == "failed"
        assert record["setup_time"] is None and record["answered"] is False
        assert "404" in record["disconnect_cause_text"]
    assert media_plane.far_ends["answer"].received_invites() == answer_invites


async def test_monitor_counts_hangups_seen_over_ami(media_plane: MediaPlane,
                                                    service: Service) -> None:
    status, accepted = await service.post("/voice/call/play", {
        "to": media_plane.uri("reject_603", user="monitored"), "from": "me",
        "playlist": [{"pause": 1}]})
    assert status == 200
    await service.wait_for_report(accepted["request_id"])
    for _ in range(40):  # AMI events arrive on their own connection
        _, answer = await service.get("/monitor")
        if answer["monitor"]["ami"]["by_sip_code"].get("603"):
            break
        await asyncio.sleep(0.1)
    monitor = answer["monitor"]
    assert monitor["ami"]["connected"] is True
    assert monitor["ami"]["by_sip_code"]["603"] >= 1
    assert monitor["ari"]["connected"] is True and monitor["dialer"]["peak_live_calls"] >= 1
