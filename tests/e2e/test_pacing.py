"""Pacing and the concurrency cap, measured where they matter: at the far end.

The far end's own trace gives each INVITE's arrival time and each dialog's life (INVITE to
BYE). The allowance for a 1-s window comes from the dialer's interval pacing
(tests/support/pacing.py); the jitter is the spread of the delay from a pacing slot to the
INVITE on the wire: a database write, the ARI request and Asterisk's dial (7-13 ms measured
for the last), for which 0.3 s leaves room on a busy 2-core machine.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import WAV_SECONDS, MediaPlane
from tests.support.pacing import allowed_in_window, max_in_window, max_overlap
from tests.support.service import running_service

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

RATE = 10.0
CAP = 30
JITTER = 0.3


async def test_the_far_end_sees_the_rate_and_the_cap_held_and_the_cap_reached(
        media_plane: MediaPlane, tmp_path: Path) -> None:
    # Calls last about WAV_SECONDS + 1 s, so at RATE/s the first CAP calls (3 s of dialling)
    # are all live before the first ends: the cap is reached, then limits the rest. With the
    # pacing ignored the first CAP INVITEs would arrive together; with the cap ignored about
    # RATE * 4 would be live at once.
    assert WAV_SECONDS + 1 > CAP / RATE + 0.5  # with room: the premise of reaching the cap
    users = [f"paced{i}" for i in range(45)]
    settings = media_plane.settings.with_overrides(
        runtime_dir=tmp_path, calls_per_second=RATE, max_concurrent_calls=CAP)
    async with running_service(settings) as service:
        request_id = await service.submit({
            "recipients": [{"to": media_plane.uri("answer", user=u)} for u in users],
            "from": "me", "playlist": [{"play": media_plane.media_url}, {"pause": 1}]})
        report = await service.wait_for_report(request_id, limit=60)
    assert [r["playback"] for r in report["records"]] == [["done", "done"]] * len(users)

    dialogs = media_plane.dialogs("answer", users)
    assert sorted(d.user for d in dialogs) == sorted(users)  # each dialled once
    invites = [d.invited_at for d in dialogs]
    allowed = allowed_in_window(RATE, JITTER)
    assert max_in_window(invites) <= allowed, (max_in_window(invites), allowed)
    lives = [(d.invited_at, d.ended_at) for d in dialogs]
    assert all(end is not None for _, end in lives), [d.timeline() for d in dialogs]
    assert max_overlap(lives) == CAP, (max_overlap(lives), CAP)  # reached, never passed
