"""Smoke test of the media plane: a real Asterisk rejects a call through a real SIPp far end."""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import shutil
import socket
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

REPO = Path(__file__).resolve().parents[2]
# Spreads concurrent runs over the port range; not a security use.
_rng = random.Random()  # noqa: S311


def _bindable(port: int, kind: int) -> bool:
    with socket.socket(socket.AF_INET, kind) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(count: int, low: int = 25000, high: int = 25999) -> list[int]:
    """`count` distinct ports in [low, high] free for both TCP and UDP on 127.0.0.1."""
    candidates = _rng.sample(range(low, high + 1), high - low + 1)
    found = [
        p
        for p in candidates[:200]
        if _bindable(p, socket.SOCK_STREAM) and _bindable(p, socket.SOCK_DGRAM)
    ]
    assert len(found) >= count, "no free ports around 25xxx"
    return found[:count]


def free_rtp_block(size: int = 100) -> int:
    for _ in range(50):
        start = _rng.randrange(26000, 29000, size)
        if all(_bindable(p, socket.SOCK_DGRAM) for p in range(start, start + size, 2)):
            return start
    raise AssertionError("no free RTP port block")


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
    layout = AsteriskLayout(root, default_instance_dir(root, f"smoke-{uuid.uuid4().hex[:8]}"))
    http_port, sip_port, ami_port, sipp_port = free_ports(4)
    rtp_start = free_rtp_block()
    password = secrets.token_urlsafe(24)
    values = AsteriskConfigValues(
        instance_dir=layout.instance_dir_inside,
        http_port=http_port,
        sip_port=sip_port,
        ami_port=ami_port,
        rtp_start=rtp_start,
        rtp_end=rtp_start + 99,
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
        await asterisk.wait_ready(base, "smoke", password)
        await far_end.start()

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
