"""Two media servers beside one: does listing a second Asterisk split the load and keep pace?

One Voxcast node calls the same far end twice in one run: first through one Asterisk with room
for every call (the baseline), then through two Asterisk instances listed in a servers file,
each with half that room. Which server placed each call is read from the far end's trace (the
Via of each INVITE names the Asterisk that sent it). Rows: the share the busier server carried,
the rate at the far end against the one-server run, and calls that failed or were not heard.

    python -m bench.servers [--calls 1200] [--rate 100]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import tempfile
import uuid
from collections import Counter
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import uvloop

from app.runtime import layout_of, running_asterisk, with_generated_secrets
from app.settings import Settings
from bench.dialing import RING_TIMEOUT, WAV_SECONDS, FarEnd, Side, judge, voxcast
from tests.support.audio import tone_wav
from tests.support.media_server import serving_files
from tests.support.ports import free_sip_port, free_tcp_port, free_udp_range
from tests.support.server_list import write_server_list

CAPACITY = 300  # live calls: all on the one server, half each on the two
_VIA_PORT = re.compile(r"SIP/2\.0/UDP 127\.0\.0\.1:(\d+)")


def _server(root: Path, runtime: Path, rate: float) -> Settings:
    rtp_start, rtp_end = free_udp_range(4 * CAPACITY)
    return with_generated_secrets(Settings(
        runtime_dir=runtime, asterisk_root=root,
        instance_name=f"bench-{uuid.uuid4().hex[:6]}",
        ari_url=f"http://127.0.0.1:{free_tcp_port()}", sip_port=free_sip_port(),
        sip_tls_port=free_tcp_port(), ami_port=free_tcp_port(), rtp_start=rtp_start,
        rtp_end=rtp_end, ring_timeout=RING_TIMEOUT, calls_per_second=rate,
        max_concurrent_calls=CAPACITY, media_allow_loopback=True, tts_engines="flite"))


async def one_and_two(calls: int, rate: float) -> tuple[Side, Side, Counter[str]]:
    """Voxcast through one server, then through two; the second run's calls per server."""
    root = Path(os.environ.get("VOXCAST_ASTERISK_ROOT", "/"))
    runtime = Path(tempfile.mkdtemp(prefix="voxcast-bench-servers-"))
    first, second = _server(root, runtime, rate), _server(root, runtime, rate)
    far_end = FarEnd(root, layout_of(first).sipp_dir / "bench-servers")
    try:
        async with AsyncExitStack() as stack:
            media_base = await stack.enter_async_context(
                serving_files({"/bench.wav": tone_wav(WAV_SECONDS, rate=8000, channels=1)}))
            for server in (first, second):
                await stack.enter_async_context(running_asterisk(server))
            await far_end.start()
            media_url = media_base + "/bench.wav"
            one_cpu = await voxcast(first.with_overrides(runtime_dir=runtime / "one"),
                                    [f"sip:one{i}@127.0.0.1:{far_end.port}"
                                     for i in range(calls)], media_url)
            await asyncio.sleep(1.0)
            listed = write_server_list(runtime / "servers.toml", [first, second], CAPACITY // 2)
            two_cpu = await voxcast(first.with_overrides(runtime_dir=runtime / "two",
                                                         media_servers_file=listed),
                                    [f"sip:two{i}@127.0.0.1:{far_end.port}"
                                     for i in range(calls)], media_url)
            await asyncio.sleep(1.0)
            onsets = await far_end.stop()
        # Read before the instance folders (the trace is in the first's) are removed.
        name_of = {first.sip_port: "first", second.sip_port: "second"}
        one_dialogs, two_dialogs = far_end.dialogs("one"), far_end.dialogs("two")
    finally:
        await far_end.stop()
        for server in (first, second):
            shutil.rmtree(layout_of(server).instance_dir, ignore_errors=True)
        shutil.rmtree(runtime, ignore_errors=True)
    placed: Counter[str] = Counter()
    for dialog in two_dialogs:
        via = _VIA_PORT.search(dialog.invite.headers.get("via", ""))
        placed[name_of.get(int(via[1]), "?") if via else "?"] += 1
    return (judge("one server", rate, calls, one_dialogs, onsets, one_cpu),
            judge("two servers", rate, calls, two_dialogs, onsets, two_cpu), placed)


def rows(one: Side, two: Side, placed: Counter[str]) -> list[dict[str, Any]]:
    label = f"two servers, {two.calls} calls at {two.asked_rate:g}/s"
    busier = max(placed.values(), default=0) / max(sum(placed.values()), 1)
    ratio = two.rate / one.rate if one.rate else 0.0
    return [
        {"metric": f"{label}: share on the busier server ({dict(placed)})", "bare": None,
         "voxcast": round(busier, 2), "unit": "of calls", "ratio": None,
         "goal": "<= 0.6 (split)", "ok": busier <= 0.6 and "?" not in placed},
        {"metric": f"{label}: rate at far end, against one server", "bare": one.rate,
         "voxcast": two.rate, "unit": "calls/s", "ratio": round(ratio, 2),
         "goal": ">= 0.95 x one server", "ok": ratio >= 0.95},
        {"metric": f"{label}: failed or silent calls", "bare": one.failures,
         "voxcast": two.failures, "unit": "calls", "ratio": None, "goal": "0",
         "ok": two.failures == 0},
    ]


def measure(quick: bool) -> list[dict[str, Any]]:
    return rows(*uvloop.run(one_and_two(400 if quick else 1200, 100.0)))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=1200)
    parser.add_argument("--rate", type=float, default=100.0)
    arguments = parser.parse_args()
    one, two, placed = uvloop.run(one_and_two(arguments.calls, arguments.rate))
    print(json.dumps({"one": one.__dict__, "two": two.__dict__, "placed": placed}, indent=2))
