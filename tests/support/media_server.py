"""Serve audio (or any bytes) over HTTP on 127.0.0.1 for the service to fetch."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from aiohttp import web

from tests.support.ports import free_tcp_port


@asynccontextmanager
async def serving_files(files: Mapping[str, bytes],
                        slow: Mapping[str, float] | None = None) -> AsyncIterator[str]:
    """Serve `files` (path -> body) at the base URL yielded; unknown paths answer 404.

    A path in `slow` waits that many seconds before answering (it may also be unknown, to
    fail only after a submit-time check gave up).
    """
    delays = dict(slow or {})

    async def send(request: web.Request) -> web.Response:
        await asyncio.sleep(delays.get(request.path, 0.0))
        if request.path not in files:
            raise web.HTTPNotFound()
        return web.Response(body=files[request.path], content_type="audio/wav")

    app = web.Application()
    app.router.add_get("/{tail:.*}", send)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    try:
        port = free_tcp_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
