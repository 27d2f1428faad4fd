"""Accept a broadcast: give it ids and store it with one row per recipient, durably."""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from app.adapters.db.intake import IntakeStore
from app.domain.broadcasts import NewBroadcast, NewCall
from app.services.playlist_media import PlaylistMedia

log = logging.getLogger(__name__)
ID_BLOCK = 1024
BULK_UPLOAD_SECONDS = 3600  # the longest a bulk upload may take; the handler enforces it
_VARIANT = "89ab"


def fresh_ids() -> Iterator[str]:
    """Random (version 4) UUIDs as uuid4() writes them, their randomness read a block at a
    time: 100k recipients cost a tenth of uuid4()'s system call and objects per id."""
    while True:
        block = os.urandom(16 * ID_BLOCK).hex()
        for start in range(0, len(block), 32):
            h = block[start:start + 32]
            # Version 4 in the 13th digit; the variant (10xx) in the 17th.
            yield (f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[int(h[16], 16) & 3]}{h[17:20]}-"
                   f"{h[20:]}")


@dataclass(frozen=True, slots=True)
class Accepted:
    request_id: str
    report_id: str
    recipients: int = 0


class Intake:
    def __init__(self, store: IntakeStore, media: PlaylistMedia,
                 on_accepted: Callable[[], None], *, media_check_seconds: float = 3.0) -> None:
        self._store = store
        self._media = media
        self._on_accepted = on_accepted
        self._media_check_seconds = media_check_seconds
        self._checks: set[asyncio.Task[Any]] = set()

    async def _check_media(self, playlist: list[dict[str, Any]]) -> None:
        """Raise MediaProblem if shared media fails within the bound; else carry on."""
        check = asyncio.create_task(self._media.shared_items(playlist), name="media-check")
        self._checks.add(check)  # owned: it finishes in the background if it outlasts us
        check.add_done_callback(self._check_done)
        done, _ = await asyncio.wait({check}, timeout=self._media_check_seconds)
        if check in done:
            check.result()  # raises MediaProblem naming the item

    def _check_done(self, check: asyncio.Task[Any]) -> None:
        self._checks.discard(check)
        if not check.cancelled():
            check.exception()  # seen here; the background preparation reports it for real

    async def close(self) -> None:
        for check in self._checks:
            check.cancel()
        await asyncio.gather(*self._checks, return_exceptions=True)

    async def submit_stream(self, *, tenant: str, caller: str, playlist: list[dict[str, Any]],
                            retry: dict[str, Any] | None,
                            recipients: AsyncIterator[
                                list[tuple[str, dict[str, str] | None, str | None]]]
                            ) -> Accepted:
        """A bulk upload: recipients stored a chunk at a time as they arrive, the broadcast
        hidden until the last one is in. Whatever `recipients` raises (a bad line, the client
        gone) removes what was stored, and nothing of it was ever visible or dialled."""
        await self._check_media(playlist)
        created_at = datetime.now(UTC).replace(microsecond=0)
        broadcast = NewBroadcast(
            id=str(uuid.uuid4()), report_id=str(uuid.uuid4()), tenant=tenant, caller=caller,
            playlist=playlist, created_at=created_at, calls=[], retry=retry)
        await self._store.begin_upload(broadcast)
        total = 0
        ids = fresh_ids()
        try:
            async for chunk in recipients:
                await self._store.add_calls(broadcast.id, created_at, total, [
                    NewCall(next(ids), target, variables, trunk)
                    for target, variables, trunk in chunk])
                total += len(chunk)
            await self._store.finish_upload(broadcast.id, total)
        except BaseException:
            # Shielded: a cancelled upload is still removed.
            await asyncio.shield(self._store.discard_upload(broadcast.id))
            raise
        log.info("broadcast %s accepted for tenant %s: %d recipients (bulk), %d playlist "
                 "items%s", broadcast.id, tenant, total, len(playlist),
                 ", with retries" if retry else "")
        self._on_accepted()
        return Accepted(broadcast.id, broadcast.report_id, total)

    async def discard_abandoned_uploads(self) -> None:
        """Uploads a crash cut short: older than an upload may last, so nobody adds to them."""
        cutoff = datetime.now(UTC) - timedelta(seconds=BULK_UPLOAD_SECONDS)
        discarded = await self._store.discard_abandoned_uploads(cutoff)
        if discarded:
            log.warning("removed %d bulk uploads a crash left unfinished", discarded)

    async def submit(self, *, tenant: str,
                     recipients: list[tuple[str, dict[str, str] | None, str | None]],
                     caller: str, playlist: list[dict[str, Any]],
                     retry: dict[str, Any] | None = None,
                     idempotency: tuple[str, str] | None = None,
                     callback: dict[str, Any] | None = None) -> Accepted:
        """Store before answering: once this returns, the broadcast survives any crash.

        The playlist's shared media is tried first for a short while, so a bad URL is refused
        now, naming the item; what takes longer goes on after the answer.
        """
        if idempotency is not None:
            earlier = await self._store.idempotent_replay(tenant, *idempotency)
            if earlier is not None:
                return Accepted(earlier.id, earlier.report_id)
        await self._check_media(playlist)
        ids = fresh_ids()
        broadcast = NewBroadcast(
            id=str(uuid.uuid4()), report_id=str(uuid.uuid4()), tenant=tenant, caller=caller,
            playlist=playlist, created_at=datetime.now(UTC).replace(microsecond=0),
            calls=[NewCall(next(ids), target, variables, trunk)
                   for target, variables, trunk in recipients],
            retry=retry, idempotency=idempotency, callback=callback)
        stored = await self._store.add_broadcast(broadcast)
        if stored.id != broadcast.id:  # lost an idempotency race: answer as the winner did
            return Accepted(stored.id, stored.report_id)
        # Counts only: targets, texts and variables are the tenant's data, not the log's.
        log.info("broadcast %s accepted for tenant %s: %d recipients, %d playlist items%s",
                 broadcast.id, tenant, len(recipients), len(playlist),
                 ", with retries" if retry else "")
        self._on_accepted()
        return Accepted(broadcast.id, broadcast.report_id)
