"""Speech from the ``espeak-ng`` program: robotic but local, and in about a hundred languages."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from app.adapters.tts._process import find_program, run_to_wav
from app.adapters.tts.engine import TtsFailed, TtsUnavailable

# Language tags and variant names are spliced into `-v LANG+VARIANT`: letters, digits and
# inner hyphens only, so nothing can be read as an option or as a path to a voice file.
_LANGUAGE = re.compile(r"[a-z]{2,3}(-[a-z0-9]{1,8})*")
_VARIANT = re.compile(r"[A-Za-z0-9_]{1,32}")


class EspeakEngine:
    """``espeak-ng -w FILE -v LANG --stdin``, with the text on standard input."""

    name = "espeak"

    def __init__(self, program: str, languages: frozenset[str], *, timeout: float = 15.0) -> None:
        self._program = program
        self._languages = languages
        self._timeout = timeout

    @classmethod
    def probe(cls, *, timeout: float = 15.0) -> EspeakEngine:
        """The engine if ``espeak-ng`` is installed and runs; else :class:`TtsUnavailable`."""
        program = find_program("espeak-ng")
        return cls(program, _list_languages(program), timeout=timeout)

    def synthesize(self, text: str, *, language: str, voice: str | None) -> bytes:
        tag = language.lower().replace("_", "-")
        if not _LANGUAGE.fullmatch(tag):
            raise TtsUnavailable(f"espeak-ng: not a language tag: {language!r}")
        # espeak-ng lists regional voices ("en-us", "fr-fr") and also accepts the bare
        # language ("fr"); a region it lacks ("en-au") falls back to the bare language.
        spoken_as = tag if tag in self._languages else tag.split("-")[0]
        if voice is not None:
            if not _VARIANT.fullmatch(voice):
                raise TtsUnavailable(f"espeak-ng: not a voice variant name: {voice!r}")
            spoken_as = f"{spoken_as}+{voice}"

        def argv(output: Path) -> list[str]:
            # Text on stdin, not in argv: it can never be taken for an option. `-b 1` reads it
            # as UTF-8; without `-m`, markup like <tags> is spoken as text, not interpreted.
            return [self._program, "-b", "1", "-v", spoken_as, "-w", str(output), "--stdin"]

        try:
            return run_to_wav(
                argv, stdin=text.encode("utf-8"), timeout=self._timeout, program="espeak-ng"
            )
        except TtsFailed as error:
            if "voice does not exist" in str(error):
                raise TtsUnavailable(f"espeak-ng has no voice for {language!r}") from error
            raise


def _list_languages(program: str) -> frozenset[str]:
    try:
        result = subprocess.run(  # noqa: S603 - a fixed argument list, no shell
            [program, "--voices"], capture_output=True, timeout=5, check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise TtsUnavailable(f"espeak-ng does not run: {error}") from error
    if result.returncode != 0:
        raise TtsUnavailable(f"espeak-ng --voices exited with {result.returncode}")
    rows = result.stdout.decode("utf-8", "replace").splitlines()[1:]  # skip the header
    return frozenset(row.split()[1].lower() for row in rows if len(row.split()) > 1)
