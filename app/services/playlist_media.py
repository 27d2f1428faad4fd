"""Turn playlist items into sounds Asterisk plays: fetched audio, uploads, speech, silence.

`play` URLs are fetched and converted once (content-hash cache), `media:<id>` names an upload
already in the cache, `say` goes through the speech chain with the recipient's variables filled
in, `pause` is cached silence. Items that do not depend on a recipient are prepared once per
request; `loop` repeats an item's sound.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from app.adapters.media.audio_conversion import UnsupportedAudio
from app.adapters.media.fetcher import MediaFetchError
from app.adapters.tts.engine import TtsFailed
from app.domain.text_template import TemplateError, fill, placeholders
from app.services.media_library import MediaLibrary
from app.services.speech import Speech


class MediaProblem(Exception):
    """A playlist item cannot be turned into sound; `field` names it for the client."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class ItemSound:
    sound: str
    loop: int
    speech: dict[str, Any] | None  # for `say`: which engine spoke, and what failed first


def is_personal(item: Mapping[str, Any]) -> bool:
    """Does the item's sound depend on the recipient's variables?"""
    return "say" in item and bool(placeholders(str(item["say"])))


def expand(sounds: list[ItemSound]) -> tuple[list[str], list[dict[str, Any]]]:
    """The sounds to play in order (loops unrolled), and the speech notes per item."""
    played: list[str] = []
    speech: list[dict[str, Any]] = []
    for index, item in enumerate(sounds):
        played.extend([item.sound] * item.loop)
        if item.speech is not None:
            speech.append({"item": index, **item.speech})
    return played, speech


class PlaylistMedia:
    def __init__(self, library: MediaLibrary, speech: Speech) -> None:
        self._library = library
        self._speech = speech

    async def shared_items(self, playlist: list[dict[str, Any]]) -> dict[int, ItemSound]:
        """Every item that is the same for all recipients, prepared once."""
        return {index: await self.item(index, item, {})
                for index, item in enumerate(playlist) if not is_personal(item)}

    async def for_recipient(self, playlist: list[dict[str, Any]],
                            shared: Mapping[int, ItemSound],
                            variables: Mapping[str, str]) -> list[ItemSound]:
        return [shared[index] if index in shared else await self.item(index, item, variables)
                for index, item in enumerate(playlist)]

    async def item(self, index: int, item: Mapping[str, Any],
                   variables: Mapping[str, str]) -> ItemSound:
        loop = int(item.get("loop", 1))
        try:
            if "play" in item:
                return ItemSound(await self._play(index, str(item["play"])), loop, None)
            if "pause" in item:
                media = await self._library.prepare_silence(float(item["pause"]))
                return ItemSound(media.sound, loop, None)
            spoken = await self._speech.speak(
                fill(str(item["say"]), variables), language=str(item.get("language", "en")),
                voice=item.get("voice"), engine=item.get("engine"))
        except MediaFetchError as error:
            raise MediaProblem(f"playlist[{index}].play", str(error)) from error
        except UnsupportedAudio as error:
            field = "say" if "say" in item else "play"
            raise MediaProblem(f"playlist[{index}].{field}",
                               f"is not usable audio: {error}") from error
        except (TtsFailed, TemplateError) as error:
            raise MediaProblem(f"playlist[{index}].say", str(error)) from error
        except ValueError as error:  # e.g. a text that is blank once variables are filled in
            raise MediaProblem(f"playlist[{index}].say", str(error)) from error
        return ItemSound(spoken.media.sound, loop,
                         {"engine": spoken.engine, "fallbacks": list(spoken.fallbacks),
                          "seconds": round(spoken.media.duration_seconds, 2)})

    async def _play(self, index: int, source: str) -> str:
        if source.startswith("media:"):
            media = await self._library.cached(source.removeprefix("media:"))
            if media is None:
                raise MediaProblem(f"playlist[{index}].play",
                                   "no uploaded media with that id (expired or never uploaded)")
            return media.sound
        return (await self._library.prepare(source)).sound
