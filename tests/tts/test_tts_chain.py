"""The speech chain: the requested engine first, then the rest in order, every reason kept."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf

from app.adapters.tts.engine import SpeechChain, Spoken, TtsFailed, TtsUnavailable


def tone(seconds: float = 1.0) -> bytes:
    buffer = io.BytesIO()
    samples = 0.3 * np.sin(2 * np.pi * 440 * np.arange(int(seconds * 8000)) / 8000)
    sf.write(buffer, samples, 8000, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


class Fake:
    def __init__(self, name: str, outcome: bytes | Exception) -> None:
        self.name = name
        self.outcome = outcome
        self.calls: list[tuple[str, str, str | None]] = []

    def synthesize(self, text: str, *, language: str, voice: str | None) -> bytes:
        self.calls.append((text, language, voice))
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome


def test_first_engine_that_works_speaks() -> None:
    chain = SpeechChain([Fake("a", tone()), Fake("b", tone())])
    spoken = chain.synthesize("hi", language="en", voice=None)
    assert spoken == Spoken(wav=tone(), engine="a", fallbacks=())


def test_falls_back_when_the_first_engine_raises() -> None:
    second = Fake("b", tone())
    chain = SpeechChain([Fake("a", TtsFailed("boom")), second])
    spoken = chain.synthesize("hi", language="de", voice="v")
    assert spoken.engine == "b"
    assert spoken.fallbacks == ("a: boom",)
    assert second.calls == [("hi", "de", "v")]


def test_falls_back_on_unavailable_garbage_and_crashes() -> None:
    chain = SpeechChain(
        [
            Fake("a", TtsUnavailable("no French")),
            Fake("b", b"not audio at all"),
            Fake("c", RuntimeError("bug")),
            Fake("d", tone()),
        ]
    )
    spoken = chain.synthesize("salut", language="fr", voice=None)
    assert spoken.engine == "d"
    assert [reason.split(":")[0] for reason in spoken.fallbacks] == ["a", "b", "c"]
    assert "undecodable" in spoken.fallbacks[1]
    assert "RuntimeError: bug" in spoken.fallbacks[2]


def test_requested_engine_is_tried_first() -> None:
    first, second = Fake("a", tone()), Fake("b", tone())
    spoken = SpeechChain([first, second]).synthesize("hi", language="en", voice=None, engine="b")
    assert spoken.engine == "b" and first.calls == []


def test_requested_engine_that_fails_falls_back_to_the_chain_in_order() -> None:
    chain = SpeechChain([Fake("a", tone()), Fake("b", TtsFailed("timeout")), Fake("c", tone())])
    spoken = chain.synthesize("hi", language="en", voice=None, engine="b")
    assert (spoken.engine, spoken.fallbacks) == ("a", ("b: timeout",))


def test_requested_engine_missing_here_is_a_fallback_reason() -> None:
    spoken = SpeechChain([Fake("a", tone())]).synthesize(
        "hi", language="en", voice=None, engine="piper"
    )
    assert (spoken.engine, spoken.fallbacks) == ("a", ("piper: not available on this machine",))


def test_all_failing_lists_every_reason() -> None:
    chain = SpeechChain([Fake("a", TtsFailed("one")), Fake("b", TtsUnavailable("two"))])
    with pytest.raises(TtsFailed) as caught:
        chain.synthesize("hi", language="en", voice=None)
    assert caught.value.reasons == ("a: one", "b: two")
    assert "a: one; b: two" in str(caught.value)


def test_empty_chain_and_blank_text() -> None:
    with pytest.raises(TtsFailed, match="no engine"):
        SpeechChain([]).synthesize("hi", language="en", voice=None)
    with pytest.raises(ValueError, match="blank"):
        SpeechChain([Fake("a", tone())]).synthesize(" \n", language="en", voice=None)
    with pytest.raises(ValueError, match="unique"):
        SpeechChain([Fake("a", tone()), Fake("a", tone())])
