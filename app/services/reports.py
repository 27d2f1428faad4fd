"""Read side: a broadcast's status and progress, its report, and one call's record."""

from __future__ import annotations

from dataclasses import dataclass

from app.adapters.db.report_reads import ReportReads
from app.domain.broadcasts import BroadcastSummary, CallRecord, Progress


@dataclass(frozen=True, slots=True)
class BroadcastStatus:
    broadcast: BroadcastSummary
    progress: Progress


@dataclass(frozen=True, slots=True)
class Report:
    broadcast: BroadcastSummary
    progress: Progress
    calls: list[CallRecord]


class ReportQueries:
    def __init__(self, reads: ReportReads) -> None:
        self._reads = reads

    async def status(self, request_id: str, tenant: str) -> BroadcastStatus | None:
        broadcast = await self._reads.broadcast(request_id, tenant)
        if broadcast is None:
            return None
        return BroadcastStatus(broadcast, await self._reads.progress(broadcast.id))

    async def report(self, report_id: str, tenant: str) -> Report | None:
        """The report; its calls are loaded only once every call has ended."""
        broadcast = await self._reads.broadcast_by_report(report_id, tenant)
        if broadcast is None:
            return None
        progress = await self._reads.progress(broadcast.id)
        calls = await self._reads.records(broadcast.id) if progress.finished else []
        return Report(broadcast, progress, calls)

    async def call(self, call_id: str, tenant: str) -> CallRecord | None:
        return await self._reads.call(call_id, tenant)
