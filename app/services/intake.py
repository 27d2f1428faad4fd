"""Accept a broadcast: give it ids and store it with one row per recipient, durably."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from app.adapters.db.store import NewBroadcast, ReportStore


@dataclass(frozen=True, slots=True)
class Accepted:
    request_id: str
    report_id: str


class Intake:
    def __init__(self, store: ReportStore, on_accepted: Callable[[], None]) -> None:
        self._store = store
        self._on_accepted = on_accepted

    async def submit(self, *, targets: list[str], caller: str,
                     playlist: list[dict[str, Any]]) -> Accepted:
        """Store before answering: once this returns, the broadcast survives any crash."""
        broadcast = NewBroadcast(
            id=str(uuid.uuid4()), report_id=str(uuid.uuid4()), caller=caller,
            playlist=playlist, created_at=datetime.now(UTC).replace(microsecond=0),
            calls=[(str(uuid.uuid4()), target) for target in targets])
        await self._store.add_broadcast(broadcast)
        self._on_accepted()
        return Accepted(broadcast.id, broadcast.report_id)
