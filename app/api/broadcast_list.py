"""`GET /voice/calls`: the caller's broadcasts, newest first, with progress, in cursor pages.

Query parameters are checked by hand, not coerced: a value the OpenAPI document does not allow is
a 400 naming the parameter (a number for a time, `1.5` for a count), never guessed at.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from app.adapters.db.broadcast_list import CursorNotFound
from app.api.auth import TENANT
from app.api.envelope import ApiError, ok
from app.api.records import format_time, progress_object, report_location
from app.domain.broadcasts import (
    BROADCAST_STATUSES,
    BroadcastFilter,
    BroadcastStatus,
    ListedBroadcast,
    broadcast_status,
)
from app.services.broadcast_finder import BroadcastFinder

PATH = "/voice/calls"
FINDER = web.AppKey("broadcast_finder", BroadcastFinder)
DEFAULT_LIMIT = 20
MAX_LIMIT = 100
UUID_PATTERN = (r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                r"[0-9a-fA-F]{12}$")
# RFC 3339 date-time, what the document's `format: date-time` means.
RFC3339 = re.compile(r"(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")
_FILTERS = ("status", "created_after", "created_before")


def _invalid(field: str, message: str) -> ApiError:
    return ApiError(400, "invalid_request", f"{field}: {message}",
                    [{"field": field, "message": message}])


def parse_time(field: str, text: str) -> datetime:
    """An RFC 3339 date-time, in UTC."""
    match = RFC3339.fullmatch(text)
    if match is None:
        raise _invalid(field, "must be an RFC 3339 date-time like 2026-11-26T14:10:37Z")
    day, minutes, seconds, fraction, offset = match.groups()
    # A leap second is valid RFC 3339 but not a Python time: the last second before it.
    seconds = "59" if seconds == "60" else seconds
    offset = "+00:00" if offset in ("Z", "z") else offset
    try:
        moment = datetime.fromisoformat(f"{day}T{minutes}:{seconds}{fraction or ''}{offset}")
    except ValueError as error:
        raise _invalid(field, "is not a real date and time") from error
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # years 1 and 9999 with an offset that leaves the calendar
        return datetime.min.replace(tzinfo=UTC) if moment.year == 1 else \
            datetime.max.replace(tzinfo=UTC)


def _limit(text: str | None) -> int:
    if text is None:
        return DEFAULT_LIMIT
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        raise _invalid("limit", f"must be a whole number from 1 to {MAX_LIMIT}")
    return int(text)


def _status(text: str | None) -> BroadcastStatus | None:
    if text is None:
        return None
    for status in BROADCAST_STATUSES:
        if text == status:
            return status
    raise _invalid("status", f"must be one of {', '.join(BROADCAST_STATUSES)}")


def _after(text: str | None) -> str | None:
    if text is None:
        return None
    if re.fullmatch(UUID_PATTERN, text) is None:
        raise _invalid("after", "must be a request id from a previous page's `next`")
    return text.lower()


def listed_broadcast(listed: ListedBroadcast) -> dict[str, Any]:
    summary, progress = listed.summary, listed.progress
    return {
        "request_id": summary.id,
        "created_time": format_time(summary.created_at),
        "from": summary.caller,
        "status": broadcast_status(progress),
        "cancelled": summary.cancelled_at is not None,
        "progress": progress_object(progress),
        "answered": listed.answered,
        "report": {"id": summary.report_id, "location": report_location(summary.report_id)},
    }


async def list_broadcasts(request: web.Request) -> web.Response:
    query = request.query
    which = BroadcastFilter(
        status=_status(query.get("status")),
        created_after=(None if "created_after" not in query
                       else parse_time("created_after", query["created_after"])),
        created_before=(None if "created_before" not in query
                        else parse_time("created_before", query["created_before"])))
    limit = _limit(query.get("limit"))
    try:
        page = await request.app[FINDER].page(request[TENANT], which, limit,
                                              _after(query.get("after")))
    except CursorNotFound as error:
        raise ApiError(404, "not_found", "after: no request with that id",
                       [{"field": "after", "message": "no request with that id"}]) from error
    following = None
    if page.next_after is not None:
        kept = {name: query[name] for name in _FILTERS if name in query}
        following = f"{PATH}?{urlencode({**kept, 'limit': limit, 'after': page.next_after})}"
    return ok({"broadcasts": [listed_broadcast(item) for item in page.broadcasts],
               "next": following}, request_id="")


def add_broadcast_list_route(app: web.Application) -> None:
    app.router.add_get(PATH, list_broadcasts)
