"""Read side: a broadcast's status and progress, its report, and one call's record."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass

from app.adapters.db.report_reads import ReportReads
from app.domain.broadcasts import BroadcastSummary, CallRecord, Progress
from app.domain.report_query import Cursor, RecordFilter, RecordWindow, ReportSummary


@dataclass(frozen=True, slots=True)
class BroadcastStatus:
    broadcast: BroadcastSummary
    progress: Progress


@dataclass(frozen=True, slots=True)
class Report:
    """A report's head; its records are read in batches (`ReportQueries.record_batches`)."""

    broadcast: BroadcastSummary
    progress: Progress

    @property
    def ready(self) -> bool:
        return self.progress.finished


class ReportQueries:
    def __init__(self, reads: ReportReads) -> None:
        self._reads = reads

    async def status(self, request_id: str, tenant: str) -> BroadcastStatus | None:
        broadcast = await self._reads.broadcast(request_id, tenant)
        if broadcast is None:
            return None
        return BroadcastStatus(broadcast, await self._reads.progress(broadcast.id))

    async def report(self, report_id: str, tenant: str) -> Report | None:
        broadcast = await self._reads.broadcast_by_report(report_id, tenant)
        if broadcast is None:
            return None
        return Report(broadcast, await self._reads.progress(broadcast.id))

    def record_batches(self, report: Report,
                       window: RecordWindow) -> AsyncGenerator[list[CallRecord], None]:
        """The window's records, a batch at a time, from one server-side cursor."""
        return self._reads.record_batches(report.broadcast.id, window)

    async def next_page(self, report: Report, window: RecordWindow) -> Cursor | None:
        return await self._reads.page_end(report.broadcast.id, window)

    async def summary(self, report: Report, chosen: RecordFilter) -> ReportSummary:
        return await self._reads.summary(report.broadcast.id, chosen)

    async def call(self, call_id: str, tenant: str) -> CallRecord | None:
        return await self._reads.call(call_id, tenant)
