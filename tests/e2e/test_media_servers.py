"""Two Asterisk servers, two service nodes on one PostgreSQL database: one broadcast is split
over both servers, each recipient dialled once; one server killed mid-batch, the other finishes
the rest. Which server placed each call is read from the far end's own trace (the Via of each
INVITE names the Asterisk that sent it) and must match the record."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import time
import uuid
from collections import Counter
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from app.runtime import layout_of, running_asterisk, with_generated_secrets
from app.settings import Settings
from tests.e2e.conftest import MediaPlane
from tests.e2e.test_two_nodes import postgres_url  # noqa: F401 - the fixture
from tests.support import processes
from tests.support.pacing import max_overlap
from tests.support.ports import free_sip_port, free_tcp_port, free_udp_range
from tests.support.server_list import write_server_list
from tests.support.service import running_service
from tests.support.sip_trace import by_user

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

_VIA_PORT = re.compile(r"SIP/2\.0/UDP 127\.0\.0\.1:(\d+)")


def _server_settings(media_plane: MediaPlane, name: str) -> Settings:
    rtp_start, rtp_end = free_udp_range(200)
    instance = f"{name}-{uuid.uuid4().hex[:6]}"
    processes.add_marker(f"/srv/voxcast/{instance}/")
    return with_generated_secrets(media_plane.settings.with_overrides(
        instance_name=instance, ari_url=f"http://127.0.0.1:{free_tcp_port()}",
        ami_port=free_tcp_port(), sip_port=free_sip_port(), sip_tls_port=free_tcp_port(),
        rtp_start=rtp_start, rtp_end=rtp_end))


async def test_one_broadcast_over_two_servers_survives_losing_one(
        media_plane: MediaPlane, tmp_path: Path, postgres_url: str) -> None:  # noqa: F811
    users = [f"split{i}" for i in range(60)]
    first, second = (_server_settings(media_plane, "media-a"),
                     _server_settings(media_plane, "media-b"))
    async with AsyncExitStack() as stack:
        asterisks = [await stack.enter_async_context(running_asterisk(server))
                     for server in (first, second)]
        for asterisk in asterisks:
            processes.register(asterisk.pid, "asterisk (a media server)")
        servers_file = write_server_list(tmp_path / "servers.toml", [first, second], capacity=15)
        sip_port_of = {first.sip_port: first.instance_name, second.sip_port: second.instance_name}
        # Two nodes: this node's own media library lives in the first server's folder.
        nodes = [first.with_overrides(runtime_dir=tmp_path / node, node_id=node,
                                      ari_app=f"vox-{node}", database_url=postgres_url,
                                      media_servers_file=servers_file, calls_per_second=8,
                                      max_concurrent_calls=30)
                 for node in ("node-a", "node-b")]
        services = [await stack.enter_async_context(running_service(node)) for node in nodes]
        request_id = await services[0].submit({
            "recipients": [{"to": media_plane.uri("answer", user=u)} for u in users],
            "from": "me", "playlist": [{"play": media_plane.media_url}]})
        await asyncio.sleep(3.0)
        killed_at = time.time()
        os.kill(asterisks[1].pid or 0, signal.SIGKILL)  # the second server dies
        report = await services[0].wait_for_report(request_id, limit=90)
        _, ready = await services[1].get("/ready")

    records = {record["to"].removeprefix("sip:").split("@")[0]: record
               for record in report["records"]}
    assert sorted(records) == sorted(users)
    wire = by_user(media_plane.dialogs("answer", users))
    assert sorted(wire) == sorted(users) and max(map(len, wire.values())) == 1  # once each
    placed_by: dict[str, str] = {}
    for user, (dialog,) in wire.items():
        via = _VIA_PORT.search(dialog.invite.headers["via"])
        assert via is not None, dialog.invite.headers
        placed_by[user] = sip_port_of[int(via[1])]
        assert records[user]["media_server"] == placed_by[user], (records[user], placed_by)
    before_kill = Counter(placed_by[user] for user, (dialog,) in wire.items()
                          if dialog.invited_at < killed_at)
    after_kill = Counter(placed_by[user] for user, (dialog,) in wire.items()
                         if dialog.invited_at > killed_at + 1.0)
    assert before_kill[first.instance_name] and before_kill[second.instance_name], before_kill
    assert after_kill and set(after_kill) == {first.instance_name}, after_kill  # A finishes
    # The servers' capacity (15) is shared by both nodes: the far end's live dialogs per
    # server, before the kill, stay within it, give or take what the other node started
    # since this one last counted them (every 0.25 s at 8 calls/s: 2 calls, and one more for
    # a count that lands just before a call starts).
    intervals: dict[str, list[tuple[float, float]]] = {}
    for user, (dialog,) in wire.items():
        if dialog.invited_at < killed_at and dialog.ended_at is not None:
            intervals.setdefault(placed_by[user], []).append((dialog.invited_at,
                                                              dialog.ended_at))
    peaks = {server: max_overlap(spans) for server, spans in intervals.items()}
    print("live dialogs at most, per server:", peaks)
    assert all(peak <= 15 + 3 for peak in peaks.values()), peaks
    lost = [user for user, record in records.items() if record["result"] == "failed"]
    assert lost, "calls live on the killed server should be recorded lost"
    for user in lost:
        assert placed_by[user] == second.instance_name
        assert records[user]["disconnect_cause_text"].startswith("media server lost")
    for record in records.values():
        if record["result"] != "failed":
            assert record["result"] == "completed" and record["playback"] == ["done"], record
    by_name = {server["name"]: server for server in ready["media_servers"]}
    assert by_name[first.instance_name]["connected"] and \
        not by_name[second.instance_name]["connected"]
    print(f"two servers: {dict(before_kill)} before the kill, {dict(after_kill)} after; "
          f"{len(lost)} lost with the killed server; {len(wire)} INVITEs for {len(users)}")
    for server in (first, second):
        shutil.rmtree(layout_of(server).instance_dir, ignore_errors=True)
