"""The ARI event websocket drops mid-call while Asterisk stays up (no restart).

Asterisk never replays events: a PlaybackFinished sent while no websocket listened is lost.
Without catching up after the reconnect, the call would wait for max_call_seconds (3600 s).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.support.fake_ari import Behaviour, FakeAri
from tests.support.service import poll, running_service
from tests.support.settings import against_fake_ari

ITEM_SECONDS = 1.0
REFUSE_SECONDS = 1.5  # longer than the rest of the item: its end falls in the gap
# The reconnect backoff doubles from 0.1 s (0.1, 0.2, 0.4, 0.8, 1.6): the first try after
# REFUSE_SECONDS is at most 1.6 s later; then the remaining items and the hang-up.
RECONNECT_SLACK = 1.6


@pytest.mark.parametrize("items", [1, 2], ids=["last item: hang up", "then the next item"])
async def test_a_playback_that_ended_during_the_gap_moves_the_call_on(
        fake_ari: FakeAri, tmp_path: Path, items: int) -> None:
    fake_ari.default = Behaviour(answer_after=0.05)  # playbacks last their files' length
    settings = against_fake_ari(fake_ari, tmp_path / "root", tmp_path / "runtime")
    async with running_service(settings) as service:
        request_id = await service.submit({
            "to": "sip:alice@127.0.0.1:5099", "from": "me",
            "playlist": [{"pause": ITEM_SECONDS}] * items})

        async def playing() -> tuple[bool, int]:
            return bool(fake_ari.plays), len(fake_ari.plays)

        await poll(playing, limit=10.0, what="the first item playing", interval=0.02)
        dropped_at = time.monotonic()
        await fake_ari.drop_events(refuse_for=REFUSE_SECONDS)
        limit = REFUSE_SECONDS + RECONNECT_SLACK + items * ITEM_SECONDS + 2.0
        (record,) = (await service.wait_for_report(request_id, limit=limit))["records"]
        ended_after = time.monotonic() - dropped_at
    assert "PlaybackFinished" in fake_ari.lost_events  # the gap really swallowed the end
    assert fake_ari.websocket_connects >= 2
    assert (f"voxcast-{record['id']}-item-0", False) in fake_ari.playback_lookups
    assert record["answered"] and record["hangup_by"] == "service", record
    # The item that ended in the gap was not seen to end: "unknown"; the next one played.
    assert record["playback"] == ["unknown"] + ["done"] * (items - 1), record
    assert len(fake_ari.plays) == items and len(fake_ari.hangups) == 1
    assert ended_after < limit
