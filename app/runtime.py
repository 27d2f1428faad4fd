"""Bring up the service with its own Asterisk: secrets, rendered config, both processes.

Used by `python -m app run` (what `make run` calls), the demo and the end-to-end tests, so all
three start the media plane the same way.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from app.adapters.db.store import Store
from app.atomic_file import write_atomically
from app.main import create_app
from app.media_plane.asterisk_process import AsteriskProcess
from app.media_plane.config import AsteriskConfigValues, render_asterisk_config
from app.media_plane.layout import AsteriskLayout
from app.media_plane.secrets import load_or_create_secrets
from app.settings import Secret, Settings

log = logging.getLogger(__name__)


def with_generated_secrets(settings: Settings) -> Settings:
    """Fill the ARI/AMI passwords from the runtime folder, generating them on first run."""
    secrets = load_or_create_secrets(settings.runtime_dir / "secrets.json")
    return settings.with_overrides(
        ari_password=settings.ari_password if settings.ari_password.value
        else Secret(secrets.ari_password),
        ami_password=settings.ami_password if settings.ami_password.value
        else Secret(secrets.ami_password))


def layout_of(settings: Settings) -> AsteriskLayout:
    return AsteriskLayout(root=settings.asterisk_root, instance_dir=settings.instance_dir)


def render_media_plane(settings: Settings) -> AsteriskLayout:
    """Write this instance's Asterisk configuration (validated values, mode 0600)."""
    layout = layout_of(settings)
    values = AsteriskConfigValues(
        instance_dir=layout.inside(layout.instance_dir),
        http_port=settings.ari_http_port, sip_port=settings.sip_port,
        ami_port=settings.ami_port, rtp_start=settings.rtp_start, rtp_end=settings.rtp_end,
        ari_user=settings.ari_user, ari_password=settings.ari_password.value,
        ami_user=settings.ami_user, ami_password=settings.ami_password.value,
        sip_endpoint=settings.sip_endpoint, sip_address=settings.sip_address)
    render_asterisk_config(values, layout.config_dir)
    return layout


@asynccontextmanager
async def running_asterisk(settings: Settings) -> AsyncIterator[AsteriskProcess]:
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
async def serving(settings: Settings) -> AsyncIterator[web.AppRunner]:
    """The HTTP API on settings.host:port; leaving drains calls and closes everything."""
    await check_binding(settings)
    runner = web.AppRunner(create_app(settings), handle_signals=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, settings.host, settings.port).start()
        log.info("Voxcast API on http://%s:%d", settings.host, settings.port)
        yield runner
    finally:
        await runner.cleanup()


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
    key = await development_key(settings)
    async with running_asterisk(settings), serving(settings):
        # Printed, not logged: it is for the person at this terminal, not for log files.
        print(f"\nVoxcast is ready on http://{settings.host}:{settings.port}\n"
              f"Development API key (tenant dev): {key}\n"
              f"  curl -H 'Authorization: Bearer {key}' ...\n", flush=True)
        await wait_for_stop_signal()


async def serve_only(settings: Settings) -> None:
    """The service alone, against an Asterisk someone else runs."""
    async with serving(settings):
        await wait_for_stop_signal()
