"""The API's answers to bad input and unknown ids: clear 4xx envelopes, nothing stored."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from app.main import STORE, create_app
from tests.support.settings import without_asterisk

GOOD = {"to": "sip:alice@127.0.0.1:5070", "from": "me",
        "playlist": [{"play": "http://127.0.0.1:9/hello.wav"}]}


@pytest.fixture
async def client(aiohttp_client, tmp_path: Path) -> TestClient:
    # No Asterisk: ARI points at a closed port, so nothing is ever dialled here.
    settings = without_asterisk(tmp_path, max_recipients=50, max_body_bytes=64 * 1024,
                                media_allow_loopback=True)
    return await aiohttp_client(create_app(settings))


async def _requests_stored(client: TestClient) -> int:
    media = client.server.app[STORE].media
    return len(await media.broadcasts_awaiting_media(limit=1000))


@pytest.mark.parametrize(("body", "field"), [
    ({**GOOD, "to": "sip:alice@127.0.0.1\r\nX-Injected: 1"}, "to"),
    ({**GOOD, "to": "sip:a,b@127.0.0.1"}, "to"),
    ({**GOOD, "from": "me\" <sip:evil@x>"}, "from"),
    ({**GOOD, "from": 7}, "from"),
    ({**GOOD, "playlist": []}, "playlist"),
    ({**GOOD, "playlist": [{"play": "file:///etc/passwd"}]}, "playlist[0].play"),
    ({**GOOD, "playlist": [{"play": "http://127.0.0.1/a.wav", "x": 1}]}, "playlist[0].x"),
    ({**GOOD, "unknown": True}, "unknown"),
    ({"recipients": [{"to": "sip:a@127.0.0.1"}] * 3 + [{"to": "bad"}], "from": "me",
      "playlist": GOOD["playlist"]}, "recipients[3].to"),
    ({"recipients": [{"to": "sip:a@127.0.0.1"}] * 51, "from": "me",
      "playlist": GOOD["playlist"]}, "recipients"),
])
async def test_bad_fields_are_named_and_nothing_is_stored(client, body, field):
    response = await client.post("/voice/call/play", json=body)
    answer = await response.json()
    assert response.status == 400
    assert answer["code"] != 0 and answer["status"] == 400
    assert answer["error"] == ("too_many_recipients" if field == "recipients"
                               else "invalid_request")
    assert field in [detail["field"] for detail in answer["details"]]
    assert field in answer["message"]
    assert await _requests_stored(client) == 0


@pytest.mark.parametrize(("data", "headers", "status", "error"), [
    (b"{not json", {"Content-Type": "application/json"}, 400, "invalid_json"),
    (b"\xff\xfe", {"Content-Type": "application/json"}, 400, "invalid_json"),
    (b"[" * 30000 + b"]" * 30000, {"Content-Type": "application/json"}, 400, "invalid_json"),
    (b"[1, 2]", {"Content-Type": "application/json"}, 400, "invalid_request"),
    (b"to=sip:a@b", {"Content-Type": "application/x-www-form-urlencoded"}, 415,
     "unsupported_media_type"),
    (b"{" + b" " * (70 * 1024) + b"}", {"Content-Type": "application/json"}, 413,
     "body_too_large"),
])
async def test_malformed_bodies(client, data, headers, status, error):
    response = await client.post("/voice/call/play", data=data, headers=headers)
    answer = await response.json()
    assert (response.status, answer["status"], answer["error"]) == (status, status, error)
    assert await _requests_stored(client) == 0


@pytest.mark.parametrize("path", [
    f"/voice/call/status/{uuid.uuid4()}", "/voice/call/status/not-a-uuid",
    f"/report/{uuid.uuid4()}", "/report/../../etc", "/nowhere",
])
async def test_unknown_ids_answer_404(client, path):
    response = await client.get(path)
    answer = await response.json()
    assert response.status == 404 and answer["error"] == "not_found"


async def test_unreachable_media_is_refused_at_submit_naming_the_item(client):
    body = {**GOOD, "playlist": [{"pause": 1}, {"play": "http://127.0.0.1:9/hello.wav"}]}
    response = await client.post("/voice/call/play", json=body)
    answer = await response.json()
    assert response.status == 422 and answer["error"] == "media_unusable"
    assert answer["details"][0]["field"] == "playlist[1].play"
    assert await _requests_stored(client) == 0


async def test_missing_variables_are_refused_naming_recipient_and_item(client):
    body = {"recipients": [{"to": "sip:a@127.0.0.1", "variables": {"name": "Ann"}},
                           {"to": "sip:b@127.0.0.1"}],
            "from": "me", "playlist": [{"pause": 1}, {"say": "Hello {name}"}]}
    response = await client.post("/voice/call/play", json=body)
    answer = await response.json()
    assert response.status == 422 and answer["error"] == "missing_variables"
    assert answer["details"] == [{"field": "recipients[1].variables",
                                  "message": "misses 'name', used by playlist[1].say"}]
    assert await _requests_stored(client) == 0


async def test_wrong_method(client):
    response = await client.get("/voice/call/play")
    assert response.status == 405 and (await response.json())["error"] == "method_not_allowed"


async def test_not_ready_without_asterisk(client):
    response = await client.get("/ready")
    answer = await response.json()
    assert response.status == 503 and "ARI" in answer["message"]
    assert (await client.get("/health")).status == 200
