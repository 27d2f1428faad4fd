"""The OpenAPI 3.1 document, generated from the request and response models on demand."""

from __future__ import annotations

import copy
from importlib import metadata
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from app.api import examples
from app.api.broadcast_list import DEFAULT_LIMIT, MAX_LIMIT, UUID_PATTERN
from app.api.models import PlayRequest, WebhookSubscriptionRequest
from app.api.report_params import MAX_PAGE, MEDIA_TYPES, RESULT_PATTERN, SIP_CODE_PATTERN
from app.api.responses import RESPONSE_MODELS
from app.api.webhook_openapi import RESPONSE_MODELS as WEBHOOK_RESPONSE_MODELS
from app.api.webhook_openapi import webhook_paths
from app.domain.broadcasts import BROADCAST_STATUSES
from app.domain.dial_target import SIP_TARGET_PATTERN, TARGET_PATTERN
from app.domain.report_query import CURSOR_PATTERN

REF = "#/components/schemas/{model}"
JSON = "application/json"
UPLOAD_TYPES = ("audio/wav", "audio/mpeg", "audio/ogg", "audio/flac", "application/octet-stream")
IDEMPOTENCY_KEY_PATTERN = r"^[A-Za-z0-9_.:-]{1,128}$"


def _play_examples(trunk_names: tuple[str, ...]) -> dict[str, Any]:
    """The request examples this deployment accepts: the trunk one names a configured trunk,
    and is left out where there is none."""
    chosen = {name: example for name, example in examples.PLAY_REQUESTS.items()
              if name != "trunks"}
    if trunk_names:
        example = copy.deepcopy(examples.PLAY_REQUESTS["trunks"])
        example["value"]["recipients"][1]["trunk"] = trunk_names[0]
        chosen["trunks"] = example
    return chosen


def openapi_document(*, max_recipients: int, max_playlist_items: int, max_text_chars: int,
                     phone_numbers: bool, trunk_names: tuple[str, ...] = ()
                     ) -> dict[str, Any]:
    """The service's OpenAPI 3.1.0 document, with the deployment's limits.

    `phone_numbers`: a trunk is configured, so E.164 targets are accepted as well as SIP URIs.
    `trunk_names`: the trunks a recipient may name (none: no `trunk` field).
    """
    schemas: dict[str, Any] = {}
    play = PlayRequest.model_json_schema(mode="validation", ref_template=REF)
    _merge(schemas, play.pop("$defs", {}))
    _limit_items(play["properties"]["recipients"], max_recipients, minimum=1)
    _limit_items(play["properties"]["playlist"], max_playlist_items)
    # The model's cross-field rule (PlayRequest._one_form): a list of recipients, or `to`.
    play["anyOf"] = [
        {"required": ["recipients"],
         "properties": {"recipients": {"type": "array"}, "to": {"type": "null"}}},
        {"required": ["to"],
         "properties": {"to": {"type": "string"}, "recipients": {"type": "null"}}},
    ]
    # The model's other cross-field rule: an event filter needs somewhere to send to.
    play["if"] = {"required": ["callback_events"],
                  "properties": {"callback_events": {"type": "array"}}}
    play["then"] = {"required": ["callback_url"],
                    "properties": {"callback_url": {"type": "string"}}}
    schemas["SayItem"]["properties"]["say"]["maxLength"] = max_text_chars
    if not phone_numbers:
        for target in (schemas["Recipient"]["properties"]["to"],
                       *play["properties"]["to"]["anyOf"]):
            if target.get("pattern") == TARGET_PATTERN:
                target["pattern"] = SIP_TARGET_PATTERN
                target["description"] = "a SIP URI (no trunk is configured for phone numbers)"
    for properties in (schemas["Recipient"]["properties"], play["properties"]):
        if trunk_names:
            properties["trunk"]["anyOf"][0]["enum"] = list(trunk_names)
        else:
            del properties["trunk"]
    _merge(schemas, {"PlayRequest": play})
    subscription = WebhookSubscriptionRequest.model_json_schema(mode="validation",
                                                                ref_template=REF)
    _merge(schemas, subscription.pop("$defs", {}))
    _merge(schemas, {"WebhookSubscriptionRequest": subscription})
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = [
        (model, "serialization") for model in (*RESPONSE_MODELS, *WEBHOOK_RESPONSE_MODELS)]
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
        "paths": _paths(trunk_names),
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


def _limit_items(schema: dict[str, Any], limit: int, minimum: int | None = None) -> None:
    """Set maxItems on the array schema, or on the array branch of an optional field."""
    branches = [schema, *schema.get("anyOf", []), *schema.get("oneOf", [])]
    arrays = [branch for branch in branches if branch.get("type") == "array"]
    if not arrays:
        raise ValueError("expected an array schema to limit")
    for array in arrays:
        array["maxItems"] = limit
        if minimum is not None:
            array["minItems"] = minimum


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(model=name)}


def _json(description: str, schema: dict[str, Any], *answers: dict[str, Any],
          **named: dict[str, Any]) -> dict[str, Any]:
    """A JSON response with its examples: one unnamed answer, or several by name."""
    media: dict[str, Any] = {"schema": schema}
    if answers:
        media["example"] = answers[0]
    if named:
        media["examples"] = {name: {"value": value} for name, value in named.items()}
    return {"description": description, "content": {JSON: media}}


def _error(description: str, answer: dict[str, Any]) -> dict[str, Any]:
    return _json(description, _ref("ErrorBody"), answer)


UNAUTHORIZED = ("missing or unknown API key (`Authorization: Bearer <key>`); "
                "error `unauthorized`")


def _uuid_parameter(name: str, description: str, example: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": {"type": "string", "format": "uuid"}, "example": example}


# Where the next call's id comes from, for readers and for stateful testing tools.
_LINKS_FROM_PLAY = {
    "status": {"operationId": "status", "parameters": {"id": "$response.body#/request_id"}},
    "cancel": {"operationId": "cancel",
               "parameters": {"request_id": "$response.body#/request_id"}},
}
_LINKS_FROM_STATUS = {
    "report": {"operationId": "report",
               "parameters": {"report_id": "$response.body#/report/id"}},
}


NDJSON = "application/x-ndjson"
BULK_DESCRIPTION = (
    "NDJSON, one JSON object a line: line 1 is the broadcast without recipients (`from`, "
    "`playlist`, `retry`, as in POST /voice/call/play), every further line one recipient "
    "(`to`, `variables`). Lines are checked and stored a chunk at a time as they arrive, so "
    "memory stays flat; the broadcast is dialled only once the last line is in. One bad line "
    "refuses the whole upload and nothing is stored; the answer lists up to 20 problems, each "
    "naming its line and field. No Idempotency-Key: a refused upload stored nothing, so "
    "send it again.")
REPORT_DESCRIPTION = (
    "`records` stays empty until every call has ended. The answer is streamed from a "
    "database cursor: parameters are checked and the cursor opened before the status line, "
    "so errors are proper 4xx/5xx envelopes; a failure after the first byte cuts the "
    "connection (an incomplete chunked body), never a short document that looks whole. "
    "Records are in recipient order, then attempt. With `limit`, `next` (and a `Link` "
    "header) gives the next page's path, keeping the filters. The format is `format`, else "
    "the `Accept` header (`text/csv`, `application/x-ndjson`), else JSON; CSV and NDJSON "
    "hold the records only (CSV: one column per documented field, lists and objects as JSON) "
    "and answer 409 `report_pending` until the report is ready.")
LINK = {"description": "with `limit` and more records: `<path>; rel=\"next\"`",
        "schema": {"type": "string"}, "example": f'</report/{examples.REPORT_ID}?limit=1000'
                                                 f'&after=999.1>; rel="next"'}


def _query(name: str, description: str, schema: dict[str, Any], example: Any) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema, "example": example}


def _report_parameters(*, paging: bool) -> list[dict[str, Any]]:
    """The report's filters, and with `paging` its page, cursor and format parameters."""
    filters = [
        _query("result", "only these results, comma-separated",
               {"type": "string", "pattern": RESULT_PATTERN}, "failed,cancelled"),
        _query("answered", "only answered (true) or unanswered (false) records",
               {"type": "boolean"}, True),
        _query("sip_code", "only these SIP codes (`disconnect_cause_code`), comma-separated; "
                           "`none` for records without one",
               {"type": "string", "pattern": SIP_CODE_PATTERN}, "486,603"),
    ]
    if not paging:
        return filters
    return [
        _query("limit", "at most this many records, and a `next` link",
               {"type": "integer", "minimum": 1, "maximum": MAX_PAGE}, 1000),
        _query("after", "the cursor from a `next` link: start after that record",
               {"type": "string", "pattern": CURSOR_PATTERN}, "999.1"),
        *filters,
        _query("format", "json (the default), csv or ndjson; overrides `Accept`",
               {"type": "string", "enum": list(MEDIA_TYPES)}, "csv"),
    ]


_LIST_PARAMETERS: list[dict[str, Any]] = [
    {"name": "status", "in": "query", "required": False,
     "description": ("`queued` (no call dialled yet), `running`, or `ready` (every call "
                     "ended)"),
     "schema": {"type": "string", "enum": list(BROADCAST_STATUSES)}, "example": "running"},
    {"name": "created_after", "in": "query", "required": False,
     "description": "only broadcasts accepted after this time (RFC 3339)",
     "schema": {"type": "string", "format": "date-time"}, "example": "2026-11-26T00:00:00Z"},
    {"name": "created_before", "in": "query", "required": False,
     "description": "only broadcasts accepted before this time (RFC 3339)",
     "schema": {"type": "string", "format": "date-time"}, "example": "2026-11-27T00:00:00Z"},
    {"name": "limit", "in": "query", "required": False, "description": "broadcasts per page",
     "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT,
                "default": DEFAULT_LIMIT}, "example": 20},
    {"name": "after", "in": "query", "required": False,
     "description": "where the page starts: taken from the previous page's `next`",
     "schema": {"type": "string", "pattern": UUID_PATTERN}, "example": examples.OLDER_REQUEST_ID},
]


def _paths(trunk_names: tuple[str, ...]) -> dict[str, Any]:
    x = examples
    not_found = "no such id (also for ids of another tenant); error `not_found`"
    unauthorized = _error(UNAUTHORIZED, x.UNAUTHORIZED)
    return {
        **webhook_paths(_json, _error, _ref, unauthorized),
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
                "example": "order-2026-11-26-0001",
            }],
            "requestBody": {"required": True, "content": {JSON: {
                "schema": _ref("PlayRequest"),
                "examples": _play_examples(trunk_names)}}},
            "responses": {
                "200": {**_json("accepted and stored", _ref("Accepted"), x.ACCEPTED),
                        "links": _LINKS_FROM_PLAY},
                "400": _error("invalid JSON or fields; `details` names each field",
                              x.INVALID_TARGET),
                "401": unauthorized,
                "409": _error("the Idempotency-Key was already used with another body",
                              x.IDEMPOTENCY_CONFLICT),
                "413": _error("the body is too large; error `body_too_large`",
                              x.BODY_TOO_LARGE),
                "415": _error("the body is not application/json", x.NOT_JSON),
                "422": _json("a playlist item's media cannot be used (error `media_unusable`), "
                             "a recipient lacks a variable a `say` text uses (error "
                             "`missing_variables`), or `callback_url` points at a refused "
                             "address (error `address_refused`)", _ref("ErrorBody"),
                             media_unusable=x.MEDIA_UNUSABLE,
                             missing_variables=x.MISSING_VARIABLES,
                             address_refused=x.error(
                                 422, "address_refused",
                                 "callback_url: points at a refused address (loopback)",
                                 [{"field": "callback_url",
                                   "message": "points at a refused address (loopback)"}])),
            },
        }},
        "/voice/call/play/bulk": {"post": {
            "operationId": "play_bulk",
            "summary": "Start a broadcast of up to a million recipients, streamed",
            "description": BULK_DESCRIPTION,
            "requestBody": {"required": True, "content": {NDJSON: {
                "schema": {"type": "string", "format": "binary"},
                "example": x.BULK_UPLOAD}}},
            "responses": {
                "200": {**_json("every recipient is stored", _ref("BulkAccepted"),
                                x.BULK_ACCEPTED), "links": _LINKS_FROM_PLAY},
                "400": _error("more recipients than VOXCAST_MAX_BULK_RECIPIENTS (error "
                              "`too_many_recipients`), or an Idempotency-Key",
                              x.TOO_MANY_IN_UPLOAD),
                "401": unauthorized,
                "408": _error("the upload took too long; error `upload_timeout`",
                              x.UPLOAD_TIMEOUT),
                "415": _error("not application/x-ndjson", x.NOT_NDJSON),
                "422": _json("lines that cannot be used, each named by line and field (error "
                             "`invalid_upload`), or unusable media (`media_unusable`); "
                             "nothing is stored", _ref("ErrorBody"),
                             invalid_upload=x.INVALID_UPLOAD,
                             media_unusable=x.BULK_MEDIA_UNUSABLE),
            },
        }},
        "/voice/call/status/{id}": {"get": {
            "operationId": "status",
            "summary": "A request's progress, or one call's record",
            "parameters": [_uuid_parameter("id", "a request id or a call id", x.REQUEST_ID)],
            "responses": {
                "200": {**_json("a request's report reference, or a call's record",
                                {"oneOf": [_ref("RequestStatus"), _ref("CallStatus")]},
                                request=x.REQUEST_STATUS, call=x.CALL_STATUS),
                        "links": _LINKS_FROM_STATUS},
                "401": unauthorized,
                "404": _error(not_found, x.NOT_FOUND),
            },
        }},
        "/voice/calls": {"get": {
            "operationId": "list_broadcasts",
            "summary": "Find broadcasts",
            "description": ("The caller's broadcasts, newest first, each with its progress and "
                            "report. Pages: follow `next` (it keeps the filters) until it is "
                            "null."),
            "parameters": _LIST_PARAMETERS,
            "responses": {
                "200": _json("one page of broadcasts", _ref("BroadcastList"),
                             page=x.BROADCASTS, last_page=x.BROADCASTS_LAST_PAGE),
                "400": _error("a parameter is malformed; `details` names it", x.INVALID_LIMIT),
                "401": unauthorized,
                "404": _error("`after` names no request of the caller", x.CURSOR_NOT_FOUND),
            },
        }},
        "/report/{report_id}": {"get": {
            "operationId": "report",
            "summary": "A request's report: whole, paged or filtered; JSON, CSV or NDJSON",
            "description": REPORT_DESCRIPTION,
            "parameters": [_uuid_parameter("report_id", "the report id from the status",
                                           x.REPORT_ID), *_report_parameters(paging=True)],
            "responses": {
                "200": {"description": "the report, streamed", "headers": {"Link": LINK},
                        "content": {
                            JSON: {"schema": _ref("Report"), "examples": {
                                "ready": {"value": x.REPORT_READY},
                                "page": {"value": x.REPORT_PAGE},
                                "pending": {"value": x.REPORT_PENDING}}},
                            "text/csv": {"schema": {"type": "string"},
                                         "example": x.REPORT_CSV},
                            "application/x-ndjson": {"schema": {"type": "string"},
                                                     "example": x.REPORT_NDJSON}}},
                "400": _error("a bad query parameter; error `invalid_request`, `details` names it",
                              x.INVALID_QUERY),
                "401": unauthorized,
                "404": _error(not_found, x.REPORT_NOT_FOUND),
                "409": _error("CSV or NDJSON of a report that is not ready; error "
                              "`report_pending`", x.REPORT_PENDING_EXPORT),
            },
        }},
        "/report/{report_id}/summary": {"get": {
            "operationId": "report_summary",
            "summary": "Totals of a report: by result and SIP code, answered, answer rate, "
                       "mean duration",
            "description": ("Counted in the database over every record (each attempt is one), "
                            "or over those the filters select; available while the report is "
                            "pending too (unended calls count as `pending`)."),
            "parameters": [_uuid_parameter("report_id", "the report id from the status",
                                           x.REPORT_ID), *_report_parameters(paging=False)],
            "responses": {
                "200": _json("the totals", _ref("ReportSummary"), x.REPORT_SUMMARY),
                "400": _error("a bad query parameter; error `invalid_request`, `details` names it",
                              x.INVALID_QUERY),
                "401": unauthorized,
                "404": _error(not_found, x.REPORT_NOT_FOUND),
            },
        }},
        "/voice/call/{request_id}": {"delete": {
            "operationId": "cancel",
            "summary": "Cancel a request",
            "description": "Queued calls are not dialled; live calls are hung up.",
            "parameters": [_uuid_parameter("request_id", "the request id", x.REQUEST_ID)],
            "responses": {
                "200": _json("cancelled", _ref("Cancelled"), x.CANCELLED),
                "401": unauthorized,
                "404": _error(not_found, x.NOT_FOUND),
            },
        }},
        "/media": {"post": {
            "operationId": "upload_media",
            "summary": "Upload a recording",
            "description": ("The audio file itself is the body (WAV, MP3, OGG or FLAC), e.g. "
                            "`curl --data-binary @greeting.wav -H 'Content-Type: audio/wav'`. "
                            "Play it with `{\"play\": \"media:<id>\"}`."),
            "requestBody": {"required": True, "content": {
                media_type: {"schema": {"type": "string", "format": "binary"}}
                for media_type in UPLOAD_TYPES}},
            "responses": {
                "200": _json("stored and converted", _ref("MediaUploaded"), x.MEDIA_UPLOADED),
                "401": unauthorized,
                "413": _error("the upload is too large; error `body_too_large`",
                              x.BODY_TOO_LARGE),
                "415": _error("a multipart body; send the file itself", x.MULTIPART),
                "422": _error("empty, or not usable audio; error `media_unusable`",
                              x.NOT_AUDIO),
            },
        }},
        "/monitor": {"get": {
            "operationId": "monitor",
            "summary": "Totals for operators: AMI hang-ups by SIP code, ARI and dialer state",
            "description": ("Totals over every tenant: only tenants named in "
                            "VOXCAST_OPERATOR_TENANTS (or any caller in open mode)."),
            "responses": {
                "200": _json("the totals", _ref("MonitorSnapshot"), x.MONITOR),
                "401": unauthorized,
                "404": _error("the caller is not an operator", x.NOT_OPERATOR),
            },
        }},
        "/trunks": {"get": {
            "operationId": "trunks",
            "summary": "SIP trunks for operators: health, live calls, calls per second, outcomes",
            "description": ("Every trunk of VOXCAST_TRUNKS_FILE: only tenants named in "
                            "VOXCAST_OPERATOR_TENANTS (or any caller in open mode)."),
            "responses": {
                "200": _json("each trunk", _ref("TrunkStates"), x.TRUNKS),
                "401": unauthorized,
                "404": _error("the caller is not an operator", x.NOT_OPERATOR),
            },
        }},
        "/health": {"get": {
            "operationId": "health",
            "summary": "The process is alive",
            "security": [],  # public: no credentials needed
            "responses": {"200": _json("alive", _ref("Health"), x.HEALTH)},
        }},
        "/ready": {"get": {
            "operationId": "ready",
            "summary": "The ARI event stream is connected and the database answers",
            "security": [],  # public: no credentials needed
            "responses": {
                "200": _json("ready", _ref("Ready"), x.READY),
                "503": _error("not ready; error `not_ready`, the message says why",
                              x.NOT_READY),
            },
        }},
        "/openapi.json": {"get": {
            "operationId": "openapi",
            "summary": "This document",
            "security": [],  # public: no credentials needed
            "responses": {"200": _json("the OpenAPI 3.1 document", {"type": "object"},
                                       {"openapi": "3.1.0", "info": {"title": "Voxcast"},
                                        "paths": {}})},
        }},
        "/docs": {"get": {
            "operationId": "docs",
            "summary": "This document as a web page",
            "security": [],  # public: no credentials needed
            "responses": {"200": {"description": "the API reference (Swagger UI)",
                                  "content": {"text/html": {
                                      "schema": {"type": "string"},
                                      "example": "<!DOCTYPE html><html>…</html>"}}}},
        }},
    }
