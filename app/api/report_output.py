"""A report's records written as they are read: JSON (the founding envelope), CSV or NDJSON.

The head and the first batch are read before the status line goes out, so every error the
client can act on (an unknown report, a bad parameter, a database that does not answer) is
still a proper 4xx or 5xx envelope. A failure after that cannot change the status any more:
the connection is then cut before the last chunk, so the client sees an incomplete body, never
a short one that looks whole.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web

from app.api.envelope import ApiError, ok
from app.api.records import call_record, progress_object
from app.api.report_params import MEDIA_TYPES, ReportView
from app.api.responses import CallRecord as RecordSchema
from app.services.reports import Report, ReportQueries

log = logging.getLogger(__name__)
_RECORDS_MARK = "\u0000records\u0000"  # no value of the envelope can contain it

# CSV columns: the report's documented fields, in order (the OpenAPI CallRecord's).
CSV_FIELDS = tuple(field.alias or name for name, field in RecordSchema.model_fields.items())


def csv_cell(value: Any) -> str:
    """A record's value in a CSV cell: empty for null, lists and objects as compact JSON."""
    if value is None:
        return ""
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _json_records(records: list[dict[str, Any]]) -> bytes:
    # json.dumps with its default separators: byte for byte what web.json_response wrote when
    # the report was one document built in memory. One call for the batch, brackets cut off.
    return json.dumps(records)[1:-1].encode()


def csv_rows(records: list[dict[str, Any]]) -> bytes:
    """CSV lines of these records (no header: that is CSV_FIELDS)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerows([csv_cell(record.get(name)) for name in CSV_FIELDS] for record in records)
    return out.getvalue().encode()


def ndjson_lines(records: list[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(record) + b"\n" for record in records)


async def report_response(request: web.Request, report_id: str, report: Report,
                          view: ReportView, queries: ReportQueries) -> web.StreamResponse:
    window = view.window
    if not report.ready:
        if view.format != "json":
            raise ApiError(409, "report_pending",
                           f"the report is not ready: {report.progress.completed} of "
                           f"{report.progress.total} calls have ended; try again later")
        pending: dict[str, Any] = {"report_status": "pending",
                                   "progress": progress_object(report.progress)}
        if window.limit is not None:
            pending["next"] = None
        return ok({**pending, "records": [], "report_request_id": report.broadcast.id},
                  request_id=report_id)
    after = await queries.next_page(report, window) if window.limit is not None else None
    batches = queries.record_batches(report, window)
    try:
        first = await anext(batches, None)  # the cursor is open before anything is sent
        link = None if after is None else str(
            request.rel_url.update_query(after=after.token()))
        response = _streamed(report_id, view, link)
        await response.prepare(request)
        head, shaped, tail = _framing(report_id, report, view, link)
        try:
            await response.write(head)
            separator = b""
            batch = first
            while batch is not None:
                if batch:
                    await response.write(separator + shaped([call_record(c) for c in batch]))
                    separator = b", " if view.format == "json" else b""
                batch = await anext(batches, None)
            await response.write(tail)
        except ConnectionError:
            log.info("report %s: the client left before the end", report_id)
        except Exception:
            log.exception("report %s failed after its answer began; cutting the connection",
                          report_id)
            if request.transport is not None:
                request.transport.abort()
        return response
    finally:
        await batches.aclose()


def _streamed(report_id: str, view: ReportView, link: str | None) -> web.StreamResponse:
    response = web.StreamResponse()
    response.content_type = MEDIA_TYPES[view.format]
    response.charset = "utf-8"
    if view.format != "json":
        response.headers["Content-Disposition"] = (
            f'attachment; filename="report-{report_id}.{view.format}"')
    if link is not None:
        response.headers["Link"] = f'<{link}>; rel="next"'
    response.enable_chunked_encoding()
    return response


def _framing(report_id: str, report: Report, view: ReportView, link: str | None
             ) -> tuple[bytes, Callable[[list[dict[str, Any]]], bytes], bytes]:
    """What comes before the records, how a batch of them is written, and what ends it."""
    if view.format == "csv":
        return ",".join(CSV_FIELDS).encode() + b"\n", csv_rows, b""
    if view.format == "ndjson":
        return b"", ndjson_lines, b""
    head: dict[str, Any] = {"code": 0, "status": 200, "data": "accepted",
                            "request_id": report_id, "report_status": "ready",
                            "progress": progress_object(report.progress)}
    if view.window.limit is not None:
        head["next"] = link
    # The whole envelope with a marker for the records, cut in two around it.
    document = json.dumps({**head, "records": _RECORDS_MARK,
                           "report_request_id": report.broadcast.id})
    before, after = document.split(json.dumps(_RECORDS_MARK))
    return f"{before}[".encode(), _json_records, f"]{after}".encode()

