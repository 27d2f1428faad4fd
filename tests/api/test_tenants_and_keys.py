"""Tenants, API keys, idempotency and cancel through the HTTP API (no Asterisk needed)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from app.main import STORE, create_app
from tests.support.tenants import ACME, GLOBEX, bearer, two_tenants

BODY = {"recipients": [{"to": "sip:a@127.0.0.1:5070"}, {"to": "sip:b@127.0.0.1:5070"}],
        "from": "me", "playlist": [{"pause": 1}]}


@pytest.fixture
async def client(aiohttp_client, tmp_path: Path) -> TestClient:
    # ARI is a closed port: calls stay queued, so cancel and tenancy are seen on queued work.
    settings = two_tenants(tmp_path)
    return await aiohttp_client(create_app(settings))


async def submit(client: TestClient, key: str, body=BODY, headers=None) -> dict:
    response = await client.post("/voice/call/play", json=body,
                                 headers={**bearer(key), **(headers or {})})
    answer = await response.json()
    assert response.status == 200, answer
    return answer


@pytest.mark.parametrize("headers", [{}, bearer("wrong-key-0123456789abcdef"),
                                     {"Authorization": f"Basic {ACME}"},
                                     {"Authorization": "Bearer "}])
async def test_requests_without_a_valid_key_are_refused(client, headers):
    response = await client.post("/voice/call/play", json=BODY, headers=headers)
    answer = await response.json()
    assert response.status == 401 and answer["error"] == "unauthorized"
    assert ACME not in str(answer)
    assert (await client.get("/health")).status == 200  # public


async def test_tenants_cannot_see_or_cancel_each_other(client):
    accepted = await submit(client, ACME)
    request_id = accepted["request_id"]
    mine = await (await client.get(f"/voice/call/status/{request_id}",
                                   headers=bearer(ACME))).json()
    report_id = mine["report"]["id"]
    for method, path in [("GET", f"/voice/call/status/{request_id}"),
                         ("GET", f"/report/{report_id}"),
                         ("DELETE", f"/voice/call/{request_id}")]:
        response = await client.request(method, path, headers=bearer(GLOBEX))
        assert response.status == 404, (method, path)
        unknown = await client.request(method, path.replace(request_id[:8], "00000000")
                                       .replace(report_id[:8], "00000000"), headers=bearer(GLOBEX))
        assert (await response.json())["message"] == (await unknown.json())["message"]
    status = await (await client.get(f"/voice/call/status/{request_id}",
                                     headers=bearer(ACME))).json()
    assert status["report"]["progress"]["queued"] == 2  # globex's DELETE changed nothing


async def test_call_ids_are_scoped_too(client):
    accepted = await submit(client, ACME)
    await client.delete(f"/voice/call/{accepted['request_id']}", headers=bearer(ACME))
    status = await (await client.get(f"/voice/call/status/{accepted['request_id']}",
                                     headers=bearer(ACME))).json()
    report = await (await client.get(f"/report/{status['report']['id']}",
                                     headers=bearer(ACME))).json()
    call_id = report["records"][0]["id"]
    assert (await client.get(f"/voice/call/status/{call_id}", headers=bearer(ACME))).status == 200
    assert (await client.get(f"/voice/call/status/{call_id}",
                             headers=bearer(GLOBEX))).status == 404


async def test_cancel_ends_queued_calls_and_makes_the_report_ready(client):
    accepted = await submit(client, ACME)
    response = await client.delete(f"/voice/call/{accepted['request_id']}", headers=bearer(ACME))
    cancelled = await response.json()
    assert response.status == 200 and cancelled["cancelled"] == 2 and cancelled["hung_up"] == 0
    report = await (await client.get(f"/report/{cancelled['report']['id']}",
                                     headers=bearer(ACME))).json()
    assert report["report_status"] == "ready"
    assert [r["result"] for r in report["records"]] == ["cancelled", "cancelled"]
    assert all(r["setup_time"] is None for r in report["records"])


async def test_idempotency_key(client):
    key = {"Idempotency-Key": "order-42"}
    first = await submit(client, ACME, headers=key)
    again = await submit(client, ACME, headers=key)
    assert again["request_id"] == first["request_id"]
    store = client.server.app[STORE]
    assert (await store.reports.progress(first["request_id"])).total == 2  # nothing new stored
    other_body = {**BODY, "from": "someone"}
    response = await client.post("/voice/call/play", json=other_body, headers={**bearer(ACME),
                                                                                 **key})
    answer = await response.json()
    assert response.status == 409 and answer["error"] == "idempotency_conflict"
    # The same key is independent per tenant.
    theirs = await submit(client, GLOBEX, body=other_body, headers=key)
    assert theirs["request_id"] != first["request_id"]


async def test_concurrent_idempotent_submits_make_one_request(client):
    key = {"Idempotency-Key": "burst"}
    answers = await asyncio.gather(*(submit(client, ACME, headers=key) for _ in range(10)))
    assert len({answer["request_id"] for answer in answers}) == 1


async def test_keys_from_the_database_work_until_revoked(client):
    keys = client.server.app[STORE].keys
    key_id, key = await keys.create("initech", "test")
    await submit(client, key)
    assert await keys.revoke(key_id)
    response = await client.post("/voice/call/play", json=BODY, headers=bearer(key))
    assert response.status == 401


async def test_uploads_belong_to_their_tenant(client):
    from tests.support.audio import tone_wav

    response = await client.post("/media", data=tone_wav(0.3), headers={
        **bearer(ACME), "Content-Type": "audio/wav"})
    media = (await response.json())["media"]
    body = {"to": "sip:a@127.0.0.1:5070", "from": "me", "playlist": [{"play": media}]}
    await submit(client, ACME, body=body)
    response = await client.post("/voice/call/play", json=body, headers=bearer(GLOBEX))
    answer = await response.json()
    assert response.status == 422 and answer["details"][0]["field"] == "playlist[0].play"
