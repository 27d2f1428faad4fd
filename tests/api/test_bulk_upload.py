"""`POST /voice/call/play/bulk`: NDJSON streamed into the database a chunk at a time.

Through the HTTP API with the real store (SQLite and PostgreSQL); ARI is a closed port, so the
calls stay queued. One bad line refuses the whole upload and leaves nothing stored.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from app.adapters.db.intake import IntakeStore
from app.main import STORE, create_app
from app.settings import Secret
from tests.store.conftest import database_url  # noqa: F401 - SQLite and PostgreSQL
from tests.support.database import stored_rows
from tests.support.settings import without_asterisk

KEY = "bulk-key-0123456789abcdef"
NDJSON = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/x-ndjson"}
SETTINGS = {"from": "me", "playlist": [{"say": "Hello {name}"}, {"pause": 1}]}


@pytest.fixture
async def client(aiohttp_client, tmp_path: Path,
                 database_url: str) -> TestClient:  # noqa: F811 - the imported fixture
    settings = without_asterisk(tmp_path, api_keys=Secret(f"acme:{KEY}"), tts_engines="flite",
                                database_url=database_url, max_bulk_recipients=20_000)
    return await aiohttp_client(create_app(settings))


def _upload(count: int, settings: dict | None = None) -> list[str]:
    return [json.dumps(settings or SETTINGS)] + [
        json.dumps({"to": f"sip:u{n}@192.0.2.10:5060", "variables": {"name": f"N{n}"}})
        for n in range(count)]


async def _post(client: TestClient, lines: list[str], **headers: str):
    body = io.BytesIO(("\n".join(lines) + "\n").encode())
    response = await client.post("/voice/call/play/bulk", data=body,
                                 headers={**NDJSON, **headers})
    return response.status, await response.json()


async def test_an_upload_of_many_chunks_is_one_broadcast_in_line_order(client):
    status, answer = await _post(client, _upload(12_001))  # three chunks of 5,000
    assert status == 200, answer
    assert answer["recipients"] == 12_001
    auth = {"Authorization": NDJSON["Authorization"]}
    progress = await (await client.get(f"/voice/call/status/{answer['request_id']}",
                                       headers=auth)).json()
    assert progress["report"]["progress"]["total"] == 12_001
    assert progress["report"]["progress"]["queued"] == 12_001
    records = await client.app[STORE].reports.records(answer["request_id"])
    assert [r.target for r in records] == [f"sip:u{n}@192.0.2.10:5060" for n in range(12_001)]
    assert [r.position for r in records] == list(range(12_001))
    assert len({r.id for r in records}) == 12_001


async def test_bad_lines_are_named_by_line_and_field_and_nothing_is_stored(client):
    lines = _upload(12_000)
    lines[3] = json.dumps({"to": "sip:bad target@192.0.2.10"})      # line 4
    lines[7_000] = json.dumps({"to": "sip:a@192.0.2.10:5060"})       # line 7001: no name
    lines[9_000] = "{not json"                                       # line 9001
    lines[11_000] = json.dumps({"to": "sip:a@192.0.2.10", "x": 1})   # line 11001
    status, answer = await _post(client, lines)
    assert status == 422 and answer["error"] == "invalid_upload", answer
    assert [d["field"] for d in answer["details"]] == [
        "line 4: to", "line 7001: variables", "line 9001", "line 11001: x"]
    assert "used by playlist[0].say" in answer["details"][1]["message"]
    assert answer["message"].startswith("line 4: to: must be a SIP URI")
    assert await stored_rows(client.app[STORE]) == (0, 0)


async def test_at_most_twenty_problems_are_listed(client):
    lines = _upload(100)
    for n in range(1, 60):
        lines[n] = "[]"
    status, answer = await _post(client, lines)
    assert status == 422 and len(answer["details"]) == 20
    assert answer["details"][0]["field"] == "line 2"


@pytest.mark.parametrize(("first", "field"), [
    ("", "line 1"),
    ("[1]", "line 1"),
    (json.dumps({"from": "me"}), "line 1: playlist"),
    (json.dumps({**SETTINGS, "from": "a b"}), "line 1: from"),
    (json.dumps({**SETTINGS, "playlist": [{"play": "ftp://x"}]}), "line 1: playlist[0].play"),
    (json.dumps({**SETTINGS, "recipients": []}), "line 1: recipients"),
])
async def test_a_bad_settings_line_is_refused_naming_line_one(client, first, field):
    status, answer = await _post(client, [first, *_upload(3)[1:]])
    assert status == 422 and answer["error"] == "invalid_upload", answer
    assert answer["details"][0]["field"] == field
    assert await stored_rows(client.app[STORE]) == (0, 0)


async def test_empty_uploads_and_uploads_without_recipients_are_refused(client):
    status, answer = await _post(client, [])
    assert status == 422 and answer["details"][0]["field"] == "line 1"
    status, answer = await _post(client, [json.dumps(SETTINGS)])
    assert status == 422 and "no recipients" in answer["message"]
    assert await stored_rows(client.app[STORE]) == (0, 0)


async def test_limits_type_idempotency_and_reachability(client):
    status, answer = await _post(client, _upload(20_001))
    assert status == 400 and answer["error"] == "too_many_recipients", answer
    assert "20000" in answer["message"]
    response = await client.post("/voice/call/play/bulk", data="\n".join(_upload(2)),
                                 headers={**NDJSON, "Content-Type": "text/csv"})
    assert response.status == 415
    status, answer = await _post(client, _upload(2), **{"Idempotency-Key": "k1"})
    assert status == 400 and answer["message"].startswith("Idempotency-Key:")
    lines = _upload(2)
    lines[2] = json.dumps({"to": "+15551234567", "variables": {"name": "x"}})
    status, answer = await _post(client, lines)
    assert status == 422 and answer["details"] == [
        {"field": "line 3: to",
         "message": "phone numbers need a SIP trunk, and none is configured"}]
    assert await stored_rows(client.app[STORE]) == (0, 0)


async def test_a_failure_mid_upload_leaves_nothing_stored(client, monkeypatch):
    real = IntakeStore.add_calls
    chunks = 0

    async def failing_on_the_third_chunk(self, *args, **kwargs):
        nonlocal chunks
        chunks += 1
        if chunks == 3:
            raise RuntimeError("planted: the database went away")
        await real(self, *args, **kwargs)

    monkeypatch.setattr(IntakeStore, "add_calls", failing_on_the_third_chunk)
    status, answer = await _post(client, _upload(12_000))
    assert status == 500 and answer["error"] == "internal_error"
    assert chunks == 3
    assert await stored_rows(client.app[STORE]) == (0, 0)


async def test_uploads_a_crash_left_behind_are_removed(client):
    from datetime import UTC, datetime, timedelta

    from app.domain.broadcasts import NewBroadcast, NewCall

    store = client.app[STORE]
    now = datetime.now(UTC).replace(microsecond=0)
    half = NewBroadcast(id="b-1", report_id="r-1", tenant="acme", caller="me",
                        playlist=[{"pause": 1}], created_at=now - timedelta(hours=2), calls=[])
    await store.intake.begin_upload(half)
    await store.intake.add_calls("b-1", now, 0, [NewCall(f"c-{n}", "sip:a@192.0.2.1")
                                                 for n in range(3)])
    assert await store.intake.discard_abandoned_uploads(now - timedelta(hours=3)) == 0
    assert await stored_rows(store) == (1, 3)
    assert await store.intake.discard_abandoned_uploads(now - timedelta(hours=1)) == 1
    assert await stored_rows(store) == (0, 0)
