"""A small Server-Sent Events reader for tests: (id, event, data) as they arrive."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp


@dataclass(frozen=True)
class SseEvent:
    id: str | None
    event: str
    data: str


async def sse_events(response: aiohttp.ClientResponse) -> AsyncIterator[SseEvent]:
    """Events of an open `text/event-stream` response, until it ends."""
    event_id: str | None = None
    kind = "message"
    data: list[str] = []
    async for raw in response.content:
        line = raw.decode().rstrip("\r\n")
        if not line:
            if data:
                yield SseEvent(event_id, kind, "\n".join(data))
            event_id, kind, data = None, "message", []
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "id":
            event_id = value
        elif name == "event":
            kind = value
        elif name == "data":
            data.append(value)
