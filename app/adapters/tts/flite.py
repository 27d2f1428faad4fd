"""Speech from the ``flite`` program (CMU Flite): English only, native 8 kHz, always local."""

from __future__ import annotations

import subprocess
from pathlib import Path

from app.adapters.tts._process import find_program, run_to_wav
from app.adapters.tts.engine import TtsUnavailable


class FliteEngine:
    """``flite -o FILE -t TEXT``: about 20 ms a sentence, the fallback that always works."""

    name = "flite"

    def __init__(self, program: str, voices: frozenset[str], *, timeout: float = 15.0) -> None:
        self._program = program
        self._voices = voices
        self._timeout = timeout

    @classmethod
    def probe(cls, *, timeout: float = 15.0) -> FliteEngine:
        """The engine if ``flite`` is installed and runs; else :class:`TtsUnavailable`."""
        program = find_program("flite")
        return cls(program, _list_voices(program), timeout=timeout)

    def synthesize(self, text: str, *, language: str, voice: str | None) -> bytes:
        if language.lower().replace("_", "-").split("-")[0] != "en":
            raise TtsUnavailable(f"flite speaks English only, not {language!r}")
        options: list[str] = []
        if voice is not None:
            # Only built-in voice names: `-voice` would also load a file path or a URL.
            if voice not in self._voices:
                raise TtsUnavailable(f"flite has no voice {voice!r} (has {sorted(self._voices)})")
            options = ["-voice", voice]

        def argv(output: Path) -> list[str]:
            # `-t` takes the next element verbatim as the text, so text starting with `-`
            # is spoken, never parsed as an option; it goes last for the same reason.
            return [self._program, *options, "-o", str(output), "-t", text]

        return run_to_wav(argv, stdin=None, timeout=self._timeout, program="flite")


def _list_voices(program: str) -> frozenset[str]:
    try:
        result = subprocess.run(  # noqa: S603 - a fixed argument list, no shell
            [program, "-lv"], capture_output=True, timeout=5, check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise TtsUnavailable(f"flite does not run: {error}") from error
    listing = result.stdout.decode("utf-8", "replace")
    _, found, names = listing.partition("Voices available:")
    if result.returncode != 0 or not found:
        raise TtsUnavailable(f"flite -lv gave no voice list (exit {result.returncode})")
    return frozenset(names.split())
