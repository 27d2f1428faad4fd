"""Finding a tenant's broadcasts: one page of them with progress, and where the next page starts."""

from __future__ import annotations

from dataclasses import dataclass

from app.adapters.db.broadcast_list import BroadcastListReads
from app.domain.broadcasts import BroadcastFilter, ListedBroadcast


@dataclass(frozen=True, slots=True)
class BroadcastPage:
    broadcasts: list[ListedBroadcast]
    next_after: str | None  # the cursor for the next page; None on the last page


class BroadcastFinder:
    def __init__(self, reads: BroadcastListReads) -> None:
        self._reads = reads

    async def page(self, tenant: str, which: BroadcastFilter, limit: int,
                   after: str | None) -> BroadcastPage:
        """Raises `CursorNotFound` when `after` names none of the tenant's broadcasts."""
        # One more than asked: whether another page exists, without a count over them all.
        found = await self._reads.page(tenant, which, limit + 1, after)
        more = len(found) > limit
        shown = found[:limit]
        return BroadcastPage(shown, shown[-1].summary.id if more else None)
