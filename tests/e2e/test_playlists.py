"""Playlists end to end: speech, pauses, converted WAV and MP3, personalisation, fallback."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiohttp import web

from app.main import SPEECH
from tests.conftest import free_port, tone_wav
from tests.e2e.conftest import MP3_SECONDS, WAV_SECONDS, MediaPlane, Service, running_service

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]


async def test_mixed_playlist_plays_every_item(media_plane: MediaPlane, service: Service) -> None:
    playlist = [{"say": "Hello, this is a Voxcast test message."}, {"pause": 1},
                {"play": media_plane.media_url},  # 44.1 kHz stereo WAV
                {"play": media_plane.media_base + "/voices/tone.mp3"}]
    status, accepted = await service.post("/voice/call/play", {
        "to": media_plane.uri("answer"), "from": "me", "playlist": playlist})
    assert status == 200, accepted
    report = await service.wait_for_report(accepted["request_id"])
    (record,) = report["records"]
    assert record["answered"] and record["disconnect_cause_code"] == "200"
    assert record["playback"] == ["done", "done", "done", "done"]
    (speech,) = record["speech"]
    assert speech["item"] == 0 and speech["engine"] == "piper" and speech["fallbacks"] == []
    planned = speech["seconds"] + 1 + WAV_SECONDS + MP3_SECONDS
    assert abs(record["duration"] - planned) <= 1, (record, planned)
    print(f"mixed playlist: planned {planned:.2f} s, call lasted {record['duration']} s")


async def test_loop_repeats_an_item(media_plane: MediaPlane, service: Service) -> None:
    status, accepted = await service.post("/voice/call/play", {
        "to": media_plane.uri("answer"), "from": "me",
        "playlist": [{"pause": 1, "loop": 3}]})
    assert status == 200
    (record,) = (await service.wait_for_report(accepted["request_id"]))["records"]
    assert record["playback"] == ["done"] * 3 and abs(record["duration"] - 3) <= 1


async def test_personalised_names_synthesise_once_per_distinct_text(
        media_plane: MediaPlane, service: Service) -> None:
    names = [f"Person{i % 10}" for i in range(100)]
    body = {"recipients": [{"to": media_plane.uri("reject_486", user=f"p{i}"),
                            "variables": {"name": name}} for i, name in enumerate(names)],
            "from": "me", "playlist": [{"say": "Hello {name}, goodbye."}]}
    speech = service.app[SPEECH]
    before = speech.syntheses
    status, accepted = await service.post("/voice/call/play", body)
    assert status == 200
    report = await service.wait_for_report(accepted["request_id"], limit=90)
    assert len(report["records"]) == 100
    first_run = speech.syntheses - before
    assert first_run <= len(set(names)), first_run
    status, again = await service.post("/voice/call/play", body)
    await service.wait_for_report(again["request_id"], limit=90)
    assert speech.syntheses - before == first_run  # a second identical request synthesises 0
    print(f"100 personalised recipients, {len(set(names))} distinct names: {first_run} "
          "syntheses; the identical second request: 0")


async def test_gtts_unreachable_falls_back_within_its_timeout(
        media_plane: MediaPlane, tmp_path) -> None:
    # A local stand-in for Google that accepts connections and never answers.
    hung = web.Application()

    async def never(_request: web.Request) -> web.Response:
        await asyncio.sleep(60)
        raise web.HTTPGatewayTimeout()

    hung.router.add_route("*", "/{tail:.*}", never)
    runner = web.AppRunner(hung, shutdown_timeout=0.1)  # do not wait for the hung handler
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    settings = media_plane.settings.with_overrides(
        runtime_dir=tmp_path, gtts_enabled=True, gtts_timeout=2.0,
        gtts_base_url=f"http://127.0.0.1:{port}", tts_engines="gtts,piper,flite",
        media_check_seconds=10.0)
    try:
        async with running_service(settings) as service:
            started = time.monotonic()
            status, accepted = await service.post("/voice/call/play", {
                "to": media_plane.uri("answer"), "from": "me",
                "playlist": [{"say": "Spoken although Google is out of reach.",
                              "engine": "gtts"}]})
            spoken_within = time.monotonic() - started
            assert status == 200
            assert spoken_within <= 2.0 + 1.0, spoken_within
            print(f"gTTS hung: accepted and spoken by the fallback in {spoken_within:.2f} s "
                  "(gTTS timeout 2 s)")
            (record,) = (await service.wait_for_report(accepted["request_id"]))["records"]
    finally:
        await runner.cleanup()
    (speech,) = record["speech"]
    assert speech["engine"] == "piper"
    assert speech["fallbacks"] and speech["fallbacks"][0].startswith("gtts:")
    assert record["answered"] and record["playback"] == ["done"]


async def test_uploaded_media_plays(media_plane: MediaPlane, service: Service) -> None:
    audio = tone_wav(1.0, rate=22050, channels=1)
    async with service.http.post(service.base + "/media", data=audio,
                                 headers={"Content-Type": "audio/wav"}) as response:
        uploaded = await response.json()
    assert response.status == 200 and uploaded["media"].startswith("media:")
    assert abs(uploaded["duration"] - 1.0) < 0.01
    status, accepted = await service.post("/voice/call/play", {
        "to": media_plane.uri("answer"), "from": "me", "playlist": [{"play": uploaded["media"]}]})
    assert status == 200, accepted
    (record,) = (await service.wait_for_report(accepted["request_id"]))["records"]
    assert record["playback"] == ["done"]
