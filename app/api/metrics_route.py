"""`GET /metrics`: Prometheus's text format, for operator tenants only (like /monitor)."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from app.api.auth import OPEN_TENANT, TENANT
from app.api.envelope import not_found
from app.api.routes import OPERATORS
from app.services.metrics import ServiceMetrics

METRICS = web.AppKey("metrics", ServiceMetrics)


async def metrics(request: web.Request) -> web.Response:
    tenant = request[TENANT]
    if tenant not in request.app[OPERATORS] and tenant != OPEN_TENANT:
        raise not_found("resource")
    body = await request.app[METRICS].text()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def add_metrics_route(app: web.Application) -> None:
    app.router.add_get("/metrics", metrics)
