"""Smoke test of the media plane: a real Asterisk rejects a call through a real SIPp far end."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import subprocess
import uuid
from pathlib import Path

import aiohttp
import pytest

from app.adapters.ari.client import AriCredentials
from app.media_plane.asterisk_process import AsteriskProcess
from app.media_plane.config import AsteriskConfigValues, render_asterisk_config
from app.media_plane.layout import AsteriskLayout, default_instance_dir, find_module_dir
from app.media_plane.sipp import SippFarEnd
from tests.support import processes
from tests.support.ports import free_tcp_port, free_udp_port, free_udp_range

REPO = Path(__file__).resolve().parents[2]


def provision() -> Path:
    result = subprocess.run(
        [str(REPO / "asterisk/provision.sh")],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"asterisk/provision.sh failed:\n{result.stderr[-2000:]}")
    return Path(result.stdout.strip().splitlines()[-1])


@pytest.mark.e2e
async def test_asterisk_reports_a_486_from_a_sipp_far_end() -> None:
    root = provision()
    if root != Path("/") and os.geteuid() != 0:
        pytest.skip("running Asterisk in the provisioned chroot needs root")
    instance = f"smoke-{uuid.uuid4().hex[:8]}"
    processes.add_marker(f"/srv/voxcast/{instance}/")
    layout = AsteriskLayout(root, default_instance_dir(root, instance))
    http_port, ami_port = free_tcp_port(), free_tcp_port()
    sip_port, sipp_port = free_udp_port(), free_udp_port()
    rtp_start, rtp_end = free_udp_range(100)
    password = secrets.token_urlsafe(24)
    values = AsteriskConfigValues(
        instance_dir=layout.instance_dir_inside,
        http_port=http_port,
        sip_port=sip_port,
        ami_port=ami_port,
        rtp_start=rtp_start,
        rtp_end=rtp_end,
        ari_user="smoke",
        ari_password=password,
        ami_user="smokemon",
        ami_password=secrets.token_urlsafe(24),
        sip_endpoint="voxcast",
        module_dir=find_module_dir(root),
    )
    base = f"http://127.0.0.1:{http_port}"
    asterisk = AsteriskProcess(layout)
    far_end = SippFarEnd(root, "reject_486.xml", sipp_port, layout.sipp_dir)
    try:
        render_asterisk_config(values, layout.config_dir)
        await asterisk.start()
        processes.register(asterisk.pid, "asterisk (smoke test)")
        await asterisk.wait_ready(base, "smoke", password)
        await far_end.start()
        processes.register(far_end.pid, "sipp reject_486 (smoke test)")

        headers = AriCredentials("smoke", password).authorization_header()
        async with aiohttp.ClientSession(headers=headers) as http:
            # The Stasis app exists only while its websocket is connected: connect first.
            async with http.ws_connect(f"{base}/ari/events?app=smoke") as events:
                async with http.post(
                    f"{base}/ari/channels",
                    params={
                        "endpoint": f"PJSIP/voxcast/sip:x@127.0.0.1:{sipp_port}",
                        "app": "smoke",
                        "timeout": "5",
                        "callerId": "+15550100",
                    },
                ) as response:
                    assert response.status == 200, await response.text()
                    channel_id = (await response.json())["id"]

                async def destroyed() -> dict[str, object]:
                    async for message in events:
                        event = message.json()
                        if (
                            event["type"] == "ChannelDestroyed"
                            and event["channel"]["id"] == channel_id
                        ):
                            return dict(event)
                    raise AssertionError("events websocket closed")

                event = await asyncio.wait_for(destroyed(), 15)

        assert event["tech_cause"] == 486
        assert event["cause"] == 17  # Q.850 User busy
        assert far_end.received_invites() == 1
        console = asterisk.console_log.read_text()
        assert "ERROR[" not in console, console  # the module list loads cleanly
    finally:
        await far_end.stop()
        await asterisk.stop()
        shutil.rmtree(layout.instance_dir, ignore_errors=True)
