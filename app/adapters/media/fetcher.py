"""Download media over http(s) with hard limits on size, time, redirects and destinations.

Destinations: with an :class:`AddressPolicy`, every hop (redirects included) is
checked against the address actually connected to. Names are checked inside
the connector's resolver, so the answer that was checked is the one used (no
second lookup for a DNS-rebinding server to change); IP literals, which aiohttp
connects to without asking the resolver, are checked before each request.

Errors never echo credentials or query strings (signed URLs carry secrets
there); they name only scheme, host, port and path.
"""

from __future__ import annotations

import asyncio
import socket
from ipaddress import ip_address
from typing import Final, Literal

import aiohttp
from aiohttp import hdrs
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

from app.adapters.media.address_policy import AddressDenied, AddressPolicy

FetchFailure = Literal[
    "unsupported_scheme",
    "http_status",
    "too_large",
    "timeout",
    "unreachable",
    "too_many_redirects",
    "address_denied",
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


class DeniedByPolicy(OSError):
    """Raised by :class:`PolicyResolver` when every address of a name is refused.

    An OSError so aiohttp treats it like any resolution failure (it wraps it in
    ``ClientConnectorDNSError`` without connecting anywhere); the fetcher unwraps it.
    """


class PolicyResolver(AbstractResolver):
    """Resolve with ``inner`` (default: aiohttp's), keeping only addresses ``policy`` allows.

    Refused addresses are dropped; if none is left, :class:`DeniedByPolicy` is raised.
    The connector connects only to what this returns, so the check and the connection
    use the same answer.
    """

    def __init__(self, policy: AddressPolicy, inner: AbstractResolver | None = None) -> None:
        self._policy = policy
        self._owns_inner = inner is None
        self._inner: AbstractResolver = DefaultResolver() if inner is None else inner

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        if not results:
            raise OSError(f"{host} has no addresses")  # unreachable, not a refusal
        allowed: list[ResolveResult] = []
        reasons: list[str] = []
        for result in results:
            try:
                self._policy.check(ip_address(result["host"]))
            except AddressDenied as exc:
                reasons.append(exc.reason)
            except ValueError:
                reasons.append("unparsable address")  # fail closed
            else:
                allowed.append(result)
        if not allowed:
            # Categories only, not the addresses: a report should not map internal names
            # to internal addresses for whoever submitted the URL.
            detail = ", ".join(dict.fromkeys(reasons))
            raise DeniedByPolicy(f"{host} resolves only to refused addresses ({detail})")
        return allowed

    async def close(self) -> None:
        if self._owns_inner:
            await self._inner.close()


def redact_url(url: URL) -> str:
    """Scheme, host, port and path of ``url``, without userinfo, query or fragment."""
    if url.host:
        return str(url.with_user(None).with_query(None).with_fragment(None))
    # Host-less URLs (mailto:, data:, file:///...) may carry anything after the scheme.
    return f"{url.scheme}:..." if url.scheme else "<relative URL>"


class MediaFetcher:
    """Fetch a media URL into memory, enforcing the limits given at construction.

    Build it with :meth:`create` to enforce an address policy. The constructor takes a
    caller-made session: its ``policy`` then covers IP-literal hosts only, and names are
    checked only if that session's connector uses a :class:`PolicyResolver`.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        connect_timeout: float,
        total_timeout: float,
        max_bytes: int,
        max_redirects: int = 3,
        policy: AddressPolicy | None = None,
    ) -> None:
        self._session = session
        self._connect_timeout = connect_timeout
        self._total_timeout = total_timeout
        self._max_bytes = max_bytes
        self._max_redirects = max_redirects
        self._policy = policy
        self._owned: PolicyResolver | None = None

    @classmethod
    def create(
        cls,
        policy: AddressPolicy,
        *,
        connect_timeout: float,
        total_timeout: float,
        max_bytes: int,
        max_redirects: int = 3,
        resolver: AbstractResolver | None = None,
    ) -> MediaFetcher:
        """A fetcher with its own session that enforces ``policy`` on every hop.

        ``resolver`` replaces the system resolver underneath the policy (tests use a
        fake). Call from a running event loop; release with :meth:`close`.
        """
        policy_resolver = PolicyResolver(policy, resolver)
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(resolver=policy_resolver),
            # No proxy from the environment: a proxy would connect on our behalf to
            # addresses the resolver never sees.
            trust_env=False,
            # Fetches are unrelated to each other; no server state is carried over.
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        fetcher = cls(
            session,
            connect_timeout=connect_timeout,
            total_timeout=total_timeout,
            max_bytes=max_bytes,
            max_redirects=max_redirects,
            policy=policy,
        )
        fetcher._owned = policy_resolver
        return fetcher

    async def close(self) -> None:
        """Close the session and resolver made by :meth:`create` (no-op otherwise)."""
        if self._owned is not None:
            await self._session.close()
            # The connector does not close a resolver it was given.
            await self._owned.close()
            self._owned = None

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
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, DeniedByPolicy):
                raise MediaFetchError(
                    "address_denied",
                    f"refusing to fetch {redact_url(hops[-1])}: {exc.os_error}",
                ) from None
            raise MediaFetchError(
                "unreachable", f"cannot fetch {redact_url(hops[-1])}: {_describe(exc)}"
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
            self._check_literal_host(url)
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

    def _check_literal_host(self, url: URL) -> None:
        # aiohttp connects to IP-literal hosts without calling the resolver, so the
        # PolicyResolver never sees them; check them here, before any connection.
        # Same "looks like an IP" test as aiohttp (any ":" or only digits and dots), so
        # whatever skips the resolver is checked, and a numeric form that the strict
        # parser rejects (2130706433, 127.1, 0177.0.0.1: all loopback to inet_aton) is
        # refused rather than left to the socket layer to interpret.
        if self._policy is None:
            return
        host = url.raw_host or ""
        if ":" not in host and not host.replace(".", "").isdigit():
            return
        try:
            self._policy.check(ip_address(host))
        except AddressDenied as exc:
            raise MediaFetchError(
                "address_denied", f"refusing to fetch {redact_url(url)}: {exc.reason}"
            ) from None
        except ValueError:
            raise MediaFetchError(
                "address_denied",
                f"refusing to fetch {redact_url(url)}: not a canonical IP address",
            ) from None

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
