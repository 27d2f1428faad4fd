"""Who is calling: `Authorization: Bearer <API key>` resolved to a tenant on every request.

Keys come from the settings (`VOXCAST_API_KEYS`, "tenant:key" pairs) and from the database
(`python -m app keys create`). With no key anywhere the service is open, as tenant `default`,
and then listens on loopback only (enforced where it starts listening).
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web

from app.adapters.db.api_keys import ApiKeyStore, key_hash
from app.api.docs_page import is_docs_path
from app.api.envelope import ApiError
from app.dashboard.page import is_dashboard_path

TENANT = web.RequestKey("tenant", str)
OPEN_TENANT = "default"
PUBLIC_PATHS = frozenset({"/health", "/ready", "/openapi.json"})  # and the docs, /ui pages
_OPEN_MODE_RECHECK_SECONDS = 5.0


class Authenticator:
    def __init__(self, configured: Mapping[str, str], keys: ApiKeyStore) -> None:
        self._configured = dict(configured)
        self._keys = keys
        self._open_checked_at = -_OPEN_MODE_RECHECK_SECONDS
        self._open = not configured

    async def is_open(self) -> bool:
        """No key configured anywhere (rechecked every few seconds: keys may be created)."""
        if self._configured:
            return False
        now = time.monotonic()
        if now - self._open_checked_at >= _OPEN_MODE_RECHECK_SECONDS:
            self._open = not await self._keys.any_active()
            self._open_checked_at = now
        return self._open

    async def tenant_for(self, authorization: str | None) -> str:
        scheme, _, key = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            if await self.is_open():
                return OPEN_TENANT
            raise _unauthorized("send Authorization: Bearer <API key>")
        key = key.strip()
        digest = key_hash(key)
        for configured, configured_tenant in self._configured.items():
            if hmac.compare_digest(configured, digest):
                return configured_tenant
        stored_tenant = await self._keys.tenant_for(key)
        if stored_tenant is None:
            raise _unauthorized("the API key is unknown or revoked")
        return stored_tenant


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message)


AUTHENTICATOR = web.AppKey("authenticator", Authenticator)


@web.middleware
async def auth_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    if (request.path not in PUBLIC_PATHS and not is_docs_path(request.path)
            and not is_dashboard_path(request.path)):
        authenticator = request.app[AUTHENTICATOR]
        request[TENANT] = await authenticator.tenant_for(request.headers.get("Authorization"))
    return await handler(request)
