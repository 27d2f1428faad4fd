"""The test-support audio tools measure what they claim: checked against libsndfile and tones."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile

from tests.support.audio import (
    alaw_decode,
    alaw_encode,
    best_alignment,
    dominant_frequency,
    tone,
    tone_seconds,
    ulaw_decode,
    ulaw_encode,
)

EVERY_CODE = bytes(range(256))


@pytest.mark.parametrize(("subtype", "decode"), [("ULAW", ulaw_decode), ("ALAW", alaw_decode)])
def test_g711_decoding_matches_libsndfile_for_every_code(subtype, decode) -> None:
    reference, _ = soundfile.read(io.BytesIO(EVERY_CODE), samplerate=8000, channels=1,
                                  format="RAW", subtype=subtype, dtype="int16")
    assert np.array_equal(decode(EVERY_CODE), reference)


@pytest.mark.parametrize(("encode", "decode"), [(ulaw_encode, ulaw_decode),
                                                (alaw_encode, alaw_decode)])
def test_g711_round_trip_stays_within_one_quantisation_step(encode, decode) -> None:
    linear = np.arange(-32768, 32768, 7, dtype=np.int16)
    back = decode(encode(linear)).astype(np.int32)
    # G.711 steps grow with the level: 1/16 of the value (A-law, mu-law) at most, plus a floor.
    assert np.all(np.abs(back - linear) <= np.abs(linear.astype(np.int32)) // 16 + 16)


def test_mu_law_encoding_matches_libsndfile() -> None:
    linear = np.arange(-32768, 32768, dtype=np.int16)
    buffer = io.BytesIO()
    soundfile.write(buffer, linear, 8000, format="RAW", subtype="ULAW")
    assert ulaw_encode(linear) == buffer.getvalue()


def test_a_tone_is_measured_by_frequency_and_length() -> None:
    samples = (tone(1.5, hz=440) * 32767).astype(np.int16)
    padded = np.concatenate((np.zeros(4000, np.int16), samples, np.zeros(4000, np.int16)))
    assert dominant_frequency(padded) == pytest.approx(440, abs=1)
    assert tone_seconds(padded, 440) == pytest.approx(1.5, abs=0.04)
    assert tone_seconds(padded, 660) == 0


def test_alignment_finds_the_same_audio_and_not_another() -> None:
    rng = np.random.default_rng(7)
    speech = (rng.standard_normal(8000) * 3000).astype(np.int16)
    other = (rng.standard_normal(8000) * 3000).astype(np.int16)
    received = np.concatenate((np.zeros(1234, np.int16), ulaw_decode(ulaw_encode(speech))))
    assert best_alignment(received, speech) > 0.99
    assert best_alignment(received[:-20], speech) > 0.99  # a stream a few samples short
    assert best_alignment(received, other) < 0.2
