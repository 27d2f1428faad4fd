"""Dialer and call-session behaviour against the fake ARI: load and faults in seconds."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.fake_ari import FakeAri


@pytest.fixture
async def fake_ari(tmp_path: Path) -> AsyncIterator[FakeAri]:
    async with FakeAri(sound_root=tmp_path / "root") as ari:
        yield ari
