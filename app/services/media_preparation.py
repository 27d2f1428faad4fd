"""Prepare each accepted broadcast's media before any of its calls may be dialled.

Runs after the request was answered, from the database (so a restart resumes it). Items that are
the same for every recipient are prepared once; a personalised `say` is synthesised per distinct
text (the speech cache makes repeats free) and stored on each call's row. When the media cannot
be prepared, every call of that broadcast ends `failed` with the reason and none is placed: no
call ever plays missing media.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from app.adapters.db.media_state import MediaStateStore
from app.domain.broadcasts import CallMedia
from app.services.playlist_media import MediaProblem, PlaylistMedia, expand, is_personal

log = logging.getLogger(__name__)

IDLE_POLL_SECONDS = 2.0
RECIPIENTS_PAGE = 500


class MediaPreparation:
    def __init__(self, store: MediaStateStore, media: PlaylistMedia,
                 on_ready: Callable[[], None]) -> None:
        self._store = store
        self._media = media
        self._on_ready = on_ready
        self._work_available = asyncio.Event()

    def wake(self) -> None:
        self._work_available.set()

    async def run(self) -> None:
        while True:
            self._work_available.clear()
            pending = await self._store.broadcasts_awaiting_media()
            for broadcast in pending:
                try:
                    await self.prepare(broadcast.broadcast_id, broadcast.playlist)
                except Exception:
                    # A bug must not stall every later broadcast behind this one, nor loop:
                    # this broadcast's calls fail with a plain reason, and the worker goes on.
                    log.exception("broadcast %s: media preparation crashed",
                                  broadcast.broadcast_id)
                    await self._store.fail_media(
                        broadcast.broadcast_id, "media could not be prepared: internal error",
                        datetime.now(UTC))
            if not pending:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._work_available.wait(), IDLE_POLL_SECONDS)

    async def prepare(self, broadcast_id: str, playlist: list[dict[str, Any]]) -> None:
        try:
            shared = await self._media.shared_items(playlist)
            if len(shared) == len(playlist):
                sounds, speech = expand([shared[index] for index in range(len(playlist))])
                await self._store.set_media_ready(broadcast_id, sounds, speech)
            else:
                await self._personalise(broadcast_id, playlist, shared)
                await self._store.set_media_ready(broadcast_id, None)
        except MediaProblem as problem:
            log.warning("broadcast %s: media failed: %s", broadcast_id, problem)
            await self._store.fail_media(broadcast_id, f"media could not be prepared: {problem}",
                                         datetime.now(UTC))
            return
        self._on_ready()

    async def _personalise(self, broadcast_id: str, playlist: list[dict[str, Any]],
                           shared: dict[int, Any]) -> None:
        personal = [i for i, item in enumerate(playlist) if is_personal(item)]
        log.info("broadcast %s: personalising items %s per recipient", broadcast_id, personal)
        after = -1
        while True:
            page = await self._store.recipients_page(broadcast_id, after, RECIPIENTS_PAGE)
            if not page:
                return
            media = []
            for call_id, _position, variables in page:
                try:
                    items = await self._media.for_recipient(playlist, shared, variables)
                except MediaProblem as problem:
                    # Only this recipient's own media failed: only this call fails, unplaced.
                    await self._store.fail_calls([call_id], f"media could not be prepared: "
                                                 f"{problem}", datetime.now(UTC))
                    continue
                sounds, speech = expand(items)
                media.append(CallMedia(call_id, sounds, speech))
            await self._store.set_call_media(media)
            after = page[-1][1]
