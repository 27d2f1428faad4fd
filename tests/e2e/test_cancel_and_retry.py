"""Cancel with calls live and queued, and retries with every attempt in the report."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.e2e.conftest import MediaPlane
from tests.support.service import Service, poll
from tests.support.sip_trace import Dialog, by_user

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]


def _user(record: dict) -> str:
    return record["to"].removeprefix("sip:").split("@")[0]


async def _cancelled_on_the_wire(media_plane: MediaPlane,
                                 users: list[str]) -> dict[str, list[Dialog]]:
    """The ring far end's dialogs of `users`, once each has seen its CANCEL through to the ACK."""
    async def settled() -> tuple[bool, dict[str, list[Dialog]]]:
        dialogs = by_user(media_plane.dialogs("ring", users))
        done = len(dialogs) == len(users) and all(
            d.received("CANCEL") and d.received("ACK") for ds in dialogs.values() for d in ds)
        return done, dialogs

    return await poll(settled, limit=5.0, what="a CANCEL at the far end for every live call")


async def test_cancel_hangs_up_live_calls_and_ends_queued_ones(media_plane: MediaPlane,
                                                               service: Service) -> None:
    users = [f"cancel{i}" for i in range(40)]
    ring_timeout = media_plane.settings.ring_timeout
    request_id = await service.submit({
        "recipients": [{"to": media_plane.uri("ring", user=u)} for u in users],
        "from": "me", "playlist": [{"pause": 1}]})
    await asyncio.sleep(1.0)  # 20 calls/s: about 20 ringing, the rest queued
    cancel_sent = time.time()
    status, cancelled = await service.delete(f"/voice/call/{request_id}")
    cancel_answered = time.time()
    assert status == 200, cancelled
    assert cancelled["hung_up"] >= 5 and cancelled["cancelled"] >= 5, cancelled
    assert cancelled["hung_up"] + cancelled["cancelled"] == len(users)
    _, status_now = await service.get(f"/voice/call/status/{request_id}")
    assert status_now["report"]["status"] == "ready"
    _, report = await service.get(f"/report/{cancelled['report']['id']}")
    results = [r["result"] for r in report["records"]]
    assert results.count("cancelled") == cancelled["cancelled"]
    live = [r for r in report["records"] if r["result"] == "completed"]
    assert len(live) == cancelled["hung_up"]
    # On a loaded machine the first calls may reach the 3 s ring timeout before the cancel's
    # hang-up does: those read as the timeout (honest), and the far end must have seen the
    # timeout's CANCEL, not ours. Every other live call was ended by our cancel.
    timed_out = {_user(r) for r in live if r["sip_code_source"] == "timeout"}
    odd = [{key: r[key] for key in ("to", "setup_time", "disconnect_time", "disconnect_cause_code",
                                    "disconnect_cause_text", "sip_code_source", "hangup_by")}
           for r in live if _user(r) not in timed_out
           and (r["disconnect_cause_code"] != "487" or r["hangup_by"] != "service")]
    assert not odd, odd
    assert len(live) - len(timed_out) >= 5, (len(live), timed_out)
    # The 487 above is the service's own reading; the far end must have seen our CANCEL.
    rung = await _cancelled_on_the_wire(media_plane, [_user(r) for r in live])
    for user, dialogs in rung.items():
        (dialog,) = dialogs
        assert dialog.final_status == 487, (user, dialog.timeline())
        (cancel,) = dialog.received("CANCEL")
        if user in timed_out:  # Asterisk's own CANCEL, ring_timeout after the INVITE
            assert cancel.at >= dialog.invited_at + ring_timeout - 0.2, (dialog.timeline(), user)
            continue
        # Our cancel sent it, not the originate timeout: that CANCEL would come ring_timeout
        # after the originate, which precedes the INVITE by milliseconds (0.2 s of margin).
        assert cancel_sent <= cancel.at <= cancel_answered, (cancel.at - cancel_sent, user)
        assert cancel.at < dialog.invited_at + ring_timeout - 0.2, (dialog.timeline(), user)
    await asyncio.sleep(1.0)
    invites = media_plane.far_ends["ring"].invites_by_user()
    assert sum(invites[u] for u in users) == cancelled["hung_up"]  # nothing dialled after
    assert {u for u in users if invites[u]} == set(rung)


async def test_busy_recipients_are_retried_and_every_attempt_is_kept(
        media_plane: MediaPlane, service: Service) -> None:
    users = [f"retry{i}" for i in range(3)]
    request_id = await service.submit({
        "recipients": [{"to": media_plane.uri("reject_486", user=u)} for u in users],
        "from": "me", "playlist": [{"pause": 1}],
        "retry": {"on": ["busy"], "attempts": 3, "delay": 1}})
    report = await service.wait_for_report(request_id, limit=30)
    records = report["records"]
    assert len(records) == 9
    for user in users:
        attempts = [r for r in records if _user(r) == user]
        assert [r["attempt"] for r in attempts] == [1, 2, 3]
        assert {r["disconnect_cause_code"] for r in attempts} == {"486"}
    invites = media_plane.far_ends["reject_486"].invites_by_user()
    assert [invites[u] for u in users] == [3, 3, 3]
    dialogs = by_user(media_plane.dialogs("reject_486", users))
    for user in users:  # each attempt a dialog of its own, at least `delay` after the last
        starts = [d.invited_at for d in dialogs[user]]
        ends = [d.ended_at for d in dialogs[user]]
        assert len(starts) == 3 and all(end is not None for end in ends), user
        assert all(later - end >= 1.0 for end, later in zip(ends, starts[1:], strict=False))


async def test_cancel_during_a_retry_delay_ends_the_queued_retry(
        media_plane: MediaPlane, service: Service) -> None:
    user = "retrycancel"
    retry_delay = 4
    request_id = await service.submit({
        "to": media_plane.uri("reject_486", user=user), "from": "me",
        "playlist": [{"pause": 1}],
        "retry": {"on": ["busy"], "attempts": 3, "delay": retry_delay}})

    async def first_attempt_over() -> tuple[bool, list[str]]:
        dialogs = media_plane.dialogs("reject_486", [user])
        return any(d.received("ACK") for d in dialogs), [d.timeline() for d in dialogs]

    await poll(first_attempt_over, limit=10.0, what="the first attempt rejected at the far end")
    await asyncio.sleep(0.5)  # its record is written; the retry waits in the queue
    status, cancelled = await service.delete(f"/voice/call/{request_id}")
    assert status == 200, cancelled
    assert cancelled["cancelled"] == 1 and cancelled["hung_up"] == 0, cancelled
    _, report = await service.get(f"/report/{cancelled['report']['id']}")
    assert [(r["attempt"], r["result"]) for r in report["records"]] == \
        [(1, "completed"), (2, "cancelled")]
    assert report["records"][1]["setup_time"] is None
    await asyncio.sleep(retry_delay + 1.0)  # past the moment the retry was due
    assert len(media_plane.dialogs("reject_486", [user])) == 1


async def test_no_retry_for_outcomes_not_asked_for(media_plane: MediaPlane,
                                                   service: Service) -> None:
    request_id = await service.submit({
        "to": media_plane.uri("reject_404", user="noretry"), "from": "me",
        "playlist": [{"pause": 1}], "retry": {"on": ["busy", "no_answer"], "attempts": 3,
                                               "delay": 0}})
    (record,) = (await service.wait_for_report(request_id))["records"]
    assert record["disconnect_cause_code"] == "404" and record["attempt"] == 1
