"""Read Asterisk's channel event log: what happened to channels while the service was away.

Asterisk writes one JSON object a line (cel_custom.conf) for CHAN_START, ANSWER, HANGUP and
CHAN_END, keyed by `uniqueid`, which is the ARI channel id we choose. After a crash or a lost
event stream, a call whose channel is gone is settled from these lines instead of guessed:
created or not (an originate that never reached Asterisk has no line), answered when, hung up
when, with which Q.850 cause. The log has no SIP response code.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

log = logging.getLogger(__name__)

ROTATE_BYTES = 64 * 1024 * 1024  # one older file is kept: recovery reads both
_UNIQUEID = re.compile(r'"uniqueid"\s*:\s*"([^"]*)"')


@dataclass(frozen=True, slots=True)
class ChannelHistory:
    """One channel as Asterisk recorded it."""

    channel_id: str
    created_at: datetime | None = None
    answered_at: datetime | None = None
    hung_up_at: datetime | None = None
    hangup_cause: int | None = None  # Q.850

    @property
    def ended(self) -> bool:
        return self.hung_up_at is not None


def _time(text: object) -> datetime | None:
    try:
        return datetime.fromtimestamp(float(str(text)), UTC)
    except ValueError:
        return None


def _cause(extra: object) -> int | None:
    try:
        cause = json.loads(str(extra)).get("hangupcause")
    except (ValueError, AttributeError):
        return None
    return cause if isinstance(cause, int) else None


def _apply(history: ChannelHistory, event: dict[str, object]) -> ChannelHistory:
    at = _time(event.get("eventtime"))
    match event.get("eventtype"):
        case "CHAN_START":
            return replace(history, created_at=at)
        case "ANSWER":
            return replace(history, answered_at=at)
        case "HANGUP":
            return replace(history, hung_up_at=at, hangup_cause=_cause(event.get("eventextra")))
    return history


class ChannelEventLog:
    def __init__(self, path: Path | None) -> None:
        self._path = path  # None: this Asterisk's log cannot be read from here
        self._seen = False

    @property
    def available(self) -> bool:
        """False when this Asterisk does not write our log (configured elsewhere).

        Asked for every call placed: the folder is looked for once, and then again only
        while it is missing."""
        if not self._seen and self._path is not None:
            self._seen = self._path.parent.is_dir()
        return self._seen

    async def histories(self, channel_ids: Collection[str]) -> dict[str, ChannelHistory]:
        """What the log says of each of these channels; a channel it never saw is absent."""
        if not channel_ids or self._path is None:
            return {}
        return await asyncio.to_thread(self._read, frozenset(channel_ids))

    def _lines(self) -> Iterator[str]:
        if self._path is None:
            return
        for path in (self._path.with_name(self._path.name + ".1"), self._path):
            try:
                with path.open(encoding="utf-8", errors="replace") as lines:
                    yield from lines
            except FileNotFoundError:
                continue

    def _read(self, wanted: frozenset[str]) -> dict[str, ChannelHistory]:
        found: dict[str, ChannelHistory] = {}
        for line in self._lines():
            match = _UNIQUEID.search(line)
            if match is None or match[1] not in wanted:
                continue  # most lines: skipped without parsing
            channel_id = match[1]
            try:
                event = json.loads(line)
            except ValueError:
                continue  # a line Asterisk is still writing
            if isinstance(event, dict):
                history = found.get(channel_id, ChannelHistory(channel_id))
                found[channel_id] = _apply(history, event)
        return found

    def rotate_if_large(self, limit: int = ROTATE_BYTES) -> None:
        """Keep the log bounded: past `limit`, it becomes the one older file (cel_custom opens
        the file for every line, so Asterisk starts a new one by itself)."""
        if self._path is None:
            return
        try:
            if self._path.stat().st_size > limit:
                self._path.replace(self._path.with_name(self._path.name + ".1"))
                log.info("rotated the channel event log %s", self._path)
        except FileNotFoundError:
            return
