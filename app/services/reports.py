"""Read side: a broadcast's status and progress, its report, and one call's record."""

from __future__ import annotations

from dataclasses import dataclass

from app.adapters.db.store import Progress, ReportStore
from app.adapters.db.tables import BroadcastRow, CallRow


@dataclass(frozen=True, slots=True)
class BroadcastStatus:
    broadcast: BroadcastRow
    progress: Progress


@dataclass(frozen=True, slots=True)
class Report:
    broadcast: BroadcastRow
    progress: Progress
    calls: list[CallRow]


class ReportQueries:
    def __init__(self, store: ReportStore) -> None:
        self._store = store

    async def status(self, request_id: str, tenant: str) -> BroadcastStatus | None:
        broadcast = await self._store.broadcast(request_id, tenant)
        if broadcast is None:
            return None
        return BroadcastStatus(broadcast, await self._store.progress(broadcast.id))

    async def report(self, report_id: str, tenant: str) -> Report | None:
        """The report; its calls are loaded only once every call has ended."""
        broadcast = await self._store.broadcast_by_report(report_id, tenant)
        if broadcast is None:
            return None
        progress = await self._store.progress(broadcast.id)
        calls = await self._store.calls_of(broadcast.id) if progress.finished else []
        return Report(broadcast, progress, calls)

    async def call(self, call_id: str, tenant: str) -> tuple[CallRow, BroadcastRow] | None:
        return await self._store.call(call_id, tenant)
