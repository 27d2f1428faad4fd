"""The report's query string: filters, a cursor page and a format, checked before any read.

Everything is validated here, before the answer starts, because a streamed answer cannot turn
into a 400 once its first bytes are out. A bad value is a 400 `invalid_request` naming the
parameter; so is an unknown or repeated one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from multidict import MultiMapping

from app.api.envelope import ApiError
from app.domain.report_query import RESULTS, Cursor, RecordFilter, RecordWindow

Format = Literal["json", "csv", "ndjson"]
MEDIA_TYPES: Mapping[Format, str] = {"json": "application/json", "csv": "text/csv",
                                     "ndjson": "application/x-ndjson"}
# Accept values that choose a format; anything else (or nothing) gets JSON.
_ACCEPTED: Mapping[str, Format] = {"text/csv": "csv", "application/x-ndjson": "ndjson",
                                   "application/ndjson": "ndjson",
                                   "application/json": "json"}
MAX_PAGE = 10_000
# The patterns the OpenAPI document publishes are the ones checked here.
RESULT_PATTERN = rf"^(?:{'|'.join(RESULTS)})(?:,(?:{'|'.join(RESULTS)}))*$"
SIP_CODE_PATTERN = r"^(?:[1-6][0-9]{2}|none)(?:,(?:[1-6][0-9]{2}|none))*$"
LIMIT_PATTERN = r"^[0-9]{1,5}$"
FILTERS = ("result", "answered", "sip_code")
PAGING = ("limit", "after", "format")


@dataclass(frozen=True, slots=True)
class ReportView:
    window: RecordWindow
    format: Format


def _refuse(name: str, message: str) -> ApiError:
    return ApiError(400, "invalid_request", f"{name}: {message}",
                    [{"field": name, "message": message}])


def _single(query: MultiMapping[str], allowed: tuple[str, ...]) -> dict[str, str]:
    values: dict[str, str] = {}
    for name, value in query.items():
        if name not in allowed:
            raise _refuse(name, f"is not a parameter here (known: {', '.join(allowed)})")
        if name in values:
            raise _refuse(name, "given more than once; separate several values with commas")
        values[name] = value
    return values


def _matches(pattern: str, value: str) -> bool:
    return re.fullmatch(pattern, value) is not None


def record_filter(query: MultiMapping[str], *, extra: tuple[str, ...] = ()) -> RecordFilter:
    """`result`, `answered` and `sip_code`; `extra` names the other parameters allowed."""
    values = _single(query, FILTERS + extra)
    results = answered = sip_codes = None
    if "result" in values:
        if not _matches(RESULT_PATTERN, values["result"]):
            raise _refuse("result", f"must be one or more of {', '.join(RESULTS)}, "
                                    "separated by commas")
        results = frozenset(values["result"].split(","))
    if "answered" in values:
        if values["answered"] not in ("true", "false"):
            raise _refuse("answered", "must be true or false")
        answered = values["answered"] == "true"
    if "sip_code" in values:
        if not _matches(SIP_CODE_PATTERN, values["sip_code"]):
            raise _refuse("sip_code", "must be SIP codes (100-699) or `none`, "
                                      "separated by commas")
        sip_codes = frozenset(None if code == "none" else int(code)
                              for code in values["sip_code"].split(","))
    return RecordFilter(results, answered, sip_codes)


def report_view(query: MultiMapping[str], accept: str | None) -> ReportView:
    """What `GET /report/{id}` is asked for: filters, a page, a format (`format` over
    `Accept`)."""
    chosen = record_filter(query, extra=PAGING)
    values = _single(query, FILTERS + PAGING)
    limit = after = None
    if "limit" in values:
        text = values["limit"]
        if not _matches(LIMIT_PATTERN, text) or not 1 <= int(text) <= MAX_PAGE:
            raise _refuse("limit", f"must be a whole number from 1 to {MAX_PAGE}")
        limit = int(text)
    if "after" in values:
        after = Cursor.parse(values["after"])
        if after is None:
            raise _refuse("after", "must be the cursor of a `next` link, as given")
    if "format" in values:
        if values["format"] not in MEDIA_TYPES:
            raise _refuse("format", f"must be one of {', '.join(MEDIA_TYPES)}")
        format_: Format = values["format"]  # type: ignore[assignment]
    else:
        format_ = _negotiated(accept)
    return ReportView(RecordWindow(chosen, after, limit), format_)


def _negotiated(accept: str | None) -> Format:
    """The supported type the client prefers most (by q-value, then order); JSON otherwise."""
    best: tuple[float, Format] = (0.0, "json")
    for part in (accept or "").split(","):
        media_type, *parameters = (piece.strip() for piece in part.split(";"))
        chosen = _ACCEPTED.get(media_type.lower())
        if chosen is None:
            continue
        quality = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality > best[0]:
            best = (quality, chosen)
    return best[1]
