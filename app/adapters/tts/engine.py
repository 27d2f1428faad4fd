"""What a speech engine is, and how the engines named in settings become one falling-back chain."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import soundfile as sf

log = logging.getLogger(__name__)

# Offline neural voice first; Google (only when enabled) before the robotic engines because
# it sounds better and speaks more languages; flite (English, always there) and espeak-ng
# (many languages) last, so something always speaks.


class TtsUnavailable(Exception):
    """The engine is missing, not installed, or cannot serve this language or voice."""


class TtsFailed(Exception):
    """The engine (or every engine of a chain) tried and did not produce audio."""

    def __init__(self, message: str, reasons: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.reasons: tuple[str, ...] = tuple(reasons)


class SpeechEngine(Protocol):
    """One way to turn text into speech. Implementations are synchronous and thread-safe."""

    name: str

    def synthesize(self, text: str, *, language: str, voice: str | None) -> bytes:
        """Return an audio file's bytes (WAV or anything soundfile decodes).

        ``language`` is a BCP 47 tag such as ``en`` or ``en-US``; ``voice`` is an
        engine-specific voice name, ``None`` for the engine's default.
        Raises :class:`TtsUnavailable` or :class:`TtsFailed`.
        """
        ...


@dataclass(frozen=True, slots=True)
class Spoken:
    """Audio from the first engine that succeeded, and why the ones before it did not."""

    wav: bytes
    engine: str
    fallbacks: tuple[str, ...]  # "name: reason", in the order they were tried


class SpeechChain:
    """Tries engines in order until one produces decodable audio."""

    def __init__(self, engines: Sequence[SpeechEngine]) -> None:
        names = [engine.name for engine in engines]
        if len(set(names)) != len(names):
            raise ValueError(f"engine names must be unique: {names}")
        self._engines = tuple(engines)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(engine.name for engine in self._engines)

    def warm_up(self) -> None:
        """Let engines with a slow first use (piper loads its model) get ready; blocking."""
        for engine in self._engines:
            warm_up = getattr(engine, "warm_up", None)
            if callable(warm_up):
                try:
                    warm_up()
                except Exception:  # a broken engine is found again, and skipped, when used
                    log.exception("tts engine %s failed to warm up", engine.name)

    def synthesize(
        self, text: str, *, language: str, voice: str | None, engine: str | None = None
    ) -> Spoken:
        """Speak ``text`` with ``engine`` if given, then with the rest of the chain in order.

        Raises :class:`TtsFailed` with every engine's reason when none succeeds, and
        :class:`ValueError` for blank text (no engine could do better).
        """
        if not text.strip():
            raise ValueError("nothing to say: the text is blank")
        fallbacks: list[str] = []
        order = list(self._engines)
        if engine is not None:
            requested = [e for e in order if e.name == engine]
            if requested:
                order.remove(requested[0])
                order.insert(0, requested[0])
            else:
                fallbacks.append(f"{engine}: not available on this machine")
        for candidate in order:
            try:
                wav = candidate.synthesize(text, language=language, voice=voice)
                _check_decodable(wav)
            except (TtsUnavailable, TtsFailed) as error:
                reason = str(error) or type(error).__name__
            except Exception as error:
                # An engine's bug must not silence a broadcast another engine can still voice.
                log.exception("tts engine %s crashed", candidate.name)
                reason = f"unexpected {type(error).__name__}: {error}"
            else:
                return Spoken(wav=wav, engine=candidate.name, fallbacks=tuple(fallbacks))
            fallbacks.append(f"{candidate.name}: {_short(reason)}")
        if not order:
            fallbacks.append("no engine is configured")
        raise TtsFailed("no text-to-speech engine succeeded: " + "; ".join(fallbacks), fallbacks)


def _check_decodable(audio: bytes) -> None:
    # Catching garbage here lets the chain fall back instead of failing later in conversion.
    try:
        info = sf.info(io.BytesIO(audio))
    except Exception as error:
        raise TtsFailed(f"produced undecodable audio ({error})") from error
    if info.frames <= 0:
        raise TtsFailed("produced no audio")


def _short(reason: str, limit: int = 200) -> str:
    flat = " ".join(reason.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


@dataclass(frozen=True, slots=True)
class EngineSelection:
    """The engines that can run here, in the asked order, and why the others were left out."""

    engines: tuple[SpeechEngine, ...]
    skipped: tuple[tuple[str, str], ...]  # (name, reason), for the startup log


def select_engines(
    names: Sequence[str],
    *,
    gtts_enabled: bool,
    gtts_timeout: float,
    gtts_base_url: str | None = None,
) -> EngineSelection:
    """Build the named engines that are available on this machine.

    Unknown names raise :class:`ValueError` (a typo in the settings must not pass
    silently); engines that are known but not usable here are skipped with a reason.
    """
    factories: dict[str, Callable[[], SpeechEngine]] = {
        "piper": _piper,
        "flite": _flite,
        "espeak": _espeak,
        "gtts": lambda: _gtts(gtts_enabled, gtts_timeout, gtts_base_url),
    }
    unknown = [name for name in names if name not in factories]
    if unknown:
        raise ValueError(f"unknown tts engine(s) {unknown}; known: {sorted(factories)}")
    engines: list[SpeechEngine] = []
    skipped: list[tuple[str, str]] = []
    for name in dict.fromkeys(names):  # keeps the order, drops repeats
        try:
            engines.append(factories[name]())
        except TtsUnavailable as error:
            skipped.append((name, str(error)))
    return EngineSelection(engines=tuple(engines), skipped=tuple(skipped))


def build_engines(
    names: Sequence[str],
    *,
    gtts_enabled: bool,
    gtts_timeout: float,
    gtts_base_url: str | None = None,
) -> list[SpeechEngine]:
    """The available engines among ``names``, in order; skipped ones are logged at INFO.

    Use :func:`select_engines` to get the skipped engines and reasons as data.
    """
    selection = select_engines(
        names, gtts_enabled=gtts_enabled, gtts_timeout=gtts_timeout, gtts_base_url=gtts_base_url
    )
    for name, reason in selection.skipped:
        log.info("tts engine %s skipped: %s", name, reason)
    return list(selection.engines)


# Engine modules are imported here, not at the top, so a broken optional library
# (e.g. onnxruntime) can only ever skip its own engine.


def _piper() -> SpeechEngine:
    from app.adapters.tts.piper import PiperEngine

    return PiperEngine.probe()


def _flite() -> SpeechEngine:
    from app.adapters.tts.flite import FliteEngine

    return FliteEngine.probe()


def _espeak() -> SpeechEngine:
    from app.adapters.tts.espeak import EspeakEngine

    return EspeakEngine.probe()


def _gtts(enabled: bool, timeout: float, base_url: str | None) -> SpeechEngine:
    if not enabled:
        raise TtsUnavailable("disabled by setting (it sends the text to Google)")
    from app.adapters.tts.gtts import GttsEngine

    return GttsEngine.probe(timeout=timeout, base_url=base_url)
