"""SIGTERM mid-batch: the service drains, hangs up what is left, and loses nobody."""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from pathlib import Path

import aiohttp
import pytest

from app.adapters.db.store import Store
from tests.conftest import free_port
from tests.e2e.conftest import MediaPlane, service_environment, start_service_process

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]


async def _states(runtime: Path, request_id: str) -> Counter[str]:
    store = await Store.open(f"sqlite+aiosqlite:///{runtime / 'voxcast.db'}")
    try:
        return Counter(row.state for row in await store.reports.records(request_id))
    finally:
        await store.close()


async def test_sigterm_mid_batch_loses_nobody(media_plane: MediaPlane, tmp_path: Path) -> None:
    recipients = 30
    answer = media_plane.far_ends["answer"]
    invites_before = answer.received_invites()
    port = free_port()
    env = service_environment(media_plane.settings, tmp_path, port)
    process = await start_service_process(env, port)
    async with aiohttp.ClientSession() as http:
        body = {"recipients": [{"to": media_plane.uri("answer", user=f"r{i}")}
                               for i in range(recipients)],
                "from": "me", "playlist": [{"play": media_plane.media_url}]}
        async with http.post(f"http://127.0.0.1:{port}/voice/call/play", json=body) as response:
            request_id = (await response.json())["request_id"]
        await asyncio.sleep(2.5)  # some calls live, most still queued
        process.send_signal(signal.SIGTERM)
        stopped_at = time.monotonic()
        await asyncio.wait_for(process.wait(), timeout=30)
        log = (tmp_path / "service.log").read_text()
        assert process.returncode == 0, log[-2000:]
        assert time.monotonic() - stopped_at < 1 + 12 + 3  # drain + hang-up grace + margin
        assert "Traceback" not in log

        states = await _states(tmp_path, request_id)
        assert sum(states.values()) == recipients
        assert set(states) <= {"queued", "ended"}, states  # nothing left in flight
        assert states["ended"] >= 1 and states["queued"] >= 1, states

        process = await start_service_process(env, port)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                async with http.get(
                        f"http://127.0.0.1:{port}/voice/call/status/{request_id}") as response:
                    status = await response.json()
                if status["report"]["status"] == "ready":
                    break
                await asyncio.sleep(0.5)
            async with http.get(f"http://127.0.0.1:{port}/report/{status['report']['id']}") as r:
                report = await r.json()
        finally:
            process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(process.wait(), timeout=30)

    records = report["records"]
    assert len(records) == recipients
    assert {record["result"] for record in records} == {"completed"}
    assert all(record["answered"] for record in records)
    # Every recipient was dialled exactly once: SIGTERM neither lost nor repeated a call.
    assert answer.received_invites() - invites_before == recipients
    interrupted = [r for r in records if r["hangup_by"] == "service" and r["playback"] != ["done"]]
    assert interrupted, "some calls should have been live at SIGTERM and hung up by us"
