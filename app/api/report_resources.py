"""`GET /report/{id}` (streamed, paged, filtered; JSON, CSV or NDJSON) and its summary."""

from __future__ import annotations

import uuid

from aiohttp import web

from app.api.auth import TENANT
from app.api.envelope import not_found, ok
from app.api.records import progress_object
from app.api.report_output import report_response
from app.api.report_params import record_filter, report_view
from app.services.reports import Report, ReportQueries


class ReportResources:
    """The handlers, reading through the app's report queries under `queries`."""

    def __init__(self, queries: web.AppKey[ReportQueries]) -> None:
        self._queries = queries

    async def _found(self, request: web.Request) -> tuple[str, Report]:
        try:
            report_id = str(uuid.UUID(request.match_info["report_id"]))
        except ValueError as error:
            raise not_found("report") from error
        found = await request.app[self._queries].report(report_id, request[TENANT])
        if found is None:
            raise not_found("report")
        return report_id, found

    async def report(self, request: web.Request) -> web.StreamResponse:
        view = report_view(request.query, request.headers.get("Accept"))
        report_id, found = await self._found(request)
        return await report_response(request, report_id, found, view,
                                     request.app[self._queries])

    async def summary(self, request: web.Request) -> web.Response:
        """Counts by result and SIP code, answered, answer rate and mean duration."""
        chosen = record_filter(request.query)
        report_id, found = await self._found(request)
        summary = await request.app[self._queries].summary(found, chosen)
        return ok({"report_status": "ready" if found.ready else "pending",
                   "progress": progress_object(found.progress),
                   "summary": {"records": summary.records, "by_result": summary.by_result,
                               "by_sip_code": summary.by_sip_code,
                               "answered": summary.answered, "ended": summary.ended,
                               "answer_rate": summary.answer_rate,
                               "mean_duration": summary.mean_duration}},
                  request_id=report_id)


def add_report_routes(app: web.Application, queries: web.AppKey[ReportQueries]) -> None:
    resources = ReportResources(queries)
    for prefix in ("/report", "/reports"):
        app.router.add_get(prefix + "/{report_id}", resources.report)
        app.router.add_get(prefix + "/{report_id}/summary", resources.summary)
