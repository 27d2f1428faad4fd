"""The commands users run: `python -m app run` (what `make run` starts) and `serve`.

Each runs as a child with the test's own VOXCAST_* environment: its own runtime folder,
ports and, for `run`, its own Asterisk instance.
"""

from __future__ import annotations

import re
import shutil
import sqlite3
import uuid
from pathlib import Path

import pytest

from app.runtime import with_generated_secrets
from app.settings import Settings
from tests.e2e.conftest import MediaPlane
from tests.support import processes
from tests.support.ports import free_tcp_port, free_udp_port, free_udp_range
from tests.support.service import ServiceProcess, environment, poll, run_command
from tests.support.settings import without_asterisk
from tests.support.sip_trace import Dialog

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]


def _instance_processes(instance: str) -> list[processes.Leftover]:
    marker = f"/srv/voxcast/{instance}/"
    return [left for left in processes.leftovers() if marker in left.what
            or marker.encode() in _cmdline(left.pid)]


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


async def test_make_run_path_starts_asterisk_serves_with_a_dev_key_and_stops_both(
        media_plane: MediaPlane, tmp_path: Path) -> None:
    instance = f"run-{uuid.uuid4().hex[:8]}"
    rtp_start, rtp_end = free_udp_range(20)
    settings = Settings(
        runtime_dir=tmp_path / "var", port=free_tcp_port(),
        asterisk_root=media_plane.settings.asterisk_root, instance_name=instance,
        ari_url=f"http://127.0.0.1:{free_tcp_port()}", sip_port=free_udp_port(),
        ami_port=free_tcp_port(), rtp_start=rtp_start, rtp_end=rtp_end, ring_timeout=3)
    user = f"makerun-{instance}"
    try:
        async with ServiceProcess("run", environment(settings)) as service:
            await service.start()
            log = service.log_path.read_text()
            key = re.search(r"Development API key \(tenant dev\): (\S+)", log)
            assert key, log[-2000:]
            assert (tmp_path / "var" / "dev-api-key").read_text().strip() == key.group(1)
            status, refused = await service.api.post("/voice/call/play", {})
            assert status == 401, refused  # a key exists now: the API is not open
            service.api.headers = {"Authorization": f"Bearer {key.group(1)}"}
            request_id = await service.api.submit(
                {"to": media_plane.uri("answer", user=user), "from": "me",
                 "playlist": [{"pause": 1}]})
            (record,) = (await service.api.wait_for_report(request_id, limit=20))["records"]
            assert record["answered"] and record["playback"] == ["done"], record
            assert _instance_processes(instance), "its own Asterisk should be running"
            assert await service.stop() == 0, service.log_tail()
            assert _instance_processes(instance) == [], "SIGTERM should stop its Asterisk too"

            await service.start()  # a plain start again after a clean stop
            await service.kill()  # a crash: the Asterisk it started lives in its own session
        assert _instance_processes(instance) == [], "the harness stops what a crash leaves"
    finally:
        shutil.rmtree(settings.instance_dir, ignore_errors=True)

    async def hung_up() -> tuple[bool, list[Dialog]]:
        dialogs = media_plane.dialogs("answer", [user])
        return bool(dialogs and dialogs[0].received("BYE")), dialogs

    (dialog,) = await poll(hung_up, limit=5.0, what="the far end saw the make-run call end")
    assert dialog.answered


async def test_an_open_api_refuses_to_listen_beyond_loopback(tmp_path: Path) -> None:
    # Refused before anything listens; were it not, the kill after 15 s would end it.
    every_address = "0.0.0.0"  # noqa: S104 - the binding it must refuse
    settings = without_asterisk(tmp_path, host=every_address, port=free_tcp_port())
    result = await run_command("serve", env=environment(settings), limit=15)
    assert result.exit_code == 2, result
    assert "refusing to start" in result.stderr and every_address in result.stderr, result


async def test_serve_refuses_a_database_missing_a_column(tmp_path: Path) -> None:
    settings = without_asterisk(tmp_path, port=free_tcp_port())
    made = await run_command("keys", "list", env=environment(settings), limit=30)
    assert made.exit_code == 0, made  # the database now exists, with today's tables
    database = tmp_path / "voxcast.db"
    dropped = _drop_a_column(database, "calls")
    result = await run_command("serve", env=environment(settings), limit=15)
    assert result.exit_code == 2, result
    assert "refusing to start" in result.stderr, result.stderr
    assert f"calls.{dropped}" in result.stderr, result.stderr


def _drop_a_column(database: Path, table: str) -> str:
    """Make the database look older: drop the last column SQLite lets go (not a key or
    indexed one)."""
    with sqlite3.connect(database) as connection:
        columns = [row[1] for row in connection.execute(f"PRAGMA table_info({table})")]
        for column in reversed(columns):
            try:
                connection.execute(f'ALTER TABLE {table} DROP COLUMN "{column}"')
            except sqlite3.OperationalError:
                continue
            return column
    raise AssertionError(f"no column of {table} could be dropped")


async def test_idempotency_survives_a_restart(media_plane: MediaPlane, tmp_path: Path) -> None:
    user = "idem-restart"
    body = {"to": media_plane.uri("reject_486", user=user), "from": "me",
            "playlist": [{"pause": 1}]}
    key = {"Idempotency-Key": f"order-{uuid.uuid4().hex}"}
    settings = with_generated_secrets(media_plane.settings.with_overrides(
        runtime_dir=tmp_path, port=free_tcp_port()))
    async with ServiceProcess("serve", environment(settings)) as service:
        await service.start()
        request_id = await service.api.submit(body, headers=key)
        await service.api.wait_for_report(request_id, limit=20)
        assert await service.stop() == 0
        await service.start()
        assert await service.api.submit(body, headers=key) == request_id
        status, conflict = await service.api.post("/voice/call/play",
                                                  {**body, "from": "someone-else"}, key)
        assert status == 409 and conflict["error"] == "idempotency_conflict", conflict
        _, progress = await service.api.get(f"/voice/call/status/{request_id}")
        assert progress["report"]["status"] == "ready", progress
    assert len(media_plane.dialogs("reject_486", [user])) == 1  # no new INVITE
