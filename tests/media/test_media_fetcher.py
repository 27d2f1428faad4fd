"""MediaFetcher against a local aiohttp server: limits, redirects, redaction, address policy."""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.test_utils import TestServer

from app.adapters.media.address_policy import AddressPolicy
from app.adapters.media.fetcher import FetchFailure, MediaFetcher, MediaFetchError, PolicyResolver

ServerFactory = Callable[[web.Application], Awaitable[TestServer]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

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


# --- Address policy -------------------------------------------------------------------
#
# Every test below resolves names through FakeResolver (no real DNS) and runs under the
# connection guard, which records each socket connect and refuses any address other
# than 127.0.0.1, so a policy bug shows up as a recorded attempt, never as real traffic.


class FakeResolver(AbstractResolver):
    """Answers from a table; ``names`` may be changed between fetches (rebinding)."""

    def __init__(self, names: Mapping[str, Sequence[str]] | None = None) -> None:
        self.names = dict(names or {})
        self.calls: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.calls.append(host)
        if host not in self.names:
            raise OSError(socket.EAI_NONAME, "Name or service not known")
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in self.names[host]
        ]

    async def close(self) -> None:
        pass


Address = tuple[Any, ...]


@pytest.fixture(autouse=True)
def connections(monkeypatch: pytest.MonkeyPatch) -> list[Address]:
    attempts: list[Address] = []
    real_connect = socket.socket.connect

    def guarded_connect(sock: socket.socket, address: Address) -> None:
        attempts.append(address)
        if address[0] != "127.0.0.1":
            raise ConnectionRefusedError(errno.ECONNREFUSED, "test guard: 127.0.0.1 only")
        real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    return attempts


MakeFetcher = Callable[..., MediaFetcher]


@pytest.fixture
async def make_fetcher() -> AsyncIterator[MakeFetcher]:
    made: list[MediaFetcher] = []

    def make(
        policy: AddressPolicy,
        names: Mapping[str, Sequence[str]] | None = None,
        resolver: AbstractResolver | None = None,
    ) -> MediaFetcher:
        fetcher = MediaFetcher.create(
            policy,
            connect_timeout=1,
            total_timeout=1,
            max_bytes=MAX_BYTES,
            resolver=resolver or FakeResolver(names),
        )
        made.append(fetcher)
        return fetcher

    yield make
    for fetcher in made:
        await fetcher.close()


async def _to_metadata(request: web.Request) -> web.Response:
    raise web.HTTPFound("http://169.254.169.254/latest/meta-data/iam/")


async def _to_name(request: web.Request) -> web.Response:
    raise web.HTTPTemporaryRedirect("http://metadata.test/computeMetadata/v1/")


@pytest.fixture
async def hostile_server(
    aiohttp_server: ServerFactory, hits: list[str]
) -> AsyncIterator[TestServer]:
    @web.middleware
    async def count(request: web.Request, handler: Handler) -> web.StreamResponse:
        hits.append(request.path)
        return await handler(request)

    app = web.Application(middlewares=[count])
    app.router.add_get("/ok", _ok)
    app.router.add_get("/missing", _missing)
    app.router.add_get("/big", _big_declared)
    app.router.add_get("/big-chunked", _big_chunked)
    app.router.add_get("/slow", _slow_endless)
    app.router.add_get("/to-metadata", _to_metadata)
    app.router.add_get("/to-name", _to_name)
    yield await aiohttp_server(app)


@pytest.fixture
def hits() -> list[str]:
    return []


@dataclass(frozen=True)
class Hostile:
    url: str  # "{port}" stands for the local server's port
    reason: FetchFailure
    allow_loopback: bool = True
    names: Mapping[str, Sequence[str]] = field(default_factory=dict)
    reaches_server: bool = False  # whether any request may reach the local server


HOSTILE = {
    "link-local literal": Hostile("http://169.254.10.20/a.wav", "address_denied"),
    "metadata literal": Hostile("http://169.254.169.254/latest/meta-data/", "address_denied"),
    "metadata IPv6 literal": Hostile("http://[fd00:ec2::254]/latest/", "address_denied"),
    "alibaba metadata literal": Hostile("http://100.100.100.200/latest/", "address_denied"),
    "scoped link-local literal": Hostile("http://[fe80::1%25eth0]/a.wav", "address_denied"),
    "mapped metadata literal": Hostile("http://[::ffff:169.254.169.254]/", "address_denied"),
    "mapped loopback, loopback disallowed": Hostile(
        "http://[::ffff:127.0.0.1]:{port}/ok", "address_denied", allow_loopback=False
    ),
    # socket would read these as 127.0.0.1; they never reach it, even with loopback allowed.
    "decimal loopback literal": Hostile("http://2130706433:{port}/ok", "address_denied"),
    "short loopback literal": Hostile("http://127.1:{port}/ok", "address_denied"),
    "octal loopback literal": Hostile("http://0177.0.0.1:{port}/ok", "address_denied"),
    "name resolving to metadata": Hostile(
        "http://media.test:{port}/ok", "address_denied", names={"media.test": ["169.254.169.254"]}
    ),
    "name resolving to loopback, loopback disallowed": Hostile(
        "http://localhost:{port}/ok",
        "address_denied",
        allow_loopback=False,
        names={"localhost": ["127.0.0.1", "::1"]},
    ),
    "redirect from loopback to metadata literal": Hostile(
        "http://127.0.0.1:{port}/to-metadata", "address_denied", reaches_server=True
    ),
    "redirect from loopback to name resolving to metadata": Hostile(
        "http://127.0.0.1:{port}/to-name",
        "address_denied",
        names={"metadata.test": ["169.254.169.254", "fd00:ec2::254"]},
        reaches_server=True,
    ),
    "loopback, loopback disallowed": Hostile(
        "http://127.0.0.1:{port}/ok", "address_denied", allow_loopback=False
    ),
    "unsupported scheme": Hostile("gopher://127.0.0.1:{port}/ok", "unsupported_scheme"),
    "404": Hostile("http://127.0.0.1:{port}/missing", "http_status", reaches_server=True),
    "huge, declared": Hostile("http://127.0.0.1:{port}/big", "too_large", reaches_server=True),
    "huge, streamed": Hostile(
        "http://127.0.0.1:{port}/big-chunked", "too_large", reaches_server=True
    ),
    "endless slow stream": Hostile("http://127.0.0.1:{port}/slow", "timeout", reaches_server=True),
}


@pytest.mark.timeout(10)
@pytest.mark.parametrize("case", HOSTILE.values(), ids=HOSTILE.keys())
async def test_hostile_fetches_fail_cleanly(
    case: Hostile,
    hostile_server: TestServer,
    make_fetcher: MakeFetcher,
    connections: list[Address],
    hits: list[str],
) -> None:
    fetcher = make_fetcher(AddressPolicy(allow_loopback=case.allow_loopback), case.names)
    url = case.url.format(port=hostile_server.port)

    err = await _fail(fetcher, url)

    assert err.reason == case.reason, str(err)
    assert err.__cause__ is None
    assert all(address[0] == "127.0.0.1" for address in connections), connections
    if not case.reaches_server:
        assert connections == [] and hits == []
    if case.reason == "address_denied":
        assert str(err).startswith("refusing to fetch http://")


async def test_denial_messages_hide_credentials_and_query(
    hostile_server: TestServer, make_fetcher: MakeFetcher
) -> None:
    fetcher = make_fetcher(AddressPolicy(), {"media.test": ["169.254.169.254"]})

    for host in ("169.254.169.254", f"media.test:{hostile_server.port}"):
        err = await _fail(fetcher, f"http://alice:s3cr3t@{host}/x.wav?token=t0k3n#frag")

        assert err.reason == "address_denied"
        for secret in ("alice", "s3cr3t", "token", "t0k3n", "frag", "@"):
            assert secret not in str(err)
        assert f"http://{host}/x.wav" in str(err)
    # A name's resolved addresses stay out of the message; only the category is given.
    assert "169.254.169.254" not in str(err) and "cloud metadata" in str(err)


async def test_name_with_mixed_answers_connects_only_to_the_allowed_address(
    hostile_server: TestServer, make_fetcher: MakeFetcher, connections: list[Address]
) -> None:
    names = {"media.test": ["169.254.169.254", "127.0.0.1", "fe80::1"]}
    fetcher = make_fetcher(AddressPolicy(allow_loopback=True), names)

    assert await fetcher.fetch(f"http://media.test:{hostile_server.port}/ok") == BODY
    assert [address[0] for address in connections] == ["127.0.0.1"]


async def test_every_resolution_is_checked_so_rebinding_gains_nothing(
    aiohttp_server: ServerFactory, make_fetcher: MakeFetcher, connections: list[Address]
) -> None:
    app = web.Application()
    app.router.add_get("/ok", _ok)
    first, second = await aiohttp_server(app), await aiohttp_server(app)
    resolver = FakeResolver({"rebind.test": ["127.0.0.1"]})
    fetcher = make_fetcher(AddressPolicy(allow_loopback=True), resolver=resolver)

    assert await fetcher.fetch(f"http://rebind.test:{first.port}/ok") == BODY
    resolver.names["rebind.test"] = ["169.254.169.254"]  # the name now points elsewhere
    err = await _fail(fetcher, f"http://rebind.test:{second.port}/ok")

    assert err.reason == "address_denied"
    assert resolver.calls == ["rebind.test", "rebind.test"]  # one lookup per connection
    assert [address[0] for address in connections] == ["127.0.0.1"]


async def test_aiohttp_skips_the_resolver_for_ip_literals(
    hostile_server: TestServer, connections: list[Address]
) -> None:
    # Why the fetcher checks literal hosts itself: the resolver below would refuse
    # loopback, yet aiohttp connects to a literal 127.0.0.1 without consulting it. If
    # aiohttp ever starts resolving literals, this fails and the pre-check can be revisited.
    spy = FakeResolver()
    resolver = PolicyResolver(AddressPolicy(), spy)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(resolver=resolver)) as s:
        fetcher = MediaFetcher(s, connect_timeout=1, total_timeout=1, max_bytes=MAX_BYTES)
        assert await fetcher.fetch(f"http://127.0.0.1:{hostile_server.port}/ok") == BODY
    assert spy.calls == []
    assert connections


async def test_created_fetcher_allows_permitted_literals_and_closes(
    hostile_server: TestServer,
) -> None:
    # No resolver given: aiohttp's default sits under the policy (a literal needs no DNS).
    fetcher = MediaFetcher.create(
        AddressPolicy(allow_loopback=True), connect_timeout=1, total_timeout=1, max_bytes=MAX_BYTES
    )
    try:
        assert await fetcher.fetch(f"http://127.0.0.1:{hostile_server.port}/ok") == BODY
    finally:
        await fetcher.close()
    await fetcher.close()  # idempotent


async def test_unknown_name_is_unreachable_not_denied(make_fetcher: MakeFetcher) -> None:
    err = await _fail(make_fetcher(AddressPolicy()), "http://nowhere.test/a.wav")

    assert err.reason == "unreachable"
