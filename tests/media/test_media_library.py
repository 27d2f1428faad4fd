"""MediaLibrary: one fetch per URL in flight, one stored file per content hash."""

from __future__ import annotations

import asyncio
import hashlib
import io
import stat
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import numpy as np
import pytest
import soundfile as sf
from aiohttp import web
from aiohttp.test_utils import TestServer

from app.adapters.media.audio_conversion import ConvertedAudio
from app.adapters.media.fetcher import MediaFetcher, MediaFetchError
from app.services import media_library
from app.services.media_library import MediaLibrary

ServerFactory = Callable[[web.Application], Awaitable[TestServer]]

ASTERISK_SOUNDS = "/var/lib/asterisk/sounds/voxcast"


def _wav(seconds: float, rate: int = 22050, hz: float = 440.0) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    buf = io.BytesIO()
    sf.write(buf, 0.3 * np.sin(2 * np.pi * hz * t), rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


CLIPS = {"/a.wav": _wav(0.5), "/b.wav": _wav(0.25, hz=880.0), "/a-copy.wav": _wav(0.5)}


@pytest.fixture
def hits() -> Counter[str]:
    return Counter()


@pytest.fixture
async def server(aiohttp_server: ServerFactory, hits: Counter[str]) -> TestServer:
    async def clip(request: web.Request) -> web.Response:
        hits[request.path] += 1
        await asyncio.sleep(0.05)  # keep the fetch in flight while others pile up
        if request.path not in CLIPS:
            raise web.HTTPNotFound()
        return web.Response(body=CLIPS[request.path], content_type="audio/wav")

    app = web.Application()
    app.router.add_get("/{name}", clip)
    return await aiohttp_server(app)


@pytest.fixture
async def fetcher() -> AsyncIterator[MediaFetcher]:
    async with aiohttp.ClientSession() as session:
        yield MediaFetcher(session, connect_timeout=1, total_timeout=5, max_bytes=1 << 20)


def _library(fetcher: MediaFetcher, sound_dir: Path) -> MediaLibrary:
    return MediaLibrary(fetcher, sound_dir, lambda p: f"{ASTERISK_SOUNDS}/{p.name}")


def _url(server: TestServer, path: str) -> str:
    return str(server.make_url(path))


def _files(directory: Path) -> list[str]:
    # Sync helper: a directory listing in a test is not worth a thread hop.
    return sorted(p.name for p in directory.iterdir())


async def test_concurrent_prepares_share_one_fetch_and_one_file(
    server: TestServer, fetcher: MediaFetcher, tmp_path: Path, hits: Counter[str]
) -> None:
    library = _library(fetcher, tmp_path / "sounds")
    url = _url(server, "/a.wav")

    results = await asyncio.gather(*(library.prepare(url) for _ in range(20)))

    assert hits["/a.wav"] == 1
    assert len(set(results)) == 1
    digest = hashlib.sha256(CLIPS["/a.wav"]).hexdigest()
    assert results[0].content_hash == digest
    assert results[0].sound == f"sound:{ASTERISK_SOUNDS}/{digest}"
    assert results[0].duration_seconds == pytest.approx(0.5, abs=0.01)
    assert _files(tmp_path / "sounds") == [f"{digest}.wav"]  # no temp files left behind
    stored = tmp_path / "sounds" / f"{digest}.wav"
    info = sf.info(str(stored))
    assert (info.samplerate, info.channels, info.subtype) == (8000, 1, "PCM_16")
    assert stat.S_IMODE(stored.stat().st_mode) == 0o644


async def test_second_library_reuses_stored_file_without_converting(
    server: TestServer,
    fetcher: MediaFetcher,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = _url(server, "/a.wav")
    first = await _library(fetcher, tmp_path).prepare(url)

    def no_conversion(data: bytes) -> ConvertedAudio:
        raise AssertionError("should have reused the stored file")

    monkeypatch.setattr(media_library, "convert_for_asterisk", no_conversion)
    second = await _library(fetcher, tmp_path).prepare(url)

    assert second == first


async def test_prepare_all_keeps_input_order_and_fetches_each_url_once(
    server: TestServer, fetcher: MediaFetcher, tmp_path: Path, hits: Counter[str]
) -> None:
    library = _library(fetcher, tmp_path)
    a, b, a_copy = (_url(server, p) for p in ("/a.wav", "/b.wav", "/a-copy.wav"))

    results = await library.prepare_all([b, a, b, a_copy, a])

    assert hits == {"/a.wav": 1, "/b.wav": 1, "/a-copy.wav": 1}
    assert [r.duration_seconds for r in results] == pytest.approx([0.25, 0.5, 0.25, 0.5, 0.5])
    assert results[0] == results[2] and results[1] == results[4]
    # Same bytes behind two URLs: one file.
    assert results[1] == results[3]
    assert len(_files(tmp_path)) == 2


async def test_prepare_all_of_nothing(fetcher: MediaFetcher, tmp_path: Path) -> None:
    assert await _library(fetcher, tmp_path).prepare_all([]) == []


async def test_failures_propagate_and_are_not_cached(
    server: TestServer, fetcher: MediaFetcher, tmp_path: Path, hits: Counter[str]
) -> None:
    library = _library(fetcher, tmp_path)
    url = _url(server, "/gone.wav")

    errors = await asyncio.gather(*(library.prepare(url) for _ in range(5)), return_exceptions=True)
    with pytest.raises(MediaFetchError):
        await library.prepare(url)

    assert all(isinstance(e, MediaFetchError) and e.reason == "http_status" for e in errors)
    assert hits["/gone.wav"] == 2
    assert _files(tmp_path) == []


async def test_cancelling_one_caller_does_not_fail_the_others(
    server: TestServer, fetcher: MediaFetcher, tmp_path: Path, hits: Counter[str]
) -> None:
    library = _library(fetcher, tmp_path)
    url = _url(server, "/b.wav")
    impatient = asyncio.ensure_future(library.prepare(url))
    patient = asyncio.ensure_future(library.prepare(url))
    await asyncio.sleep(0.01)

    impatient.cancel()

    assert (await patient).duration_seconds == pytest.approx(0.25, abs=0.01)
    assert impatient.cancelled()
    assert hits["/b.wav"] == 1


async def test_damaged_stored_file_is_replaced(
    server: TestServer, fetcher: MediaFetcher, tmp_path: Path
) -> None:
    digest = hashlib.sha256(CLIPS["/a.wav"]).hexdigest()
    (tmp_path / f"{digest}.wav").write_bytes(b"not a wav")

    prepared = await _library(fetcher, tmp_path).prepare(_url(server, "/a.wav"))

    assert prepared.duration_seconds == pytest.approx(0.5, abs=0.01)
    assert sf.info(str(tmp_path / f"{digest}.wav")).samplerate == 8000


async def test_relative_asterisk_path_is_a_configuration_error(
    server: TestServer, fetcher: MediaFetcher, tmp_path: Path
) -> None:
    library = MediaLibrary(fetcher, tmp_path, lambda p: p.name)

    with pytest.raises(ValueError, match="absolute"):
        await library.prepare(_url(server, "/a.wav"))
