"""Each installed engine speaks; command-line engines never interpret the text; engine selection."""

from __future__ import annotations

import io
import threading
from pathlib import Path
from typing import Any

import pytest
import soundfile as sf

from app.adapters.tts.engine import (
    SpeechEngine,
    TtsUnavailable,
    build_engines,
    select_engines,
)

SENTENCE = "Hello Alice, this is Voxcast."
ENGINES = ("piper", "flite", "espeak")


def seconds(audio: bytes) -> float:
    return float(sf.info(io.BytesIO(audio)).duration)


@pytest.fixture(scope="module")
def installed() -> dict[str, SpeechEngine]:
    selection = select_engines(ENGINES, gtts_enabled=False, gtts_timeout=1.0)
    return {engine.name: engine for engine in selection.engines}


def engine_or_skip(installed: dict[str, SpeechEngine], name: str) -> SpeechEngine:
    if name not in installed:
        pytest.skip(f"{name} is not installed here")
    return installed[name]


@pytest.mark.parametrize("name", ENGINES)
def test_engine_speaks_a_sentence(installed: dict[str, SpeechEngine], name: str) -> None:
    engine = engine_or_skip(installed, name)
    audio = engine.synthesize(SENTENCE, language="en-US", voice=None)
    assert 0.8 <= seconds(audio) <= 5.0


def test_the_default_machine_has_every_offline_engine() -> None:
    # `make venv` installs all three; a skip elsewhere must not hide a broken install here.
    selection = select_engines(ENGINES, gtts_enabled=False, gtts_timeout=1.0)
    assert [engine.name for engine in selection.engines] == list(ENGINES), selection.skipped


def hostile_texts(folder: Path) -> list[str]:
    return [
        f"-o {folder}/option.wav",
        "--help",
        f"-voice {folder}/voice.flitevox",
        f"-w {folder}/option.wav --stdin",
        "It's \"quoted\" and 'single' quoted.",
        "first line\nsecond line\n-third line",
        f"$(touch {folder}/dollar) `touch {folder}/tick`; touch {folder}/semi | cat & > <",
        "<speak>markup is read out</speak> [[h@'loU]]",
    ]


@pytest.mark.parametrize("name", ["flite", "espeak", "piper"])
def test_text_is_spoken_never_interpreted(
    installed: dict[str, SpeechEngine], name: str, tmp_path: Path
) -> None:
    engine = engine_or_skip(installed, name)
    for text in hostile_texts(tmp_path):
        audio = engine.synthesize(text, language="en", voice=None)
        assert seconds(audio) > 0.4, text  # it was read out as words
    assert list(tmp_path.iterdir()) == []  # no option wrote a file, no shell ran


def test_flite_voice_is_a_builtin_name_only(installed: dict[str, SpeechEngine]) -> None:
    flite = engine_or_skip(installed, "flite")
    assert seconds(flite.synthesize(SENTENCE, language="en", voice="slt")) > 0.8
    for voice in ("/etc/passwd", "http://127.0.0.1:9/x.flitevox", "-o", "nobody"):
        with pytest.raises(TtsUnavailable):
            flite.synthesize(SENTENCE, language="en", voice=voice)


def test_espeak_rejects_option_like_languages_and_voices(
    installed: dict[str, SpeechEngine],
) -> None:
    espeak = engine_or_skip(installed, "espeak")
    for language, voice in (("-w", None), ("en", "-w"), ("../../etc/passwd", None), ("zz", None)):
        with pytest.raises(TtsUnavailable):
            espeak.synthesize(SENTENCE, language=language, voice=voice)


def test_languages(installed: dict[str, SpeechEngine]) -> None:
    espeak = engine_or_skip(installed, "espeak")
    assert seconds(espeak.synthesize("Bonjour à tous.", language="fr-FR", voice=None)) > 0.5
    assert seconds(espeak.synthesize(SENTENCE, language="en-AU", voice="f3")) > 0.8
    for name in ("flite", "piper"):
        with pytest.raises(TtsUnavailable):
            engine_or_skip(installed, name).synthesize("Bonjour.", language="fr", voice=None)


def test_piper_loads_its_voice_once_across_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    selection = select_engines(["piper"], gtts_enabled=False, gtts_timeout=1.0)
    if not selection.engines:
        pytest.skip(f"piper is not usable here: {selection.skipped}")
    import piper

    loads: list[int] = []
    real_load = piper.PiperVoice.load

    def counting_load(*args: Any, **kwargs: Any) -> piper.PiperVoice:
        loads.append(1)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(piper.PiperVoice, "load", staticmethod(counting_load))
    engine = selection.engines[0]
    durations: list[float] = []
    threads = [
        threading.Thread(
            target=lambda: durations.append(
                seconds(engine.synthesize(SENTENCE, language="en", voice=None))
            )
        )
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(durations) == 4 and all(d > 0.8 for d in durations)
    assert loads == [1]


def test_unavailable_engines_are_skipped_with_a_reason(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")  # neither flite nor espeak-ng can be found
    caplog.set_level("INFO", logger="app.adapters.tts.engine")
    selection = select_engines(
        ["flite", "gtts", "espeak", "flite"], gtts_enabled=False, gtts_timeout=1.0
    )
    assert selection.engines == ()
    assert [name for name, _ in selection.skipped] == ["flite", "gtts", "espeak"]
    assert "disabled by setting" in dict(selection.skipped)["gtts"]
    assert build_engines(["flite"], gtts_enabled=False, gtts_timeout=1.0) == []
    assert "tts engine flite skipped: flite is not installed" in caplog.text


def test_unknown_engine_names_are_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="festival"):
        build_engines(["piper", "festival"], gtts_enabled=False, gtts_timeout=1.0)
