"""Hostile media: every case is refused at submit with a clear error naming the item.

Only loopback servers are contacted; denied addresses are refused before any connection.
"""

from __future__ import annotations

import asyncio
import struct
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from app.main import STORE, create_app
from tests.support.audio import tone_wav
from tests.support.settings import without_asterisk

LIMIT = 1024 * 1024


def lying_wav() -> bytes:
    """A RIFF/WAVE header whose fmt chunk describes an impossible format."""
    fmt = struct.pack("<HHIIHH", 1, 0, 8000, 0, 0, 3)  # PCM, 0 channels, 3 bits
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", 0xFFFFFF00) + b"\x07" * 512
    return b"RIFF" + struct.pack("<I", 0xFFFFFFF0) + body


def header_only_wav() -> bytes:
    return tone_wav(0.5, rate=8000, channels=1)[:44]


@pytest.fixture
async def media_server() -> str:
    app = web.Application()

    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        for _ in range(100):  # bounded: about 20 s at most, cut off by the 1 s timeout
            await response.write(b"R")
            await asyncio.sleep(0.2)
        return response

    async def to_metadata(_request: web.Request) -> web.Response:
        raise web.HTTPFound("http://169.254.169.254/latest/meta-data/")

    bodies = {"/not-audio": b"<html>hello</html>", "/huge": b"\0" * (2 * LIMIT),
              "/lying.wav": lying_wav(), "/header-only.wav": header_only_wav(),
              "/good.wav": tone_wav(0.5)}

    async def fixed(request: web.Request) -> web.Response:
        return web.Response(body=bodies[request.path])

    for path in bodies:
        app.router.add_get(path, fixed)
    app.router.add_get("/endless", endless)
    app.router.add_get("/to-metadata", to_metadata)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield f"http://127.0.0.1:{server.port}"
    await server.close()


@pytest.fixture
async def client(aiohttp_client, tmp_path: Path) -> TestClient:
    settings = without_asterisk(tmp_path, media_allow_loopback=True, media_max_bytes=LIMIT,
                                media_total_timeout=1.0, media_check_seconds=4.0,
                                tts_engines="flite")
    return await aiohttp_client(create_app(settings))


@pytest.mark.parametrize(("path", "status", "words"), [
    ("/not-audio", 422, "not usable audio"),
    ("/huge", 422, "larger than"),
    ("/endless", 422, "timed out"),
    ("/to-metadata", 422, "refusing to fetch"),
    ("/missing.wav", 422, "404"),
    ("/lying.wav", 422, "not usable audio"),
    ("/header-only.wav", 422, "not usable audio"),
])
async def test_hostile_media_from_a_server(client, media_server, path, status, words):
    await _refused(client, media_server + path, status, words)


@pytest.mark.parametrize(("url", "status", "words"), [
    ("http://169.254.10.10/x.wav", 422, "link-local"),
    ("http://169.254.169.254/latest/meta-data/", 422, "cloud metadata"),
    ("http://[::ffff:169.254.169.254]/x.wav", 422, "cloud metadata"),
    ("ftp://127.0.0.1/x.wav", 400, "http or https URL"),
    ("file:///etc/passwd", 400, "http or https URL"),
    ("gopher://127.0.0.1:70/x", 400, "http or https URL"),
])
async def test_hostile_urls(client, url, status, words):
    await _refused(client, url, status, words)


async def test_loopback_is_denied_unless_allowed(aiohttp_client, media_server, tmp_path):
    settings = without_asterisk(tmp_path, tts_engines="flite")
    strict = await aiohttp_client(create_app(settings))
    await _refused(strict, media_server + "/good.wav", 422, "loopback")


async def test_good_media_is_accepted(client, media_server):
    response = await client.post("/voice/call/play", json={
        "to": "sip:a@127.0.0.1:5070", "from": "me", "playlist": [{"play": media_server +
                                                                   "/good.wav"}]})
    assert response.status == 200


async def _refused(client: TestClient, url: str, status: int, words: str) -> None:
    response = await client.post("/voice/call/play", json={
        "to": "sip:a@127.0.0.1:5070", "from": "me",
        "playlist": [{"pause": 1}, {"play": url}]})
    answer = await response.json()
    assert response.status == status, answer
    assert answer["details"][0]["field"] == "playlist[1].play"
    assert words in answer["message"], answer["message"]
    assert "internal" not in answer["message"]
    store = client.server.app[STORE]
    assert await store.media.broadcasts_awaiting_media(limit=10) == []
