"""HTTP resources: validate, call a service, serialise. Nothing else happens here."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import uuid
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from app.adapters.db.uploads import UploadStore
from app.adapters.media.audio_conversion import UnsupportedAudio
from app.api.auth import OPEN_TENANT, TENANT
from app.api.broadcast_list import add_broadcast_list_route
from app.api.bulk_upload import NDJSON_TYPES, BulkUpload
from app.api.callbacks import callback_of
from app.api.docs_page import add_docs_routes
from app.api.envelope import ApiError, not_found, ok, read_json
from app.api.models import LIMIT_ERROR_NAMES, BroadcastSettings, PlayRequest, Recipient
from app.api.openapi import openapi_document
from app.api.records import call_record, progress_object, report_location
from app.api.report_resources import add_report_routes
from app.api.validation import problems_of
from app.dashboard.page import add_dashboard_routes
from app.domain.broadcasts import IdempotencyConflict
from app.domain.dial_target import has_ipv6_host, is_phone_number
from app.services.cancellation import Cancellation
from app.services.intake import BULK_UPLOAD_SECONDS, Intake
from app.services.media_library import MediaLibrary
from app.services.monitoring import Monitoring
from app.services.playlist_media import MediaProblem
from app.services.reports import ReportQueries
from app.services.trunks import TrunkService

INTAKE = web.AppKey("intake", Intake)
QUERIES = web.AppKey("queries", ReportQueries)
LIMITS = web.AppKey("limits", dict[str, int])
LIBRARY = web.AppKey("library", MediaLibrary)
UPLOADS = web.AppKey("uploads", UploadStore)
CANCELLATION = web.AppKey("cancellation", Cancellation)
IDEMPOTENCY_KEY = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
UPLOAD_LIMIT = web.AppKey("upload_limit", int)
TRUNK_HOST = web.AppKey("trunk_host", str)
IPV6_ENABLED = web.AppKey("ipv6_enabled", bool)
MONITOR = web.AppKey("monitor", Monitoring)
OPERATORS = web.AppKey("operators", frozenset[str])
OPENAPI = web.AppKey("openapi", dict[str, Any])
TRUNKS = web.AppKey("trunks", TrunkService)


def validation_error(error: ValidationError) -> ApiError:
    """One 400 listing every field at fault; a limit breach names itself in `error`."""
    details = [{"field": field, "message": message} for field, message in problems_of(error)]
    name = next((problem["type"] for problem in error.errors(include_url=False)
                 if problem["type"] in LIMIT_ERROR_NAMES), "invalid_request")
    summary = "; ".join(f"{d['field']}: {d['message']}" for d in details[:5])
    more = f" (and {len(details) - 5} more)" if len(details) > 5 else ""
    return ApiError(400, name, summary + more, details)


def _uuid_or_404(text: str, what: str) -> str:
    try:
        return str(uuid.UUID(text))
    except ValueError as error:
        raise not_found(what) from error


async def submit_play(request: web.Request) -> web.Response:
    body = await read_json(request)
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_request", "body: must be a JSON object")
    idempotency = _idempotency(request, body)
    try:
        play = PlayRequest.model_validate(body, context=request.app[LIMITS])
    except ValidationError as error:
        raise validation_error(error) from error
    del body  # the validated request holds what is needed; 100k parsed recipients go now
    tenant = request[TENANT]
    missing = play.missing_variables()
    if missing:  # well-formed, but these recipients cannot be spoken to: 422, like bad media
        details = [{"field": field, "message": message} for field, message in missing]
        raise ApiError(422, "missing_variables", "; ".join(
            f"{field}: {message}" for field, message in missing[:5]), details)
    await _check_uploads(request, play, tenant)
    _check_reachable(request, play)
    try:
        accepted = await request.app[INTAKE].submit(
            tenant=tenant,
            recipients=[(r.to, r.variables, r.trunk) for r in play.all_recipients()],
            caller=play.caller,
            playlist=[item.model_dump(exclude_none=True) for item in play.playlist],
            retry=play.retry.model_dump() if play.retry is not None else None,
            idempotency=idempotency, callback=callback_of(request, play))
    except MediaProblem as problem:
        raise ApiError(422, "media_unusable", str(problem),
                       [{"field": problem.field, "message": problem.message}]) from problem
    except IdempotencyConflict as conflict:
        raise ApiError(409, "idempotency_conflict", f"Idempotency-Key: {conflict}") from conflict
    return ok({}, request_id=accepted.request_id)


async def submit_bulk(request: web.Request) -> web.Response:
    """`POST /voice/call/play/bulk`: NDJSON, line 1 the broadcast's settings, then one
    recipient a line, stored a chunk at a time; one bad line refuses the whole upload."""
    if request.content_type not in NDJSON_TYPES:
        raise ApiError(415, "unsupported_media_type",
                       "send the upload as application/x-ndjson (one JSON object a line)")
    if "Idempotency-Key" in request.headers:
        raise ApiError(400, "invalid_request",
                       "Idempotency-Key: not supported for bulk uploads; a refused upload "
                       "stores nothing, so send it again")
    upload = BulkUpload(request.content,
                        max_recipients=request.app[LIMITS]["max_bulk_recipients"],
                        unreachable=lambda caller, recipient: _route_problem(
                            request, caller, recipient))
    try:
        async with asyncio.timeout(BULK_UPLOAD_SECONDS):
            settings = await upload.settings()
            await _check_uploads(request, settings, request[TENANT])
            accepted = await request.app[INTAKE].submit_stream(
                tenant=request[TENANT], caller=settings.caller,
                playlist=[item.model_dump(exclude_none=True) for item in settings.playlist],
                retry=settings.retry.model_dump() if settings.retry is not None else None,
                recipients=upload.recipients())
    except MediaProblem as problem:
        await upload.finish()
        raise ApiError(422, "media_unusable", f"line 1: {problem}",
                       [{"field": f"line 1: {problem.field}",
                         "message": problem.message}]) from problem
    except ApiError:
        await upload.finish()
        raise
    except TimeoutError as error:
        raise ApiError(408, "upload_timeout", f"the upload took longer than "
                       f"{BULK_UPLOAD_SECONDS} s; nothing was stored") from error
    finally:
        await request.app[INTAKE].discard_abandoned_uploads()
    return ok({"recipients": accepted.recipients}, request_id=accepted.request_id)


def _idempotency(request: web.Request, body: dict[str, Any]) -> tuple[str, str] | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if IDEMPOTENCY_KEY.fullmatch(key) is None:
        raise ApiError(400, "invalid_request",
                       "Idempotency-Key: must be 1-128 of letters, digits and _.:-")
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return key, hashlib.sha256(canonical.encode()).hexdigest()


def _route_problem(request: web.Request, caller: str,
                   recipient: Recipient) -> tuple[str, str] | None:
    """(field, why) this service could not dial an accepted recipient, or None."""
    target, trunks = recipient.to, request.app[TRUNKS].table
    if is_phone_number(target):
        if trunks:
            return trunks.route_problem(target, recipient.trunk, caller)
        if not request.app[TRUNK_HOST]:
            return "to", "phone numbers need a SIP trunk, and none is configured"
    elif recipient.trunk is not None:
        return "trunk", "only phone numbers go through a trunk"
    elif not request.app[IPV6_ENABLED] and has_ipv6_host(target):
        return "to", "IPv6 addresses are not enabled on this service"
    return None


def _check_reachable(request: web.Request, play: PlayRequest) -> None:
    """Refuse now what this service could not dial: phone numbers no trunk serves (or with a
    caller id it does not allow), IPv6 addresses without IPv6 transports."""
    prefix = "recipients[{}]." if play.recipients is not None else ""
    for position, recipient in enumerate(play.all_recipients()):
        problem = _route_problem(request, play.caller, recipient)
        if problem is not None:
            name, message = problem
            field = "from" if name == "from" else prefix.format(position) + name
            raise ApiError(400, "invalid_request", f"{field}: {message}",
                           [{"field": field, "message": message}])


async def _check_uploads(request: web.Request, play: BroadcastSettings, tenant: str) -> None:
    """`media:<id>` must name one of the caller's own uploads."""
    store = request.app[UPLOADS]
    for index, item in enumerate(play.playlist):
        source = getattr(item, "play", "")
        if source.startswith("media:") and not await store.has_upload(
                tenant, source.removeprefix("media:")):
            raise ApiError(422, "media_unusable",
                           f"playlist[{index}].play: no uploaded media with that id",
                           [{"field": f"playlist[{index}].play",
                             "message": "no uploaded media with that id"}])


async def call_or_request_status(request: web.Request) -> web.Response:
    """`/voice/call/status/{id}`: a request's report reference, or one call's record."""
    queries = request.app[QUERIES]
    item_id = _uuid_or_404(request.match_info["id"], "request or call")
    status = await queries.status(item_id, request[TENANT])
    if status is not None:
        ready = status.progress.finished
        report_id = status.broadcast.report_id
        return ok({"report": {"id": report_id, "location": report_location(report_id),
                              "status": "ready" if ready else "pending",
                              "progress": progress_object(status.progress)}},
                  request_id=item_id)
    call = await queries.call(item_id, request[TENANT])
    if call is None:
        raise not_found("request or call")
    return ok({"record": call_record(call)}, request_id=item_id)


async def upload_media(request: web.Request) -> web.Response:
    """`POST /media`: a recording in the body (WAV, MP3, OGG, FLAC); play it as `media:<id>`."""
    limit = request.app[UPLOAD_LIMIT]
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, "body_too_large", f"media must be at most {limit} bytes")
    if request.content_type.startswith("multipart/"):
        raise ApiError(415, "unsupported_media_type",
                       "send the audio file itself as the body (e.g. Content-Type: audio/wav)")
    data = bytearray()
    async for chunk in request.content.iter_chunked(64 * 1024):
        data.extend(chunk)
        if len(data) > limit:
            raise ApiError(413, "body_too_large", f"media must be at most {limit} bytes")
    if not data:  # like any other body that is not audio: the schema cannot say "audio"
        raise ApiError(422, "media_unusable", "body: the upload is empty")
    content_hash = await asyncio.to_thread(lambda: hashlib.sha256(data).hexdigest())
    try:
        media = await request.app[LIBRARY].store_converted(content_hash, bytes(data))
    except UnsupportedAudio as error:
        raise ApiError(422, "media_unusable", f"body: is not usable audio: {error}") from error
    await request.app[UPLOADS].add_upload(request[TENANT], content_hash)
    return ok({"media": f"media:{content_hash}",
               "duration": round(media.duration_seconds, 3)}, request_id=content_hash)


async def cancel(request: web.Request) -> web.Response:
    """`DELETE /voice/call/{request_id}`: queued calls end cancelled, live ones are hung up."""
    request_id = _uuid_or_404(request.match_info["request_id"], "request")
    cancelled = await request.app[CANCELLATION].cancel(request_id, request[TENANT])
    if cancelled is None:
        raise not_found("request")
    return ok({"cancelled": cancelled.queued_cancelled, "hung_up": cancelled.live_hung_up,
               "report": {"id": cancelled.report_id,
                          "location": report_location(cancelled.report_id)}},
              request_id=request_id)


async def _build_openapi(app: web.Application) -> None:
    limits = app[LIMITS]
    app[OPENAPI] = openapi_document(max_recipients=limits["max_recipients"],
                                    max_text_chars=limits["max_text_chars"],
                                    max_playlist_items=limits["max_playlist"],
                                    phone_numbers=bool(app[TRUNK_HOST])
                                    or bool(app[TRUNKS].table),
                                    trunk_names=tuple(trunk.name for trunk
                                                      in app[TRUNKS].table.trunks))


async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(request.app[OPENAPI])


async def monitor(request: web.Request) -> web.Response:
    """`GET /monitor`: totals over every tenant, so only for operator tenants (or open mode)."""
    tenant = request[TENANT]
    if tenant not in request.app[OPERATORS] and tenant != OPEN_TENANT:
        raise not_found("resource")
    return ok({"monitor": request.app[MONITOR].snapshot()}, request_id="")


async def trunks(request: web.Request) -> web.Response:
    """`GET /trunks`: every trunk's state, load and outcomes; operator tenants only."""
    tenant = request[TENANT]
    if tenant not in request.app[OPERATORS] and tenant != OPEN_TENANT:
        raise not_found("resource")
    return ok({"trunks": request.app[TRUNKS].snapshot()}, request_id="")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/monitor", monitor)
    app.router.add_get("/trunks", trunks)
    app.on_startup.append(_build_openapi)
    app.router.add_get("/openapi.json", openapi_json)
    add_docs_routes(app)
    add_dashboard_routes(app)
    # Only id-shaped segments, so /voice/call/play is not also the cancel resource (its Allow
    # header would then name DELETE).
    app.router.add_delete("/voice/call/{request_id:[0-9A-Fa-f-]{32,36}}", cancel)
    app.router.add_post("/media", upload_media)
    app.router.add_post("/voice/call/play", submit_play)
    app.router.add_post("/voice/call/play/bulk", submit_bulk)
    app.router.add_get("/voice/call/status/{id}", call_or_request_status)
    add_broadcast_list_route(app)
    add_report_routes(app, QUERIES)
