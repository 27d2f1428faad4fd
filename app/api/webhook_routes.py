"""HTTP resources for webhooks: subscriptions, the signing secret, deliveries and replays."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from app.adapters.db.webhook_store import WebhookStore
from app.api.auth import TENANT
from app.api.callbacks import refuse_address
from app.api.envelope import ApiError, not_found, ok, read_json
from app.api.models import WebhookSubscriptionRequest
from app.api.routes import validation_error
from app.domain.webhooks import Delivery, SigningSecrets, Subscription

WEBHOOKS = web.AppKey("webhooks", WebhookStore)
SECRET_OVERLAP = web.AppKey("webhook_secret_overlap", int)
DELIVERY_STATES = ("pending", "delivered", "failed", "gone")
MAX_LISTED = 500


def _subscription(found: Subscription) -> dict[str, Any]:
    return {"id": found.id, "url": found.url,
            "events": None if found.events is None else list(found.events),
            "active": found.disabled_at is None,
            "created_at": found.created_at.isoformat(),
            "disabled_at": found.disabled_at.isoformat() if found.disabled_at else None,
            "disabled_reason": found.disabled_reason}


def _delivery(found: Delivery) -> dict[str, Any]:
    return {"id": found.id, "webhook_id": found.webhook_id, "type": found.event_type,
            "request_id": found.broadcast_id, "subscription_id": found.subscription_id,
            "url": found.url, "state": found.state, "attempts": found.attempts,
            "next_attempt_at": found.next_attempt_at.isoformat()
            if found.next_attempt_at else None,
            "last_status": found.last_status, "last_error": found.last_error,
            "created_at": found.created_at.isoformat(),
            "delivered_at": found.delivered_at.isoformat() if found.delivered_at else None}


def _secret(secrets: SigningSecrets) -> dict[str, Any]:
    return {"secret": secrets.current,
            "previous_valid_until": secrets.previous_until.isoformat()
            if secrets.previous_until and secrets.previous else None}


async def add_subscription(request: web.Request) -> web.Response:
    body = await read_json(request)
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_request", "body: must be a JSON object")
    try:
        wanted = WebhookSubscriptionRequest.model_validate(body)
    except ValidationError as error:
        raise validation_error(error) from error
    refuse_address(request, wanted.url, "url")
    added = await request.app[WEBHOOKS].add_subscription(request[TENANT], wanted.url,
                                                         wanted.events)
    return ok({"webhook": _subscription(added)}, request_id=added.id)


async def list_subscriptions(request: web.Request) -> web.Response:
    found = await request.app[WEBHOOKS].subscriptions(request[TENANT])
    return ok({"webhooks": [_subscription(item) for item in found]}, request_id="")


async def remove_subscription(request: web.Request) -> web.Response:
    subscription_id = _uuid(request.match_info["webhook_id"], "webhook")
    if not await request.app[WEBHOOKS].remove_subscription(request[TENANT], subscription_id):
        raise not_found("webhook")
    return ok({"deleted": subscription_id}, request_id=subscription_id)


async def signing_secret(request: web.Request) -> web.Response:
    """`GET /webhooks/secret`: the tenant's `whsec_` secret (made on first use)."""
    secrets = await request.app[WEBHOOKS].signing_secrets(request[TENANT])
    return ok(_secret(secrets), request_id="")


async def rotate_secret(request: web.Request) -> web.Response:
    """`POST /webhooks/secret/rotate`: a new secret; the old one also signs for a while."""
    overlap = timedelta(seconds=request.app[SECRET_OVERLAP])
    secrets = await request.app[WEBHOOKS].rotate_secret(request[TENANT], overlap)
    return ok(_secret(secrets), request_id="")


async def list_deliveries(request: web.Request) -> web.Response:
    query = request.query
    state = query.get("state")
    if state is not None and state not in DELIVERY_STATES:
        raise _bad_query("state", f"must be one of {', '.join(DELIVERY_STATES)}")
    limit_text = query.get("limit", "100")
    if not limit_text.isdigit() or not 1 <= int(limit_text) <= MAX_LISTED:
        raise _bad_query("limit", f"must be a whole number from 1 to {MAX_LISTED}")
    request_id = query.get("request_id")
    before = query.get("before")
    found = await request.app[WEBHOOKS].deliveries(
        request[TENANT], state=state,
        broadcast_id=None if request_id is None else _uuid(request_id, "request"),
        limit=int(limit_text), before=None if before is None else _uuid(before, "delivery"))
    page: dict[str, Any] = {"deliveries": [_delivery(item) for item in found]}
    page["next"] = found[-1].id if len(found) == int(limit_text) else None
    return ok(page, request_id="")


async def replay_delivery(request: web.Request) -> web.Response:
    delivery_id = _uuid(request.match_info["delivery_id"], "delivery")
    replayed = await request.app[WEBHOOKS].replay(request[TENANT], delivery_id)
    if replayed is None:
        raise not_found("delivery")
    return ok({"delivery": _delivery(replayed)}, request_id=delivery_id)


def _bad_query(field: str, message: str) -> ApiError:
    return ApiError(400, "invalid_request", f"{field}: {message}",
                    [{"field": field, "message": message}])


def _uuid(text: str, what: str) -> str:
    try:
        return str(uuid.UUID(text))
    except ValueError as error:
        raise not_found(what) from error


def add_webhook_routes(app: web.Application) -> None:
    app.router.add_post("/webhooks", add_subscription)
    app.router.add_get("/webhooks", list_subscriptions)
    app.router.add_get("/webhooks/secret", signing_secret)
    app.router.add_post("/webhooks/secret/rotate", rotate_secret)
    app.router.add_get("/webhooks/deliveries", list_deliveries)
    app.router.add_post("/webhooks/deliveries/{delivery_id}/replay", replay_delivery)
    app.router.add_delete("/webhooks/{webhook_id:[0-9A-Fa-f-]{32,36}}", remove_subscription)
