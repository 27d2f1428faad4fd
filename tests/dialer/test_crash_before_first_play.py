"""A crash between a call's answer and its first play: the restart plays the whole playlist.

Seen in the make-run crash test (1 run of 2): a call answered a moment before the kill had no
playback when the new process re-attached, was taken for "played while away" and hung up
after 1.3 s of silence, with the record saying completed. Here the first play never starts
(the fake loses it, as a process killed before its request left would), the service is
killed with SIGKILL and started again.
"""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

from app.settings import Secret
from tests.support.fake_ari import Behaviour, FakeAri
from tests.support.ports import free_tcp_port
from tests.support.service import ServiceProcess, environment, poll
from tests.support.settings import against_fake_ari

ITEM_SECONDS = 6.0  # longer than a restart, so the call is still in its first item's time


async def test_a_call_answered_just_before_a_crash_still_hears_its_playlist(
        fake_ari: FakeAri, tmp_path: Path) -> None:
    fake_ari.default = Behaviour(answer_after=0.05, first_play_lost=True)
    key = secrets.token_urlsafe(24)
    settings = against_fake_ari(fake_ari, tmp_path / "root", tmp_path / "runtime",
                                port=free_tcp_port(), api_keys=Secret(f"t:{key}"))
    async with ServiceProcess("serve", environment(settings)) as service:
        service.api.headers = {"Authorization": f"Bearer {key}"}
        await service.start()
        request_id = await service.api.submit({
            "to": "sip:alice@127.0.0.1:5099", "from": "me",
            "playlist": [{"pause": ITEM_SECONDS}]})

        async def first_play_sent() -> tuple[bool, int]:
            return bool(fake_ari.plays), len(fake_ari.plays)

        await poll(first_play_sent, limit=15.0, what="the first play", interval=0.02)
        await asyncio.sleep(0.3)  # the answer's progress write is committed meanwhile
        await service.kill()
        await service.start()
        (record,) = (await service.api.wait_for_report(request_id,
                                                       limit=ITEM_SECONDS + 15))["records"]
    (channel,) = {channel for _, channel, _ in fake_ari.plays}
    assert len(fake_ari.plays) == 2, fake_ari.plays  # the lost play, then the restart's
    assert record["answered"] and record["result"] == "completed", record
    assert record["playback"] == ["done"], record
    assert record["duration"] >= ITEM_SECONDS, record  # the whole item, not cut at restart
    assert [hung for _, hung in fake_ari.hangups] == [channel]
