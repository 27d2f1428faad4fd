"""Cancel with calls live and queued, and retries with every attempt in the report."""

from __future__ import annotations

import asyncio

import pytest

from tests.e2e.conftest import MediaPlane, Service

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]


async def test_cancel_hangs_up_live_calls_and_ends_queued_ones(media_plane: MediaPlane,
                                                               service: Service) -> None:
    users = [f"cancel{i}" for i in range(40)]
    status, accepted = await service.post("/voice/call/play", {
        "recipients": [{"to": media_plane.uri("ring", user=u)} for u in users],
        "from": "me", "playlist": [{"pause": 1}]})
    assert status == 200
    await asyncio.sleep(1.0)  # 20 calls/s: about 20 ringing, the rest queued
    async with service.http.delete(
            f"{service.base}/voice/call/{accepted['request_id']}") as response:
        cancelled = await response.json()
    assert response.status == 200, cancelled
    assert cancelled["hung_up"] >= 5 and cancelled["cancelled"] >= 5, cancelled
    assert cancelled["hung_up"] + cancelled["cancelled"] == len(users)
    _, status_now = await service.get(f"/voice/call/status/{accepted['request_id']}")
    assert status_now["report"]["status"] == "ready"
    _, report = await service.get(f"/report/{cancelled['report']['id']}")
    results = [r["result"] for r in report["records"]]
    assert results.count("cancelled") == cancelled["cancelled"]
    live = [r for r in report["records"] if r["result"] == "completed"]
    assert len(live) == cancelled["hung_up"]
    assert all(r["disconnect_cause_code"] == "487" and r["hangup_by"] == "service"
               for r in live), live[:2]
    await asyncio.sleep(1.0)
    invites = media_plane.far_ends["ring"].invites_by_user()
    assert sum(invites[u] for u in users) == cancelled["hung_up"]  # nothing dialled after


async def test_busy_recipients_are_retried_and_every_attempt_is_kept(
        media_plane: MediaPlane, service: Service) -> None:
    users = [f"retry{i}" for i in range(3)]
    status, accepted = await service.post("/voice/call/play", {
        "recipients": [{"to": media_plane.uri("reject_486", user=u)} for u in users],
        "from": "me", "playlist": [{"pause": 1}],
        "retry": {"on": ["busy"], "attempts": 3, "delay": 1}})
    assert status == 200
    report = await service.wait_for_report(accepted["request_id"], limit=30)
    records = report["records"]
    assert len(records) == 9
    for user in users:
        attempts = [r for r in records if f":{user}@" in r["to"] or f"sip:{user}@" in r["to"]]
        assert [r["attempt"] for r in attempts] == [1, 2, 3]
        assert {r["disconnect_cause_code"] for r in attempts} == {"486"}
    invites = media_plane.far_ends["reject_486"].invites_by_user()
    assert [invites[u] for u in users] == [3, 3, 3]


async def test_no_retry_for_outcomes_not_asked_for(media_plane: MediaPlane,
                                                   service: Service) -> None:
    status, accepted = await service.post("/voice/call/play", {
        "to": media_plane.uri("reject_404", user="noretry"), "from": "me",
        "playlist": [{"pause": 1}], "retry": {"on": ["busy", "no_answer"], "attempts": 3,
                                               "delay": 0}})
    assert status == 200
    (record,) = (await service.wait_for_report(accepted["request_id"]))["records"]
    assert record["disconnect_cause_code"] == "404" and record["attempt"] == 1
