"""The end-to-end tier: a real Asterisk (from asterisk/provision.sh) and SIPp far ends.

One Asterisk and one set of far ends serve the whole session; every test gets its own service
(its own database) built by `create_app`, exactly as production wires it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from app.main import create_app
from app.media_plane.asterisk_process import AsteriskProcess
from app.media_plane.sipp import SippFarEnd
from app.runtime import layout_of, running_asterisk, with_generated_secrets
from app.settings import Settings
from tests.conftest import free_port, tone_mp3, tone_wav

REPO = Path(__file__).resolve().parents[2]
WAV_SECONDS = 3.0
MP3_SECONDS = 2.0
BEHAVIOURS = ("answer", "reject_486", "reject_404", "reject_503", "reject_603", "reject_480",
              "ring")


def _asterisk_root() -> Path:
    given = os.environ.get("VOXCAST_ASTERISK_ROOT")
    if given:
        return Path(given)
    printed = subprocess.run([str(REPO / "asterisk/provision.sh")], check=True,
                             capture_output=True, text=True).stdout.strip()
    return Path(printed)


@dataclass
class MediaPlane:
    settings: Settings
    asterisk: AsteriskProcess
    far_ends: dict[str, SippFarEnd]  # behaviour -> SIPp on 127.0.0.1
    silent_port: int  # nothing listens here
    media_url: str  # a 3 s 44.1 kHz stereo WAV served on 127.0.0.1
    media_base: str

    def uri(self, behaviour: str, user: str = "bob") -> str:
        port = self.silent_port if behaviour == "silent" else self.far_ends[behaviour].port
        return f"sip:{user}@127.0.0.1:{port}"


def _udp_port() -> int:
    return free_port(socket.SOCK_DGRAM)


def _sip_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 and ::1: SIP listens on all four."""
    for _ in range(50):
        port = free_port(socket.SOCK_DGRAM)
        try:
            for family, kind, host in ((socket.AF_INET, socket.SOCK_STREAM, "127.0.0.1"),
                                       (socket.AF_INET6, socket.SOCK_DGRAM, "::1"),
                                       (socket.AF_INET6, socket.SOCK_STREAM, "::1")):
                with socket.socket(family, kind) as probe:
                    probe.bind((host, port))
        except OSError:
            continue
        return port
    raise AssertionError("no port free for SIP on UDP and TCP")


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def media_plane(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[MediaPlane]:
    root = _asterisk_root()
    runtime = tmp_path_factory.mktemp("runtime")
    rtp_start = 13000 + (os.getpid() % 30) * 200  # below the ephemeral range free ports use
    settings = with_generated_secrets(Settings(
        runtime_dir=runtime, asterisk_root=root, instance_name=f"test-{uuid.uuid4().hex[:8]}",
        ari_url=f"http://127.0.0.1:{free_port()}", sip_port=_sip_port(), ami_port=free_port(),
        sip_tls_port=free_port(), dns_nameservers="127.0.0.1",  # names resolve on loopback only
        rtp_start=rtp_start, rtp_end=rtp_start + 199, ring_timeout=3, drain_timeout=5.0,
        calls_per_second=20, max_concurrent_calls=50, media_allow_loopback=True,
        media_check_seconds=1.0))
    layout = layout_of(settings)

    served = {"hello.wav": tone_wav(WAV_SECONDS), "tone.mp3": tone_mp3(MP3_SECONDS)}
    media_app = web.Application()

    async def serve_wav(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name == "slow-missing.wav":
            await asyncio.sleep(1.5)  # outlasts the submit-time check, then fails
        if name not in served:
            raise web.HTTPNotFound()
        return web.Response(body=served[name], content_type="audio/wav")

    media_app.router.add_get("/voices/{name}", serve_wav)
    media_runner = web.AppRunner(media_app)
    await media_runner.setup()
    media_port = free_port()
    await web.TCPSite(media_runner, "127.0.0.1", media_port).start()

    far_ends: dict[str, SippFarEnd] = {}
    try:
        async with running_asterisk(settings) as asterisk:
            for index, behaviour in enumerate(BEHAVIOURS):
                far_end = SippFarEnd(root=root, scenario=f"{behaviour}.xml", port=_udp_port(),
                                     work_dir=layout.sipp_dir / behaviour,
                                     media_port=_udp_port() + index)
                await far_end.start()
                far_ends[behaviour] = far_end
            yield MediaPlane(
                settings=settings,
                asterisk=asterisk,
                far_ends=far_ends,
                silent_port=_udp_port(),
                media_url=f"http://127.0.0.1:{media_port}/voices/hello.wav",
                media_base=f"http://127.0.0.1:{media_port}")
    finally:
        for far_end in far_ends.values():
            await far_end.stop()
        await media_runner.cleanup()
        shutil.rmtree(layout.instance_dir, ignore_errors=True)


def service_environment(settings: Settings, runtime: Path, port: int,
                        **overrides: str) -> dict[str, str]:
    """The environment of a `python -m app serve` process on the session's Asterisk."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("VOXCAST_")}
    env.update({
        "VOXCAST_RUNTIME_DIR": str(runtime), "VOXCAST_PORT": str(port),
        "VOXCAST_ASTERISK_ROOT": str(settings.asterisk_root),
        "VOXCAST_INSTANCE_NAME": settings.instance_name, "VOXCAST_ARI_URL": settings.ari_url,
        "VOXCAST_ARI_PASSWORD": settings.ari_password.value,
        "VOXCAST_CALLS_PER_SECOND": "5", "VOXCAST_MAX_CONCURRENT_CALLS": "5",
        "VOXCAST_DRAIN_TIMEOUT": "1", "VOXCAST_RING_TIMEOUT": "3",
        "VOXCAST_MEDIA_ALLOW_LOOPBACK": "1",
    })
    env.update({f"VOXCAST_{name.upper()}": value for name, value in overrides.items()})
    return env


async def start_service_process(env: dict[str, str],
                                port: int) -> asyncio.subprocess.Process:
    """`python -m app serve`, ready; its log goes to service.log in its runtime folder."""
    log_path = Path(env["VOXCAST_RUNTIME_DIR"]) / "service.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log_file:  # the child keeps its own descriptor
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "app", "serve", cwd=REPO, env=env,
            stdout=asyncio.subprocess.DEVNULL, stderr=log_file)
    deadline = time.monotonic() + 15
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            try:
                async with http.get(f"http://127.0.0.1:{port}/ready") as response:
                    if response.status == 200:
                        return process
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.1)
    process.kill()
    raise AssertionError("service did not become ready")


@dataclass
class Service:
    base: str
    app: web.Application
    http: aiohttp.ClientSession

    async def post(self, path: str, body: object) -> tuple[int, dict]:
        async with self.http.post(self.base + path, json=body) as response:
            return response.status, await response.json()

    async def get(self, path: str) -> tuple[int, dict]:
        async with self.http.get(self.base + path) as response:
            return response.status, await response.json()

    async def wait_for_report(self, request_id: str, limit: float = 60.0) -> dict:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            _, status = await self.get(f"/voice/call/status/{request_id}")
            if status["report"]["status"] == "ready":
                _, report = await self.get(f"/report/{status['report']['id']}")
                return report
            await asyncio.sleep(0.25)
        raise AssertionError(f"report not ready within {limit} s: {status}")


@asynccontextmanager
async def running_service(settings: Settings) -> AsyncIterator[Service]:
    app = create_app(settings)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with aiohttp.ClientSession() as http:
            service = Service(f"http://127.0.0.1:{port}", app, http)
            await _wait_ready(service)
            yield service
    finally:
        await runner.cleanup()


async def _wait_ready(service: Service) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        status, _ = await service.get("/ready")
        if status == 200:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("service not ready within 10 s")


@pytest_asyncio.fixture(loop_scope="session")
async def service(media_plane: MediaPlane, tmp_path: Path) -> AsyncIterator[Service]:
    settings = media_plane.settings.with_overrides(runtime_dir=tmp_path)
    async with running_service(settings) as running:
        yield running
