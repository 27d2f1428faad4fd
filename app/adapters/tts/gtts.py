"""Speech from Google Translate's TTS endpoint (gTTS), with a hard bound on the whole call.

gTTS itself waits forever by default, sends with TLS verification off, and silences
urllib3's warnings process-wide. So gTTS only builds the requests here (text splitting,
the RPC body, the URL); this module sends them itself, verified and bounded in time.
"""

from __future__ import annotations

import base64
import binascii
import re
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from app.adapters.tts.engine import TtsFailed, TtsUnavailable

# The reply carries the MP3 as base64 in a JSON-in-JSON line; the same pattern gTTS uses.
_AUDIO = re.compile(r'jQ1olc","\[\\"(.*)\\"]')
_RPC_ID = "jQ1olc"
_OS_ERROR = re.compile(r"\[Errno -?\d+\][^'\")]*")
# A sentence is tens of kB; the cap stops a broken or hostile answer from filling memory.
_MAX_ANSWER_BYTES = 16 * 1024 * 1024


class GttsEngine:
    """gTTS, failing within ``timeout`` seconds in total (DNS, connect, every request, body)."""

    name = "gtts"

    def __init__(self, *, timeout: float, base_url: str | None = None) -> None:
        if not timeout > 0:
            raise ValueError(f"gtts timeout must be positive, not {timeout!r}")
        if base_url is not None:
            parts = urlsplit(base_url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError(f"gtts base URL must be http(s)://host[:port], not {base_url!r}")
        self._timeout = timeout
        # None: gTTS's own endpoint. Otherwise scheme://host[:port][/prefix] replaces its
        # host (tests point it at a fake on 127.0.0.1; operators at a relay).
        self._base_url = base_url.rstrip("/") if base_url is not None else None

    @classmethod
    def probe(cls, *, timeout: float, base_url: str | None = None) -> GttsEngine:
        """The engine if gTTS is installed; whether Google answers is only known per call."""
        try:
            import gtts  # noqa: F401 - only checking it is installed
            import requests  # noqa: F401
        except ImportError as error:
            raise TtsUnavailable(f"gTTS is not installed: {error}") from error
        return cls(timeout=timeout, base_url=base_url)

    def synthesize(self, text: str, *, language: str, voice: str | None) -> bytes:
        """MP3 bytes, or :class:`TtsFailed` within the timeout (plus thread start-up)."""
        if voice is not None:
            raise TtsUnavailable(f"gtts has no voice choice (asked for {voice!r})")
        prepared = self._prepare(text, _gtts_language(language))
        deadline = time.monotonic() + self._timeout
        # One wording for every way of running out of time, whichever clock noticed first.
        too_slow = f"gtts: no complete answer within {self._timeout:g} s"
        return _within(
            deadline, too_slow, lambda cancel: _fetch(prepared, deadline, too_slow, cancel)
        )

    def _prepare(self, text: str, language: str) -> list[Any]:
        from gtts import gTTS

        try:
            # lang_check=False: the language was checked above, without gTTS's warnings.
            prepared: list[Any] = gTTS(text, lang=language, lang_check=False)._prepare_requests()
        except AssertionError as error:  # gTTS asserts there is something to say
            raise TtsFailed("gtts: nothing speakable in the text") from error
        if self._base_url is not None:
            for request in prepared:
                request.prepare_url(self._base_url + urlsplit(request.url).path, None)
        return prepared


def _gtts_language(language: str) -> str:
    from gtts.lang import tts_langs

    known: dict[str, str] = {str(tag).lower(): str(tag) for tag in tts_langs()}
    tag = language.lower().replace("_", "-")
    for candidate in (tag, tag.split("-")[0]):  # "zh-TW" as is; "en-US" as "en"
        if candidate in known:
            return known[candidate]
    raise TtsUnavailable(f"gtts does not speak {language!r}")


def _within(deadline: float, too_slow: str, work: Callable[[threading.Event], bytes]) -> bytes:
    """Run ``work`` in a daemon thread and give up on it at ``deadline``.

    Socket timeouts alone do not bound a call: name resolution ignores them, and a server
    trickling bytes resets them. The abandoned thread ends by itself at its next socket
    timeout or cancel check; it is a daemon so it never holds up shutdown.
    """
    outcome: list[bytes] = []
    failure: list[BaseException] = []
    cancel = threading.Event()

    def run() -> None:
        try:
            outcome.append(work(cancel))
        except BaseException as error:  # handed to the waiting thread below
            failure.append(error)

    worker = threading.Thread(target=run, name="voxcast-gtts", daemon=True)
    worker.start()
    worker.join(max(0.0, deadline - time.monotonic()))
    if worker.is_alive():
        cancel.set()
        raise TtsFailed(too_slow)
    if failure:
        raise failure[0]
    return outcome[0]


def _fetch(
    prepared: list[Any], deadline: float, too_slow: str, cancel: threading.Event
) -> bytes:
    import requests

    audio = bytearray()
    with requests.Session() as session:
        for request in prepared:
            remaining = deadline - time.monotonic()
            if cancel.is_set() or remaining <= 0:
                raise TtsFailed(too_slow)
            # Proxies (honouring no_proxy) and the CA bundle from the environment, as
            # requests.get would use; TLS verification stays on.
            settings = session.merge_environment_settings(request.url, {}, True, None, None)
            try:
                response = session.send(
                    request, timeout=(remaining, remaining), allow_redirects=False, **settings
                )
                with response:
                    if response.status_code != 200:
                        raise TtsFailed(f"gtts: HTTP {response.status_code} {response.reason}")
                    answer = _read(response, deadline, cancel, too_slow)
            except requests.exceptions.Timeout as error:
                raise TtsFailed(f"{too_slow} ({type(error).__name__})") from error
            except requests.exceptions.ConnectionError as error:
                raise TtsFailed(f"gtts: cannot connect ({_cause(error)})") from error
            except requests.exceptions.RequestException as error:
                raise TtsFailed(f"gtts: request failed ({_cause(error)})") from error
            audio += _audio_from(answer)
    if not audio:
        raise TtsFailed("gtts: the answer's audio is empty")
    return bytes(audio)


def _read(response: Any, deadline: float, cancel: threading.Event, too_slow: str) -> bytes:
    body = bytearray()
    for block in response.iter_content(chunk_size=65536):
        body += block
        if len(body) > _MAX_ANSWER_BYTES:
            raise TtsFailed(f"gtts: answer larger than {_MAX_ANSWER_BYTES} bytes")
        if cancel.is_set() or time.monotonic() > deadline:
            raise TtsFailed(too_slow)
    return bytes(body)


def _audio_from(answer: bytes) -> bytes:
    for line in answer.decode("utf-8", "replace").splitlines():
        if _RPC_ID in line:
            match = _AUDIO.search(line)
            if match is None:
                break
            try:
                return base64.b64decode(match.group(1).encode("ascii"), validate=True)
            except (binascii.Error, UnicodeEncodeError) as error:
                raise TtsFailed("gtts: the answer's audio is not valid base64") from error
    raise TtsFailed("gtts: the answer holds no audio")


def _cause(error: Exception) -> str:
    # requests wraps urllib3 wraps the socket error; the OS's words are the useful part.
    reason = getattr(error.args[0], "reason", None) if error.args else None
    text = str(reason if reason is not None else error)
    os_error = _OS_ERROR.search(text)
    return os_error.group(0).strip() if os_error else f"{type(error).__name__}: {text[:120]}"
