"""Shared test helpers: free loopback ports and generated audio."""

import io

import numpy as np
import pytest
import soundfile

from app.demo import free_port, tone_wav

__all__ = ["free_port", "tone_mp3", "tone_wav"]


def tone_mp3(seconds: float, rate: int = 44100) -> bytes:
    frames = np.arange(int(seconds * rate)) / rate
    buffer = io.BytesIO()
    soundfile.write(buffer, 0.3 * np.sin(2 * np.pi * 660 * frames), rate, format="MP3")
    return buffer.getvalue()


@pytest.fixture
def unused_port() -> int:
    return free_port()
