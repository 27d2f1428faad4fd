"""MediaFetcher against a local aiohttp server: limits, redirects, redaction."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from app.adapters.media.fetcher import MediaFetcher, MediaFetchError

ServerFactory = Callable[[web.Application], Awaitable[TestServer]]

BODY = b"RIFF-not-really-audio" * 100
MAX_BYTES = 4096


async def _ok(request: web.Request) -> web.Response:
    return web.Response(body=BODY)


async def _missing(request: web.Request) -> web.Response:
    return web.Response(status=404, text="nope")


async def _big_declared(request: web.Request) -> web.Response:
    return web.Response(body=b"x" * (MAX_BYTES + 1))


async def _big_chunked(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse()
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    try:
        # Endless: the fetcher must stop on its own once past max_bytes.
        while True:
            await resp.write(b"y" * 1024)
            await asyncio.sleep(0)
    except (ConnectionError, aiohttp.ClientConnectionResetError):
        pass
    return resp


async def _slow_endless(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse()
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    try:
        while True:
            await resp.write(b"z")
            await asyncio.sleep(0.05)
    except (ConnectionError, aiohttp.ClientConnectionResetError):
        pass
    return resp


async def _hop(request: web.Request) -> web.Response:
    remaining = int(request.match_info["n"])
    target = "/ok" if remaining == 0 else str(remaining - 1)  # relative on purpose
    raise web.HTTPFound(target)


async def _to_ftp(request: web.Request) -> web.Response:
    raise web.HTTPMovedPermanently("ftp://files.example/secret.wav")


async def _no_location(request: web.Request) -> web.Response:
    return web.Response(status=302)


@pytest.fixture
async def server(aiohttp_server: ServerFactory) -> TestServer:
    app = web.Application()
    app.router.add_get("/ok", _ok)
    app.router.add_get("/missing", _missing)
    app.router.add_get("/big", _big_declared)
    app.router.add_get("/big-chunked", _big_chunked)
    app.router.add_get("/slow", _slow_endless)
    app.router.add_get("/r/hop/{n}", _hop)
    app.router.add_get("/to-ftp", _to_ftp)
    app.router.add_get("/no-location", _no_location)
    return await aiohttp_server(app)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
def fetcher(session: aiohttp.ClientSession) -> MediaFetcher:
    return MediaFetcher(
        session, connect_timeout=1.0, total_timeout=0.5, max_bytes=MAX_BYTES, max_redirects=3
    )


def _url(server: TestServer, path: str) -> str:
    return str(server.make_url(path))


async def _fail(fetcher: MediaFetcher, url: str) -> MediaFetchError:
    with pytest.raises(MediaFetchError) as info:
        await fetcher.fetch(url)
    return info.value


async def test_fetches_body(server: TestServer, fetcher: MediaFetcher) -> None:
    assert await fetcher.fetch(_url(server, "/ok")) == BODY


async def test_http_error_status(server: TestServer, fetcher: MediaFetcher) -> None:
    err = await _fail(fetcher, _url(server, "/missing"))

    assert (err.reason, err.status) == ("http_status", 404)
    assert "404" in str(err) and "/missing" in str(err)


async def test_too_large_by_content_length(server: TestServer, fetcher: MediaFetcher) -> None:
    assert (await _fail(fetcher, _url(server, "/big"))).reason == "too_large"


@pytest.mark.timeout(10)
async def test_too_large_while_streaming(
    server: TestServer, session: aiohttp.ClientSession
) -> None:
    # A generous deadline proves the size limit, not the timeout, ends the fetch.
    fetcher = MediaFetcher(session, connect_timeout=1, total_timeout=5, max_bytes=MAX_BYTES)

    assert (await _fail(fetcher, _url(server, "/big-chunked"))).reason == "too_large"


@pytest.mark.timeout(10)
async def test_slow_endless_stream_hits_total_timeout(
    server: TestServer, fetcher: MediaFetcher
) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()

    err = await _fail(fetcher, _url(server, "/slow"))

    assert err.reason == "timeout"
    assert 0.4 < loop.time() - started < 2.0


@pytest.mark.parametrize("hops", [2, 3])
async def test_redirect_chain_within_limit_is_followed(
    server: TestServer, fetcher: MediaFetcher, hops: int
) -> None:
    assert await fetcher.fetch(_url(server, f"/r/hop/{hops - 1}")) == BODY


async def test_too_many_redirects(server: TestServer, fetcher: MediaFetcher) -> None:
    assert (await _fail(fetcher, _url(server, "/r/hop/3"))).reason == "too_many_redirects"


async def test_redirect_to_other_scheme_is_refused(
    server: TestServer, fetcher: MediaFetcher
) -> None:
    err = await _fail(fetcher, _url(server, "/to-ftp"))

    assert err.reason == "unsupported_scheme"
    assert "ftp://files.example/secret.wav" in str(err)


async def test_redirect_without_location(server: TestServer, fetcher: MediaFetcher) -> None:
    assert (await _fail(fetcher, _url(server, "/no-location"))).reason == "http_status"


@pytest.mark.parametrize(
    "url",
    ["ftp://example.com/a.wav", "file:///etc/passwd", "example.com/a.wav", "http:///a.wav", ""],
)
async def test_unsupported_scheme(fetcher: MediaFetcher, url: str) -> None:
    assert (await _fail(fetcher, url)).reason == "unsupported_scheme"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


async def test_unreachable(fetcher: MediaFetcher) -> None:
    err = await _fail(fetcher, f"http://127.0.0.1:{_closed_port()}/a.wav")

    assert err.reason == "unreachable"
    assert err.__cause__ is None


@pytest.mark.parametrize(
    "target",
    ["http://{host}/missing", "http://{host}/big", "http://{host}/to-ftp", "ftp://{host}/x"],
)
async def test_credentials_and_query_never_reach_the_message(
    server: TestServer, fetcher: MediaFetcher, target: str
) -> None:
    host = f"alice:s3cr3t@{server.host}:{server.port}"
    err = await _fail(fetcher, target.format(host=host) + "?token=t0k3n#frag")

    for secret in ("alice", "s3cr3t", "token", "t0k3n", "frag", "@"):
        assert secret not in str(err)
    assert f"{server.host}:{server.port}/" in str(err)


async def test_credentials_hidden_when_unreachable(fetcher: MediaFetcher) -> None:
    err = await _fail(fetcher, f"http://alice:s3cr3t@127.0.0.1:{_closed_port()}/a?token=t0k3n")

    assert err.reason == "unreachable"
    assert "s3cr3t" not in str(err) and "t0k3n" not in str(err)
    assert "http://127.0.0.1:" in str(err)
