"""Audio for tests: generated tones, G.711 decoding, and measuring what was heard.

G.711 is done here with numpy from the standard tables (the stdlib `audioop` is deprecated and
gone in Python 3.13); tests/unit/test_support_audio.py checks it against libsndfile.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import soundfile

G711_RATE = 8000
_ULAW_BIAS = 0x84
_ULAW_CLIP = 32635


def tone(seconds: float, rate: int = G711_RATE, hz: float = 440.0,
         amplitude: float = 0.3) -> np.ndarray:
    """A sine tone as float samples in [-1, 1]."""
    frames = np.arange(int(round(seconds * rate))) / rate
    return amplitude * np.sin(2 * np.pi * hz * frames)


def tone_wav(seconds: float, rate: int = 44100, channels: int = 2, hz: float = 440.0) -> bytes:
    """A sine tone as a 16-bit WAV, by default not in Asterisk's format (it gets converted)."""
    mono = tone(seconds, rate, hz)
    buffer = io.BytesIO()
    soundfile.write(buffer, np.repeat(mono[:, None], channels, axis=1), rate, format="WAV",
                    subtype="PCM_16")
    return buffer.getvalue()


def tone_mp3(seconds: float, rate: int = 44100, hz: float = 660.0) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, tone(seconds, rate, hz), rate, format="MP3")
    return buffer.getvalue()


def read_samples(path: Path) -> tuple[np.ndarray, int]:
    """A WAV file as 16-bit samples (first channel) and its rate."""
    samples, rate = soundfile.read(path, dtype="int16", always_2d=True)
    return samples[:, 0].copy(), int(rate)


# --- G.711 -----------------------------------------------------------------------------------

def ulaw_decode(data: bytes) -> np.ndarray:
    """G.711 µ-law bytes to 16-bit linear samples."""
    code = ~np.frombuffer(data, dtype=np.uint8).astype(np.int32) & 0xFF
    exponent = (code >> 4) & 0x07
    mantissa = code & 0x0F
    magnitude = (((mantissa << 3) + _ULAW_BIAS) << exponent) - _ULAW_BIAS
    return np.where(code & 0x80, -magnitude, magnitude).astype(np.int16)


def ulaw_encode(samples: np.ndarray) -> bytes:
    """16-bit linear samples to G.711 µ-law bytes."""
    linear = samples.astype(np.int32)
    sign = np.where(linear < 0, 0x80, 0)
    magnitude = np.minimum(np.abs(linear), _ULAW_CLIP) + _ULAW_BIAS
    exponent = np.clip(np.floor(np.log2(magnitude)).astype(np.int32) - 7, 0, 7)
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return (~(sign | (exponent << 4) | mantissa) & 0xFF).astype(np.uint8).tobytes()


def alaw_decode(data: bytes) -> np.ndarray:
    """G.711 A-law bytes to 16-bit linear samples."""
    code = np.frombuffer(data, dtype=np.uint8).astype(np.int32) ^ 0x55
    segment = (code >> 4) & 0x07
    level = ((code & 0x0F) << 4) + np.where(segment == 0, 8, 0x108)
    magnitude = np.where(segment > 1, level << np.maximum(segment - 1, 0), level)
    return np.where(code & 0x80, magnitude, -magnitude).astype(np.int16)


def alaw_encode(samples: np.ndarray) -> bytes:
    """16-bit linear samples to G.711 A-law bytes."""
    linear = samples.astype(np.int32) >> 3
    mask = np.where(linear >= 0, 0xD5, 0x55)
    magnitude = np.where(linear >= 0, linear, -linear - 1)
    segment = np.searchsorted(np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF]),
                              magnitude)
    shift = np.where(segment < 2, 1, segment)
    code = (np.minimum(segment, 7) << 4) | ((magnitude >> shift) & 0x0F)
    code = np.where(segment >= 8, 0x7F, code)
    return ((code ^ mask) & 0xFF).astype(np.uint8).tobytes()


# --- measuring ---------------------------------------------------------------------------------

def dominant_frequency(samples: np.ndarray, rate: int = G711_RATE) -> float:
    """The strongest frequency, in Hz, to a fraction of a bin (Hann window, parabolic peak)."""
    signal = samples.astype(np.float64)
    if len(signal) < 4:
        return 0.0
    spectrum = np.abs(np.fft.rfft((signal - signal.mean()) * np.hanning(len(signal))))
    peak = int(np.argmax(spectrum[1:])) + 1
    offset = 0.0
    if 1 <= peak < len(spectrum) - 1:
        left, centre, right = np.log(spectrum[peak - 1: peak + 2] + 1e-12)
        bend = left - 2 * centre + right
        offset = 0.5 * (left - right) / bend if bend else 0.0
    return float((peak + offset) * rate / len(signal))


def tone_seconds(samples: np.ndarray, hz: float, rate: int = G711_RATE,
                 frame_seconds: float = 0.02, tolerance_hz: float = 25.0) -> float:
    """How long `hz` is heard: 20 ms frames that are loud and dominated by it, in seconds.

    A frame counts when its level is within 12 dB of the loudest frame's and its dominant
    frequency is within `tolerance_hz` of `hz` (a 20 ms frame resolves about 50 Hz).
    """
    size = int(rate * frame_seconds)
    count = len(samples) // size
    if count == 0:
        return 0.0
    frames = samples[: count * size].astype(np.float64).reshape(count, size)
    levels = np.sqrt((frames ** 2).mean(axis=1))
    loud = levels >= levels.max() / 4
    heard = sum(1 for frame, is_loud in zip(frames, loud, strict=True)
                if is_loud and abs(dominant_frequency(frame, rate) - hz) <= tolerance_hz)
    return heard * frame_seconds


def best_alignment(received: np.ndarray, expected: np.ndarray) -> float:
    """The highest normalised cross-correlation of `expected` within `received`, in [-1, 1].

    1.0 means `received` holds `expected` sample for sample (at some offset, at any level).
    Computed with FFTs over every window as long as `expected`; `received` is padded with
    silence, so a stream a packet short of the file still lines up.
    """
    wanted = expected.astype(np.float64) - expected.mean()
    length = len(wanted)
    if length == 0 or not np.any(wanted):
        return 0.0
    padding = np.zeros(length)
    heard = np.concatenate((padding, received.astype(np.float64), padding))
    size = 1 << int(np.ceil(np.log2(len(heard) + length)))
    products = np.fft.irfft(np.fft.rfft(heard, size) * np.conj(np.fft.rfft(wanted, size)), size)
    products = products[: len(heard) - length + 1]
    cumulative = np.concatenate(([0.0], np.cumsum(heard)))
    cumulative_sq = np.concatenate(([0.0], np.cumsum(heard ** 2)))
    window_sum = cumulative[length:] - cumulative[:-length]
    window_energy = cumulative_sq[length:] - cumulative_sq[:-length] - window_sum ** 2 / length
    norm = np.sqrt(np.maximum(window_energy, 1e-12) * float(np.sum(wanted ** 2)))
    return float(np.max(products / norm))
