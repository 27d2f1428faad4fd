"""Webhook destinations as a client gives them: checked against the address policy."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from app.adapters.media.address_policy import AddressPolicy
from app.adapters.webhooks.sender import check_url
from app.api.envelope import ApiError
from app.api.models import PlayRequest

WEBHOOK_POLICY = web.AppKey("webhook_policy", AddressPolicy)


def refuse_address(request: web.Request, url: str, field: str) -> None:
    """A well-formed URL this service will not send to (loopback, link-local, metadata...):
    422, like media it cannot use."""
    refused = check_url(url, request.app[WEBHOOK_POLICY])
    if refused is not None:
        raise ApiError(422, "address_refused", f"{field}: {refused}",
                       [{"field": field, "message": refused}])


def callback_of(request: web.Request, play: PlayRequest) -> dict[str, Any] | None:
    """The request's own webhook as stored, after the address policy; None without one."""
    if play.callback_url is None:
        return None
    refuse_address(request, play.callback_url, "callback_url")
    return {"url": play.callback_url,
            "events": None if play.callback_events is None else list(play.callback_events)}
