"""Playlists end to end: speech, pauses, converted WAV and MP3, personalisation, fallback."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from aiohttp import web

from app.api.routes import LIBRARY
from app.main import SPEECH
from app.services.speech import speech_key
from tests.e2e.conftest import MP3_SECONDS, WAV_SECONDS, MediaPlane
from tests.support.audio import best_alignment, read_samples, tone_wav, ulaw_decode, ulaw_encode
from tests.support.ports import free_tcp_port
from tests.support.rtp import stream_of
from tests.support.service import Service, poll, running_service
from tests.support.sip_trace import Dialog, by_user

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
        media_plane: MediaPlane, tmp_path: Path) -> None:
    # A local stand-in for Google that accepts connections and never answers.
    hung = web.Application()

    async def never(_request: web.Request) -> web.Response:
        await asyncio.sleep(60)
        raise web.HTTPGatewayTimeout()

    hung.router.add_route("*", "/{tail:.*}", never)
    runner = web.AppRunner(hung, shutdown_timeout=0.1)  # do not wait for the hung handler
    await runner.setup()
    port = free_tcp_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    gtts_timeout = 2.0
    settings = media_plane.settings.with_overrides(
        runtime_dir=tmp_path, gtts_enabled=True, gtts_timeout=gtts_timeout,
        gtts_base_url=f"http://127.0.0.1:{port}", tts_engines="gtts,piper,flite",
        media_check_seconds=10.0)
    try:
        async with running_service(settings) as service:
            started = time.monotonic()
            request_id = await service.submit({
                "to": media_plane.uri("answer"), "from": "me",
                "playlist": [{"say": "Spoken although Google is out of reach.",
                              "engine": "gtts"}]})
            spoken_within = time.monotonic() - started
            # What the fallback itself costs here and now: piper alone, a sentence as long.
            started = time.monotonic()
            await service.submit({
                "to": media_plane.uri("reject_486"), "from": "me",
                "playlist": [{"say": "Spoken by piper while Google is unused.",
                              "engine": "piper"}]})
            piper_alone = time.monotonic() - started
            (record,) = (await service.wait_for_report(request_id))["records"]
    finally:
        await runner.cleanup()
    # gTTS must really have waited for its timeout (not failed at once), and the fallback must
    # add no more than piper's own time plus the gTTS thread's return (0.5 s of headroom).
    assert spoken_within >= gtts_timeout, spoken_within
    assert spoken_within <= gtts_timeout + piper_alone + 0.5, (spoken_within, piper_alone)
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


async def test_personalised_speech_reaches_each_recipient(media_plane: MediaPlane,
                                                           service: Service) -> None:
    """Each far end hears its own sentence: the RTP towards it against every synthesised file.

    The comparison is the normalised cross-correlation of what arrived with each recipient's
    file after a G.711 round trip (what the codec should leave): near 1 for the same audio,
    low for another sentence, so swapped audio fails both ways.
    """
    text = "Hello {name}, this is your reminder."
    names = {"person-a": "Alice", "person-b": "Bob", "person-c": "Caroline Jones"}
    with media_plane.rtp.recording() as rtp:
        request_id = await service.submit({
            "recipients": [{"to": media_plane.uri("answer", user=user),
                            "variables": {"name": name}} for user, name in names.items()],
            "from": "me", "playlist": [{"say": text}]})
        report = await service.wait_for_report(request_id)

        async def all_hung_up() -> tuple[bool, dict[str, list[Dialog]]]:
            dialogs = by_user(media_plane.dialogs("answer", names))
            return (len(dialogs) == len(names)
                    and all(d.received("BYE") for ds in dialogs.values() for d in ds)), dialogs

        dialogs = await poll(all_hung_up, limit=5.0, what="every personalised call hung up")
    records = {record["to"]: record for record in report["records"]}
    expected = {}
    for user, name in names.items():
        record = records[media_plane.uri("answer", user=user)]
        assert record["playback"] == ["done"], record
        media = await service.app[LIBRARY].cached(
            speech_key(record["speech"][0]["engine"], None, "en", text.format(name=name)))
        assert media is not None
        samples, rate = read_samples(media_plane.settings.asterisk_root /
                                     (media.sound.removeprefix("sound:/") + ".wav"))
        assert rate == 8000
        expected[user] = ulaw_decode(ulaw_encode(samples))
    heard = {}
    for user in names:
        (dialog,) = dialogs[user]
        stream = stream_of(dialog, rtp.streams())
        assert stream is not None, user
        heard[user] = stream.samples()
    scores = {(listener, speaker): best_alignment(heard[listener], expected[speaker])
              for listener in names for speaker in names}
    table = {f"{listener} heard {speaker}": round(score, 3)
             for (listener, speaker), score in scores.items()}
    for listener in names:
        assert scores[listener, listener] >= 0.9, table
        for speaker in names:
            if speaker != listener:
                assert scores[listener, speaker] <= 0.5, table
    for user in names:  # and all of it: as long as the file, within two 20 ms packets
        assert abs(len(heard[user]) - len(expected[user])) <= 2 * 160, user
