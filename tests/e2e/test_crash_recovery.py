"""kill -9 mid-batch, and Asterisk restarted mid-batch: every recipient accounted for once.

Outcomes are checked against the far end's own message trace: who was dialled, when, and
how each call ended on the wire.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from app.main import STORE
from tests.e2e.conftest import MediaPlane
from tests.support.database import stored_calls
from tests.support.ports import free_tcp_port
from tests.support.service import ServiceProcess, environment, poll, running_service
from tests.support.sip_trace import Dialog, by_user

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

# From /ready to the first INVITE of the restarted run: recovery lists Asterisk's channels,
# gives back undialled claims, writes each lost call's record one by one and starts the hang-up
# of each adopted one, then the dialer claims and dials at once. Measured 0.15-1.3 s with about
# 80 calls to recover on the 2-core machine; 3 s leaves room when other work shares it.
FIRST_DIAL_AFTER_READY_SECONDS = 3.0


def _user(record: dict) -> str:
    return record["to"].removeprefix("sip:").split("@")[0]


async def test_kill_9_mid_batch_then_restart(media_plane: MediaPlane, tmp_path: Path) -> None:
    recipients = 300
    users = [f"crash{i}" for i in range(recipients)]
    settings = media_plane.settings.with_overrides(
        runtime_dir=tmp_path, port=free_tcp_port(), calls_per_second=40,
        max_concurrent_calls=80, drain_timeout=1.0)
    async with ServiceProcess("serve", environment(settings)) as service:
        await service.start()
        request_id = await service.api.submit({
            "recipients": [{"to": media_plane.uri("answer", user=u)} for u in users],
            "from": "me", "playlist": [{"play": media_plane.media_url}]})
        await asyncio.sleep(4.0)
        await service.kill()
        at_kill = await stored_calls(settings.resolved_database_url, request_id)
        undialled_at_kill = {call.user for call in at_kill
                             if call.state != "ended" and not call.dialled}
        in_flight_at_kill = [call for call in at_kill if call.state != "ended" and call.dialled]
        assert in_flight_at_kill and undialled_at_kill, [call.state for call in at_kill]

        await service.start()
        restarted_at, ready_at = service.started_at, time.time()
        restarted = datetime.fromtimestamp(restarted_at, UTC)

        async def killed_run_resolved() -> tuple[bool, int]:
            # Calls the killed run had dialled (setup before the restart) and not ended.
            stale = [call for call in await stored_calls(settings.resolved_database_url,
                                                         request_id)
                     if call.state != "ended" and call.setup_time is not None
                     and call.setup_time < restarted]
            return not stale, len(stale)

        await poll(killed_run_resolved, limit=ready_at - restarted_at + 5.0,
                   what="calls in flight at the kill resolved after the restart")
        report = await service.api.wait_for_report(request_id, limit=90)

    records = {_user(record): record for record in report["records"]}
    assert sorted(records) == sorted(users)  # exactly one final record per recipient
    wire = by_user(media_plane.dialogs("answer", users))
    assert max(len(dialogs) for dialogs in wire.values()) == 1, \
        [user for user, dialogs in wire.items() if len(dialogs) > 1]  # never twice
    dialog: dict[str, Dialog] = {user: dialogs[0] for user, dialogs in wire.items()}

    for user in undialled_at_kill:  # waiting at the kill: dialled once, by the new run
        assert user in dialog and dialog[user].invited_at >= restarted_at, user

    # The calls the killed run had dialled and not yet recorded: the wire tells which were
    # still up at the restart (adopted: hung up by the new run) and which had ended meanwhile,
    # some just before the kill with their end not yet written (lost: outcome not observed).
    interrupted = {call.user for call in in_flight_at_kill}
    never_sent = {user for user in interrupted if user not in dialog}
    adopted = {user for user in interrupted - never_sent
               if (dialog[user].ended_at or 0) >= restarted_at}
    lost = interrupted - never_sent - adopted
    assert adopted, "calls live at the kill should have been adopted and hung up"
    for user in adopted:  # the restarted service found the channel and hung it up: our BYE
        assert dialog[user].received("BYE"), dialog[user].timeline()
        assert records[user]["result"] == "completed", f"{records[user]}"
        assert records[user]["hangup_by"] == "service", f"{records[user]}"
    for user in lost:
        assert dialog[user].ended_at is not None, dialog[user].timeline()
        assert records[user]["result"] == "failed", f"{records[user]} {dialog[user].timeline()}"
    for user in never_sent:  # setup written, killed before the originate reached Asterisk
        assert records[user]["result"] == "failed", f"{records[user]}"
    for user in set(users) - interrupted:  # recorded before the kill, or dialled after it
        assert records[user]["result"] == "completed", f"{records[user]}"
        assert records[user]["playback"] == ["done"], f"{records[user]} {dialog[user].timeline()}"
        assert dialog[user].answered and dialog[user].received("BYE"), dialog[user].timeline()

    first_new_invite = min(d.invited_at for d in dialog.values() if d.invited_at >= restarted_at)
    recovery_seconds = first_new_invite - restarted_at
    assert first_new_invite - ready_at <= FIRST_DIAL_AFTER_READY_SECONDS, \
        (first_new_invite - ready_at, recovery_seconds)
    print(f"kill -9 with {len(in_flight_at_kill)} calls in flight and {len(undialled_at_kill)} "
          f"not yet dialled: first new INVITE {recovery_seconds:.1f} s after the restart "
          f"({first_new_invite - ready_at:.2f} s after ready); {len(adopted)} live calls "
          f"adopted and hung up, {len(lost)} lost, {len(never_sent)} never sent; "
          f"{len(dialog)} INVITEs for {recipients} recipients")


async def test_asterisk_restart_mid_batch(media_plane: MediaPlane, tmp_path: Path) -> None:
    recipients = 60
    users = [f"restart{i}" for i in range(recipients)]
    settings = media_plane.settings.with_overrides(runtime_dir=tmp_path, calls_per_second=10)
    async with running_service(settings) as service:
        request_id = await service.submit({
            "recipients": [{"to": media_plane.uri("answer", user=u)} for u in users],
            "from": "me", "playlist": [{"play": media_plane.media_url}]})
        await asyncio.sleep(2.0)
        stopping_at = time.time()
        await media_plane.asterisk.stop()
        await asyncio.sleep(2.0)
        status, _ = await service.get("/ready")
        assert status == 503  # operators can see it
        await media_plane.asterisk.start()
        media_plane.register_restarted_asterisk()
        await media_plane.asterisk.wait_ready(settings.ari_url, settings.ari_user,
                                              settings.ari_password.value)
        back_at = time.time()
        report = await service.wait_for_report(request_id, limit=90)
        status, _ = await service.get("/ready")
        assert status == 200
    records = {_user(record): record for record in report["records"]}
    assert sorted(records) == sorted(users)
    wire = by_user(media_plane.dialogs("answer", users))
    assert max(len(dialogs) for dialogs in wire.values()) == 1  # nobody dialled twice

    # Every record is classified by its cause and checked against the far end's trace.
    by_cause: dict[str, list[str]] = {}
    for user, record in records.items():
        dialogs = wire.get(user, [])
        timeline = [d.timeline() for d in dialogs]
        if record["result"] == "completed" and record["playback"] == ["done"]:
            cause = "played to the end"
            (dialog,) = dialogs
            assert dialog.answered and dialog.received("BYE"), timeline
        elif record["result"] == "completed" and record["answered"]:
            cause = "dropped by the Asterisk stop"  # its ChannelDestroyed came before the close
            (dialog,) = dialogs
            assert dialog.answered and dialog.ended_at is not None, timeline
            assert stopping_at <= dialog.ended_at <= back_at, timeline
        elif record["result"] == "completed":
            cause = "dialling when Asterisk stopped"  # ended before any answer
            (dialog,) = dialogs
            assert not dialog.answered and dialog.ended_at is not None, timeline
            assert stopping_at <= dialog.ended_at <= back_at, timeline
        elif record["result"] == "failed" and "event stream was down" in \
                record["disconnect_cause_text"]:
            cause = "ended while the event stream was down"
            (dialog,) = dialogs
            assert dialog.ended_at is not None and dialog.ended_at <= back_at, timeline
        elif record["result"] == "failed" and "did not place the call" in \
                record["disconnect_cause_text"]:
            # An originate Asterisk refused as it went down ("Allocation failed") or whose
            # connection broke: nothing reached the wire. Issue 7 will queue these again.
            cause = "originate refused while Asterisk stopped"
            assert dialogs == [], timeline
        else:
            raise AssertionError(f"unexplained outcome for {user}: {record} {timeline}")
        by_cause.setdefault(cause, []).append(user)
    assert by_cause.get("dropped by the Asterisk stop"), \
        f"some calls should have been live when Asterisk stopped: {by_cause}"
    print("Asterisk restart:", {cause: len(found) for cause, found in by_cause.items()})


async def test_a_crashed_dialer_restarts_and_loses_nothing(media_plane: MediaPlane,
                                                           tmp_path: Path) -> None:
    settings = media_plane.settings.with_overrides(runtime_dir=tmp_path)
    async with running_service(settings) as service:
        store = service.app[STORE]
        real_claim = store.claim_calls
        failures = []

        async def flaky_claim(node_id: str, limit: int):  # a database hiccup, once
            if not failures:
                failures.append(node_id)
                raise ConnectionResetError("database connection lost")
            return await real_claim(node_id, limit)

        store.claim_calls = flaky_claim
        users = [f"hiccup{i}" for i in range(5)]
        request_id = await service.submit({
            "recipients": [{"to": media_plane.uri("reject_486", user=u)} for u in users],
            "from": "me", "playlist": [{"pause": 1}]})
        report = await service.wait_for_report(request_id, limit=20)
    assert failures == ["node-1"]
    assert [r["disconnect_cause_code"] for r in report["records"]] == ["486"] * 5
    invites = media_plane.far_ends["reject_486"].invites_by_user()
    assert [invites[u] for u in users] == [1] * 5
