"""The JSON envelope of every answer, and the API's error types mapped at one boundary."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error the client can act on: a stable name, an HTTP status and a clear message."""

    def __init__(self, status: int, error: str, message: str,
                 details: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.details = details or []


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"no {what} with that id")


def ok(payload: dict[str, Any], *, request_id: str) -> web.Response:
    body = {"code": 0, "status": 200, "data": "accepted", "request_id": request_id, **payload}
    return web.json_response(body)


def error_response(error: ApiError) -> web.Response:
    body: dict[str, Any] = {"code": _code(error),
                            "status": error.status, "data": error.error, "error": error.error,
                            "message": error.message}
    if error.details:
        body["details"] = error.details
    return web.json_response(body, status=error.status)


# Stable numeric codes for `code` (0 means success).
ERROR_CODES = {
    "invalid_request": 1001, "invalid_json": 1002, "unsupported_media_type": 1003,
    "body_too_large": 1004, "media_unusable": 1005, "too_many_recipients": 1006,
    "too_many_items": 1007, "text_too_long": 1008, "idempotency_conflict": 1409,
    "unauthorized": 1401, "not_ready": 1503, "not_found": 1404, "method_not_allowed": 1405,
    "internal_error": 1500, "missing_variables": 1009, "address_refused": 1010,
    "report_pending": 1011, "invalid_upload": 1012, "upload_timeout": 1408,
}


def _code(error: ApiError) -> int:
    return ERROR_CODES.get(error.error, 1000)


@web.middleware
async def error_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Every failure leaves as the envelope; nothing internal reaches the client."""
    try:
        return await handler(request)
    except ApiError as error:
        return error_response(error)
    except web.HTTPRequestEntityTooLarge:
        return error_response(ApiError(413, "body_too_large", "the request body is too large"))
    except web.HTTPNotFound:
        return error_response(ApiError(404, "not_found", "no such resource"))
    except web.HTTPMethodNotAllowed as refused:
        response = error_response(ApiError(405, "method_not_allowed",
                                           f"{request.method} is not allowed here"))
        # RFC 9110: a 405 names the methods the resource does support.
        response.headers["Allow"] = ", ".join(sorted(refused.allowed_methods))
        return response
    except web.HTTPException:
        raise
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(ApiError(500, "internal_error", "internal error"))


async def read_json(request: web.Request) -> Any:
    if request.content_type != "application/json":
        raise ApiError(415, "unsupported_media_type", "send the body as application/json")
    raw = await request.read()
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise ApiError(400, "invalid_json", "the body is not valid UTF-8 JSON") from error
