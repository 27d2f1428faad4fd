"""Download media over http(s) with hard limits on size, time and redirects.

Errors never echo credentials or query strings (signed URLs carry secrets
there); they name only scheme, host, port and path.
"""

from __future__ import annotations

import asyncio
from typing import Final, Literal

import aiohttp
from aiohttp import hdrs
from yarl import URL

FetchFailure = Literal[
    "unsupported_scheme",
    "http_status",
    "too_large",
    "timeout",
    "unreachable",
    "too_many_redirects",
]

_ALLOWED_SCHEMES: Final = frozenset({"http", "https"})
_REDIRECT_STATUSES: Final = frozenset({301, 302, 303, 307, 308})
_CHUNK_BYTES: Final = 64 * 1024


class MediaFetchError(Exception):
    """A fetch failed; ``reason`` is stable and safe to branch on or report."""

    def __init__(self, reason: FetchFailure, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.reason: FetchFailure = reason
        self.status = status


def redact_url(url: URL) -> str:
    """Scheme, host, port and path of ``url``, without userinfo, query or fragment."""
    if url.host:
        return str(url.with_user(None).with_query(None).with_fragment(None))
    # Host-less URLs (mailto:, data:, file:///...) may carry anything after the scheme.
    return f"{url.scheme}:..." if url.scheme else "<relative URL>"


class MediaFetcher:
    """Fetch a media URL into memory, enforcing the limits given at construction."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        connect_timeout: float,
        total_timeout: float,
        max_bytes: int,
        max_redirects: int = 3,
    ) -> None:
        self._session = session
        self._connect_timeout = connect_timeout
        self._total_timeout = total_timeout
        self._max_bytes = max_bytes
        self._max_redirects = max_redirects

    async def fetch(self, url: str) -> bytes:
        """Return the body of ``url`` or raise :class:`MediaFetchError`."""
        hops = [_parse_checked(url)]
        try:
            # One deadline for the whole fetch (all hops and the body), so a chain of
            # slow redirects cannot stretch it.
            async with asyncio.timeout(self._total_timeout):
                return await self._follow(hops)
        except TimeoutError:
            raise MediaFetchError(
                "timeout",
                f"timed out after {self._total_timeout:g} s fetching {redact_url(hops[-1])}",
            ) from None
        except aiohttp.ClientError as exc:
            # Not chained: aiohttp exceptions may embed the full URL, credentials included.
            raise MediaFetchError(
                "unreachable", f"cannot fetch {redact_url(hops[-1])}: {_describe(exc)}"
            ) from None

    async def _follow(self, hops: list[URL]) -> bytes:
        # sock_connect only: the overall deadline lives in fetch(); waiting for a
        # pooled connection is not a connect failure.
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self._connect_timeout)
        while True:
            url = hops[-1]
            async with self._session.get(
                url,
                allow_redirects=False,
                timeout=timeout,
                # Keeps Content-Length meaningful for the size check.
                headers={hdrs.ACCEPT_ENCODING: "identity"},
            ) as resp:
                if resp.status in _REDIRECT_STATUSES:
                    hops.append(self._redirect_target(url, resp, redirects_so_far=len(hops) - 1))
                    continue
                if not 200 <= resp.status < 300:
                    raise MediaFetchError(
                        "http_status",
                        f"HTTP {resp.status} fetching {redact_url(url)}",
                        status=resp.status,
                    )
                return await self._read_body(url, resp)

    def _redirect_target(
        self, url: URL, resp: aiohttp.ClientResponse, *, redirects_so_far: int
    ) -> URL:
        if redirects_so_far >= self._max_redirects:
            raise MediaFetchError(
                "too_many_redirects",
                f"more than {self._max_redirects} redirects fetching {redact_url(url)}",
                status=resp.status,
            )
        location = resp.headers.get(hdrs.LOCATION)
        try:
            target = url.join(URL(location)) if location else None
        except ValueError:
            target = None
        if target is None:
            raise MediaFetchError(
                "http_status",
                f"HTTP {resp.status} without a usable Location fetching {redact_url(url)}",
                status=resp.status,
            )
        if not _is_allowed(target):
            raise MediaFetchError(
                "unsupported_scheme",
                f"redirect from {redact_url(url)} to unsupported URL {redact_url(target)}",
                status=resp.status,
            )
        return target

    async def _read_body(self, url: URL, resp: aiohttp.ClientResponse) -> bytes:
        too_large = MediaFetchError(
            "too_large", f"{redact_url(url)} is larger than {self._max_bytes} bytes"
        )
        if resp.content_length is not None and resp.content_length > self._max_bytes:
            raise too_large
        # Content-Length may be absent (chunked) or wrong, so count what arrives.
        body = bytearray()
        async for chunk in resp.content.iter_chunked(_CHUNK_BYTES):
            body += chunk
            if len(body) > self._max_bytes:
                raise too_large
        return bytes(body)


def _is_allowed(url: URL) -> bool:
    return url.scheme.lower() in _ALLOWED_SCHEMES and bool(url.host)


def _parse_checked(raw: str) -> URL:
    try:
        url = URL(raw)
    except ValueError:
        raise MediaFetchError("unsupported_scheme", "media URL is not a valid URL") from None
    if not _is_allowed(url):
        raise MediaFetchError(
            "unsupported_scheme",
            f"only absolute http/https URLs can be fetched, got {redact_url(url)}",
        )
    return url


def _describe(exc: aiohttp.ClientError) -> str:
    # OS-level detail (e.g. "Connection refused") is useful and carries no URL.
    if isinstance(exc, OSError) and exc.strerror:
        return f"{type(exc).__name__}: {exc.strerror}"
    return type(exc).__name__
