"""The founding API end to end: real Asterisk, real SIP far ends, every record checked."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest

from tests.e2e.conftest import WAV_HZ, WAV_SECONDS, MediaPlane
from tests.support.audio import dominant_frequency, tone_seconds
from tests.support.rtp import stream_of
from tests.support.service import Service, poll
from tests.support.sip_trace import Dialog

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

# The tone's length as heard: Asterisk sends the converted file in 20 ms RTP packets, so the
# first and last packets may be partial (20 ms each) and the classifier counts whole 20 ms
# frames, each edge frame being tone or not (20 ms each): 80 ms at most, rounded up to 0.1 s.
HEARD_LENGTH_TOLERANCE = 0.1
HZ_TOLERANCE = 5.0  # a 3 s tone resolves to a fraction of a hertz; 5 Hz says "the same tone"
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
    with media_plane.rtp.recording() as rtp:
        status, accepted = await service.post("/voice/call/play", body)
        assert status == 200, accepted
        assert accepted["code"] == 0 and accepted["status"] == 200
        assert accepted["data"] == "accepted"
        request_id = accepted["request_id"]
        report = await _founding_report(service, request_id, len(behaviours))
        wire = await _wire_settled(media_plane, behaviours)
    _check_the_wire(media_plane, behaviours, wire)
    assert media_plane.sipp_errors(d for ds in wire.values() for d in ds) == []
    (answer_dialog,) = wire["answer"]
    stream = stream_of(answer_dialog, rtp.streams())
    assert stream is not None, [s.source_port for s in rtp.streams()]
    heard = stream.samples()
    assert abs(dominant_frequency(heard) - WAV_HZ) <= HZ_TOLERANCE
    assert abs(tone_seconds(heard, WAV_HZ) - WAV_SECONDS) <= HEARD_LENGTH_TOLERANCE, \
        (tone_seconds(heard, WAV_HZ), stream.seconds, stream.lost)
    _check_records(media_plane, behaviours, report)

    _, done = await service.get(f"/voice/call/status/{request_id}")
    assert done["report"]["status"] == "ready"
    assert done["report"]["progress"] == {"total": 7, "queued": 0, "in_progress": 0,
                                          "completed": 7}
    for record in report["records"]:
        status, alone = await service.get(f"/voice/call/status/{record['id']}")
        assert status == 200 and alone["request_id"] == record["id"]
        assert alone["record"] == record


async def _founding_report(service: Service, request_id: str, total: int) -> dict:
    """The report, checked pending first, then ready."""
    _, pending = await service.get(f"/voice/call/status/{request_id}")
    assert pending["report"]["status"] == "pending"
    assert pending["report"]["location"] == f"/report/{pending['report']['id']}"
    assert pending["report"]["progress"]["total"] == total
    _, early = await service.get(f"/report/{pending['report']['id']}")
    assert early["status"] == 200 and early["report_status"] == "pending"
    assert early["records"] == []

    report = await service.wait_for_report(request_id, limit=45)
    assert report["code"] == 0 and report["status"] == 200 and report["report_status"] == "ready"
    assert report["request_id"] == pending["report"]["id"]
    return report


async def _wire_settled(media_plane: MediaPlane, behaviours: list[str]) -> dict[str, list]:
    """Each far end's dialogs for its user, once each has ended (our ACK may trail the report)."""
    async def settled() -> tuple[bool, dict[str, list[Dialog]]]:
        wire = {b: media_plane.dialogs(b, [f"u{i}"]) for i, b in enumerate(behaviours)
                if b != "silent"}
        complete = all(d.received("ACK") and d.ended_at is not None
                       for dialogs in wire.values() for d in dialogs)
        return complete, {b: [d.timeline() for d in ds] for b, ds in wire.items()} \
            if not complete else wire

    return await poll(settled, limit=5.0, what="far ends saw every call end")


def _check_the_wire(media_plane: MediaPlane, behaviours: list[str],
                    wire: dict[str, list[Dialog]]) -> None:
    """Each far end's own trace: one dialog, and the messages each outcome must have."""
    for behaviour, dialogs in wire.items():
        assert len(dialogs) == 1, (behaviour, [d.timeline() for d in dialogs])
    (answered,) = wire["answer"]
    assert answered.final_status == 200 and answered.received("ACK"), answered.timeline()
    (bye,) = answered.received("BYE")  # we hung up after the playlist, once
    assert bye.at > answered.received("ACK")[0].at, answered.timeline()
    assert not answered.sent_requests("BYE"), answered.timeline()
    assert [m for m in answered.sent_responses("BYE") if m.status == 200], answered.timeline()
    for behaviour in ("reject_486", "reject_404", "reject_503", "reject_603"):
        (dialog,) = wire[behaviour]
        assert dialog.final_status == int(behaviour[-3:]), dialog.timeline()
        assert dialog.received("ACK") and not dialog.received("BYE"), dialog.timeline()
    (rang,) = wire["ring"]  # rang until the originate timeout: Asterisk CANCELs it
    assert [m.status for m in rang.sent_responses() if m.status == 180], rang.timeline()
    assert rang.received("CANCEL") and rang.final_status == 487, rang.timeline()
    assert rang.received("ACK"), rang.timeline()
    silent_user = f"u{behaviours.index('silent')}"
    for behaviour in media_plane.far_ends:  # nothing listens on its port: nobody got it
        assert media_plane.dialogs(behaviour, [silent_user]) == [], behaviour


def _check_records(media_plane: MediaPlane, behaviours: list[str], report: dict) -> None:
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
    (server,) = monitor["media_servers"]
    assert server["connected"] is True and server["name"] == media_plane.settings.instance_name
    assert monitor["dialer"]["peak_live_calls"] >= 1
