"""Running a command-line speech engine safely: no shell, a timeout, and its WAV read back."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from app.adapters.tts.engine import TtsFailed, TtsUnavailable


def find_program(name: str) -> str:
    """The absolute path of ``name`` on PATH, resolved once so later PATH changes don't matter."""
    path = shutil.which(name)
    if path is None:
        raise TtsUnavailable(f"{name} is not installed (not on PATH)")
    return path


def run_to_wav(
    build_argv: Callable[[Path], list[str]],
    *,
    stdin: bytes | None,
    timeout: float,
    program: str,
) -> bytes:
    """Run ``build_argv(output_path)`` and return the WAV it wrote to ``output_path``.

    The argument list is passed to the program directly (never through a shell); a
    program that outlives ``timeout`` is killed and :class:`TtsFailed` is raised.
    """
    with tempfile.TemporaryDirectory(prefix="voxcast-tts-") as folder:
        output = Path(folder) / "speech.wav"
        argv = build_argv(output)
        try:
            result = subprocess.run(  # noqa: S603 - an argument list, no shell
                argv,
                input=stdin,
                # Without input, /dev/null: the engine must never read the service's stdin.
                stdin=None if stdin is not None else subprocess.DEVNULL,
                capture_output=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as error:
            raise TtsFailed(f"{program} took longer than {timeout:g} s") from error
        except OSError as error:  # vanished binary, text too long for argv (E2BIG), ...
            raise TtsFailed(f"{program} could not run: {error}") from error
        if result.returncode != 0:
            detail = result.stderr.decode("utf-8", "replace").strip() or "no message"
            raise TtsFailed(f"{program} exited with {result.returncode}: {detail}")
        try:
            wav = output.read_bytes()
        except OSError as error:
            raise TtsFailed(f"{program} wrote no audio file") from error
        if not wav:
            raise TtsFailed(f"{program} wrote an empty audio file")
        return wav
