"""Per-recipient speech that cannot be made fails that recipient alone, never the service."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from app.main import STORE, create_app
from tests.support.settings import without_asterisk


@pytest.fixture
async def client(aiohttp_client, tmp_path: Path):
    settings = without_asterisk(tmp_path, tts_engines="flite")
    return await aiohttp_client(create_app(settings))


@pytest.mark.parametrize("text", [" ", "\n", "a\x00b", "bell\x07"])
async def test_blank_or_control_text_is_refused(client, text):
    response = await client.post("/voice/call/play", json={
        "to": "sip:a@127.0.0.1:5070", "from": "me", "playlist": [{"say": text}]})
    answer = await response.json()
    assert response.status == 400 and answer["details"][0]["field"] == "playlist[0].say"


async def test_a_blank_variable_fails_only_its_recipient(client):
    response = await client.post("/voice/call/play", json={
        "recipients": [{"to": "sip:a@127.0.0.1:5070", "variables": {"name": "Ann"}},
                       {"to": "sip:b@127.0.0.1:5070", "variables": {"name": " "}}],
        "from": "me", "playlist": [{"say": "{name}"}]})
    assert response.status == 200
    request_id = (await response.json())["request_id"]
    store = client.server.app[STORE]
    for _ in range(100):
        calls = await store.reports.records(request_id)
        if calls[1].state == "ended":
            break
        await asyncio.sleep(0.05)
    assert calls[1].result == "failed" and "say" in calls[1].sip_text
    assert calls[0].state == "queued"
    # Ann's call is ready to dial, with her own sound (nothing else dials here: no Asterisk).
    for _ in range(100):
        claimed = await store.queue.claim_calls("test", 5)
        if claimed:
            break
        await asyncio.sleep(0.05)
    assert [(call.call_id, len(call.sounds)) for call in claimed] == [(calls[0].id, 1)]
