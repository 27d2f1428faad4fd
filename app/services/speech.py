"""Text to speech through the engine chain, cached by (engine, voice, language, text).

Synthesis runs in a thread (engines are blocking). Before synthesising, the cache is asked
for every engine in the order they would be tried, so a text any engine already spoke costs
nothing: 1,000 recipients with the same text cost one synthesis, and a repeated request none.
Concurrent requests for the same text share one synthesis.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from dataclasses import dataclass

from app.adapters.tts.engine import SpeechChain
from app.services.media_library import MediaLibrary, PreparedMedia

RECENT_JOBS = 10_000


@dataclass(frozen=True, slots=True)
class SpokenMedia:
    media: PreparedMedia
    engine: str
    fallbacks: tuple[str, ...]  # engines that failed first, "name: reason"
    cached: bool


def speech_key(engine: str, voice: str | None, language: str, text: str) -> str:
    material = "\x1f".join(("voxcast-tts-1", engine, voice or "", language, text))
    return hashlib.sha256(material.encode()).hexdigest()


class Speech:
    def __init__(self, chain: SpeechChain, library: MediaLibrary) -> None:
        self._chain = chain
        self._library = library
        self._in_flight: dict[tuple[str, str, str | None, str | None], asyncio.Task[SpokenMedia]]
        self._in_flight = {}
        # What happened when a job was last synthesised, so a later cache hit (the background
        # preparation after the submit-time check) still reports the engines that failed.
        self._recent: OrderedDict[tuple[str, str, str | None, str | None], tuple[str, ...]]
        self._recent = OrderedDict()
        self.syntheses = 0  # how many times an engine actually ran

    @property
    def engines(self) -> tuple[str, ...]:
        return self._chain.names

    async def speak(self, text: str, *, language: str, voice: str | None,
                    engine: str | None) -> SpokenMedia:
        """Raises TtsFailed (every engine failed) or UnsupportedAudio."""
        job = (text, language, voice, engine)
        task = self._in_flight.get(job)
        if task is None:
            task = asyncio.create_task(self._speak(*job), name="tts")
            self._in_flight[job] = task
            task.add_done_callback(lambda _done: self._in_flight.pop(job, None))
        return await asyncio.shield(task)

    async def _speak(self, text: str, language: str, voice: str | None,
                     engine: str | None) -> SpokenMedia:
        order = list(self._chain.names)
        if engine in order:
            order.remove(engine)
            order.insert(0, engine)
        job = (text, language, voice, engine)
        for name in order:
            media = await self._library.cached(speech_key(name, voice, language, text))
            if media is not None:
                return SpokenMedia(media, name, self._recent.get(job, ()), cached=True)
        self.syntheses += 1
        spoken = await asyncio.to_thread(self._chain.synthesize, text, language=language,
                                         voice=voice, engine=engine)
        media = await self._library.store_converted(
            speech_key(spoken.engine, voice, language, text), spoken.wav)
        self._recent[job] = spoken.fallbacks
        while len(self._recent) > RECENT_JOBS:
            self._recent.popitem(last=False)
        return SpokenMedia(media, spoken.engine, spoken.fallbacks, cached=False)
