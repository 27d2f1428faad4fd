"""Which records of a report to read: filters, a cursor and a page size; and the summary shape.

Plain values: the API parses them from the query string, the database layer turns them into SQL.
Records are ordered by recipient, then attempt; a cursor is the (position, attempt) of the last
record a page held, so the next page starts right after it whatever was written meanwhile.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

RESULTS = ("completed", "failed", "cancelled", "pending")  # `pending`: not ended yet
CURSOR_PATTERN = r"^[0-9]{1,9}\.[0-9]{1,3}$"
_CURSOR = re.compile(CURSOR_PATTERN)


@dataclass(frozen=True, slots=True)
class Cursor:
    position: int
    attempt: int

    def token(self) -> str:
        return f"{self.position}.{self.attempt}"

    @classmethod
    def parse(cls, token: str) -> Cursor | None:
        """The cursor a `token()` made, or None for anything else."""
        if _CURSOR.fullmatch(token) is None:
            return None
        position, attempt = token.split(".")
        return cls(int(position), int(attempt))


@dataclass(frozen=True, slots=True)
class RecordFilter:
    """Records that match every given criterion; None means any."""

    results: frozenset[str] | None = None
    answered: bool | None = None
    # SIP codes as in `disconnect_cause_code`; None in the set stands for "no SIP code".
    sip_codes: frozenset[int | None] | None = None


@dataclass(frozen=True, slots=True)
class RecordWindow:
    """A filter, and where to start (after `after`) and how many to give (`limit`)."""

    filter: RecordFilter = field(default_factory=RecordFilter)
    after: Cursor | None = None
    limit: int | None = None  # None: every record to the end


@dataclass(frozen=True, slots=True)
class ReportSummary:
    """Totals over the records a filter selects (every attempt counts as one record)."""

    records: int
    by_result: dict[str, int]
    by_sip_code: dict[str, int]  # "none" for records without a SIP code
    answered: int
    ended: int  # records whose call has ended: the answer rate's denominator
    total_answered_seconds: int  # the sum of answered records' `duration`

    @property
    def answer_rate(self) -> float | None:
        return None if self.ended == 0 else round(self.answered / self.ended, 4)

    @property
    def mean_duration(self) -> float | None:
        """Mean `duration` of answered records, in seconds."""
        if self.answered == 0:
            return None
        return round(self.total_answered_seconds / self.answered, 2)


def call_duration(connect_time: datetime | None, disconnect_time: datetime | None) -> int:
    """A record's `duration`: whole seconds from connect to disconnect, 0 when not answered."""
    if connect_time is None or disconnect_time is None:
        return 0
    start = connect_time if connect_time.tzinfo else connect_time.replace(tzinfo=UTC)
    end = disconnect_time if disconnect_time.tzinfo else disconnect_time.replace(tzinfo=UTC)
    return max(0, round((end - start).total_seconds()))
