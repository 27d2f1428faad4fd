"""Live events (SSE): a client that drops and reconnects with Last-Event-ID misses nothing."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import aiohttp

from app.settings import Secret
from tests.support.fake_ari import Behaviour, FakeAri
from tests.support.service import running_service
from tests.support.settings import against_fake_ari
from tests.support.sse import SseEvent, sse_events

CALLS = 20


async def _read(http: aiohttp.ClientSession, url: str, *, last_event_id: str | None,
                stop_after: int | None) -> list[SseEvent]:
    """Events with ids until `stop_after` of them (then drop the connection) or until
    broadcast.completed."""
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    got: list[SseEvent] = []
    async with http.get(url, headers=headers) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        async for event in sse_events(response):
            if event.id is None:
                assert event.event == "progress", event
                continue
            got.append(event)
            if event.event == "broadcast.completed" or len(got) == stop_after:
                break
    return got


async def test_reconnecting_with_last_event_id_misses_nothing(fake_ari: FakeAri,
                                                              tmp_path: Path) -> None:
    fake_ari.default = Behaviour(ring_after=0.02, answer_after=0.1, playback_seconds=0.1)
    settings = against_fake_ari(fake_ari, tmp_path / "root", tmp_path / "runtime",
                                calls_per_second=20, event_poll_seconds=0.05)
    async with running_service(settings) as service:
        request_id = await service.submit({
            "recipients": [{"to": f"sip:s{i}@127.0.0.1:5099"} for i in range(CALLS)],
            "from": "me", "playlist": [{"pause": 0.2}]})
        url = f"{service.base}/voice/call/{request_id}/events"
        tenant_url = f"{service.base}/events"
        whole = asyncio.create_task(_read(service.http, tenant_url, last_event_id=None,
                                          stop_after=None))
        first = await _read(service.http, url, last_event_id=None, stop_after=10)
        await asyncio.sleep(0.5)  # events happen while the client is away
        rest = await _read(service.http, url, last_event_id=first[-1].id, stop_after=None)
        everything = await asyncio.wait_for(whole, 30)
        report = await service.wait_for_report(request_id, limit=20)

    ids = [event.id for event in first + rest]
    assert len(ids) == len(set(ids))  # nothing twice
    assert ids == [event.id for event in everything]  # nothing missed, in order
    kinds = [event.event for event in everything]
    assert kinds.count("call.ringing") == kinds.count("call.answered") == CALLS
    assert kinds.count("call.ended") == CALLS and kinds[-1] == "broadcast.completed"
    ended = {json.loads(e.data)["data"]["record"]["id"]: json.loads(e.data)["data"]["record"]
             for e in everything if e.event == "call.ended"}
    assert ended == {record["id"]: record for record in report["records"]}


async def test_an_open_stream_does_not_hold_up_the_shutdown(fake_ari: FakeAri,
                                                            tmp_path: Path) -> None:
    settings = against_fake_ari(fake_ari, tmp_path / "root", tmp_path / "runtime")
    async with running_service(settings) as service:
        response = await service.http.get(f"{service.base}/events")
        assert response.status == 200
        leaving = time.monotonic()
    took = time.monotonic() - leaving  # the harness's cleanup: aiohttp allows 60 s
    response.close()
    assert took < 5.0, took


async def test_a_bad_last_event_id_and_another_tenants_request(fake_ari: FakeAri,
                                                               tmp_path: Path) -> None:
    settings = against_fake_ari(fake_ari, tmp_path / "root", tmp_path / "runtime",
                                api_keys=Secret("a:key-a-0123456789abcdef,b:key-b-0123456789abcdef"))
    async with running_service(settings) as service:
        service.headers = {"Authorization": "Bearer key-a-0123456789abcdef"}
        request_id = await service.submit({"to": "sip:t@127.0.0.1:5099", "from": "me",
                                           "playlist": [{"pause": 0.1}]})
        async with service.http.get(f"{service.base}/events",
                                    headers={**service.headers,
                                             "Last-Event-ID": "x1"}) as response:
            assert response.status == 400
        service.headers = {"Authorization": "Bearer key-b-0123456789abcdef"}
        status, _ = await service.get(f"/voice/call/{request_id}/events")
        assert status == 404
