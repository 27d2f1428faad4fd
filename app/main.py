"""The composition root: `create_app(settings)` wires every part, in dependency order."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from aiohttp import web

from app.adapters.ami.monitor import AmiMonitor
from app.adapters.ami.trunk_health import TrunkHealth
from app.adapters.ari.routing import ChannelEventRouter
from app.adapters.db.api_keys import parse_configured_keys
from app.adapters.db.store import Store
from app.adapters.media.address_policy import AddressPolicy, parse_networks
from app.adapters.media.fetcher import MediaFetcher
from app.adapters.tts.engine import SpeechChain, build_engines
from app.adapters.webhooks.sender import WebhookSender
from app.api.auth import AUTHENTICATOR, Authenticator, auth_middleware
from app.api.broadcast_list import FINDER
from app.api.callbacks import WEBHOOK_POLICY
from app.api.envelope import ApiError, error_middleware, ok
from app.api.event_bodies import event_body
from app.api.live_events import LIVE_EVENTS, LiveEvents, add_live_event_routes
from app.api.metrics_route import METRICS, add_metrics_route
from app.api.routes import (
    CANCELLATION,
    INTAKE,
    IPV6_ENABLED,
    LIBRARY,
    LIMITS,
    MONITOR,
    OPERATORS,
    QUERIES,
    TRUNK_HOST,
    TRUNKS,
    UPLOAD_LIMIT,
    UPLOADS,
    add_routes,
)
from app.api.webhook_routes import SECRET_OVERLAP, WEBHOOKS, add_webhook_routes
from app.domain.trunks import TrunkTable
from app.media_plane.layout import AsteriskLayout
from app.media_plane.rendering import render_trunks, trunks_of
from app.media_plane.server_list import media_servers
from app.media_plane.supervisor import AsteriskSupervisor
from app.services.broadcast_finder import BroadcastFinder
from app.services.cancellation import Cancellation
from app.services.dialer import Dialer, DialerLimits
from app.services.intake import Intake
from app.services.media_library import MediaLibrary
from app.services.media_preparation import MediaPreparation
from app.services.media_server import MediaServer
from app.services.metrics import Backlog, ServiceMetrics
from app.services.monitoring import Monitoring
from app.services.playlist_media import PlaylistMedia
from app.services.reports import ReportQueries
from app.services.speech import Speech
from app.services.trunks import TrunkService
from app.services.webhook_delivery import DeliveryLimits, EventsSealed, WebhookDelivery
from app.settings import Settings

log = logging.getLogger(__name__)

SETTINGS = web.AppKey("settings", Settings)
STORE = web.AppKey("store", Store)
DIALER = web.AppKey("dialer", Dialer)
SPEECH = web.AppKey("speech", Speech)
SUPERVISOR: web.AppKey[AsteriskSupervisor | None] = web.AppKey("supervisor")
AMI = web.AppKey("ami", AmiMonitor)


def create_app(settings: Settings,
               supervisor: AsteriskSupervisor | None = None) -> web.Application:
    """The service; `supervisor` runs its own Asterisk (None: managed outside)."""
    app = web.Application(middlewares=[error_middleware, auth_middleware],
                          client_max_size=settings.max_body_bytes)
    app[SETTINGS] = settings
    app[SUPERVISOR] = supervisor
    app[TRUNK_HOST] = settings.trunk_host
    app[IPV6_ENABLED] = bool(settings.sip_address6)
    app[OPERATORS] = frozenset(settings.operator_tenant_names)
    app[LIMITS] = {"max_recipients": settings.max_recipients,
                   "max_bulk_recipients": settings.max_bulk_recipients,
                   "max_playlist": settings.max_playlist_items,
                   "max_text_chars": settings.max_text_chars}
    app[UPLOAD_LIMIT] = settings.media_max_bytes
    app[WEBHOOK_POLICY] = webhook_policy(settings)
    app[SECRET_OVERLAP] = settings.webhook_secret_overlap
    app.cleanup_ctx.append(_services)
    app.cleanup_ctx.append(_webhooks)
    add_routes(app)
    add_webhook_routes(app)
    add_live_event_routes(app)
    add_metrics_route(app)
    app.router.add_get("/health", _health)
    app.router.add_get("/ready", _ready)
    return app


async def _services(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    settings.runtime_dir.mkdir(parents=True, exist_ok=True)
    store = await Store.open(settings.resolved_database_url)
    router = ChannelEventRouter()
    layout = AsteriskLayout(root=settings.asterisk_root, instance_dir=settings.instance_dir)
    layout.sound_dir.mkdir(parents=True, exist_ok=True)
    policy = AddressPolicy(deny=parse_networks(settings.media_deny_networks),
                           allow=parse_networks(settings.media_allow_networks),
                           allow_loopback=settings.media_allow_loopback)
    fetcher = MediaFetcher.create(policy, connect_timeout=settings.media_connect_timeout,
                                  total_timeout=settings.media_total_timeout,
                                  max_bytes=settings.media_max_bytes)
    library = MediaLibrary(fetcher, layout.sound_dir, layout.inside,
                           cache_max_bytes=settings.media_cache_bytes,
                           max_duration_seconds=settings.media_max_seconds)
    engines = build_engines(settings.tts_engine_chain, gtts_enabled=settings.gtts_enabled,
                            gtts_timeout=settings.gtts_timeout,
                            gtts_base_url=settings.gtts_base_url or None)
    log.info("text-to-speech chain: %s", ", ".join(e.name for e in engines) or "none")
    chain = SpeechChain(engines)
    speech = Speech(chain, library)
    playlist_media = PlaylistMedia(library, speech)

    servers = [MediaServer(config, ari_app=settings.ari_app, router=router,
                           pool_size=settings.ari_pool_size, library=layout)
               for config in media_servers(settings)]
    for server in servers:
        await server.open()
    monitor = AmiMonitor(host="127.0.0.1", port=settings.ami_port, user=settings.ami_user,
                         password=settings.ami_password.value)
    trunks = _trunk_service(settings, monitor, servers)
    dialer = Dialer(
        queue=store.queue, writes=store.calls, servers=servers, router=router,
        limits=DialerLimits(settings.calls_per_second, settings.max_concurrent_calls,
                            settings.ring_timeout, settings.max_call_seconds,
                            settings.trunk_host or None),
        node_id=settings.node_id, sip_endpoint=settings.sip_endpoint,
        ari_app=settings.ari_app, capacity_shared=settings.media_servers_file is not None,
        trunks=trunks)
    media = MediaPreparation(store.media, playlist_media, on_ready=dialer.wake)

    def accepted() -> None:
        media.wake()
        dialer.wake()

    app[STORE] = store
    app[UPLOADS] = store.uploads
    app[DIALER] = dialer
    app[CANCELLATION] = Cancellation(store.reports, store.queue, dialer)
    app[TRUNKS] = trunks
    if settings.ami_password.value:
        monitor.start()
    app[AMI] = monitor
    app[MONITOR] = Monitoring(monitor, dialer, router, app[SUPERVISOR])
    app[AUTHENTICATOR] = Authenticator(parse_configured_keys(settings.api_keys.value),
                                       store.keys)
    intake = Intake(store.intake, playlist_media, on_accepted=accepted,
                    media_check_seconds=settings.media_check_seconds)
    app[INTAKE] = intake
    await intake.discard_abandoned_uploads()
    app[SPEECH] = speech
    app[LIBRARY] = library
    app[QUERIES] = ReportQueries(store.reports)
    app[FINDER] = BroadcastFinder(store.broadcasts)

    dialing = _owned(_restarting(dialer.run, "dialer"), "dialer")
    helpers = [*(_owned(server.events.run(), f"ari-events-{server.name}")
                 for server in servers),
               _owned(_restarting(media.run, "media preparation"), "media-preparation"),
               _owned(_restarting(dialer.watch_cancellations, "cancel watch"), "cancel-watch"),
               _owned(asyncio.to_thread(chain.warm_up), "tts-warm-up")]
    try:
        yield
    finally:
        # Stop claiming first, then drain live calls while events still flow, then the rest.
        dialing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await dialing
        await dialer.shutdown(settings.drain_timeout)
        for task in helpers:
            task.cancel()
        await asyncio.gather(*helpers, return_exceptions=True)
        await intake.close()
        await trunks.close()
        monitor.close()
        await fetcher.close()
        for server in servers:
            await server.close()
        await store.close()


def _trunk_service(settings: Settings, monitor: AmiMonitor,
                   servers: list[MediaServer]) -> TrunkService:
    """The trunks file's trunks, their health over AMI, and how to reload them: render the
    trunk files again, then have every media server reload PJSIP (no restart, no call cut)."""
    health = TrunkHealth(monitor) if settings.ami_password.value else None

    async def reload() -> TrunkTable:
        table = await asyncio.to_thread(trunks_of, settings)  # a bad file stops here
        await asyncio.to_thread(render_trunks, settings, table)
        for server in servers:
            await server.ari.reload_module("res_pjsip.so")
        return table

    return TrunkService(trunks_of(settings), health,
                        reload if settings.trunks_file is not None else None)


def webhook_policy(settings: Settings) -> AddressPolicy:
    """Where webhooks may go: the media fetcher's networks, loopback by its own setting."""
    return AddressPolicy(deny=parse_networks(settings.media_deny_networks),
                         allow=parse_networks(settings.media_allow_networks),
                         allow_loopback=settings.webhook_allow_loopback)


async def _webhooks(app: web.Application) -> AsyncIterator[None]:
    """The webhook worker (sealing events, sending deliveries), the live-event readers and the
    metrics (counted as events are sealed)."""
    settings = app[SETTINGS]
    store = app[STORE]
    limits = DeliveryLimits(concurrency=settings.webhook_concurrency,
                            poll_seconds=settings.event_poll_seconds,
                            backoff_scale=settings.webhook_backoff_scale,
                            timeout=settings.webhook_timeout)
    sender = WebhookSender.create(app[WEBHOOK_POLICY], timeout=settings.webhook_timeout,
                                  limit=settings.webhook_concurrency)
    sealed = EventsSealed()

    async def backlog() -> Backlog:
        return Backlog(await store.queue.queued_count(), await store.events.unsealed_count(),
                       await store.webhooks.pending_count())

    metrics = ServiceMetrics(app[DIALER], app[AMI], settings.calls_per_second, backlog)
    app[METRICS] = metrics
    delivery = WebhookDelivery(store.events, store.webhooks, sender, event_body, limits, sealed,
                               on_sealed=metrics.sealed)
    app[WEBHOOKS] = store.webhooks
    app[LIVE_EVENTS] = LiveEvents(store.events, sealed)
    worker = _owned(_restarting(delivery.run, "webhook delivery"), "webhook-delivery")
    try:
        yield
    finally:
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
        await sender.close()


RESTART_BACKOFF_SECONDS = (0.5, 1.0, 2.0, 5.0)


async def _restarting(work: Callable[[], Coroutine[Any, Any, None]], name: str) -> None:
    """Run a worker forever: a crash (a database hiccup, a bug) is logged and it starts again.

    Its state lives in the database, so a fresh start picks up where the last one stopped.
    """
    crashes = 0
    while True:
        try:
            await work()
            return
        except Exception:
            delay = RESTART_BACKOFF_SECONDS[min(crashes, len(RESTART_BACKOFF_SECONDS) - 1)]
            crashes += 1
            log.exception("%s crashed (%d so far); restarting in %.1f s", name, crashes, delay)
            await asyncio.sleep(delay)


def _owned(coroutine: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
    """A background task whose crash is logged loudly instead of vanishing."""
    task = asyncio.create_task(coroutine, name=name)

    def done(finished: asyncio.Task[None]) -> None:
        if not finished.cancelled() and finished.exception() is not None:
            log.critical("background task %s crashed", name, exc_info=finished.exception())

    task.add_done_callback(done)
    return task


async def _health(_request: web.Request) -> web.Response:
    return ok({"health": "alive"}, request_id="")


async def _ready(request: web.Request) -> web.Response:
    """Ready: the database answers and at least one media server's event stream is connected
    (each server's state is in the answer)."""
    problems = []
    supervisor = request.app[SUPERVISOR]
    servers = request.app[DIALER].status()
    if supervisor is not None and supervisor.state != "running":
        problems.append(f"Asterisk is {supervisor.state} "
                        f"(restarted {supervisor.restarts} times; last: "
                        f"{supervisor.last_exit or 'none'})")
    elif not any(server["connected"] for server in servers):
        where = "managed outside this service; waiting for it" if supervisor is None else \
            "reconnecting"
        problems.append(f"no media server's ARI event stream is connected ({where})")
    try:
        await request.app[STORE].ping()
    except Exception:  # noqa: BLE001 - any database failure means not ready
        problems.append("database unreachable")
    if problems:
        raise ApiError(503, "not_ready", "; ".join(problems))
    return ok({"ready": True, "media_servers": servers}, request_id="")
