"""`python -m app healthcheck asterisk|service`: exit 0 when it answers, for container checks.

asterisk: ARI answers `GET /ari/asterisk/info` with 200 to our credentials (an open HTTP port
is not enough: it answers 404 before ARI is registered). service: `GET /ready` answers 200.
"""

from __future__ import annotations

import asyncio
import ipaddress

import aiohttp

from app.adapters.ari.client import AriCredentials
from app.media_plane.secrets import load_or_create_secrets
from app.settings import Settings

TIMEOUT_SECONDS = 3.0


def _ari_password(settings: Settings) -> str:
    if settings.ari_password.value:
        return settings.ari_password.value
    return load_or_create_secrets(settings.runtime_dir / "secrets.json").ari_password


async def _status(url: str, headers: dict[str, str] | None = None) -> int | None:
    limit = aiohttp.ClientTimeout(total=TIMEOUT_SECONDS)
    try:
        async with aiohttp.ClientSession(timeout=limit, headers=headers) as http, \
                http.get(url) as answer:
            return answer.status
    except (aiohttp.ClientError, TimeoutError):
        return None


def check(what: str, settings: Settings) -> int:
    """0 when `what` answers as it should; 1 (and why, on stdout) when not."""
    if what == "asterisk":
        url = settings.ari_url.rstrip("/") + "/ari/asterisk/info"
        credentials = AriCredentials(settings.ari_user, _ari_password(settings))
        status = asyncio.run(_status(url, credentials.authorization_header()))
    else:
        host = settings.host
        if ipaddress.ip_address(host).is_unspecified:  # listening everywhere: ask loopback
            host = "::1" if ":" in host else "127.0.0.1"
        url = f"http://{f'[{host}]' if ':' in host else host}:{settings.port}/ready"
        status = asyncio.run(_status(url))
    if status == 200:
        return 0
    print(f"{what}: {url} answered {status or 'nothing'}")
    return 1
