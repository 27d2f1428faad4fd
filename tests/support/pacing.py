"""Judging pacing and concurrency from timestamps: windows, overlaps, and the allowance.

The dialer paces by interval: each originate takes the next slot, at least 1/rate after the
previous one (`Dialer._wait_for_slot`), so at the dialer no half-open 1-s window holds more
than ceil(rate) originates. An observer further along (the fake ARI, the far end's INVITEs)
sees each one later by a delay between d_min and d_max: a database write, the ARI request,
Asterisk's dial. A 1-s window there maps back to a window of 1 + (d_max - d_min) s at the
dialer, hence `allowed_in_window`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence


def allowed_in_window(rate: float, jitter: float, window: float = 1.0) -> int:
    """Most originates interval pacing at `rate`/s lets an observer see in one window,
    when the delay from pacing slot to observation varies by up to `jitter` seconds."""
    return math.ceil(round(rate * (window + jitter), 9))


def max_in_window(times: Sequence[float], window: float = 1.0) -> int:
    """The most of `times` inside any half-open window [t, t + window)."""
    ordered = sorted(times)
    best = start = 0
    for end, moment in enumerate(ordered):
        while moment - ordered[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def max_overlap(intervals: Iterable[tuple[float, float]]) -> int:
    """The most intervals [start, end) open at one moment."""
    spans = list(intervals)
    changes = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans],
                     key=lambda change: (change[0], change[1]))
    live = peak = 0
    for _, change in changes:
        live += change
        peak = max(peak, live)
    return peak
