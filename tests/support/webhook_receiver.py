"""A webhook receiver on 127.0.0.1 with a control surface: answer, fail, stall or say 410.

Every request is kept as it arrived (headers and raw body), so a test verifies signatures
itself with the `standardwebhooks` package and counts what arrived.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from standardwebhooks.webhooks import Webhook

from tests.support.ports import free_tcp_port


@dataclass(frozen=True)
class Received:
    path: str
    headers: Mapping[str, str]
    body: str
    at: float  # time.monotonic()
    answered: int  # the status this receiver gave

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def event(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed

    def verify(self, secret: str) -> dict[str, Any]:
        """The payload once its signature checks out with `secret` (raises otherwise)."""
        verified: dict[str, Any] = Webhook(secret).verify(self.body, dict(self.headers))
        return verified


@dataclass
class Reply:
    status: int = 200
    retry_after: str | None = None
    stall_seconds: float = 0.0  # wait this long before answering (past a timeout: no answer)


@dataclass
class WebhookReceiver:
    reply: Reply = field(default_factory=Reply)
    by_path: dict[str, Reply] = field(default_factory=dict)  # overrides `reply` per path
    received: list[Received] = field(default_factory=list)
    port: int = 0
    _runner: web.AppRunner | None = None

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def delivered(self, path: str | None = None) -> list[Received]:
        """Requests answered 2xx (at `path`, or anywhere)."""
        return [r for r in self.received
                if 200 <= r.answered < 300 and (path is None or r.path == path)]

    async def __aenter__(self) -> WebhookReceiver:
        app = web.Application()
        app.router.add_post("/{path:.*}", self._receive)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        self.port = free_tcp_port()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _receive(self, request: web.Request) -> web.StreamResponse:
        body = (await request.read()).decode()
        reply = self.by_path.get(request.path, self.reply)
        if reply.stall_seconds:
            await asyncio.sleep(reply.stall_seconds)
        self.received.append(Received(request.path, dict(request.headers), body,
                                      time.monotonic(), reply.status))
        headers = {"Retry-After": reply.retry_after} if reply.retry_after else {}
        return web.Response(status=reply.status, headers=headers)
