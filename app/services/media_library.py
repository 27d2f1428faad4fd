"""Turn media (URLs, other producers' audio, silence) into cached Asterisk-playable sounds.

Fetched media is keyed by the sha256 of its bytes, so identical media is
converted once and shared by every process writing into the same folder;
other producers (TTS, uploads) bring their own key. Storage, the size bound
and eviction belong to :class:`MediaCache`.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Final

import numpy as np
import soundfile as sf

from app.adapters.media.audio_conversion import (
    DEFAULT_MAX_DURATION_SECONDS,
    TARGET_RATE,
    ConvertedAudio,
    convert_for_asterisk,
)
from app.adapters.media.fetcher import MediaFetcher
from app.adapters.media.media_cache import MediaCache

DEFAULT_CACHE_MAX_BYTES: Final = 1 << 30


@dataclass(frozen=True, slots=True)
class PreparedMedia:
    """A stored sound ready for ARI ``play`` (``sound`` has no extension)."""

    sound: str
    content_hash: str
    duration_seconds: float


class MediaLibrary:
    """Fetch, convert and cache media; concurrent requests for a URL share one fetch.

    ``sound_dir`` is the cache folder (bounded by ``cache_max_bytes``); ``asterisk_path``
    maps a file in it to the absolute path Asterisk sees.
    """

    def __init__(
        self,
        fetcher: MediaFetcher,
        sound_dir: Path,
        asterisk_path: Callable[[Path], str],
        *,
        cache_max_bytes: int = DEFAULT_CACHE_MAX_BYTES,
        max_duration_seconds: float = DEFAULT_MAX_DURATION_SECONDS,
    ) -> None:
        self._fetcher = fetcher
        self._max_duration = max_duration_seconds
        self._cache = MediaCache(sound_dir, cache_max_bytes)
        self._asterisk_path = asterisk_path
        self._in_flight: dict[str, asyncio.Task[PreparedMedia]] = {}

    async def prepare(self, url: str) -> PreparedMedia:
        """Make ``url`` playable; raises MediaFetchError or UnsupportedAudio on failure."""
        task = self._in_flight.get(url)
        if task is None:
            task = asyncio.create_task(self._prepare(url), name="prepare-media")
            self._in_flight[url] = task
            task.add_done_callback(lambda done: self._forget(url, done))
        # Shielded so one impatient caller cancelling does not fail the others.
        return await asyncio.shield(task)

    async def prepare_all(self, urls: Sequence[str]) -> list[PreparedMedia]:
        """Prepare each distinct URL once; results follow the order of ``urls``."""
        distinct = list(dict.fromkeys(urls))
        prepared = await asyncio.gather(*(self.prepare(url) for url in distinct))
        by_url = dict(zip(distinct, prepared, strict=True))
        return [by_url[url] for url in urls]

    def _forget(self, url: str, done: asyncio.Task[PreparedMedia]) -> None:
        # Only in-flight work is shared; a later prepare() fetches afresh, since
        # the content behind a URL may change.
        if self._in_flight.get(url) is done:
            del self._in_flight[url]

    async def store_converted(self, key: str, audio: bytes) -> PreparedMedia:
        """Cache ``audio`` (any decodable format) as a playable sound under ``key``.

        ``key`` is 16 to 128 lowercase hex digits the producer derives from what makes the
        sound unique (e.g. a hash of TTS engine, voice, language and text). If ``key`` is
        already cached, ``audio`` is not converted again. Raises UnsupportedAudio for
        undecodable audio and ValueError for a malformed key.
        """
        self._cache.path_for(key)  # a malformed key fails here, before any thread hop
        return await self._cached(
            key, lambda: convert_for_asterisk(audio, max_duration_seconds=self._max_duration))

    async def cached(self, key: str) -> PreparedMedia | None:
        """The sound already stored under ``key``, or None (uploads and TTS look here first)."""
        self._cache.path_for(key)
        found = await asyncio.to_thread(self._lookup, key)
        return None if found is None else self._prepared(key, *found)

    async def prepare_silence(self, seconds: float) -> PreparedMedia:
        """A cached silent sound of ``seconds`` (rounded to whole 8 kHz samples)."""
        if not math.isfinite(seconds) or not 0 < seconds <= DEFAULT_MAX_DURATION_SECONDS:
            raise ValueError(
                f"silence must last more than 0 and at most {DEFAULT_MAX_DURATION_SECONDS:g} s"
            )
        frames = max(1, round(seconds * TARGET_RATE))
        # Keyed by frame count, so durations that round to the same sound share one file.
        key = hashlib.sha256(f"voxcast-silence:{TARGET_RATE}:{frames}".encode()).hexdigest()
        return await self._cached(key, lambda: _silence(frames))

    async def _prepare(self, url: str) -> PreparedMedia:
        data = await self._fetcher.fetch(url)
        return await self.store_converted(hashlib.sha256(data).hexdigest(), data)

    async def _cached(self, key: str, produce: Callable[[], ConvertedAudio]) -> PreparedMedia:
        path, duration = await asyncio.to_thread(self._lookup_or_store, key, produce)
        return self._prepared(key, path, duration)

    def _prepared(self, key: str, path: Path, duration: float) -> PreparedMedia:
        mapped = PurePosixPath(self._asterisk_path(path))
        if not mapped.is_absolute():
            raise ValueError(f"asterisk_path must return an absolute path, got {mapped}")
        return PreparedMedia(
            sound=f"sound:{mapped.with_suffix('')}",
            content_hash=key,
            duration_seconds=duration,
        )

    def _lookup(self, key: str) -> tuple[Path, float] | None:
        path = self._cache.lookup(key)
        if path is None:
            return None
        try:
            return path, float(sf.info(str(path)).duration)
        except (sf.SoundFileError, OSError):
            # Unreadable (damaged by hand) or evicted since the lookup: as good as missing.
            return None

    def _lookup_or_store(
        self, key: str, produce: Callable[[], ConvertedAudio]
    ) -> tuple[Path, float]:
        found = self._lookup(key)
        if found is not None:
            return found
        converted = produce()
        return self._cache.store(key, converted.wav_bytes), converted.duration_seconds


def _silence(frames: int) -> ConvertedAudio:
    out = io.BytesIO()
    sf.write(out, np.zeros(frames, dtype="<i2"), TARGET_RATE, format="WAV", subtype="PCM_16")
    return ConvertedAudio(
        wav_bytes=out.getvalue(),
        duration_seconds=frames / TARGET_RATE,
        source_rate=TARGET_RATE,
        source_channels=1,
    )
