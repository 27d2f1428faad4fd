"""Shared test helpers: free loopback ports, generated audio, bounded child processes."""

import asyncio
import io
from pathlib import Path

import numpy as np
import pytest
import soundfile

from app.demo import free_port, tone_wav

__all__ = ["free_port", "run_bounded", "tone_mp3", "tone_wav"]


async def run_bounded(command: list[str], limit: float, env: dict[str, str],
                      cwd: Path | None = None) -> tuple[int, str, str]:
    """Run a command to its end within `limit` seconds (killed otherwise): its exit code,
    standard output and standard error."""
    process = await asyncio.create_subprocess_exec(
        *command, cwd=cwd, env=env, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), limit)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, stdout.decode("utf-8", "replace"), stderr.decode("utf-8",
                                                                                  "replace")


def tone_mp3(seconds: float, rate: int = 44100) -> bytes:
    frames = np.arange(int(seconds * rate)) / rate
    buffer = io.BytesIO()
    soundfile.write(buffer, 0.3 * np.sin(2 * np.pi * 660 * frames), rate, format="MP3")
    return buffer.getvalue()


@pytest.fixture
def unused_port() -> int:
    return free_port()
