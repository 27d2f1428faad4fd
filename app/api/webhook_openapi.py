"""The OpenAPI part for webhooks, live events and metrics: response models, examples, paths."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.api import examples as x
from app.api.responses import Envelope

JSON = "application/json"
WEBHOOK_ID = "5b9d2c1e-7a3f-4e6d-8c2b-1f0e9d8c7b6a"
DELIVERY_ID = "8e7d6c5b-4a39-4281-9f0e-d1c2b3a4f5e6"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # noqa: S105 - a documentation example


class Webhook(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str
    url: str
    events: list[str] | None = Field(description="the event types sent; null: all")
    active: bool = Field(description="false once the receiver answered 410 Gone")
    created_at: str
    disabled_at: str | None
    disabled_reason: str | None


class WebhookAdded(Envelope):
    webhook: Webhook


class WebhookList(Envelope):
    webhooks: list[Webhook]


class WebhookDeleted(Envelope):
    deleted: str


class SigningSecret(Envelope):
    """Verify `webhook-signature` with it (Standard Webhooks, HMAC-SHA256)."""

    secret: Annotated[str, Field(pattern=r"^whsec_[A-Za-z0-9+/=]+$")]
    previous_valid_until: str | None = Field(
        description="during a rotation, until when the previous secret also signs")


class Delivery(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str
    webhook_id: str = Field(description="the `webhook-id` header: the same on every attempt")
    type: Literal["call.ringing", "call.answered", "call.ended", "broadcast.completed"]
    request_id: str
    subscription_id: str | None = Field(description="null: the request's own callback_url")
    url: str
    state: Literal["pending", "delivered", "failed", "gone"]
    attempts: Annotated[int, Field(ge=0)]
    next_attempt_at: str | None
    last_status: int | None
    last_error: str | None
    created_at: str
    delivered_at: str | None


class DeliveryList(Envelope):
    deliveries: list[Delivery]
    next: str | None = Field(description="pass as `before` for the next page; null: no more")


class DeliveryReplayed(Envelope):
    delivery: Delivery


RESPONSE_MODELS: tuple[type[BaseModel], ...] = (
    WebhookAdded, WebhookList, WebhookDeleted, SigningSecret, DeliveryList, DeliveryReplayed)

_WEBHOOK = {"id": WEBHOOK_ID, "url": "https://hooks.example/voxcast", "events": None,
            "active": True, "created_at": "2026-12-03T12:00:00+00:00", "disabled_at": None,
            "disabled_reason": None}
_DELIVERY = {"id": DELIVERY_ID, "webhook_id": "msg_2b7c4e1f9a8d4c3b8e6f5a4d3c2b1a09",
             "type": "call.ended", "request_id": x.REQUEST_ID, "subscription_id": WEBHOOK_ID,
             "url": "https://hooks.example/voxcast", "state": "delivered", "attempts": 2,
             "next_attempt_at": None, "last_status": 200, "last_error": None,
             "created_at": "2026-12-03T12:00:05+00:00",
             "delivered_at": "2026-12-03T12:00:10+00:00"}
REFUSED_URL = x.error(422, "address_refused", "url: points at a refused address (loopback)",
                      [{"field": "url", "message": "points at a refused address (loopback)"}])
BAD_QUERY = x.error(400, "invalid_request", "state: must be one of pending, delivered, "
                    "failed, gone", [{"field": "state", "message": "must be one of pending, "
                                                               "delivered, failed, gone"}])
NO_WEBHOOK = x.error(404, "not_found", "no webhook with that id")
NO_DELIVERY = x.error(404, "not_found", "no delivery with that id")
BAD_LAST_EVENT_ID = x.error(400, "invalid_request",
                            "Last-Event-ID: must be the id of an event this stream sent",
                            [{"field": "Last-Event-ID", "message": "must be a whole number"}])
SSE_EXAMPLE = ('id: 42\nevent: call.ended\ndata: {"type":"call.ended","timestamp":'
               '"2026-12-03T12:00:04Z","data":{"request_id":"...","record":{...}}}\n\n'
               'event: progress\ndata: {"request_id":"...","progress":{...}}\n\n')


def _uuid(name: str, description: str, example: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": {"type": "string", "format": "uuid"}, "example": example}


def _last_event_id() -> dict[str, Any]:
    return {"name": "Last-Event-ID", "in": "header", "required": False,
            "description": "resume after this event id (EventSource sends it on reconnect)",
            "schema": {"type": "string", "pattern": r"^\d{1,18}$"}, "example": "42"}


def _stream(summary: str, description: str, operation_id: str,
            parameters: list[dict[str, Any]], error: Callable[..., Any],
            unauthorized: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    return {"get": {
        "operationId": operation_id, "summary": summary, "description": description,
        "parameters": [*parameters, _last_event_id()],
        "responses": {
            "200": {"description": "a text/event-stream that stays open",
                    "content": {"text/event-stream": {"schema": {"type": "string"},
                                                      "example": SSE_EXAMPLE}}},
            "400": error("Last-Event-ID is not an event id", BAD_LAST_EVENT_ID),
            "401": unauthorized, **extra}}}


def webhook_paths(json_answer: Callable[..., dict[str, Any]], error: Callable[..., Any],
                  ref: Callable[[str], dict[str, str]],
                  unauthorized: dict[str, Any]) -> dict[str, Any]:
    """The paths of webhooks, live events and metrics, in openapi.py's own shapes."""
    envelope = x._envelope  # noqa: SLF001 - the one envelope the examples share
    deliveries_query = [
        {"name": "state", "in": "query", "required": False, "example": "failed",
         "schema": {"type": "string", "enum": ["pending", "delivered", "failed", "gone"]}},
        {"name": "request_id", "in": "query", "required": False, "example": x.REQUEST_ID,
         "schema": {"type": "string", "format": "uuid"}},
        {"name": "limit", "in": "query", "required": False, "example": "100",
         "schema": {"type": "string", "pattern": r"^(?:[1-9]\d{0,1}|[1-4]\d\d|500)$"}},
        {"name": "before", "in": "query", "required": False, "example": DELIVERY_ID,
         "description": "the `next` of the previous page",
         "schema": {"type": "string", "format": "uuid"}},
    ]
    return {
        "/webhooks": {
            "post": {
                "operationId": "add_webhook",
                "summary": "Subscribe a URL to the tenant's events",
                "description": ("Events are POSTed as JSON, signed as Standard Webhooks "
                                "(`webhook-id`, `webhook-timestamp`, `webhook-signature`) "
                                "with the tenant's secret (GET /webhooks/secret). Retries "
                                "back off over about a day and honour `Retry-After`; a 410 "
                                "answer disables the subscription."),
                "requestBody": {"required": True, "content": {JSON: {
                    "schema": ref("WebhookSubscriptionRequest"),
                    "example": {"url": "https://hooks.example/voxcast",
                                "events": ["call.ended", "broadcast.completed"]}}}},
                "responses": {
                    "200": json_answer("subscribed", ref("WebhookAdded"),
                                       envelope(WEBHOOK_ID, webhook=_WEBHOOK)),
                    "400": error("invalid fields; `details` names each", x.error(
                        400, "invalid_request", "url: String should match pattern ...",
                        [{"field": "url", "message": "String should match pattern ..."}])),
                    "401": unauthorized,
                    "415": error("the body is not application/json", x.NOT_JSON),
                    "422": error("a well-formed URL this service will not send to "
                                 "(loopback, link-local, metadata); error `address_refused`",
                                 REFUSED_URL),
                }},
            "get": {
                "operationId": "list_webhooks",
                "summary": "The tenant's subscriptions",
                "responses": {
                    "200": json_answer("the subscriptions", ref("WebhookList"),
                                       envelope("", webhooks=[_WEBHOOK])),
                    "401": unauthorized,
                }}},
        "/webhooks/{webhook_id}": {"delete": {
            "operationId": "remove_webhook",
            "summary": "Delete a subscription (its deliveries not yet made are dropped)",
            "parameters": [_uuid("webhook_id", "the subscription's id", WEBHOOK_ID)],
            "responses": {
                "200": json_answer("deleted", ref("WebhookDeleted"),
                                   envelope(WEBHOOK_ID, deleted=WEBHOOK_ID)),
                "401": unauthorized,
                "404": error("no such subscription", NO_WEBHOOK),
            }}},
        "/webhooks/secret": {"get": {
            "operationId": "webhook_secret",
            "summary": "The tenant's signing secret (made on first use)",
            "responses": {
                "200": json_answer("the secret", ref("SigningSecret"),
                                   envelope("", secret=SECRET, previous_valid_until=None)),
                "401": unauthorized,
            }}},
        "/webhooks/secret/rotate": {"post": {
            "operationId": "rotate_webhook_secret",
            "summary": "A new signing secret; the previous one also signs for a while",
            "responses": {
                "200": json_answer("the new secret", ref("SigningSecret"), envelope(
                    "", secret=SECRET, previous_valid_until="2026-12-04T12:00:00+00:00")),
                "401": unauthorized,
            }}},
        "/webhooks/deliveries": {"get": {
            "operationId": "list_deliveries",
            "summary": "Deliveries, newest first",
            "parameters": deliveries_query,
            "responses": {
                "200": json_answer("a page of deliveries", ref("DeliveryList"),
                                   envelope("", deliveries=[_DELIVERY], next=None)),
                "400": error("a bad filter", BAD_QUERY),
                "401": unauthorized,
                "404": error("`request_id` or `before` is not an id", NO_DELIVERY),
            }}},
        "/webhooks/deliveries/{delivery_id}/replay": {"post": {
            "operationId": "replay_delivery",
            "summary": "Send a delivery again now (the same webhook-id)",
            "parameters": [_uuid("delivery_id", "the delivery's id", DELIVERY_ID)],
            "responses": {
                "200": json_answer("queued again", ref("DeliveryReplayed"), envelope(
                    DELIVERY_ID, delivery={**_DELIVERY, "state": "pending", "attempts": 0,
                                           "delivered_at": None,
                                           "next_attempt_at": "2026-12-03T12:01:00+00:00"})),
                "401": unauthorized,
                "404": error("no such delivery", NO_DELIVERY),
            }}},
        "/events": _stream(
            "Live events of all the tenant's broadcasts (Server-Sent Events)",
            "Each event's `id` is its place in the event log; `progress` events carry none.",
            "tenant_events", [], error, unauthorized, {}),
        "/voice/call/{request_id}/events": _stream(
            "Live events of one broadcast (Server-Sent Events)",
            "Its calls' state changes and its progress; resumable with Last-Event-ID.",
            "broadcast_events", [_uuid("request_id", "the request id", x.REQUEST_ID)], error,
            unauthorized, {"404": error("no such request", x.NOT_FOUND)}),
        "/metrics": {"get": {
            "operationId": "metrics",
            "summary": "Prometheus metrics, for operator tenants",
            "description": ("Prometheus's text format; only tenants named in "
                            "VOXCAST_OPERATOR_TENANTS (or any caller in open mode)."),
            "responses": {
                "200": {"description": "the metrics", "content": {"text/plain": {
                    "schema": {"type": "string"},
                    "example": "# TYPE voxcast_calls_total counter\n"
                               'voxcast_calls_total{result="completed",sip_class="2xx",'
                               'media_server="default"} 97.0\n'}}},
                "401": unauthorized,
                "404": error("the caller is not an operator", x.NOT_OPERATOR),
            }}},
    }
