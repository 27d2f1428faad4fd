"""`make demo`: one broadcast to SIPp far ends on 127.0.0.1: a progress bar, then an outcome table.

Self-contained: it starts its own Asterisk instance, the service, a WAV server and the far ends
(answer, busy, not found, decline, ring without answer), all on loopback and free ports.
"""

from __future__ import annotations

import asyncio
import io
import logging
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
from aiohttp import web
from rich.console import Console

from app.cli.client import api_client
from app.cli.config import ClientConfig
from app.cli.display import follow_progress, outcome_summary, outcome_table
from app.media_plane.sipp import SippFarEnd
from app.runtime import layout_of, serving, supervised_asterisk
from app.settings import Settings

FAR_ENDS = (("answer", "alice"), ("reject_486", "busy-bob"), ("reject_404", "nobody"),
            ("reject_603", "declining-dan"), ("ring", "ringing-rita"))
DEMO_LIMIT_SECONDS = 90


def tone_wav(seconds: float, rate: int = 44100, channels: int = 2, hz: float = 440.0) -> bytes:
    """A sine tone as a 16-bit WAV, deliberately not in Asterisk's format (it gets converted)."""
    frames = np.arange(int(seconds * rate)) / rate
    mono = 0.3 * np.sin(2 * np.pi * hz * frames)
    buffer = io.BytesIO()
    soundfile.write(buffer, np.repeat(mono[:, None], channels, axis=1), rate, format="WAV",
                    subtype="PCM_16")
    return buffer.getvalue()


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port nothing listens on at 127.0.0.1 right now (TCP, or UDP for SIP)."""
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def serve_audio(audio: bytes, path: str) -> tuple[web.AppRunner, str]:
    """Serve `audio` at http://127.0.0.1:<free port><path>; clean the runner up after."""
    app = web.Application()

    async def send(_request: web.Request) -> web.Response:
        return web.Response(body=audio, content_type="audio/wav")

    app.router.add_get(path, send)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}{path}"


def demo_settings(settings: Settings) -> Settings:
    return settings.with_overrides(
        # A fresh runtime folder each time: the demo's report is about this run only.
        instance_name="demo", runtime_dir=Path(tempfile.mkdtemp(prefix="voxcast-demo-")),
        port=free_port(), ari_url=f"http://127.0.0.1:{free_port()}",
        sip_port=free_port(socket.SOCK_DGRAM), sip_tls_port=free_port(), ami_port=free_port(),
        rtp_start=12000, rtp_end=12199, ring_timeout=8, calls_per_second=5,
        media_allow_loopback=True)  # the demo serves its WAV on 127.0.0.1


async def run_demo(base: Settings) -> int:
    settings = demo_settings(base)
    wav_runner, wav_url = await serve_audio(tone_wav(4.0), "/voices/hello.wav")
    far_ends: list[SippFarEnd] = []
    try:
        with quiet_logs():
            async with supervised_asterisk(settings) as media_server, \
                    serving(settings, media_server):
                body = {"recipients": await _start_far_ends(settings, far_ends),
                        "from": "voxcast-demo", "playlist": [{"play": wav_url}]}
                return await _submit_and_report(f"http://{settings.host}:{settings.port}",
                                                body)
    finally:
        for far_end in far_ends:
            await far_end.stop()
        await wav_runner.cleanup()
        shutil.rmtree(settings.runtime_dir, ignore_errors=True)


async def _start_far_ends(settings: Settings, far_ends: list[SippFarEnd]) -> list[dict[str, str]]:
    """One SIPp per behaviour (kept in `far_ends` to be stopped), and an address nobody has."""
    layout = layout_of(settings)
    recipients = []
    for scenario, user in FAR_ENDS:
        far_end = SippFarEnd(root=settings.asterisk_root, scenario=f"{scenario}.xml",
                             port=free_port(socket.SOCK_DGRAM), work_dir=layout.sipp_dir / scenario)
        await far_end.start()
        far_ends.append(far_end)
        recipients.append({"to": f"sip:{user}@127.0.0.1:{far_end.port}"})
    recipients.append({"to": f"sip:nobody-home@127.0.0.1:{free_port(socket.SOCK_DGRAM)}"})
    return recipients


async def _submit_and_report(api: str, body: dict[str, Any]) -> int:
    console = Console()
    console.print(f"Calling {len(body['recipients'])} SIPp far ends on 127.0.0.1 "
                  "(answer, busy, not found, decline, ring, nobody listening)", highlight=False)
    async with api_client(ClientConfig(url=api, api_key="")) as client:
        request_id = await client.submit(body)
        console.print(f"request {request_id} accepted", highlight=False)
        try:
            async with asyncio.timeout(DEMO_LIMIT_SECONDS):
                status = await follow_progress(lambda: client.status(request_id), console)
        except TimeoutError:
            console.print(f"the report was not ready within {DEMO_LIMIT_SECONDS} s")
            return 1
        report = await client.report(status["report"]["id"])
    console.print(outcome_table(report["records"], title=f"Report {status['report']['id']}"))
    console.print(outcome_summary(report["records"]), highlight=False)
    return 0


@contextmanager
def quiet_logs() -> Iterator[None]:
    """The demo shows its own progress and table: the service's INFO lines (access log, call
    ends) would only cut through the bar. Warnings still show."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.WARNING)
    try:
        yield
    finally:
        root.setLevel(level)
