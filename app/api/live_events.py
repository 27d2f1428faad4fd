"""Live events as Server-Sent Events: one broadcast's, or all of a tenant's.

Each event's SSE id is its place in the event log, so a client that reconnects with
`Last-Event-ID` gets exactly what it missed; after each batch a `progress` event (without an
id) gives each broadcast's counts.
"""

from __future__ import annotations

import json
import uuid

from aiohttp import web
from aiohttp_sse import EventSourceResponse, sse_response

from app.adapters.db.event_log import EventLog
from app.api.auth import TENANT
from app.api.envelope import ApiError, not_found
from app.api.records import progress_object
from app.api.routes import QUERIES
from app.services.reports import ReportQueries
from app.services.webhook_delivery import EventsSealed


class LiveEvents:
    """What the streams read, and the signal that ends them all when the service stops (else
    an open stream would hold the shutdown for aiohttp's whole grace period)."""

    def __init__(self, log: EventLog, sealed: EventsSealed) -> None:
        self.log = log
        self.sealed = sealed
        self.closing = False

    def close(self) -> None:
        self.closing = True
        self.sealed.pulse()


LIVE_EVENTS = web.AppKey("live_events", LiveEvents)
POLL_SECONDS = 1.0  # other nodes' events; this node's wake readers at once
PING_SECONDS = 15.0


def _last_event_id(request: web.Request) -> int:
    text = request.headers.get("Last-Event-ID", request.query.get("after", "0")).strip()
    if not text.isdigit():
        raise ApiError(400, "invalid_request",
                       "Last-Event-ID: must be the id of an event this stream sent",
                       [{"field": "Last-Event-ID", "message": "must be a whole number"}])
    return int(text)


async def broadcast_events(request: web.Request) -> web.StreamResponse:
    """`GET /voice/call/{request_id}/events`: one broadcast's events and progress."""
    try:
        broadcast_id = str(uuid.UUID(request.match_info["request_id"]))
    except ValueError as error:
        raise not_found("request") from error
    status = await request.app[QUERIES].status(broadcast_id, request[TENANT])
    if status is None:
        raise not_found("request")
    return await _stream(request, broadcast_id)


async def tenant_events(request: web.Request) -> web.StreamResponse:
    """`GET /events`: every event of the tenant's broadcasts."""
    return await _stream(request, None)


async def _stream(request: web.Request, broadcast_id: str | None) -> web.StreamResponse:
    after = _last_event_id(request)
    tenant = request[TENANT]
    live = request.app[LIVE_EVENTS]
    queries = request.app[QUERIES]
    async with sse_response(request) as stream:
        stream.ping_interval = PING_SECONDS
        if broadcast_id is not None:
            await _send_progress(stream, queries, broadcast_id, tenant)
        while stream.is_connected() and not live.closing:
            events, after = await live.log.sealed_after(after, tenant=tenant,
                                                        broadcast_id=broadcast_id)
            for event in events:
                await stream.send(event.body, id=str(event.seq), event=event.type)
            for touched in sorted({event.broadcast_id for event in events}):
                await _send_progress(stream, queries, touched, tenant)
            if not events:
                await live.sealed.wait(POLL_SECONDS)
    return stream


async def _send_progress(stream: EventSourceResponse, queries: ReportQueries,
                         broadcast_id: str, tenant: str) -> None:
    status = await queries.status(broadcast_id, tenant)
    if status is not None:
        await stream.send(json.dumps({"request_id": broadcast_id,
                                      "progress": progress_object(status.progress)},
                                     separators=(",", ":")), event="progress")


async def _end_streams(app: web.Application) -> None:
    if LIVE_EVENTS in app:
        app[LIVE_EVENTS].close()


def add_live_event_routes(app: web.Application) -> None:
    app.on_shutdown.append(_end_streams)
    app.router.add_get("/events", tenant_events)
    app.router.add_get("/voice/call/{request_id:[0-9A-Fa-f-]{32,36}}/events", broadcast_events)
