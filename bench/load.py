"""Load benchmark: N recipients at R calls/s to an answering SIPp far end, against a baseline.

The baseline is a bare aiohttp ARI client doing the same work on the same Asterisk in the same
run (originate, play the same file on answer, hang up after it): what the machine can do with no
service in the way. Then Voxcast takes one request with the same recipients. Reported: records
found, rate and concurrency limits held, wall time, originate latency and the CPU time of this
process, each as Voxcast / baseline.

    python -m bench.load [--calls 1000] [--rate 50] [--max-concurrent 100]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import socket
import statistics
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from sqlalchemy import event

from app.adapters.ari.client import AriClient, AriCredentials
from app.api.records import TIME_FORMAT
from app.demo import free_port, serve_audio, tone_wav
from app.main import DIALER, STORE, create_app
from app.media_plane.sipp import SippFarEnd
from app.runtime import layout_of, running_asterisk, with_generated_secrets
from app.settings import Settings

WAV_SECONDS = 2.0
TIME_LIMIT_SECONDS = 300  # every run is bounded in time as well as in count


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _max_in_window(times: Sequence[float], window: float = 1.0) -> int:
    ordered = sorted(times)
    best = start = 0
    for end, moment in enumerate(ordered):
        while moment - ordered[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


@dataclass
class RunResult:
    name: str
    calls: int
    ended: int
    answered: int
    wall_seconds: float
    cpu_seconds: float
    originate_interval_p50_ms: float  # time between consecutive originates: the pacing
    originate_interval_max_ms: float
    max_per_second: int
    peak_concurrent: int
    database_commits: int = 0  # on the database's writer, while the calls ran

    def row(self) -> dict[str, Any]:
        return self.__dict__


async def baseline(settings: Settings, targets: list[str], sound: str, rate: float,
                   max_concurrent: int) -> RunResult:
    """Bare ARI: the least any service could do for the same calls."""
    credentials = AriCredentials(settings.ari_user, settings.ari_password.value)
    client = AriClient(settings.ari_url, credentials, pool_size=50)
    await client.open()
    app_name = f"baseline-{uuid.uuid4().hex[:6]}"
    ended: asyncio.Queue[str] = asyncio.Queue()
    answered = 0
    live = 0
    peak = 0
    slots = asyncio.Semaphore(max_concurrent)
    sent: list[float] = []

    async def events() -> None:
        nonlocal answered, live
        url = settings.ari_url.replace("http", "ws", 1) + "/ari/events"
        async with aiohttp.ClientSession(headers=credentials.authorization_header()) as http, \
                http.ws_connect(url, params={"app": app_name}) as websocket:
            ready.set()
            async for message in websocket:
                event = json.loads(message.data)
                kind = event.get("type")
                if kind == "StasisStart":
                    answered += 1
                    channel = event["channel"]["id"]
                    await client.play(channel_id=channel, playback_id=f"{channel}-p",
                                      media=sound)
                elif kind == "PlaybackFinished":
                    channel = event["playback"]["target_uri"].removeprefix("channel:")
                    await client.hangup(channel)
                elif kind == "ChannelDestroyed":
                    live -= 1
                    slots.release()
                    ended.put_nowait(event["channel"]["id"])

    ready = asyncio.Event()
    listener = asyncio.create_task(events())
    await ready.wait()
    cpu = _cpu_seconds()
    started = time.monotonic()
    interval = 1.0 / rate
    next_slot = started
    for index, target in enumerate(targets):
        await slots.acquire()
        now = time.monotonic()
        if now < next_slot:
            await asyncio.sleep(next_slot - now)
        next_slot = max(next_slot, time.monotonic()) + interval
        live += 1
        peak = max(peak, live)
        sent.append(time.monotonic())
        await client.originate(channel_id=f"{app_name}-{index}",
                               endpoint=f"PJSIP/{settings.sip_endpoint}/{target}",
                               app=app_name, caller_id="bench", timeout_seconds=10)
    for _ in targets:
        await asyncio.wait_for(ended.get(), TIME_LIMIT_SECONDS)
    wall = time.monotonic() - started
    cpu = _cpu_seconds() - cpu
    listener.cancel()
    await asyncio.gather(listener, return_exceptions=True)
    await client.close()
    return RunResult("baseline (bare ARI)", len(targets), len(targets), answered, wall, cpu,
                     *_intervals(sent), _max_in_window(sent), peak)


def _intervals(sent: list[float]) -> tuple[float, float]:
    gaps = [later - earlier for earlier, later in zip(sent, sent[1:], strict=False)]
    if not gaps:
        return 0.0, 0.0
    return round(1000 * statistics.median(gaps), 2), round(1000 * max(gaps), 2)


async def voxcast(settings: Settings, targets: list[str], media_url: str) -> RunResult:
    app = create_app(settings)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            while True:
                async with http.get(f"{base}/ready") as response:
                    if response.status == 200:
                        break
                await asyncio.sleep(0.05)
            dialer = app[DIALER]
            dialer.keep_originate_times = True
            commits = [0]

            def committed(_connection: object) -> None:
                commits[0] += 1

            event.listen(app[STORE].engines.writer.sync_engine, "commit", committed)
            cpu = _cpu_seconds()
            started = time.monotonic()
            body = {"recipients": [{"to": target} for target in targets], "from": "bench",
                    "playlist": [{"play": media_url}]}
            async with http.post(f"{base}/voice/call/play", json=body) as response:
                request_id = (await response.json())["request_id"]
            deadline = started + TIME_LIMIT_SECONDS
            while time.monotonic() < deadline:
                async with http.get(f"{base}/voice/call/status/{request_id}") as response:
                    status = (await response.json())["report"]
                if status["status"] == "ready":
                    break
                await asyncio.sleep(0.2)
            wall = time.monotonic() - started
            cpu = _cpu_seconds() - cpu
            async with http.get(f"{base}/report/{status['id']}") as response:
                records = (await response.json())["records"]
            sent = list(dialer.originates)
            peak = max(dialer.peak_concurrent, _peak_overlap(records))
            return RunResult(
                "voxcast", len(targets), sum(r["result"] == "completed" for r in records),
                sum(r["answered"] for r in records), wall, cpu, *_intervals(sent),
                _max_in_window(sent), peak, commits[0])
    finally:
        await runner.cleanup()


def _peak_overlap(records: list[dict[str, Any]]) -> int:
    """Most calls between setup and disconnect at once, from the report's own times."""
    moments = []
    for record in records:
        if record["setup_time"] and record["disconnect_time"]:
            moments.append((datetime.strptime(record["setup_time"], TIME_FORMAT), 1))
            moments.append((datetime.strptime(record["disconnect_time"], TIME_FORMAT), -1))
    live = peak = 0
    for _, change in sorted(moments, key=lambda m: (m[0], m[1])):
        live += change
        peak = max(peak, live)
    return peak


async def main(calls: int, rate: float, max_concurrent: int) -> dict[str, Any]:
    root = Path(os.environ.get("VOXCAST_ASTERISK_ROOT", "/"))
    runtime = Path(tempfile.mkdtemp(prefix="voxcast-bench-"))
    settings = with_generated_secrets(Settings(
        runtime_dir=runtime, asterisk_root=root, instance_name=f"bench-{uuid.uuid4().hex[:6]}",
        ari_url=f"http://127.0.0.1:{free_port()}", sip_port=free_port(socket.SOCK_DGRAM),
        ami_port=free_port(), rtp_start=20000, rtp_end=24999, ring_timeout=10,
        calls_per_second=rate, max_concurrent_calls=max_concurrent, media_allow_loopback=True))
    layout = layout_of(settings)
    audio = tone_wav(WAV_SECONDS, rate=8000, channels=1)
    wav_runner, wav_url = await serve_audio(audio, "/bench.wav")
    far_end = SippFarEnd(root=root, scenario="answer.xml", port=free_port(socket.SOCK_DGRAM),
                         work_dir=layout.sipp_dir / "bench")
    try:
        async with running_asterisk(settings):
            await far_end.start()
            targets = [f"sip:b{i}@127.0.0.1:{far_end.port}" for i in range(calls)]
            sound_path = layout.sound_dir / "bench-baseline.wav"
            sound_path.parent.mkdir(parents=True, exist_ok=True)
            sound_path.write_bytes(audio)
            sound = "sound:" + layout.inside(sound_path).removesuffix(".wav")
            base = await baseline(settings, targets, sound, rate, max_concurrent)
            invites_after_baseline = far_end.received_invites()
            vox = await voxcast(settings, targets, wav_url)
            invites = far_end.received_invites() - invites_after_baseline
    finally:
        await far_end.stop()
        await wav_runner.cleanup()
        shutil.rmtree(layout.instance_dir, ignore_errors=True)  # its Asterisk folder
        shutil.rmtree(runtime, ignore_errors=True)
    return {
        "calls": calls, "rate_limit": rate, "concurrency_limit": max_concurrent,
        "wav_seconds": WAV_SECONDS, "baseline": base.row(), "voxcast": vox.row(),
        "voxcast_invites_at_far_end": invites,
        "ratios_voxcast_over_baseline": {
            "wall_seconds": round(vox.wall_seconds / base.wall_seconds, 3),
            "cpu_seconds": round(vox.cpu_seconds / max(base.cpu_seconds, 1e-9), 3),
        },
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--max-concurrent", type=int, default=100)
    arguments = parser.parse_args()
    print(json.dumps(asyncio.run(main(arguments.calls, arguments.rate,
                                      arguments.max_concurrent)), indent=2))
