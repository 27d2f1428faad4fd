"""Webhooks and live events against the fake ARI and a local receiver."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.fake_ari import FakeAri
from tests.support.webhook_receiver import WebhookReceiver


@pytest.fixture
async def fake_ari(tmp_path: Path) -> AsyncIterator[FakeAri]:
    async with FakeAri(sound_root=tmp_path / "root") as ari:
        yield ari


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    async with WebhookReceiver() as started:
        yield started
