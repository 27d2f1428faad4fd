"""Crashes through the command users run: `make run`, killed with SIGKILL mid-batch (the
service, or its Asterisk), comes back by itself, and every record agrees with the far end's own
message trace: one INVITE per recipient, answered exactly where the far end answered, the
durations of calls live at the crash as the far end measured them, and no silent line left."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import time
import uuid
from pathlib import Path

import pytest

from app.runtime import layout_of, with_generated_secrets
from app.settings import Secret, Settings
from tests.e2e.conftest import WAV_SECONDS, MediaPlane
from tests.support import processes
from tests.support.database import stored_calls
from tests.support.ports import free_sip_port, free_tcp_port, free_udp_range
from tests.support.service import ServiceProcess, environment, poll
from tests.support.sip_trace import Dialog, by_user

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

READY_AFTER_RESTART_SECONDS = 5.0  # the bar for a plain `make run` after a crash
ASTERISK_BACK_SECONDS = 10.0  # the bar for Asterisk after its own SIGKILL
BYE_GRACE_SECONDS = 20.0  # every far end has its BYE this long after the report is ready
# Record durations are whole seconds (rounded); the far end's is measured from its 200 OK to
# the BYE it received. The bar is two seconds either way.
DURATION_TOLERANCE_SECONDS = 2.0


def _own_instance(media_plane: MediaPlane, runtime: Path, **overrides: object) -> Settings:
    """A `make run` of its own: its own Asterisk instance, ports and database."""
    rtp_start, rtp_end = free_udp_range(400)
    instance = f"crash-{uuid.uuid4().hex[:8]}"
    processes.add_marker(f"/srv/voxcast/{instance}/")
    return with_generated_secrets(media_plane.settings.with_overrides(
        runtime_dir=runtime, instance_name=instance, port=free_tcp_port(),
        ari_url=f"http://127.0.0.1:{free_tcp_port()}", ami_port=free_tcp_port(),
        sip_port=free_sip_port(), sip_tls_port=free_tcp_port(), rtp_start=rtp_start,
        rtp_end=rtp_end, api_keys=Secret(f"crash:{secrets.token_urlsafe(24)}"),
        **overrides))


def _user(record: dict) -> str:
    return record["to"].removeprefix("sip:").split("@")[0]


def _far_end_seconds(dialog: Dialog) -> float:
    """How long the far end had the call up: its 200 OK to the BYE it received."""
    answered = min(m.at for m in dialog.sent_responses() if m.status == 200)
    bye = min(m.at for m in dialog.received("BYE"))
    return bye - answered


async def _byes_everywhere(media_plane: MediaPlane, users: list[str], limit: float) -> None:
    """Every dialog the far end answered got our BYE: nobody is left on a silent line."""
    async def all_hung_up() -> tuple[bool, list[str]]:
        silent = [d.user for d in media_plane.dialogs("answer", users)
                  if d.answered and not d.received("BYE")]
        return not silent, silent

    await poll(all_hung_up, limit=limit, what="a BYE at every answered far end")


async def test_make_run_comes_back_from_kill_9_and_follows_its_calls(
        media_plane: MediaPlane, tmp_path: Path) -> None:
    recipients = 300
    users = [f"kill{i}" for i in range(recipients)]
    settings = _own_instance(media_plane, tmp_path, calls_per_second=40,
                             max_concurrent_calls=80)
    key = settings.api_keys.value.split(":", 1)[1]
    async with ServiceProcess("make-run", environment(settings)) as service:
        service.api.headers = {"Authorization": f"Bearer {key}"}
        await service.start()
        request_id = await service.api.submit({
            "recipients": [{"to": media_plane.uri("answer", user=u)} for u in users],
            "from": "me", "playlist": [{"play": media_plane.media_url}]})
        await asyncio.sleep(4.0)  # about 160 dialled, 80 of them live
        await service.kill()
        killed_at = time.time()
        at_kill = await stored_calls(settings.resolved_database_url, request_id)
        live_at_kill = {c.user for c in at_kill if c.state != "ended" and c.dialled}
        assert live_at_kill and any(not c.dialled for c in at_kill)

        # A plain `make run` again: no manual step, Asterisk adopted with its calls.
        await service.start(ready_limit=READY_AFTER_RESTART_SECONDS)
        ready_seconds = time.time() - service.started_at
        report = await service.api.wait_for_report(request_id, limit=90)
        await _byes_everywhere(media_plane, users, BYE_GRACE_SECONDS)
        log = service.log_path.read_text(errors="replace")
    assert "adopted this instance's running Asterisk" in log, log[-3000:]

    records = {_user(record): record for record in report["records"]}
    assert sorted(records) == sorted(users)  # 300 records, one per recipient
    wire = by_user(media_plane.dialogs("answer", users))
    assert sorted(wire) == sorted(users)  # every recipient was dialled ...
    assert max(len(dialogs) for dialogs in wire.values()) == 1  # ... exactly once
    dialog = {user: dialogs[0] for user, dialogs in wire.items()}
    for user, record in records.items():
        assert record["answered"] == dialog[user].answered, (record, dialog[user].timeline())
        assert record["result"] == "completed", (record, dialog[user].timeline())
    followed = [user for user in live_at_kill
                if dialog[user].answered and (dialog[user].ended_at or 0) > killed_at]
    assert followed, "some calls should have been up through the crash"
    for user in followed:  # their true end, not the restart's: the playlist played on
        far_end = _far_end_seconds(dialog[user])
        assert abs(records[user]["duration"] - far_end) <= DURATION_TOLERANCE_SECONDS, \
            (records[user], far_end)
        assert far_end >= WAV_SECONDS - 0.5, (user, far_end)  # not cut short at the restart
    print(f"make run kill -9: {len(live_at_kill)} calls in flight, {len(followed)} followed "
          f"through the crash to their end; ready {ready_seconds:.1f} s after the restart; "
          f"{len(wire)} INVITEs for {recipients} recipients")


async def test_a_killed_asterisk_comes_back_and_its_calls_are_recorded_as_lost(
        media_plane: MediaPlane, tmp_path: Path) -> None:
    recipients = 60
    users = [f"astkill{i}" for i in range(recipients)]
    settings = _own_instance(media_plane, tmp_path, calls_per_second=10,
                             max_concurrent_calls=40)
    key = settings.api_keys.value.split(":", 1)[1]
    pid_file = layout_of(settings).instance_dir / "run" / "asterisk.pid"
    async with ServiceProcess("make-run", environment(settings)) as service:
        service.api.headers = {"Authorization": f"Bearer {key}"}
        await service.start()
        request_id = await service.api.submit({
            "recipients": [{"to": media_plane.uri("answer", user=u)} for u in users],
            "from": "me", "playlist": [{"play": media_plane.media_url}]})
        await asyncio.sleep(2.5)
        os.kill(int(pid_file.read_text()), signal.SIGKILL)
        killed_at = time.time()

        async def back() -> tuple[bool, object]:
            status, answer = await service.api.get("/ready")
            return status == 200 and time.time() > killed_at + 0.2, answer

        await poll(back, limit=ASTERISK_BACK_SECONDS, what="ready again after Asterisk died",
                   interval=0.1)
        back_seconds = time.time() - killed_at
        report = await service.api.wait_for_report(request_id, limit=90)

    records = {_user(record): record for record in report["records"]}
    assert sorted(records) == sorted(users)  # nobody lost
    wire = by_user(media_plane.dialogs("answer", users))
    assert sorted(wire) == sorted(users) and max(map(len, wire.values())) == 1  # nor twice
    lost = [user for user, record in records.items() if record["result"] == "failed"]
    assert lost, "some calls should have been live when Asterisk died"
    for user, record in records.items():
        (dialog,) = wire[user]
        assert record["answered"] == dialog.answered, (record, dialog.timeline())
        if record["result"] == "failed":  # taken down with Asterisk: no SIP code invented
            assert record["disconnect_cause_text"].startswith("media server lost"), record
            assert record["disconnect_cause_code"] is None, record
            assert dialog.invited_at < killed_at and not dialog.received("BYE"), \
                dialog.timeline()
        else:
            assert record["playback"] == ["done"] and dialog.received("BYE"), record
    print(f"Asterisk kill -9: back in {back_seconds:.1f} s; {len(lost)} live calls recorded "
          f"lost, {recipients - len(lost)} completed; {len(wire)} INVITEs")
