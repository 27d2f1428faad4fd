"""Cancel a broadcast: queued calls end `cancelled`, live ones are hung up and recorded."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from app.adapters.db.call_queue import CallQueue
from app.adapters.db.report_reads import ReportReads
from app.services.dialer import Dialer

LIVE_CALLS_WAIT_SECONDS = 8.0  # hung-up calls end within a second or two: then it is ready


@dataclass(frozen=True, slots=True)
class Cancelled:
    report_id: str
    queued_cancelled: int
    live_hung_up: int


class Cancellation:
    def __init__(self, reports: ReportReads, queue: CallQueue, dialer: Dialer) -> None:
        self._reports = reports
        self._queue = queue
        self._dialer = dialer

    async def cancel(self, request_id: str, tenant: str) -> Cancelled | None:
        broadcast = await self._reports.broadcast(request_id, tenant)
        if broadcast is None:
            return None
        # No claim may be under way meanwhile: its calls would be neither queued (so not
        # cancelled here) nor yet among the dialer's claimed ones (so dialled).
        now = datetime.now(UTC)
        async with self._dialer.claims_held():
            # The dialer first, so a call it has claimed but not dialled is never dialled.
            claimed = self._dialer.cancel_broadcast(broadcast.id)
            queued = await self._queue.cancel(broadcast.id, now)
        await self._queue.cancel_calls(claimed, now)
        queued += len(claimed)
        live = await self._dialer.hang_up_broadcast(broadcast.id, LIVE_CALLS_WAIT_SECONDS)
        return Cancelled(broadcast.report_id, queued, live)
