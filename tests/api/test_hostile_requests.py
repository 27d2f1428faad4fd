"""A table of hostile requests: each gets the right 4xx and a clear message, nothing is stored.

Runs against the real app with no Asterisk (ARI on a closed port), two tenants configured.
"""

from __future__ import annotations

import io
import json
import uuid
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from app.main import STORE, create_app
from app.settings import Secret
from tests.support.settings import without_asterisk

ACME = "acme-key-0123456789abcdef"
GLOBEX = "globex-key-0123456789abcdef"
PLAY = [{"pause": 1}]
OK = {"to": "sip:alice@127.0.0.1:5070", "from": "me", "playlist": PLAY}
JSON = "application/json"


def body(**changes: object) -> bytes:
    return json.dumps({**OK, **changes}).encode()


def recipients(*targets: object) -> bytes:
    return json.dumps({"recipients": [{"to": t} for t in targets], "from": "me",
                       "playlist": PLAY}).encode()


# (name, method, path, raw body, content type, status, error, a word the message must hold)
CASES = [
    ("to with comma", "POST", "/voice/call/play", body(to="sip:a,b@127.0.0.1"), JSON, 400,
     "invalid_request", "to"),
    ("to with ampersand", "POST", "/voice/call/play", body(to="sip:a&b@127.0.0.1"), JSON, 400,
     "invalid_request", "to"),
    ("to with parentheses", "POST", "/voice/call/play", body(to="sip:a(b)@127.0.0.1"), JSON,
     400, "invalid_request", "to"),
    ("to with quotes", "POST", "/voice/call/play", body(to='sip:"a"@127.0.0.1'), JSON, 400,
     "invalid_request", "to"),
    ("to with space", "POST", "/voice/call/play", body(to="sip:a b@127.0.0.1"), JSON, 400,
     "invalid_request", "to"),
    ("to with CRLF header", "POST", "/voice/call/play",
     body(to="sip:a@127.0.0.1\r\nX-Evil: 1"), JSON, 400, "invalid_request", "to"),
    ("to with NUL", "POST", "/voice/call/play", body(to="sip:a@127.0.0.1\x00"), JSON, 400,
     "invalid_request", "to"),
    ("to with a second channel", "POST", "/voice/call/play",
     body(to="sip:a@127.0.0.1&PJSIP/other/sip:b@127.0.0.1"), JSON, 400, "invalid_request",
     "to"),
    ("to as dialplan", "POST", "/voice/call/play", body(to="Local/100@default"), JSON, 400,
     "invalid_request", "to"),
    ("to with tab", "POST", "/voice/call/play", body(to="sip:a\t@127.0.0.1"), JSON, 400,
     "invalid_request", "to"),
    ("to too long", "POST", "/voice/call/play", body(to="sip:" + "a" * 300 + "@127.0.0.1"),
     JSON, 400, "invalid_request", "to"),
    ("to unknown scheme", "POST", "/voice/call/play", body(to="h323:a@127.0.0.1"), JSON, 400,
     "invalid_request", "to"),
    ("phone number without trunk", "POST", "/voice/call/play", body(to="+15551234567"), JSON,
     400, "invalid_request", "trunk"),
    ("trunk for a SIP URI", "POST", "/voice/call/play", body(trunk="carrier-a"), JSON, 400,
     "invalid_request", "trunk"),
    ("trunk name injecting", "POST", "/voice/call/play", body(to="+15551234567",
                                                               trunk="a]\n[b"), JSON, 400,
     "invalid_request", "trunk"),
    ("from with quotes", "POST", "/voice/call/play", body(**{"from": '"x" <sip:1@h>'}), JSON,
     400, "invalid_request", "from"),
    ("from with CRLF", "POST", "/voice/call/play", body(**{"from": "me\r\nP-Asserted: x"}),
     JSON, 400, "invalid_request", "from"),
    ("from with NUL", "POST", "/voice/call/play", body(**{"from": "me\x00"}), JSON, 400,
     "invalid_request", "from"),
    ("from with comma", "POST", "/voice/call/play", body(**{"from": "a,b"}), JSON, 400,
     "invalid_request", "from"),
    ("from with semicolon", "POST", "/voice/call/play", body(**{"from": "a;tag=1"}), JSON, 400,
     "invalid_request", "from"),
    ("from empty", "POST", "/voice/call/play", body(**{"from": ""}), JSON, 400,
     "invalid_request", "from"),
    ("third recipient bad", "POST", "/voice/call/play",
     recipients("sip:a@127.0.0.1", "sip:b@127.0.0.1", "sip:c@127.0.0.1;x=1"), JSON, 400,
     "invalid_request", "recipients[2].to"),
    ("a million recipients", "POST", "/voice/call/play",
     b'{"from":"me","playlist":[{"pause":1}],"recipients":[' + b",".join(
         [b"{}"] * 1_000_000) + b"]}", JSON, 413, "body_too_large", "too large"),
    ("too many recipients", "POST", "/voice/call/play",
     recipients(*["sip:a@127.0.0.1"] * 101), JSON, 400, "too_many_recipients", "recipients"),
    ("too many items", "POST", "/voice/call/play", body(playlist=[{"pause": 1}] * 21), JSON,
     400, "too_many_items", "playlist"),
    ("text too long", "POST", "/voice/call/play", body(playlist=[{"say": "a" * 2001}]), JSON,
     400, "text_too_long", "playlist[0].say"),
    ("huge body", "POST", "/voice/call/play", b'{"x":"' + b"a" * (2 * 1024 * 1024) + b'"}',
     JSON, 413, "body_too_large", "too large"),
    ("deep nesting", "POST", "/voice/call/play", b"[" * 50_000 + b"]" * 50_000, JSON, 400,
     "invalid_json", "JSON"),
    ("deep nesting in a field", "POST", "/voice/call/play",
     b'{"to":' + b'{"a":' * 5000 + b"1" + b"}" * 5000 + b"}", JSON, 400, "invalid_json",
     "JSON"),
    ("invalid UTF-8", "POST", "/voice/call/play", b'{"to":"sip:\xff\xfe@127.0.0.1"}', JSON, 400,
     "invalid_json", "UTF-8"),
    ("not JSON", "POST", "/voice/call/play", b"<xml/>", JSON, 400, "invalid_json", "JSON"),
    ("JSON array", "POST", "/voice/call/play", b"[]", JSON, 400, "invalid_request", "object"),
    ("JSON string", "POST", "/voice/call/play", b'"hi"', JSON, 400, "invalid_request", "object"),
    ("empty body", "POST", "/voice/call/play", b"", JSON, 400, "invalid_json", "JSON"),
    ("unknown field", "POST", "/voice/call/play", body(priority=1), JSON, 400,
     "invalid_request", "priority"),
    ("unknown item field", "POST", "/voice/call/play", body(playlist=[{"pause": 1, "x": 2}]),
     JSON, 400, "invalid_request", "playlist[0].x"),
    ("to as number", "POST", "/voice/call/play", body(to=5551234), JSON, 400,
     "invalid_request", "to"),
    ("to as list", "POST", "/voice/call/play", body(to=["sip:a@127.0.0.1"]), JSON, 400,
     "invalid_request", "to"),
    ("playlist as object", "POST", "/voice/call/play", body(playlist={"pause": 1}), JSON, 400,
     "invalid_request", "playlist"),
    ("pause as string", "POST", "/voice/call/play", body(playlist=[{"pause": "1"}]), JSON, 400,
     "invalid_request", "playlist[0].pause"),
    ("pause negative", "POST", "/voice/call/play", body(playlist=[{"pause": -1}]), JSON, 400,
     "invalid_request", "playlist[0].pause"),
    ("pause boolean", "POST", "/voice/call/play", body(playlist=[{"pause": True}]), JSON, 400,
     "invalid_request", "playlist[0].pause"),
    ("loop too large", "POST", "/voice/call/play", body(playlist=[{"pause": 1, "loop": 1000}]),
     JSON, 400, "invalid_request", "loop"),
    ("template code in say", "POST", "/voice/call/play",
     body(playlist=[{"say": "{name.__class__.__mro__}"}]), JSON, 400, "invalid_request",
     "placeholder"),
    ("variable with newline", "POST", "/voice/call/play",
     body(variables={"name": "a\nb"}, playlist=[{"say": "hi {name}"}]), JSON, 400,
     "invalid_request", "variables"),
    ("file URL", "POST", "/voice/call/play", body(playlist=[{"play": "file:///etc/shadow"}]),
     JSON, 400, "invalid_request", "playlist[0].play"),
    ("unknown engine", "POST", "/voice/call/play",
     body(playlist=[{"say": "hi", "engine": "../../bin/sh"}]), JSON, 400, "invalid_request",
     "engine"),
    ("voice with path", "POST", "/voice/call/play",
     body(playlist=[{"say": "hi", "voice": "/etc/passwd"}]), JSON, 400, "invalid_request",
     "voice"),
    ("retry too many", "POST", "/voice/call/play",
     body(retry={"on": ["busy"], "attempts": 50}), JSON, 400, "invalid_request", "retry"),
    ("form encoded", "POST", "/voice/call/play", b"to=sip:a@b", "application/x-www-form-urlencoded",
     415, "unsupported_media_type", "application/json"),
    ("text/plain", "POST", "/voice/call/play", body(), "text/plain", 415,
     "unsupported_media_type", "application/json"),
    ("bad idempotency key", "POST", "/voice/call/play", body(), JSON, 400, "invalid_request",
     "Idempotency-Key"),
    ("media upload empty", "POST", "/media", b"", "audio/wav", 422, "media_unusable", "empty"),
    ("media upload not audio", "POST", "/media", b"MZ\x90\x00" * 100, "audio/wav", 422,
     "media_unusable", "audio"),
    ("status of a non-id", "GET", "/voice/call/status/%2e%2e%2fetc", b"", JSON, 404,
     "not_found", "no"),
    ("report of a non-id", "GET", "/report/1%20OR%201=1", b"", JSON, 404, "not_found", "no"),
    ("cancel unknown", "DELETE", f"/voice/call/{uuid.uuid4()}", b"", JSON, 404, "not_found",
     "no"),
    ("wrong method", "PUT", "/voice/call/play", body(), JSON, 405, "method_not_allowed", "PUT"),
]


@pytest.fixture
async def client(aiohttp_client, tmp_path: Path) -> TestClient:
    settings = without_asterisk(tmp_path, api_keys=Secret(f"acme:{ACME},globex:{GLOBEX}"),
                                max_recipients=100, max_body_bytes=1024 * 1024,
                                tts_engines="flite")
    return await aiohttp_client(create_app(settings))


def test_the_table_is_big_enough():
    assert len(CASES) >= 40


@pytest.mark.parametrize(("name", "method", "path", "raw", "content_type", "status", "error",
                          "word"), CASES, ids=[case[0] for case in CASES])
async def test_hostile_request(client, name, method, path, raw, content_type, status, error,
                               word):
    headers = {"Authorization": f"Bearer {ACME}", "Content-Type": content_type}
    if name == "bad idempotency key":
        headers["Idempotency-Key"] = "bad key\twith tab"
    response = await client.request(method, path, data=io.BytesIO(raw), headers=headers)
    answer = await response.json()
    assert response.status == status, answer
    assert answer["status"] == status and answer["error"] == error and answer["code"] != 0
    assert word in answer["message"], answer["message"]
    assert ACME not in json.dumps(answer)
    store = client.server.app[STORE]
    assert await store.media.broadcasts_awaiting_media(limit=5) == []  # nothing half-stored


async def test_other_tenants_ids_look_unknown(client):
    response = await client.post("/voice/call/play", data=body(), headers={
        "Authorization": f"Bearer {ACME}", "Content-Type": JSON})
    request_id = (await response.json())["request_id"]
    for method, path in [("GET", f"/voice/call/status/{request_id}"),
                         ("DELETE", f"/voice/call/{request_id}")]:
        theirs = await client.request(method, path, headers={"Authorization": f"Bearer {GLOBEX}"})
        assert theirs.status == 404
        assert (await theirs.json())["error"] == "not_found"


async def test_ipv6_targets_are_refused_when_ipv6_is_off(aiohttp_client, tmp_path: Path):
    settings = without_asterisk(tmp_path, sip_address6="", api_keys=Secret(f"acme:{ACME}"),
                                tts_engines="flite")
    client = await aiohttp_client(create_app(settings))
    response = await client.post(
        "/voice/call/play", data=recipients("sip:a@127.0.0.1:5070", "sip:b@[::1]:5070"),
        headers={"Authorization": f"Bearer {ACME}", "Content-Type": JSON})
    answer = await response.json()
    assert response.status == 400 and answer["error"] == "invalid_request"
    assert answer["details"] == [{"field": "recipients[1].to",
                                  "message": "IPv6 addresses are not enabled on this service"}]
    assert await client.server.app[STORE].media.broadcasts_awaiting_media(limit=5) == []
