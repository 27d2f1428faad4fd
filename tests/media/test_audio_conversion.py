"""convert_for_asterisk: every decodable input becomes mono/8 kHz/PCM_16 WAV."""

from __future__ import annotations

import io
import os
import struct

import numpy as np
import numpy.typing as npt
import pytest
import soundfile as sf

from app.adapters.media.audio_conversion import (
    ConvertedAudio,
    UnsupportedAudio,
    convert_for_asterisk,
)

TONE_HZ = 1000.0


def _sine(rate: int, seconds: float, channels: int) -> npt.NDArray[np.float64]:
    t = np.arange(int(round(rate * seconds))) / rate
    tone = 0.5 * np.sin(2 * np.pi * TONE_HZ * t)
    return np.stack([tone] * channels, axis=1)


def _encode(rate: int, seconds: float, channels: int, fmt: str, subtype: str) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, _sine(rate, seconds, channels), rate, format=fmt, subtype=subtype)
    return buf.getvalue()


def _decode_output(result: ConvertedAudio) -> npt.NDArray[np.float64]:
    with sf.SoundFile(io.BytesIO(result.wav_bytes)) as out:
        assert (out.format, out.subtype, out.channels, out.samplerate) == (
            "WAV",
            "PCM_16",
            1,
            8000,
        )
        samples: npt.NDArray[np.float64] = out.read(dtype="float64")
    return samples


def _peak_hz(samples: npt.NDArray[np.float64], rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[np.argmax(spectrum)])


FORMATS = [
    pytest.param(44100, 2, "WAV", "PCM_16", id="wav-44k1-stereo-16bit"),
    pytest.param(22050, 1, "WAV", "PCM_U8", id="wav-8bit"),
    pytest.param(48000, 2, "WAV", "PCM_24", id="wav-24bit"),
    pytest.param(32000, 1, "WAV", "PCM_32", id="wav-32bit"),
    pytest.param(44100, 2, "WAV", "FLOAT", id="wav-float32"),
    pytest.param(16000, 1, "WAV", "PCM_16", id="wav-16k-mono"),
    pytest.param(8000, 1, "WAV", "PCM_16", id="wav-already-8k"),
    pytest.param(44100, 6, "WAV", "PCM_16", id="wav-6-channels"),
    pytest.param(44100, 2, "FLAC", "PCM_16", id="flac"),
    pytest.param(44100, 2, "OGG", "VORBIS", id="ogg-vorbis"),
    pytest.param(48000, 2, "OGG", "OPUS", id="ogg-opus"),
    pytest.param(44100, 2, "MP3", "MPEG_LAYER_III", id="mp3"),
]


@pytest.mark.parametrize(("rate", "channels", "fmt", "subtype"), FORMATS)
def test_converts_to_asterisk_wav_keeping_duration_and_pitch(
    rate: int, channels: int, fmt: str, subtype: str
) -> None:
    if fmt not in sf.available_formats() or subtype not in sf.available_subtypes(fmt):
        pytest.skip(f"libsndfile here cannot write {fmt}/{subtype}")
    seconds = 1.5

    result = convert_for_asterisk(_encode(rate, seconds, channels, fmt, subtype))

    samples = _decode_output(result)
    assert result.source_rate == rate
    assert result.source_channels == channels
    assert result.duration_seconds == pytest.approx(seconds, abs=0.010)
    assert len(samples) / 8000 == pytest.approx(result.duration_seconds, abs=1e-9)
    assert _peak_hz(samples, 8000) == pytest.approx(TONE_HZ, abs=8000 / len(samples) * 2)
    # Amplitude survives (averaging identical channels must not halve or double it).
    assert np.max(np.abs(samples[800:-800])) == pytest.approx(0.5, abs=0.05)


def test_output_header_is_canonical_44_byte_pcm() -> None:
    result = convert_for_asterisk(_encode(16000, 0.25, 1, "WAV", "PCM_16"))

    riff, _, wave, fmt_id, fmt_len, tag, channels, rate, byte_rate, align, bits = struct.unpack(
        "<4sI4s4sIHHIIHH", result.wav_bytes[:36]
    )
    assert (riff, wave, fmt_id, fmt_len) == (b"RIFF", b"WAVE", b"fmt ", 16)
    assert (tag, channels, rate, byte_rate, align, bits) == (1, 1, 8000, 16000, 2, 16)
    assert result.wav_bytes[36:40] == b"data"
    (data_len,) = struct.unpack("<I", result.wav_bytes[40:44])
    assert data_len == len(result.wav_bytes) - 44 == 2 * 2000


def test_downmix_averages_channels() -> None:
    rate = 8000
    left = np.full(rate, 0.6)
    right = np.full(rate, -0.2)
    buf = io.BytesIO()
    sf.write(buf, np.stack([left, right], axis=1), rate, format="WAV", subtype="FLOAT")

    samples = _decode_output(convert_for_asterisk(buf.getvalue()))

    assert np.allclose(samples, 0.2, atol=1 / 32768)


def test_clips_instead_of_wrapping() -> None:
    buf = io.BytesIO()
    # Float WAV can hold values past full scale; int16 conversion must saturate.
    sf.write(buf, np.array([1.8, -1.8, 0.0] * 800), 8000, format="WAV", subtype="FLOAT")

    samples = _decode_output(convert_for_asterisk(buf.getvalue()))

    assert samples.max() == pytest.approx(1.0, abs=1e-4)
    assert samples.min() == pytest.approx(-1.0, abs=1e-4)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"<html><body>404 Not Found</body></html>", id="html"),
        pytest.param(b"hello world\n" * 500, id="text"),
        pytest.param(os.urandom(20_000), id="random"),
        pytest.param(b"RIFF\x24\x00\x00\x00WAVEfmt ", id="truncated-header"),
    ],
)
@pytest.mark.timeout(10)
def test_non_audio_is_rejected(data: bytes) -> None:
    with pytest.raises(UnsupportedAudio, match="audio"):
        convert_for_asterisk(data)


def _wav_header(data_len: int, rate: int = 8000) -> bytes:
    """A 16-bit mono RIFF/WAVE header whose sizes say whatever we are told."""
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        *(b"RIFF", 0xFFFFFFF0, b"WAVE", b"fmt ", 16, 1, 1, rate, rate * 2, 2, 16),
        *(b"data", data_len),
    )


def test_zero_frames_is_rejected() -> None:
    buf = io.BytesIO()
    sf.write(buf, np.zeros((0, 1)), 8000, format="WAV", subtype="PCM_16")

    with pytest.raises(UnsupportedAudio, match="no frames"):
        convert_for_asterisk(buf.getvalue())


@pytest.mark.parametrize(
    ("body", "expected_frames"),
    [
        pytest.param(os.urandom(1000), 500, id="garbage-after-header"),
        pytest.param(b"\x01", 0, id="truncated-mid-sample"),
        pytest.param(b"", 0, id="no-data-at-all"),
    ],
)
@pytest.mark.timeout(10)
def test_lying_header_gives_short_result_or_rejection(body: bytes, expected_frames: int) -> None:
    data = _wav_header(0xFFFFFFF0) + body

    if expected_frames == 0:
        with pytest.raises(UnsupportedAudio):
            convert_for_asterisk(data)
        return
    result = convert_for_asterisk(data)
    assert result.duration_seconds == pytest.approx(expected_frames / 8000)
    assert len(_decode_output(result)) == expected_frames


@pytest.mark.timeout(10)
def test_lying_header_with_real_pcm_keeps_the_pcm() -> None:
    pcm = np.concatenate([(np.sin(np.arange(1600) / 5) * 8000), [-32768, 32767]]).astype("<i2")

    result = convert_for_asterisk(_wav_header(0xFFFFFFF0) + pcm.tobytes())

    assert np.array_equal(np.rint(_decode_output(result) * 32768).astype("<i2"), pcm)


def test_max_duration_rejects_long_audio() -> None:
    data = _encode(8000, 2.0, 1, "WAV", "PCM_16")

    with pytest.raises(UnsupportedAudio, match="longer than"):
        convert_for_asterisk(data, max_duration_seconds=1.0)
    assert convert_for_asterisk(data, max_duration_seconds=2.0).duration_seconds == 2.0


def test_unsupported_audio_is_a_value_error() -> None:
    assert issubclass(UnsupportedAudio, ValueError)


@pytest.mark.timeout(10)
def test_default_cap_rejects_a_decompression_bomb() -> None:
    # ~2 hours of silence at 1 kHz compresses to a few kilobytes of FLAC.
    buf = io.BytesIO()
    sf.write(buf, np.zeros(7_300_000, dtype="int16"), 1000, format="FLAC", subtype="PCM_16")
    assert len(buf.getvalue()) < 1_000_000

    with pytest.raises(UnsupportedAudio, match="longer than 3600 s"):
        convert_for_asterisk(buf.getvalue())
