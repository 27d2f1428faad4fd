"""The gTTS engine against a fake of its endpoint on 127.0.0.1: answers, silence, no listener."""

from __future__ import annotations

import base64
import io
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar
from urllib.parse import parse_qs

import numpy as np
import pytest
import soundfile as sf

from app.adapters.tts.engine import (
    SpeechChain,
    TtsFailed,
    TtsUnavailable,
    build_engines,
    select_engines,
)
from app.adapters.tts.gtts import GttsEngine
from tests.support.ports import free_tcp_port

SENTENCE = "Hello Alice, this is Voxcast."


def mp3(seconds: float) -> bytes:
    buffer = io.BytesIO()
    samples = 0.3 * np.sin(2 * np.pi * 440 * np.arange(int(seconds * 22050)) / 22050)
    sf.write(buffer, samples, 22050, format="MP3")
    return buffer.getvalue()


class FakeTranslate(BaseHTTPRequestHandler):
    """Answers like the batchexecute RPC, or holds the request without answering."""

    mode: ClassVar[str] = "answer"
    audio: ClassVar[bytes] = b""
    bodies: ClassVar[list[str]] = []
    release: ClassVar[threading.Event] = threading.Event()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        type(self).bodies.append(f"{self.path} {body}")
        if self.mode == "sleep":
            self.release.wait(30)
            return
        if self.mode == "error":
            self.send_error(500)
            return
        if self.mode == "garbage":
            self.send_response(200)
            self.send_header("Content-Length", "18")
            self.end_headers()
            self.wfile.write(b"<html>nope</html>\n")
            return
        encoded = base64.b64encode(self.audio).decode()
        rpc = f'[["wrb.fr","jQ1olc","[\\"{encoded}\\"]",null,null,null,"generic"]]'
        answer = f")]}}'\n\n99\n{rpc}\n"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer.encode())

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    # Requests to the fake must never be routed through a proxy from the environment.
    for variable in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setattr(FakeTranslate, "mode", "answer")
    monkeypatch.setattr(FakeTranslate, "audio", mp3(1.5))
    monkeypatch.setattr(FakeTranslate, "bodies", [])
    monkeypatch.setattr(FakeTranslate, "release", threading.Event())
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeTranslate)
    serving = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    serving.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        FakeTranslate.release.set()
        server.shutdown()
        server.server_close()
        serving.join(5)


def test_speaks_when_the_fake_answers(fake: str) -> None:
    engine = GttsEngine(timeout=5.0, base_url=fake)
    audio = engine.synthesize(SENTENCE, language="en-US", voice=None)
    assert sf.info(io.BytesIO(audio)).duration == pytest.approx(1.5, abs=0.1)
    [request] = FakeTranslate.bodies
    path, body = request.split(" ", 1)
    assert path.endswith("/batchexecute")
    rpc = parse_qs(body)["f.req"][0]
    assert "Hello Alice, this is Voxcast" in rpc and '\\"en\\"' in rpc


def test_long_text_is_sent_in_parts(fake: str) -> None:
    engine = GttsEngine(timeout=5.0, base_url=fake)
    audio = engine.synthesize(" ".join([SENTENCE] * 6), language="en", voice=None)
    assert len(FakeTranslate.bodies) >= 2
    assert sf.info(io.BytesIO(audio)).duration > 1.0


def test_a_silent_server_fails_within_the_timeout_and_the_chain_falls_back(fake: str) -> None:
    FakeTranslate.mode = "sleep"
    [gtts] = build_engines(["gtts"], gtts_enabled=True, gtts_timeout=1.0, gtts_base_url=fake)
    # It must really wait for the whole timeout (a gTTS failing at once would also "fall back
    # in time"), and give up right after: the caller joins its worker thread until the deadline;
    # 0.5 s covers preparing the request and a busy machine.
    started = time.monotonic()
    with pytest.raises(TtsFailed, match="within 1 s"):
        gtts.synthesize(SENTENCE, language="en", voice=None)
    assert 1.0 <= time.monotonic() - started < 1.5

    offline = select_engines(["flite"], gtts_enabled=False, gtts_timeout=1.0)
    if not offline.engines:
        pytest.skip(f"flite is not installed here: {offline.skipped}")
    chain = SpeechChain([gtts, *offline.engines])
    started = time.monotonic()
    spoken = chain.synthesize(SENTENCE, language="en", voice=None)
    assert 1.0 <= time.monotonic() - started < 1.5  # flite itself takes about 10 ms
    assert spoken.engine == "flite"
    assert len(spoken.fallbacks) == 1 and spoken.fallbacks[0].startswith("gtts: ")


def test_an_unreachable_port_fails_fast(fake: str) -> None:
    engine = GttsEngine(timeout=5.0, base_url=f"http://127.0.0.1:{free_tcp_port()}")
    started = time.monotonic()
    with pytest.raises(TtsFailed, match=r"cannot connect \(\[Errno \d+\] Connection refused\)"):
        engine.synthesize(SENTENCE, language="en", voice=None)
    assert time.monotonic() - started < 0.5


@pytest.mark.parametrize(
    ("mode", "audio", "reason"),
    [("answer", b"", "empty"), ("error", b"", "HTTP 500"), ("garbage", b"", "no audio")],
)
def test_bad_answers_fail(fake: str, mode: str, audio: bytes, reason: str) -> None:
    FakeTranslate.mode, FakeTranslate.audio = mode, audio
    with pytest.raises(TtsFailed, match=reason):
        GttsEngine(timeout=5.0, base_url=fake).synthesize(SENTENCE, language="en", voice=None)


def test_languages_and_voices(fake: str) -> None:
    engine = GttsEngine(timeout=5.0, base_url=fake)
    engine.synthesize("Ni hao", language="zh-tw", voice=None)
    assert '\\"zh-TW\\"' in parse_qs(FakeTranslate.bodies[-1].split(" ", 1)[1])["f.req"][0]
    with pytest.raises(TtsUnavailable):
        engine.synthesize(SENTENCE, language="xx", voice=None)
    with pytest.raises(TtsUnavailable):
        engine.synthesize(SENTENCE, language="en", voice="anything")


def test_disabled_by_default_and_bad_settings_refused() -> None:
    selection = select_engines(["gtts"], gtts_enabled=False, gtts_timeout=1.0)
    assert selection.engines == () and "disabled" in selection.skipped[0][1]
    with pytest.raises(ValueError):
        GttsEngine(timeout=0)
    with pytest.raises(ValueError):
        GttsEngine(timeout=1, base_url="file:///etc/passwd")
