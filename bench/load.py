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
import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import uvloop

from app.adapters.ari.client import AriClient, AriCredentials
from app.api.records import TIME_FORMAT
from app.main import DIALER
from app.media_plane.sipp import SippFarEnd
from app.runtime import layout_of, running_asterisk, with_generated_secrets
from app.settings import Settings
from tests.support.audio import tone_wav
from tests.support.media_server import serving_files
from tests.support.pacing import max_in_window, max_overlap
from tests.support.ports import free_sip_port, free_tcp_port, free_udp_port, free_udp_range
from tests.support.service import running_service

WAV_SECONDS = 2.0
TIME_LIMIT_SECONDS = 300  # every run is bounded in time as well as in count


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


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
            # The same tools as the service: only the events it uses, parsed by orjson.
            async with http.put(f"{settings.ari_url}/ari/applications/{app_name}/eventFilter",
                                json={"allowed": [{"type": kind} for kind in (
                                    "StasisStart", "PlaybackFinished", "ChannelDestroyed")]}):
                pass
            ready.set()
            async for message in websocket:
                event = orjson.loads(message.data)
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
                     *_intervals(sent), max_in_window(sent), peak)


def _intervals(sent: list[float]) -> tuple[float, float]:
    gaps = [later - earlier for earlier, later in zip(sent, sent[1:], strict=False)]
    if not gaps:
        return 0.0, 0.0
    return round(1000 * statistics.median(gaps), 2), round(1000 * max(gaps), 2)


async def voxcast(settings: Settings, targets: list[str], media_url: str) -> RunResult:
    async with running_service(settings) as service:
        dialer = service.app[DIALER]
        dialer.keep_originate_times = True
        cpu = _cpu_seconds()
        started = time.monotonic()
        request_id = await service.submit({"recipients": [{"to": target} for target in targets],
                                           "from": "bench", "playlist": [{"play": media_url}]})
        records = (await service.wait_for_report(request_id, TIME_LIMIT_SECONDS))["records"]
        wall = time.monotonic() - started
        cpu = _cpu_seconds() - cpu
        sent = list(dialer.originates)
        peak = max(dialer.peak_concurrent, _peak_overlap(records))
        return RunResult(
            "voxcast", len(targets), sum(r["result"] == "completed" for r in records),
            sum(r["answered"] for r in records), wall, cpu, *_intervals(sent),
            max_in_window(sent), peak)


def _peak_overlap(records: list[dict[str, Any]]) -> int:
    """Most calls between setup and disconnect at once, from the report's own times."""
    def moment(text: str) -> float:
        return datetime.strptime(text, TIME_FORMAT).timestamp()

    return max_overlap([(moment(r["setup_time"]), moment(r["disconnect_time"]))
                        for r in records if r["setup_time"] and r["disconnect_time"]])


async def main(calls: int, rate: float, max_concurrent: int,
               skip_baseline: bool = False) -> dict[str, Any]:
    root = Path(os.environ.get("VOXCAST_ASTERISK_ROOT", "/"))
    runtime = Path(tempfile.mkdtemp(prefix="voxcast-bench-"))
    rtp_start, rtp_end = free_udp_range(max(200, 4 * max_concurrent))
    settings = with_generated_secrets(Settings(
        runtime_dir=runtime, asterisk_root=root, instance_name=f"bench-{uuid.uuid4().hex[:6]}",
        ari_url=f"http://127.0.0.1:{free_tcp_port()}", sip_port=free_sip_port(),
        sip_tls_port=free_tcp_port(), ami_port=free_tcp_port(), rtp_start=rtp_start,
        rtp_end=rtp_end, ring_timeout=10,
        calls_per_second=rate, max_concurrent_calls=max_concurrent, media_allow_loopback=True,
        # The bench plays a WAV: no speech, so no neural voice loading (a one-time start-up
        # cost, not a call's) inside the measured window.
        tts_engines="flite"))
    layout = layout_of(settings)
    audio = tone_wav(WAV_SECONDS, rate=8000, channels=1)
    far_end = SippFarEnd(root=root, scenario="answer.xml", port=free_udp_port(),
                         work_dir=layout.sipp_dir / "bench")
    try:
        async with serving_files({"/bench.wav": audio}) as media_base, \
                running_asterisk(settings):
            await far_end.start()
            targets = [f"sip:b{i}@127.0.0.1:{far_end.port}" for i in range(calls)]
            sound_path = layout.sound_dir / "bench-baseline.wav"
            sound_path.parent.mkdir(parents=True, exist_ok=True)
            sound_path.write_bytes(audio)
            sound = "sound:" + layout.inside(sound_path).removesuffix(".wav")
            base = None if skip_baseline else await baseline(settings, targets, sound, rate,
                                                             max_concurrent)
            invites_after_baseline = far_end.received_invites()
            vox = await voxcast(settings, targets, media_base + "/bench.wav")
            invites = far_end.received_invites() - invites_after_baseline
    finally:
        await far_end.stop()
        shutil.rmtree(layout.instance_dir, ignore_errors=True)  # its Asterisk folder
        shutil.rmtree(runtime, ignore_errors=True)
    if base is None:  # profiling Voxcast alone
        return {"voxcast": vox.row()}
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
    parser.add_argument("--skip-baseline", action="store_true",
                        help="Voxcast alone, e.g. under a profiler")
    arguments = parser.parse_args()
    # The service's own loop (python -m app runs on uvloop); the baseline shares it.
    print(json.dumps(uvloop.run(main(arguments.calls, arguments.rate, arguments.max_concurrent,
                                      arguments.skip_baseline)), indent=2))
