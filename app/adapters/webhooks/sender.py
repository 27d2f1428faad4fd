"""Send one signed webhook over HTTP: Standard Webhooks headers, no redirects, hard timeouts.

Destinations go through the same address policy as media fetches (no loopback, link-local or
metadata addresses unless allowed): names are checked in the connector's resolver, so the
address checked is the address connected to; IP literals are checked before sending.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from ipaddress import ip_address

import aiohttp
from standardwebhooks.webhooks import Webhook
from yarl import URL

from app.adapters.media.address_policy import AddressDenied, AddressPolicy
from app.adapters.media.fetcher import DeniedByPolicy, PolicyResolver, redact_url
from app.domain.webhooks import SigningSecrets

USER_AGENT = "Voxcast-Webhooks/1"


@dataclass(frozen=True, slots=True)
class Answer:
    """What the receiver said; `status` None when it could not be reached."""

    status: int | None
    retry_after: str | None = None
    error: str | None = None


def signature(secrets: SigningSecrets, webhook_id: str, at: datetime, body: str) -> str:
    """`v1,<base64>` for the current secret, and for the previous one during a rotation."""
    keys = [secrets.current] + ([secrets.previous] if secrets.previous else [])
    return " ".join(Webhook(key).sign(webhook_id, at, body) for key in keys)


def check_url(url: str, policy: AddressPolicy) -> str | None:
    """Why `url` cannot be a webhook destination, or None. Names are checked on each send."""
    try:
        parsed = URL(url)
    except ValueError:
        return "is not a URL"
    if parsed.scheme not in ("http", "https") or not parsed.host:
        return "must be an http or https URL with a host"
    if parsed.user or parsed.password:
        return "must not carry credentials"
    try:
        policy.check(ip_address(parsed.host.strip("[]")))
    except ValueError:
        return None  # a name: checked when it is resolved
    except AddressDenied as denied:
        return f"points at a refused address ({denied.reason})"
    return None


class WebhookSender:
    def __init__(self, session: aiohttp.ClientSession, policy: AddressPolicy,
                 timeout: float) -> None:
        self._session = session
        self._policy = policy
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    @classmethod
    def create(cls, policy: AddressPolicy, timeout: float, limit: int) -> WebhookSender:
        connector = aiohttp.TCPConnector(resolver=PolicyResolver(policy), limit=limit,
                                         limit_per_host=limit)
        return cls(aiohttp.ClientSession(connector=connector), policy, timeout)

    async def close(self) -> None:
        await self._session.close()

    async def send(self, url: str, webhook_id: str, body: str,
                   secrets: SigningSecrets) -> Answer:
        refused = check_url(url, self._policy)
        if refused is not None:
            return Answer(None, error=f"the URL {refused}")
        now = datetime.now(UTC)
        headers = {"content-type": "application/json", "user-agent": USER_AGENT,
                   "webhook-id": webhook_id, "webhook-timestamp": str(int(now.timestamp())),
                   "webhook-signature": signature(secrets, webhook_id, now, body)}
        try:
            async with self._session.post(url, data=body.encode(), headers=headers,
                                          timeout=self._timeout,
                                          allow_redirects=False) as response:
                await response.read()
                return Answer(response.status, response.headers.get("Retry-After"))
        except TimeoutError:
            return Answer(None, error="no answer within the timeout")
        except aiohttp.ClientConnectorError as error:
            cause = error.os_error
            if isinstance(cause, DeniedByPolicy):
                return Answer(None, error=str(cause))
            return Answer(None, error=f"cannot connect to {redact_url(URL(url))}")
        except aiohttp.ClientError as error:
            return Answer(None, error=f"{type(error).__name__} from {redact_url(URL(url))}")
