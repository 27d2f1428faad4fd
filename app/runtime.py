"""Bring up the service with its own Asterisk: secrets, rendered config, both processes.

Used by `python -m app run` (what `make run` calls), the demo and the end-to-end tests, so all
three start the media plane the same way.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import os
import shlex
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from app.adapters.db.store import Store
from app.api.routes import TRUNKS
from app.atomic_file import write_atomically
from app.domain.trunks import TrunkFileError
from app.main import create_app
from app.media_plane.asterisk_process import (
    CONSOLE_LOG_NAME,
    AsteriskProcess,
    asterisk_console_command,
)
from app.media_plane.config import render_asterisk_config
from app.media_plane.layout import AsteriskLayout
from app.media_plane.rendering import config_values, trunks_of
from app.media_plane.rendering import layout_of as layout_of  # used by the commands, tests
from app.media_plane.secrets import load_or_create_secrets
from app.media_plane.supervisor import AriAccess, AsteriskSupervisor
from app.settings import Secret, Settings
from app.startup_checks import (
    api_port,
    bind_failures,
    check_ports_free,
    log_size,
    media_plane_ports,
    port_in_use,
    read_log_from,
)

log = logging.getLogger(__name__)


def with_generated_secrets(settings: Settings) -> Settings:
    """Fill the ARI/AMI passwords from the runtime folder, generating them on first run."""
    secrets = load_or_create_secrets(settings.runtime_dir / "secrets.json")
    return settings.with_overrides(
        ari_password=settings.ari_password if settings.ari_password.value
        else Secret(secrets.ari_password),
        ami_password=settings.ami_password if settings.ami_password.value
        else Secret(secrets.ami_password))


def render_media_plane(settings: Settings) -> AsteriskLayout:
    """Write this instance's Asterisk configuration (validated values, mode 0600)."""
    layout = layout_of(settings)
    render_asterisk_config(config_values(settings, layout, trunks_of(settings)),
                           layout.config_dir)
    return layout


@asynccontextmanager
async def running_asterisk(settings: Settings) -> AsyncIterator[AsteriskProcess]:
    """An unsupervised Asterisk, for tests that stop and start it themselves."""
    layout = render_media_plane(settings)
    asterisk = AsteriskProcess(layout)
    await asterisk.start()
    try:
        await asterisk.wait_ready(settings.ari_url, settings.ari_user,
                                  settings.ari_password.value)
        log.info("Asterisk is ready (ARI on %s, SIP on 127.0.0.1:%d)", settings.ari_url,
                 settings.sip_port)
        yield asterisk
    finally:
        await asterisk.stop()


@asynccontextmanager
async def supervised_asterisk(settings: Settings) -> AsyncIterator[AsteriskSupervisor]:
    """This instance's Asterisk, adopted or started, restarted whenever it dies, stopped last."""
    layout = render_media_plane(settings)
    supervisor = AsteriskSupervisor(layout, AriAccess(settings.ari_url, settings.ari_user,
                                                      settings.ari_password.value))
    ports = media_plane_ports(settings)
    console_log = layout.log_dir / CONSOLE_LOG_NAME
    offset = log_size(console_log)
    try:
        # The ports are checked only before a new Asterisk starts: an adopted one holds them.
        await supervisor.start(before_new_start=lambda: check_ports_free(ports))
        if not supervisor.process.adopted:
            # A port taken since the check: Asterisk runs on without it, and only logs it.
            problems = bind_failures(read_log_from(console_log, offset), ports)
            if problems:
                raise problems[0]
        watcher = asyncio.create_task(supervisor.watch(), name="asterisk-supervisor")
        try:
            yield supervisor
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
    finally:
        await supervisor.stop()


class UnsafeBinding(RuntimeError):
    """Refusing to serve an open API (no API key anywhere) beyond loopback."""


async def _keys_exist(settings: Settings) -> bool:
    if settings.api_keys.value:
        return True
    store = await Store.open(settings.resolved_database_url)
    try:
        return await store.keys.any_active()
    finally:
        await store.close()


async def check_binding(settings: Settings) -> None:
    """Without any API key the API is open: then it may listen on loopback only."""
    if await _keys_exist(settings):
        return
    if not ipaddress.ip_address(settings.host).is_loopback:
        raise UnsafeBinding(
            f"no API key is configured, so the API would be open to anyone: refusing to listen "
            f"on {settings.host}. Create one with `python -m app keys create --tenant NAME` "
            "or set VOXCAST_API_KEYS, or listen on 127.0.0.1.")
    log.warning("no API key is configured: the API is open to anyone on this machine "
                "(tenant %r) and listens on loopback only", "default")


async def development_key(settings: Settings) -> str:
    """The key `make run` prints: made once for tenant `dev`, kept in the runtime folder."""
    path = settings.runtime_dir / "dev-api-key"
    store = await Store.open(settings.resolved_database_url)
    try:
        keys = store.keys
        if path.exists():
            key = path.read_text(encoding="ascii").strip()
            if await keys.tenant_for(key) is not None:
                return key
        _key_id, key = await keys.create("dev", label="development key made by make run")
        write_atomically(path, key.encode("ascii"), mode=0o600)
        return key
    finally:
        await store.close()


@asynccontextmanager
async def serving(settings: Settings,
                  media_server: AsteriskSupervisor | None = None) -> AsyncIterator[web.AppRunner]:
    """The HTTP API on settings.host:port; leaving drains calls and closes everything."""
    await check_binding(settings)
    runner = web.AppRunner(create_app(settings, media_server), handle_signals=False)
    await runner.setup()
    try:
        try:
            await web.TCPSite(runner, settings.host, settings.port).start()
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise port_in_use(api_port(settings)) from error
            raise
        log.info("Voxcast API on http://%s:%d", settings.host, settings.port)
        async with reloading_trunks_on_sighup(runner.app, settings):
            yield runner
    finally:
        await runner.cleanup()


PID_FILE_NAME = "voxcast.pid"


@asynccontextmanager
async def reloading_trunks_on_sighup(app: web.Application,
                                     settings: Settings) -> AsyncIterator[None]:
    """SIGHUP (`python -m app trunks reload` sends it, to the pid in the runtime folder)
    reloads the trunks file; a bad file is logged and the running trunks stay."""
    loop = asyncio.get_running_loop()
    reloads: set[asyncio.Task[None]] = set()

    def requested() -> None:
        task = loop.create_task(_reload_trunks(app), name="trunks-reload")
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    pid_file = settings.runtime_dir / PID_FILE_NAME
    write_atomically(pid_file, f"{os.getpid()}\n".encode(), mode=0o600)
    loop.add_signal_handler(signal.SIGHUP, requested)
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGHUP)
        pid_file.unlink(missing_ok=True)
        for task in reloads:
            task.cancel()
        await asyncio.gather(*reloads, return_exceptions=True)


async def _reload_trunks(app: web.Application) -> None:
    try:
        table = await app[TRUNKS].reload()
    except TrunkFileError as error:
        log.error("trunks file refused, the running trunks stay: %s", error)
    except Exception:
        log.exception("trunks reload failed")
    else:
        log.info("trunks reload done: %d trunks", len(table.trunks))


async def wait_for_stop_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
    log.info("stop requested: draining live calls, then stopping")


async def run_all(settings: Settings) -> None:
    """Asterisk and the service together, in the foreground, until SIGINT or SIGTERM."""
    settings.runtime_dir.mkdir(parents=True, exist_ok=True)
    check_ports_free([api_port(settings)])
    key = await development_key(settings)
    async with supervised_asterisk(settings) as media_server, serving(settings, media_server):
        await _announce_and_wait(settings, key)


async def _announce_and_wait(settings: Settings, key: str) -> None:
    # Printed, not logged: it is for the person at this terminal, not for log files.
    layout = layout_of(settings)
    print(f"\nVoxcast is ready on http://{settings.host}:{settings.port}\n"
          f"Development API key (tenant dev): {key}\n"
          f"  curl -H 'Authorization: Bearer {key}' ...\n"
          f"Asterisk's logs: {layout.log_dir} (console: {CONSOLE_LOG_NAME}); its CLI: "
          f"{shlex.join(asterisk_console_command(layout))}\n", flush=True)
    await wait_for_stop_signal()


async def serve_only(settings: Settings) -> None:
    """The service alone, against an Asterisk someone else runs."""
    check_ports_free([api_port(settings)])
    async with serving(settings):
        await wait_for_stop_signal()
