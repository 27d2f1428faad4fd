"""SIGTERM mid-batch: the service drains, hangs up what is left, and loses nobody."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections import Counter
from pathlib import Path

import aiohttp
import pytest

from app.adapters.db.store import ReportStore
from app.settings import Settings
from tests.conftest import free_port
from tests.e2e.conftest import MediaPlane

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]
REPO = Path(__file__).resolve().parents[2]


def _environment(settings: Settings, runtime: Path, port: int) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("VOXCAST_")}
    env.update({
        "VOXCAST_RUNTIME_DIR": str(runtime), "VOXCAST_PORT": str(port),
        "VOXCAST_ASTERISK_ROOT": str(settings.asterisk_root),
        "VOXCAST_INSTANCE_NAME": settings.instance_name, "VOXCAST_ARI_URL": settings.ari_url,
        "VOXCAST_ARI_PASSWORD": settings.ari_password.value,
        "VOXCAST_CALLS_PER_SECOND": "5", "VOXCAST_MAX_CONCURRENT_CALLS": "5",
        "VOXCAST_DRAIN_TIMEOUT": "1", "VOXCAST_RING_TIMEOUT": "3",
        "VOXCAST_MEDIA_ALLOW_LOOPBACK": "1",
    })
    return env


async def _start_service(env: dict[str, str], port: int) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app", "serve", cwd=REPO, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    deadline = time.monotonic() + 15
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            try:
                async with http.get(f"http://127.0.0.1:{port}/ready") as response:
                    if response.status == 200:
                        return process
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.1)
    process.kill()
    raise AssertionError("service did not become ready")


async def _states(runtime: Path, request_id: str) -> Counter[str]:
    store = await ReportStore.open(f"sqlite+aiosqlite:///{runtime / 'voxcast.db'}")
    try:
        return Counter(row.state for row in await store.calls_of(request_id))
    finally:
        await store.close()


async def test_sigterm_mid_batch_loses_nobody(media_plane: MediaPlane, tmp_path: Path) -> None:
    recipients = 30
    answer = media_plane.far_ends["answer"]
    invites_before = answer.received_invites()
    port = free_port()
    env = _environment(media_plane.settings, tmp_path, port)
    process = await _start_service(env, port)
    async with aiohttp.ClientSession() as http:
        body = {"recipients": [{"to": media_plane.uri("answer", user=f"r{i}")}
                               for i in range(recipients)],
                "from": "me", "playlist": [{"play": media_plane.media_url}]}
        async with http.post(f"http://127.0.0.1:{port}/voice/call/play", json=body) as response:
            request_id = (await response.json())["request_id"]
        await asyncio.sleep(2.5)  # some calls live, most still queued
        process.send_signal(signal.SIGTERM)
        stopped_at = time.monotonic()
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
        assert process.returncode == 0, stderr.decode()[-2000:]
        assert time.monotonic() - stopped_at < 1 + 12 + 3  # drain + hang-up grace + margin
        assert b"Traceback" not in stderr

        states = await _states(tmp_path, request_id)
        assert sum(states.values()) == recipients
        assert set(states) <= {"queued", "ended"}, states  # nothing left in flight
        assert states["ended"] >= 1 and states["queued"] >= 1, states

        process = await _start_service(env, port)
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
            await asyncio.wait_for(process.communicate(), timeout=30)

    records = report["records"]
    assert len(records) == recipients
    assert {record["result"] for record in records} == {"completed"}
    assert all(record["answered"] for record in records)
    # Every recipient was dialled exactly once: SIGTERM neither lost nor repeated a call.
    assert answer.received_invites() - invites_before == recipients
    interrupted = [r for r in records if r["hangup_by"] == "service" and r["playback"] != ["done"]]
    assert interrupted, "some calls should have been live at SIGTERM and hung up by us"
