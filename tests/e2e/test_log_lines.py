"""One log line per accepted broadcast and per ended call: ids and outcomes, nothing personal."""

from __future__ import annotations

import logging

import pytest

from tests.e2e.conftest import MediaPlane, Service

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]


async def test_a_line_per_broadcast_and_per_call_end(media_plane: MediaPlane, service: Service,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    answer, busy = media_plane.uri("answer", "private-alice"), media_plane.uri("reject_486")
    body = {"recipients": [{"to": answer, "variables": {"name": "Zelda Quux"}},
                           {"to": busy, "variables": {"name": "Yorick Plum"}}],
            "from": "log-test", "playlist": [{"say": "Hello {name}"}]}
    status, accepted = await service.post("/voice/call/play", body)
    assert status == 200, accepted
    request_id = accepted["request_id"]
    report = await service.wait_for_report(request_id)
    lines = [record.getMessage() for record in caplog.records]

    accepted_lines = [line for line in lines if line.startswith(f"broadcast {request_id} acc")]
    assert accepted_lines == [f"broadcast {request_id} accepted for tenant default: "
                              "2 recipients, 1 playlist items"]
    for record in report["records"]:
        ended = [line for line in lines if line.startswith(f"call {record['id']} ")]
        expected = (f"call {record['id']} of request {request_id} ended: {record['result']}, "
                    f"SIP {record['disconnect_cause_code']} {record['disconnect_cause_text']}, "
                    f"{record['duration']} s")
        assert ended == [expected]
    everything = "\n".join(lines)
    for personal in ("Zelda Quux", "Yorick Plum", "private-alice", "Hello"):
        assert personal not in everything
