"""Dialing at the edge: Voxcast beside a bare ARI client, judged at the far end.

Both sides call the same SIPp far end through the same Asterisk in one run, one after the
other: first a bare aiohttp ARI client (originate, play the same file on answer, hang up when it
finishes: the least any service could do), then Voxcast with one request for the same
recipients. Everything but CPU is read from the far end's own record: SIPp's message trace
(INVITE and 200 OK times) and an RTP probe on its media port (`bench/rtp_probe.py`).

Per side: calls answered at the far end, the rate its INVITEs arrived at, CPU of this process a
call (the bare client or the whole in-process service), answer-to-first-audio, and the longest
gap between INVITEs beyond the pacing interval. `measure()` gives rows for `python -m bench`.

    python -m bench.dialing [--calls 3000] [--rate 100] [--max-concurrent 300] [--ceiling 160]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import uvloop

from app.adapters.ari.client import AriClient, AriCredentials
from app.media_plane.sipp import SippFarEnd, pick_media_port
from app.runtime import layout_of, running_asterisk, with_generated_secrets
from app.settings import Settings
from tests.support.audio import tone_wav
from tests.support.media_server import serving_files
from tests.support.ports import free_sip_port, free_tcp_port, free_udp_port, free_udp_range
from tests.support.service import running_service
from tests.support.sip_trace import Dialog, read_dialogs

WAV_SECONDS = 2.0
TIME_LIMIT_SECONDS = 300  # every side is bounded in time as well as in count
RING_TIMEOUT = 10


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass(frozen=True)
class Side:
    """One side's run as the far end saw it, plus this process's CPU."""

    name: str
    asked_rate: float
    calls: int
    answered: int
    rate: float  # INVITEs a second at the far end, first to last
    cpu_ms_a_call: float
    audio_p50_ms: float
    audio_p95_ms: float
    audio_missing: int  # answered calls whose audio never reached the far end
    max_gap_beyond_schedule_ms: float

    @property
    def failures(self) -> int:
        return self.calls - self.answered + self.audio_missing


class FarEnd:
    """An answering SIPp far end with the RTP probe on its media port."""

    def __init__(self, root: Path, work_dir: Path) -> None:
        self.sipp = SippFarEnd(root=root, scenario="answer.xml", port=free_udp_port(),
                               work_dir=work_dir, media_port=pick_media_port())
        self._probe_out = work_dir / "rtp-onsets.json"
        self._probe: asyncio.subprocess.Process | None = None
        self._stopped = False
        self.onsets: list[tuple[int, float]] = []

    @property
    def port(self) -> int:
        return self.sipp.port

    async def start(self) -> None:
        await self.sipp.start()
        assert self.sipp.media_port is not None
        ready = self._probe_out.with_suffix(".ready")
        ready.unlink(missing_ok=True)
        self._probe = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.rtp_probe", str(self.sipp.media_port),
            str(self._probe_out))
        for _ in range(100):
            if ready.exists():
                return
            await asyncio.sleep(0.05)
        raise RuntimeError("the RTP probe did not start")

    async def stop(self) -> list[tuple[int, float]]:
        """Stop both (once); the probe's onsets."""
        if self._stopped:
            return self.onsets
        self._stopped = True
        if self._probe is not None:
            self._probe.terminate()
            try:
                await asyncio.wait_for(self._probe.wait(), 10)
                self.onsets = [(port, at) for port, at
                               in json.loads(self._probe_out.read_text())]
            finally:
                if self._probe.returncode is None:
                    self._probe.kill()
                    await self._probe.wait()
        await self.sipp.stop()
        return self.onsets

    def dialogs(self, prefix: str) -> list[Dialog]:
        return [d for d in read_dialogs(self.sipp.message_trace) if d.user.startswith(prefix)]


def judge(name: str, asked_rate: float, calls: int, dialogs: Sequence[Dialog],
          onsets: Sequence[tuple[int, float]], cpu_seconds: float) -> Side:
    """One side's figures from the far end's trace and the probe's onsets."""
    invites = sorted(d.invited_at for d in dialogs)
    rate = (len(invites) - 1) / (invites[-1] - invites[0]) if len(invites) > 1 else 0.0
    interval = 1.0 / asked_rate
    gaps = [later - earlier - interval for earlier, later in zip(invites, invites[1:],
                                                                  strict=False)]
    by_port: dict[int, list[float]] = {}
    for port, at in onsets:
        by_port.setdefault(port, []).append(at)
    delays: list[float] = []
    missing = 0
    answered = [d for d in dialogs if d.answered]
    for dialog in answered:
        answer = min(m.at for m in dialog.sent_responses() if m.status == 200)
        media_port = dialog.caller_media_port
        # The probe's clock and SIPp's are the same machine's; 50 ms of slack before the
        # answer covers the trace's write after the send, never a previous call's audio.
        later = [at for at in by_port.get(media_port or -1, []) if at >= answer - 0.05]
        ended = dialog.ended_at or float("inf")
        if later and later[0] <= ended:
            delays.append(max(0.0, later[0] - answer))
        else:
            missing += 1
    quantiles = statistics.quantiles(delays, n=100) if len(delays) > 1 else [0.0] * 99
    return Side(
        name=name, asked_rate=asked_rate, calls=calls, answered=len(answered),
        rate=round(rate, 1), cpu_ms_a_call=round(1000 * cpu_seconds / max(calls, 1), 2),
        audio_p50_ms=round(1000 * quantiles[49], 1), audio_p95_ms=round(1000 * quantiles[94], 1),
        audio_missing=missing,
        max_gap_beyond_schedule_ms=round(1000 * max(gaps, default=0.0), 1))


async def bare_client(settings: Settings, targets: list[str], sound: str, rate: float,
                      max_concurrent: int) -> float:
    """The bare ARI client's run; returns this process's CPU seconds for it."""
    credentials = AriCredentials(settings.ari_user, settings.ari_password.value)
    client = AriClient(settings.ari_url, credentials, pool_size=50)
    await client.open()
    app_name = f"bare-{uuid.uuid4().hex[:6]}"
    remaining = len(targets)
    all_ended = asyncio.Event()
    slots = asyncio.Semaphore(max_concurrent)
    requests: set[asyncio.Task[Any]] = set()  # owned: gathered before the client closes

    def spawn(request: Any) -> None:
        # Like the service, never hold the event stream behind a REST round trip.
        task = asyncio.ensure_future(request)
        requests.add(task)
        task.add_done_callback(requests.discard)

    async def events(ready: asyncio.Event) -> None:
        nonlocal remaining
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
                    channel = event["channel"]["id"]
                    spawn(client.play(channel_id=channel, playback_id=f"{channel}-p",
                                      media=sound))
                elif kind == "PlaybackFinished":
                    spawn(client.hangup(event["playback"]["target_uri"].removeprefix("channel:")))
                elif kind == "ChannelDestroyed":
                    slots.release()
                    remaining -= 1
                    if remaining == 0:
                        all_ended.set()

    ready = asyncio.Event()
    listener = asyncio.create_task(events(ready))
    await ready.wait()
    cpu = _cpu_seconds()
    next_slot = time.monotonic()
    for index, target in enumerate(targets):
        await slots.acquire()
        now = time.monotonic()
        if now < next_slot:
            await asyncio.sleep(next_slot - now)
        next_slot = max(next_slot + 1.0 / rate, time.monotonic())
        spawn(client.originate(channel_id=f"{app_name}-{index}",
                               endpoint=f"PJSIP/{settings.sip_endpoint}/{target}",
                               app=app_name, caller_id="bench", timeout_seconds=RING_TIMEOUT))
    await asyncio.wait_for(all_ended.wait(), TIME_LIMIT_SECONDS)
    cpu = _cpu_seconds() - cpu
    listener.cancel()
    await asyncio.gather(listener, *requests, return_exceptions=True)
    await client.close()
    return cpu


async def voxcast(settings: Settings, targets: list[str], media_url: str) -> float:
    """One request to an in-process Voxcast; returns this process's CPU seconds for it."""
    async with running_service(settings) as service:
        cpu = _cpu_seconds()
        request_id = await service.submit({"recipients": [{"to": target} for target in targets],
                                           "from": "bench", "playlist": [{"play": media_url}]})
        # Once a second, as a patient client would: its polling is not the service's work.
        await service.wait_for_report(request_id, TIME_LIMIT_SECONDS, every=1.0)
        return _cpu_seconds() - cpu


@asynccontextmanager
async def stack(rate: float, max_concurrent: int) -> AsyncIterator[tuple[Settings, FarEnd,
                                                                         str, str]]:
    """Asterisk, the far end, the WAV served over HTTP and as an Asterisk sound."""
    root = Path(os.environ.get("VOXCAST_ASTERISK_ROOT", "/"))
    runtime = Path(tempfile.mkdtemp(prefix="voxcast-bench-"))
    rtp_start, rtp_end = free_udp_range(max(400, 4 * max_concurrent))
    settings = with_generated_secrets(Settings(
        runtime_dir=runtime, asterisk_root=root, instance_name=f"bench-{uuid.uuid4().hex[:6]}",
        ari_url=f"http://127.0.0.1:{free_tcp_port()}", sip_port=free_sip_port(),
        sip_tls_port=free_tcp_port(), ami_port=free_tcp_port(), rtp_start=rtp_start,
        rtp_end=rtp_end, ring_timeout=RING_TIMEOUT, calls_per_second=rate,
        max_concurrent_calls=max_concurrent, media_allow_loopback=True,
        # A WAV only: no neural voice loading (a start-up cost, not a call's).
        tts_engines="flite"))
    layout = layout_of(settings)
    audio = tone_wav(WAV_SECONDS, rate=8000, channels=1)
    far_end = FarEnd(root, layout.sipp_dir / "bench")
    try:
        async with serving_files({"/bench.wav": audio}) as media_base, \
                running_asterisk(settings):
            await far_end.start()
            sound_path = layout.sound_dir / "bench-bare.wav"
            sound_path.parent.mkdir(parents=True, exist_ok=True)
            sound_path.write_bytes(audio)
            sound = "sound:" + layout.inside(sound_path).removesuffix(".wav")
            yield settings, far_end, sound, media_base + "/bench.wav"
    finally:
        await far_end.stop()
        shutil.rmtree(layout.instance_dir, ignore_errors=True)
        shutil.rmtree(runtime, ignore_errors=True)


async def side_by_side(calls: int, rate: float, max_concurrent: int) -> tuple[Side, Side]:
    """The bare client, then Voxcast, on one Asterisk and one far end."""
    async with stack(rate, max_concurrent) as (settings, far_end, sound, media_url):
        bare_targets = [f"sip:bare{i}@127.0.0.1:{far_end.port}" for i in range(calls)]
        vox_targets = [f"sip:vox{i}@127.0.0.1:{far_end.port}" for i in range(calls)]
        bare_cpu = await bare_client(settings, bare_targets, sound, rate, max_concurrent)
        await asyncio.sleep(1.0)  # the last BYEs settle before the next side starts
        vox_cpu = await voxcast(settings, vox_targets, media_url)
        await asyncio.sleep(1.0)
        onsets = await far_end.stop()
        return (judge("bare ARI client", rate, calls, far_end.dialogs("bare"), onsets, bare_cpu),
                judge("voxcast", rate, calls, far_end.dialogs("vox"), onsets, vox_cpu))


def _row(metric: str, bare: float, vox: float, unit: str, ratio: float | None, goal: str,
         ok: bool) -> dict[str, Any]:
    return {"metric": metric, "bare": bare, "voxcast": vox, "unit": unit,
            "ratio": None if ratio is None else round(ratio, 2), "goal": goal, "ok": ok}


def rows_at_rate(bare: Side, vox: Side) -> list[dict[str, Any]]:
    """Issue 8's rate goal, one row per figure."""
    label = f"{vox.calls} calls at {vox.asked_rate:g}/s"
    rate_ratio = vox.rate / bare.rate if bare.rate else 0.0
    cpu_ratio = vox.cpu_ms_a_call / bare.cpu_ms_a_call if bare.cpu_ms_a_call else 0.0
    audio_extra = vox.audio_p95_ms - bare.audio_p95_ms
    return [
        _row(f"{label}: answered at far end, audio heard", bare.calls - bare.failures,
             vox.calls - vox.failures, "calls", None, f"all {vox.calls}", vox.failures == 0),
        _row(f"{label}: rate at far end", bare.rate, vox.rate, "calls/s", rate_ratio,
             ">= 0.95 x bare", rate_ratio >= 0.95),
        _row(f"{label}: CPU a call", bare.cpu_ms_a_call, vox.cpu_ms_a_call, "ms", cpu_ratio,
             "<= 1.5 x bare", cpu_ratio <= 1.5),
        _row(f"{label}: answer to first audio p95", bare.audio_p95_ms, vox.audio_p95_ms, "ms",
             None, "<= bare + 50 ms", audio_extra <= 50),
        _row(f"{label}: longest INVITE gap beyond schedule", bare.max_gap_beyond_schedule_ms,
             vox.max_gap_beyond_schedule_ms, "ms", None, "<= 100 ms",
             vox.max_gap_beyond_schedule_ms <= 100),
    ]


def rows_at_ceiling(bare: Side, vox: Side) -> list[dict[str, Any]]:
    """Asked beyond what the machine holds: who keeps up, with no failure."""
    label = f"ceiling, asked {vox.asked_rate:g}/s"
    ratio = vox.rate / bare.rate if bare.rate else 0.0
    return [
        _row(f"{label}: failures", bare.failures, vox.failures, "calls", None, "0 both",
             bare.failures == vox.failures == 0),
        _row(f"{label}: rate at far end", bare.rate, vox.rate, "calls/s", ratio,
             ">= 0.95 x bare", ratio >= 0.95 and vox.failures == 0),
    ]


def measure(quick: bool) -> list[dict[str, Any]]:
    """Issue 8's dialing rows: the rate goal, then the ceiling (smaller when `quick`)."""
    calls = 600 if quick else 3000
    rows = rows_at_rate(*uvloop.run(side_by_side(calls, 100.0, 300)))
    rows += rows_at_ceiling(*uvloop.run(side_by_side(calls, 160.0, 300)))
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--max-concurrent", type=int, default=300)
    arguments = parser.parse_args()
    # The service's own loop (python -m app runs on uvloop); the bare client shares it.
    sides = uvloop.run(side_by_side(arguments.calls, arguments.rate, arguments.max_concurrent))
    print(json.dumps([side.__dict__ for side in sides], indent=2))
