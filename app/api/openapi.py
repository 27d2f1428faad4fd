"""The OpenAPI 3.1 document, generated from the request and response models on demand."""

from __future__ import annotations

from importlib import metadata
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from app.api.models import PlayRequest
from app.api.responses import RESPONSE_MODELS

REF = "#/components/schemas/{model}"
JSON = "application/json"
UPLOAD_TYPES = ("audio/wav", "audio/mpeg", "audio/ogg", "audio/flac", "application/octet-stream")
IDEMPOTENCY_KEY_PATTERN = r"^[A-Za-z0-9_.:-]{1,128}$"


def openapi_document(*, max_recipients: int, max_playlist_items: int) -> dict[str, Any]:
    """The service's OpenAPI 3.1.0 document, with the deployment's list limits."""
    schemas: dict[str, Any] = {}
    play = PlayRequest.model_json_schema(mode="validation", ref_template=REF)
    _merge(schemas, play.pop("$defs", {}))
    _limit_items(play["properties"]["recipients"], max_recipients)
    _limit_items(play["properties"]["playlist"], max_playlist_items)
    _merge(schemas, {"PlayRequest": play})
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = [
        (model, "serialization") for model in RESPONSE_MODELS]
    _, responses = models_json_schema(models, ref_template=REF)
    _merge(schemas, responses.get("$defs", {}))
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Voxcast",
            "version": _version(),
            "summary": "Voice broadcast over SIP through Asterisk ARI.",
            "description": ("One request, many calls, a per-call report. Every answer is a JSON "
                            "envelope: `code` is 0 on success, `status` repeats the HTTP "
                            "status. Times are `YYYY-MM-DD HH:MM:SS` in UTC."),
        },
        "security": [{"bearerAuth": []}],
        "paths": _paths(),
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer",
                               "description": "`Authorization: Bearer <api key>`"},
            },
        },
    }


def _version() -> str:
    try:
        return metadata.version("voxcast")
    except metadata.PackageNotFoundError:
        return "0.0.0"


def _merge(into: dict[str, Any], definitions: dict[str, Any]) -> None:
    for name, schema in definitions.items():
        if name in into and into[name] != schema:
            raise ValueError(f"two different schemas are both named {name!r}")
        into[name] = schema


def _limit_items(schema: dict[str, Any], limit: int) -> None:
    """Set maxItems on the array schema, or on the array branch of an optional field."""
    branches = [schema, *schema.get("anyOf", []), *schema.get("oneOf", [])]
    arrays = [branch for branch in branches if branch.get("type") == "array"]
    if not arrays:
        raise ValueError("expected an array schema to limit")
    for array in arrays:
        array["maxItems"] = limit


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(model=name)}


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(description, _ref("ErrorBody"))


UNAUTHORIZED = ("missing or unknown API key (`Authorization: Bearer <key>`); "
                "error `unauthorized`")


def _uuid_parameter(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": {"type": "string", "format": "uuid"}}


def _paths() -> dict[str, Any]:
    not_found = "no such id (also for ids of another tenant); error `not_found`"
    return {
        "/voice/call/play": {"post": {
            "operationId": "play",
            "summary": "Start a broadcast",
            "description": ("Many recipients (`recipients`), or the one-recipient form (`to`, "
                            "`variables`). The request and one call per recipient are stored "
                            "before the answer; `request_id` names the request."),
            "parameters": [{
                "name": "Idempotency-Key", "in": "header", "required": False,
                "description": ("Repeating a request with the same key and body answers the "
                                "first request's id again instead of starting another "
                                "broadcast."),
                "schema": {"type": "string", "minLength": 1, "maxLength": 128,
                           "pattern": IDEMPOTENCY_KEY_PATTERN},
            }],
            "requestBody": {"required": True,
                            "content": {JSON: {"schema": _ref("PlayRequest")}}},
            "responses": {
                "200": _json("accepted and stored", _ref("Accepted")),
                "400": _error("invalid JSON or fields; `details` names each field"),
                "401": _error(UNAUTHORIZED),
                "409": _error("the Idempotency-Key was already used with another body"),
                "413": _error("the body is too large; error `body_too_large`"),
                "415": _error("the body is not application/json"),
                "422": _error("a playlist item's media cannot be used; error `media_unusable`"),
            },
        }},
        "/voice/call/status/{id}": {"get": {
            "operationId": "status",
            "summary": "A request's progress, or one call's record",
            "parameters": [_uuid_parameter("id", "a request id or a call id")],
            "responses": {
                "200": _json("a request's report reference, or a call's record",
                             {"oneOf": [_ref("RequestStatus"), _ref("CallStatus")]}),
                "401": _error(UNAUTHORIZED),
                "404": _error(not_found),
            },
        }},
        "/report/{report_id}": {"get": {
            "operationId": "report",
            "summary": "A request's report",
            "description": "`records` stays empty until every call has ended.",
            "parameters": [_uuid_parameter("report_id", "the report id from the status")],
            "responses": {
                "200": _json("the report", _ref("Report")),
                "401": _error(UNAUTHORIZED),
                "404": _error(not_found),
            },
        }},
        "/voice/call/{request_id}": {"delete": {
            "operationId": "cancel",
            "summary": "Cancel a request",
            "description": "Queued calls are not dialled; live calls are hung up.",
            "parameters": [_uuid_parameter("request_id", "the request id")],
            "responses": {
                "200": _json("cancelled", _ref("Cancelled")),
                "401": _error(UNAUTHORIZED),
                "404": _error(not_found),
            },
        }},
        "/media": {"post": {
            "operationId": "upload_media",
            "summary": "Upload a recording",
            "description": ("The audio file itself is the body (WAV, MP3, OGG or FLAC). Play it "
                            "with `{\"play\": \"media:<id>\"}`."),
            "requestBody": {"required": True, "content": {
                media_type: {"schema": {"type": "string", "format": "binary"}}
                for media_type in UPLOAD_TYPES}},
            "responses": {
                "200": _json("stored and converted", _ref("MediaUploaded")),
                "400": _error("the upload is empty"),
                "401": _error(UNAUTHORIZED),
                "413": _error("the upload is too large; error `body_too_large`"),
                "415": _error("a multipart body; send the file itself"),
                "422": _error("not usable audio; error `media_unusable`"),
            },
        }},
        "/monitor": {"get": {
            "operationId": "monitor",
            "summary": "Totals for operators: AMI hang-ups by SIP code, ARI and dialer state",
            "description": ("Totals over every tenant: only tenants named in "
                            "VOXCAST_OPERATOR_TENANTS (or any caller in open mode)."),
            "responses": {
                "200": _json("the totals", _ref("MonitorSnapshot")),
                "401": _error(UNAUTHORIZED),
                "404": _error("the caller is not an operator"),
            },
        }},
        "/health": {"get": {
            "operationId": "health",
            "summary": "The process is alive",
            "security": [],  # public: no credentials needed
            "responses": {"200": _json("alive", _ref("Health"))},
        }},
        "/ready": {"get": {
            "operationId": "ready",
            "summary": "The ARI event stream is connected and the database answers",
            "security": [],  # public: no credentials needed
            "responses": {
                "200": _json("ready", _ref("Ready")),
                "503": _error("not ready; error `not_ready`, the message says why"),
            },
        }},
        "/openapi.json": {"get": {
            "operationId": "openapi",
            "summary": "This document",
            "security": [],  # public: no credentials needed
            "responses": {"200": _json("the OpenAPI 3.1 document", {"type": "object"})},
        }},
        "/docs": {"get": {
            "operationId": "docs",
            "summary": "This document as a web page",
            "security": [],  # public: no credentials needed
            "responses": {"200": {"description": "the API reference",
                                  "content": {"text/html": {"schema": {"type": "string"}}}}},
        }},
    }
