"""Convert arbitrary decodable audio bytes into the one WAV flavour Asterisk plays.

Asterisk only plays 16-bit mono PCM WAV at 8 kHz (named ``.wav``), so every
fetched file goes through :func:`convert_for_asterisk` before it is stored.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import soundfile as sf
import soxr

TARGET_RATE = 8000

# A broadcast message is minutes long; the cap stops a small, highly compressible
# (or lying) file from expanding into gigabytes of PCM.
DEFAULT_MAX_DURATION_SECONDS = 3600.0

# Decoding and resampling block by block keeps memory bounded by the output
# size, not by the (possibly much larger) decoded source.
_BLOCK_FRAMES = 65536


class UnsupportedAudio(ValueError):
    """The bytes are not audio libsndfile can decode, or they hold no sound."""


@dataclass(frozen=True, slots=True)
class ConvertedAudio:
    """A 16-bit mono 8 kHz PCM WAV and facts about where it came from."""

    wav_bytes: bytes
    duration_seconds: float
    source_rate: int
    source_channels: int


def convert_for_asterisk(
    data: bytes, *, max_duration_seconds: float | None = DEFAULT_MAX_DURATION_SECONDS
) -> ConvertedAudio:
    """Decode ``data`` (WAV/FLAC/OGG/MP3/...), downmix, resample to 8 kHz, encode WAV.

    Sources longer than ``max_duration_seconds`` are rejected (``None`` disables the cap).
    Raises :class:`UnsupportedAudio` for undecodable or empty input.
    """
    if not data:
        raise UnsupportedAudio("audio is empty (0 bytes)")
    try:
        with sf.SoundFile(io.BytesIO(data)) as source:
            source_rate = int(source.samplerate)
            source_channels = int(source.channels)
            description = f"{source.format}/{source.subtype}"
            if source_rate <= 0 or source_channels <= 0:
                raise UnsupportedAudio(
                    f"audio has an invalid layout ({source_rate} Hz, {source_channels} channels)"
                )
            samples = _decode_to_8k_mono(source, source_rate, max_duration_seconds)
    except sf.SoundFileError as exc:
        # libsndfile's own message names the BytesIO object, which is noise.
        reason = str(exc).rsplit(": ", 1)[-1]
        raise UnsupportedAudio(f"bytes do not decode as audio: {reason}") from exc

    if samples.size == 0:
        raise UnsupportedAudio(f"audio ({description}) contains no frames")

    # Scaling by 32768 (libsndfile's own convention) makes 16-bit 8 kHz input round-trip
    # bit-exactly; the clip also saturates float sources and resampler overshoot.
    pcm = np.clip(np.rint(samples * 32768.0), -32768, 32767).astype("<i2")
    out = io.BytesIO()
    sf.write(out, pcm, TARGET_RATE, format="WAV", subtype="PCM_16")
    return ConvertedAudio(
        wav_bytes=out.getvalue(),
        duration_seconds=pcm.shape[0] / TARGET_RATE,
        source_rate=source_rate,
        source_channels=source_channels,
    )


def _decode_to_8k_mono(
    source: sf.SoundFile, source_rate: int, max_duration_seconds: float | None
) -> npt.NDArray[np.float32]:
    # Frame counts in headers can lie (truncated or hostile files), so read until
    # the decoder actually runs dry instead of allocating what the header claims.
    max_frames = None if max_duration_seconds is None else int(max_duration_seconds * source_rate)
    stream = (
        None
        if source_rate == TARGET_RATE
        else soxr.ResampleStream(source_rate, TARGET_RATE, 1, dtype="float32", quality="HQ")
    )
    parts: list[npt.NDArray[np.float32]] = []
    frames_read = 0
    while True:
        block = source.read(_BLOCK_FRAMES, dtype="float32", always_2d=True)
        if block.shape[0] == 0:
            break
        frames_read += block.shape[0]
        if max_frames is not None and frames_read > max_frames:
            raise UnsupportedAudio(f"audio is longer than {max_duration_seconds:g} s")
        mono = np.ascontiguousarray(block.mean(axis=1, dtype=np.float32))
        parts.append(mono if stream is None else stream.resample_chunk(mono, last=False))
    if stream is not None:
        parts.append(stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True))
    if not parts:
        return np.zeros(0, dtype=np.float32)
    return np.concatenate(parts).astype(np.float32, copy=False)
