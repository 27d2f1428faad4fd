"""ARI REST calls used by Voxcast, on one pooled aiohttp session.

The pool stays below Asterisk's HTTP `sessionlimit`: past it Asterisk refuses requests and
originated channels are left with nobody to hang them up (ASTERISK-NOTES, "Settings that matter").
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from app.adapters.ari.errors import (
    AriConflict,
    AriError,
    AriNotFound,
    AriUnavailable,
    AriUnreachable,
)


@dataclass(frozen=True, slots=True)
class AriCredentials:
    user: str
    password: str

    def __repr__(self) -> str:
        return f"AriCredentials(user={self.user!r}, password=***)"

    def authorization_header(self) -> dict[str, str]:
        """HTTP Basic credentials, always in a header, never in a URL (URLs reach logs).

        Built by hand: aiohttp 3.14 deprecates BasicAuth and older versions lack its successor.
        """
        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode("ascii")
        return {"Authorization": f"Basic {token}"}


class AriClient:
    """REST half of ARI: originate, play, hang up, list channels, look up a playback."""

    def __init__(self, base_url: str, credentials: AriCredentials, *, pool_size: int = 50,
                 request_timeout: float = 10.0) -> None:
        self._base = base_url.rstrip("/") + "/ari"
        self._headers = credentials.authorization_header()
        self._pool_size = pool_size
        self._timeout = aiohttp.ClientTimeout(total=request_timeout)
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        connector = aiohttp.TCPConnector(limit=self._pool_size)
        self._session = aiohttp.ClientSession(
            connector=connector, headers=self._headers, timeout=self._timeout)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def originate(self, *, channel_id: str, endpoint: str, app: str, caller_id: str,
                        timeout_seconds: int, app_args: str = "",
                        variables: Mapping[str, str] | None = None) -> None:
        """Create and dial a channel into the Stasis app; outcomes arrive as events."""
        params = {"endpoint": endpoint, "app": app, "appArgs": app_args,
                  "callerId": caller_id, "timeout": str(timeout_seconds),
                  "channelId": channel_id}
        await self._request("POST", "/channels", params=params,
                            json={"variables": dict(variables or {})})

    async def play(self, *, channel_id: str, playback_id: str, media: str) -> None:
        await self._request("POST", f"/channels/{channel_id}/play/{playback_id}",
                            params={"media": media})

    async def hangup(self, channel_id: str, reason: str = "normal") -> None:
        await self._request("DELETE", f"/channels/{channel_id}", params={"reason": reason})

    async def startup_time(self) -> str:
        """When the running Asterisk started: a new value means it was restarted."""
        info = await self._request("GET", "/asterisk/info")
        status = info.get("status") if isinstance(info, dict) else None
        return str(status.get("startup_time", "")) if isinstance(status, dict) else ""

    async def channel_state(self, channel_id: str) -> str:
        """The channel's state as Asterisk names it: Down, Ring, Ringing, Up, ..."""
        channel = await self._request("GET", f"/channels/{channel_id}")
        return str(channel.get("state", "")) if isinstance(channel, dict) else ""

    async def playback_exists(self, playback_id: str) -> bool:
        """True while the playback is queued or playing (Asterisk forgets finished ones)."""
        try:
            await self._request("GET", f"/playbacks/{playback_id}")
        except AriNotFound:
            return False
        return True

    async def reload_module(self, module: str) -> None:
        """Ask Asterisk to reload one module's configuration (e.g. res_pjsip.so)."""
        await self._request("PUT", f"/asterisk/modules/{module}")

    async def channel_ids(self) -> set[str]:
        result = await self._request("GET", "/channels")
        if not isinstance(result, list):
            return set()
        return {str(channel["id"]) for channel in result if isinstance(channel, dict)}

    async def _request(self, method: str, path: str, *, params: Mapping[str, str] | None = None,
                       json: Any = None) -> Any:
        if self._session is None:
            raise AriUnavailable("the ARI client is not open")
        try:
            async with self._session.request(method, self._base + path, params=params,
                                             json=json) as response:
                if response.status == 204:
                    return None
                body = await response.read()
                if response.status < 300:
                    return orjson.loads(body) if body else None
                raise _error_for(response.status, method, path,
                                 body.decode("utf-8", "replace"))
        except aiohttp.ClientConnectorError as error:
            # The connection was never made: the request provably did not reach Asterisk.
            raise AriUnreachable(f"ARI {method} {path.split('/')[1]}: cannot connect") \
                from error
        except (TimeoutError, aiohttp.ClientConnectionError) as error:
            # Sent, or maybe sent, before the connection broke: Asterisk may have acted on it.
            raise AriUnavailable(f"ARI {method} {path.split('/')[1]}: {type(error).__name__}") \
                from error


def _error_for(status: int, method: str, path: str, body: str) -> AriError:
    # Asterisk's error bodies are short JSON like {"message": "Allocation failed"}.
    message = f"ARI {method} /{path.split('/')[1]} answered {status}: {body.strip()[:200]}"
    if status == 404:
        return AriNotFound(message, status=status)
    if status == 409:
        return AriConflict(message, status=status)
    if status == 503:
        # Asterisk's HTTP server answers 503 while it shuts down: nothing was processed.
        return AriUnreachable(message, status=status)
    return AriError(message, status=status)
