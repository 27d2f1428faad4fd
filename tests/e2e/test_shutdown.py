"""SIGTERM mid-batch: the service drains, hangs up what is left, and loses nobody."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import pytest

from app.services.dialer import HANGUP_WAIT_SECONDS
from tests.e2e.conftest import WAV_SECONDS, MediaPlane
from tests.support.database import stored_calls
from tests.support.ports import free_tcp_port
from tests.support.service import ServiceProcess, environment

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

DRAIN_SECONDS = 1.0


async def test_sigterm_mid_batch_loses_nobody(media_plane: MediaPlane, tmp_path: Path) -> None:
    recipients = 30
    answer = media_plane.far_ends["answer"]
    invites_before = answer.received_invites()
    settings = media_plane.settings.with_overrides(
        runtime_dir=tmp_path, port=free_tcp_port(), calls_per_second=5,
        max_concurrent_calls=5, drain_timeout=DRAIN_SECONDS)
    async with ServiceProcess("serve", environment(settings)) as service:
        await service.start()
        request_id = await service.api.submit({
            "recipients": [{"to": media_plane.uri("answer", user=f"r{i}")}
                           for i in range(recipients)],
            "from": "me", "playlist": [{"play": media_plane.media_url}]})
        await asyncio.sleep(2.5)  # some calls live, most still queued
        stopped_at = time.monotonic()
        exit_code = await service.stop(grace=30)
        stop_seconds = time.monotonic() - stopped_at
        log = service.log_path.read_text()
        assert exit_code == 0, log[-2000:]
        # Calls started in the last WAV_SECONDS are still live at SIGTERM: the service waits
        # the whole drain for them, then hangs up and waits at most HANGUP_WAIT_SECONDS for
        # their ends (they come in milliseconds); 3 s covers its own start of shutdown.
        assert DRAIN_SECONDS <= stop_seconds < DRAIN_SECONDS + HANGUP_WAIT_SECONDS + 3, \
            stop_seconds
        assert WAV_SECONDS > DRAIN_SECONDS  # the premise: some call outlives the drain
        assert "Traceback" not in log

        states = Counter(call.state for call in
                         await stored_calls(settings.resolved_database_url, request_id))
        assert sum(states.values()) == recipients
        assert set(states) <= {"queued", "ended"}, states  # nothing left in flight
        assert states["ended"] >= 1 and states["queued"] >= 1, states

        await service.start()
        report = await service.api.wait_for_report(request_id, limit=60)

    records = report["records"]
    assert len(records) == recipients
    assert {record["result"] for record in records} == {"completed"}
    assert all(record["answered"] for record in records)
    # Every recipient was dialled exactly once: SIGTERM neither lost nor repeated a call.
    assert answer.received_invites() - invites_before == recipients
    interrupted = [r for r in records if r["hangup_by"] == "service" and r["playback"] != ["done"]]
    assert interrupted, "some calls should have been live at SIGTERM and hung up by us"
