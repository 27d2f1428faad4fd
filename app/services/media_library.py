"""Turn media URLs into Asterisk-playable sounds stored once per content hash.

Files are named by the sha256 of the fetched bytes, so identical media is
converted once and shared by every process writing into the same folder.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import soundfile as sf

from app.adapters.media.audio_conversion import convert_for_asterisk
from app.adapters.media.fetcher import MediaFetcher

# Asterisk usually runs as its own user; mkstemp's 0600 would hide the file from it.
_FILE_MODE = 0o644


@dataclass(frozen=True, slots=True)
class PreparedMedia:
    """A stored sound ready for ARI ``play`` (``sound`` has no extension)."""

    sound: str
    content_hash: str
    duration_seconds: float


class MediaLibrary:
    """Fetch, convert and store media; concurrent requests for a URL share one fetch."""

    def __init__(
        self,
        fetcher: MediaFetcher,
        sound_dir: Path,
        asterisk_path: Callable[[Path], str],
    ) -> None:
        self._fetcher = fetcher
        self._sound_dir = sound_dir
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

    async def _prepare(self, url: str) -> PreparedMedia:
        data = await self._fetcher.fetch(url)
        content_hash, path, duration = await asyncio.to_thread(self._store, data)
        mapped = PurePosixPath(self._asterisk_path(path))
        if not mapped.is_absolute():
            raise ValueError(f"asterisk_path must return an absolute path, got {mapped}")
        return PreparedMedia(
            sound=f"sound:{mapped.with_suffix('')}",
            content_hash=content_hash,
            duration_seconds=duration,
        )

    def _store(self, data: bytes) -> tuple[str, Path, float]:
        content_hash = hashlib.sha256(data).hexdigest()
        path = self._sound_dir / f"{content_hash}.wav"
        if path.exists():
            try:
                return content_hash, path, float(sf.info(str(path)).duration)
            except sf.SoundFileError:
                pass  # unreadable (e.g. damaged by hand): convert again and replace it
        converted = convert_for_asterisk(data)
        _write_atomically(path, converted.wav_bytes)
        return content_hash, path, converted.duration_seconds


def _write_atomically(path: Path, content: bytes) -> None:
    # Other processes may write the same file at once; each writes its own temp
    # file and os.replace makes the final name appear complete or not at all.
    # The temp name is hidden and not *.wav so Asterisk never sees it half-written.
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(content)
            tmp.flush()
            os.fchmod(tmp.fileno(), _FILE_MODE)
            os.fsync(tmp.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
