"""`python -m app healthcheck`, what the containers' healthchecks run, on the real Asterisk."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from app.healthcheck import check
from app.settings import Secret
from tests.e2e.conftest import MediaPlane, running_service
from tests.support.ports import free_tcp_port as free_port

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]


async def test_asterisk_is_healthy_when_ari_answers_our_credentials(
        media_plane: MediaPlane) -> None:
    settings = media_plane.settings
    assert await asyncio.to_thread(check, "asterisk", settings) == 0
    wrong = settings.with_overrides(ari_password=Secret("w" * 20))
    assert await asyncio.to_thread(check, "asterisk", wrong) == 1
    closed = settings.with_overrides(ari_url=f"http://127.0.0.1:{free_port()}")
    assert await asyncio.to_thread(check, "asterisk", closed) == 1


async def test_the_service_is_healthy_when_ready(media_plane: MediaPlane,
                                                 tmp_path: Path) -> None:
    settings = media_plane.settings.with_overrides(runtime_dir=tmp_path)
    async with running_service(settings) as service:
        port = int(service.base.rsplit(":", 1)[1])
        assert await asyncio.to_thread(
            check, "service", settings.with_overrides(host="0.0.0.0", port=port)  # noqa: S104
        ) == 0  # as in the container: listening everywhere, asked on loopback
    assert await asyncio.to_thread(check, "service", settings.with_overrides(port=port)) == 1
