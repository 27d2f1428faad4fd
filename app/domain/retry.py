"""The per-request retry policy: which outcomes earn another attempt, how many, how late."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

# Outcome classes a client may retry on, by the SIP code of the attempt's final record.
RETRY_CLASSES: dict[str, frozenset[int]] = {
    "busy": frozenset({486, 600}),
    "no_answer": frozenset({408, 480, 487}),
    "congestion": frozenset({500, 502, 503, 504}),
}


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    on: frozenset[str]
    attempts: int  # in total, the first one included
    delay_seconds: float

    @classmethod
    def from_stored(cls, stored: dict[str, object] | None) -> RetryPolicy | None:
        if not stored:
            return None
        on = stored.get("on", [])
        attempts = stored.get("attempts", 1)
        delay = stored.get("delay", 0)
        return cls(frozenset(str(name) for name in on) if isinstance(on, list) else frozenset(),
                   int(attempts) if isinstance(attempts, int) else 1,
                   float(delay) if isinstance(delay, int | float) else 0.0)

    def next_attempt_at(self, *, attempt: int, answered: bool, result: str,
                        sip_code: int | None, ended_at: datetime) -> datetime | None:
        """When to try again, or None. Answered calls and failed placements never retry."""
        if answered or result != "completed" or sip_code is None or attempt >= self.attempts:
            return None
        if not any(sip_code in RETRY_CLASSES[name] for name in self.on if name in RETRY_CLASSES):
            return None
        return ended_at + timedelta(seconds=self.delay_seconds)
