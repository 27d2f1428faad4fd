"""Prepare each accepted broadcast's media once, before any of its calls may be dialled.

Runs after the request was answered, from the database (so a restart resumes it). When the
media cannot be prepared, every call of that broadcast ends `failed` with the reason and none
is placed: no call ever plays missing media.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from app.adapters.db.store import ReportStore
from app.adapters.media.audio_conversion import UnsupportedAudio
from app.adapters.media.fetcher import MediaFetchError
from app.services.media_library import MediaLibrary

log = logging.getLogger(__name__)

IDLE_POLL_SECONDS = 2.0


class MediaPreparation:
    def __init__(self, store: ReportStore, library: MediaLibrary,
                 on_ready: Callable[[], None]) -> None:
        self._store = store
        self._library = library
        self._on_ready = on_ready
        self._work_available = asyncio.Event()

    def wake(self) -> None:
        self._work_available.set()

    async def run(self) -> None:
        while True:
            self._work_available.clear()
            pending = await self._store.broadcasts_awaiting_media()
            for broadcast in pending:
                await self._prepare(broadcast.id, [str(item["play"]) for item in
                                                   broadcast.playlist])
            if not pending:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._work_available.wait(), IDLE_POLL_SECONDS)

    async def _prepare(self, broadcast_id: str, urls: list[str]) -> None:
        try:
            prepared = await self._library.prepare_all(urls)
        except (MediaFetchError, UnsupportedAudio) as error:
            log.warning("broadcast %s: media failed: %s", broadcast_id, error)
            await self._store.fail_media(broadcast_id, f"media could not be prepared: {error}",
                                         datetime.now(UTC))
            return
        await self._store.set_media_ready(broadcast_id, [media.sound for media in prepared])
        self._on_ready()
