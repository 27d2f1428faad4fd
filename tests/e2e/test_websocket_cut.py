"""The ARI websocket drops mid-call on a real Asterisk that stays up (no restart).

A relay between the service and Asterisk cuts the event websocket while the call plays and
refuses it until the item has ended: Asterisk's PlaybackFinished goes nowhere. The service
must notice after reconnecting and hang up, instead of holding the call for an hour.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.e2e.conftest import WAV_SECONDS, MediaPlane
from tests.support.service import poll, running_service
from tests.support.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

EVENTS = b"GET /ari/events"


async def test_playback_ending_while_the_websocket_is_down(media_plane: MediaPlane,
                                                           tmp_path: Path) -> None:
    user = "wsdrop"
    refuse_for = WAV_SECONDS  # outlasts the rest of the 3 s item
    async with TcpProxy(media_plane.settings.ari_http_port) as relay:
        settings = media_plane.settings.with_overrides(
            runtime_dir=tmp_path, ari_url=f"http://127.0.0.1:{relay.port}")
        async with running_service(settings) as service:
            request_id = await service.submit({
                "to": media_plane.uri("answer", user=user), "from": "me",
                "playlist": [{"play": media_plane.media_url}]})

            async def answered() -> tuple[bool, list[str]]:
                dialogs = media_plane.dialogs("answer", [user])
                return bool(dialogs and dialogs[0].received("ACK")), \
                    [d.timeline() for d in dialogs]

            await poll(answered, limit=10.0, what="the call answered", interval=0.05)
            await asyncio.sleep(0.5)  # playing
            assert relay.cut(EVENTS, refuse_for=refuse_for) == 1
            # Ready within: the refusal, the reconnect backoff's next step (at most 1.6 s; it
            # doubles from 0.1 s), the playback look-up and the hang-up, with room.
            report = await service.wait_for_report(request_id, limit=refuse_for + 1.6 + 2)
            (record,) = report["records"]
        assert relay.refused_count >= 1  # the service did try while the item ended

    async def hung_up() -> tuple[bool, list[str]]:
        dialogs = media_plane.dialogs("answer", [user])
        return bool(dialogs and dialogs[0].received("BYE")), [d.timeline() for d in dialogs]

    await poll(hung_up, limit=5.0, what="our BYE at the far end")
    assert record["answered"] and record["hangup_by"] == "service", record
    assert record["playback"] == ["unknown"], record  # it ended while nobody listened
