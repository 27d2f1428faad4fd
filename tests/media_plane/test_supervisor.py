"""The supervised Asterisk of `python -m app run`: adopted after a crash, restarted when it dies."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from app.media_plane.supervisor import AriAccess, AsteriskSupervisor
from app.runtime import layout_of, render_media_plane, with_generated_secrets
from app.settings import Settings
from tests.support.ports import free_tcp_port as free_port
from tests.support.ports import free_udp_port

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]


def _root() -> Path:
    given = os.environ.get("VOXCAST_ASTERISK_ROOT")
    if given:
        return Path(given)
    return Path(subprocess.run([str(REPO / "asterisk/provision.sh")], check=True,
                               capture_output=True, text=True).stdout.strip())


@pytest_asyncio.fixture
async def settings(tmp_path: Path) -> AsyncIterator[Settings]:
    rtp = 32000 + (os.getpid() % 40) * 50
    made = with_generated_secrets(Settings(
        runtime_dir=tmp_path, asterisk_root=_root(),
        instance_name=f"supervised-{uuid.uuid4().hex[:8]}",
        ari_url=f"http://127.0.0.1:{free_port()}", sip_port=free_udp_port(),
        ami_port=free_port(), rtp_start=rtp, rtp_end=rtp + 49))
    yield made
    shutil.rmtree(layout_of(made).instance_dir, ignore_errors=True)


def _supervisor(settings: Settings) -> AsteriskSupervisor:
    return AsteriskSupervisor(render_media_plane(settings), AriAccess(
        settings.ari_url, settings.ari_user, settings.ari_password.value))


async def _until(condition, limit: float) -> float:  # noqa: ANN001 - a test helper
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < limit, f"not within {limit} s"
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def test_a_killed_asterisk_is_started_again(settings: Settings) -> None:
    supervisor = _supervisor(settings)
    await supervisor.start()
    watcher = asyncio.create_task(supervisor.watch())
    try:
        first = supervisor.process.pid
        assert first is not None and supervisor.state == "running"
        os.kill(first, signal.SIGKILL)
        await _until(lambda: supervisor.state == "restarting", 2)
        took = await _until(lambda: supervisor.state == "running", 10)
        assert supervisor.process.pid != first and supervisor.restarts == 1
        assert supervisor.last_exit == "killed by signal 9"
        print(f"Asterisk back {took:.1f} s after it was noticed dead")
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        await supervisor.stop()
    assert not supervisor.process.is_running()


async def test_the_running_asterisk_of_a_crashed_service_is_adopted(settings: Settings) -> None:
    crashed = _supervisor(settings)  # the service that dies without stopping its Asterisk
    await crashed.start()
    pid = crashed.process.pid
    restarted = _supervisor(settings)
    try:
        await restarted.start()
        assert restarted.process.adopted and restarted.process.pid == pid
        assert restarted.state == "running"
        # An adopted Asterisk is watched too: its death is noticed.
        watcher = asyncio.create_task(restarted.watch())
        try:
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            await _until(lambda: restarted.state != "running" or restarted.restarts, 3)
            await _until(lambda: restarted.state == "running" and restarted.restarts == 1, 10)
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
    finally:
        await restarted.stop()
        await crashed.process.stop()  # reaps our first child
    assert not restarted.process.is_running()


async def test_an_asterisk_running_another_configuration_is_replaced(settings: Settings) -> None:
    crashed = _supervisor(settings)
    await crashed.start()
    old = crashed.process.pid
    changed = settings.with_overrides(rtp_end=settings.rtp_end - 10)
    replacement = _supervisor(changed)
    try:
        await replacement.start()
        assert not replacement.process.adopted and replacement.process.pid != old
        assert crashed.process.returncode is not None  # stopped, not left running
    finally:
        await replacement.stop()
        await crashed.process.stop()


async def test_an_asterisk_that_does_not_answer_is_stopped_and_replaced(
        settings: Settings) -> None:
    crashed = _supervisor(settings)
    await crashed.start()
    old = crashed.process.pid
    assert old is not None
    os.kill(old, signal.SIGSTOP)  # alive, but answers nothing
    replacement = _supervisor(settings)
    try:
        await replacement.start()
        assert replacement.process.pid != old and replacement.state == "running"
        assert crashed.process.returncode is not None
    finally:
        await replacement.stop()
        await crashed.process.stop()
