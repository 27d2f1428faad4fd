"""`GET /report/{id}`: streamed, paged, filtered, as JSON, CSV or NDJSON; and its summary.

Through the HTTP API with the real store (SQLite and PostgreSQL); ARI is a closed port, so the
calls' final records are written the way call sessions write them (`save_final`).
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import ClientPayloadError
from aiohttp.test_utils import TestClient

from app.adapters.db.store import Store
from app.api.records import call_record, progress_object
from app.api.report_output import CSV_FIELDS
from app.domain.broadcasts import CallFinal
from app.main import STORE, create_app
from app.settings import Secret
from tests.store.conftest import database_url  # noqa: F401 - SQLite and PostgreSQL
from tests.support.settings import without_asterisk

KEY = "reports-key-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {KEY}"}
T0 = datetime(2026, 11, 26, 14, 10, 37, 250_000, tzinfo=UTC)
# (result, SIP code, seconds answered or None) per recipient, in order.
OUTCOMES = [("completed", 200, 3.4), ("completed", 486, None), ("failed", None, None),
            ("completed", 200, 7.6), ("completed", 404, None), ("cancelled", None, None),
            ("completed", 200, 0.4), ("completed", 486, None)]
RETRIED = 1  # the busy recipient at this position gets a second attempt, answered


def _final(result: str, code: int | None, seconds: float | None) -> CallFinal:
    if result == "cancelled":
        return CallFinal("cancelled", T0, None, None, None, "cancelled before it was dialled",
                         "none", None, None, None, [])
    if result == "failed":
        return CallFinal("failed", T0, None, None, None, "connection refused", "none", None,
                         None, None, [])
    connect = T0 + timedelta(seconds=1) if seconds is not None else None
    end = (connect + timedelta(seconds=seconds)) if connect and seconds is not None else T0
    text = {200: "OK", 486: "User Busy", 404: "Not Found"}[code or 0]
    return CallFinal("completed", end, T0, connect, code, text,
                     "answered" if seconds is not None else "tech_cause", 16, "Normal Clearing",
                     "service" if seconds is not None else None,
                     ["done"] if seconds is not None else [])


@pytest.fixture
async def client(aiohttp_client, tmp_path: Path,
                 database_url: str) -> TestClient:  # noqa: F811 - the imported fixture
    settings = without_asterisk(tmp_path, api_keys=Secret(f"acme:{KEY}"), tts_engines="flite",
                                database_url=database_url)
    return await aiohttp_client(create_app(settings))


async def _submit(client: TestClient, count: int) -> tuple[str, str]:
    body = {"recipients": [{"to": f"sip:u{n}@127.0.0.1:5070"} for n in range(count)],
            "from": "me", "playlist": [{"pause": 1}]}
    answer = await (await client.post("/voice/call/play", json=body, headers=AUTH)).json()
    status = await (await client.get(f"/voice/call/status/{answer['request_id']}",
                                     headers=AUTH)).json()
    return answer["request_id"], status["report"]["id"]


async def _finished_report(client: TestClient) -> tuple[str, str]:
    """A broadcast of OUTCOMES, every call ended; one busy recipient retried and answered."""
    request_id, report_id = await _submit(client, len(OUTCOMES))
    store: Store = client.app[STORE]
    calls = await store.reports.records(request_id)
    for call, outcome in zip(calls, OUTCOMES, strict=True):
        retry_at = T0 if call.position == RETRIED else None
        await store.calls.save_final(call.id, _final(*outcome), retry_at=retry_at)
    retried = [c for c in await store.reports.records(request_id) if c.attempt == 2]
    await store.calls.save_final(retried[0].id, _final("completed", 200, 2.0))
    return request_id, report_id


async def _old_body(client: TestClient, request_id: str, report_id: str) -> bytes:
    """The report exactly as it was built before streaming: one document in memory."""
    store: Store = client.app[STORE]
    records = [call_record(call) for call in await store.reports.records(request_id)]
    progress = await store.reports.progress(request_id)
    return json.dumps({"code": 0, "status": 200, "data": "accepted", "request_id": report_id,
                       "report_status": "ready", "progress": progress_object(progress),
                       "records": records, "report_request_id": request_id}).encode()


async def _get(client: TestClient, path: str, **headers: str):
    response = await client.get(path, headers={**AUTH, **headers})
    return response, await response.read()


async def test_the_streamed_report_is_byte_for_byte_the_document_it_was(client):
    request_id, report_id = await _finished_report(client)
    response, body = await _get(client, f"/report/{report_id}")
    assert response.status == 200
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert response.headers.get("Transfer-Encoding") == "chunked"
    assert body == await _old_body(client, request_id, report_id)
    records = json.loads(body)["records"]
    assert [(r["to"], r["attempt"]) for r in records][:3] == [
        ("sip:u0@127.0.0.1:5070", 1), ("sip:u1@127.0.0.1:5070", 1), ("sip:u1@127.0.0.1:5070", 2)]
    _, alias = await _get(client, f"/reports/{report_id}")
    assert alias == body


async def test_a_report_of_many_batches_streams_the_same_document(client):
    request_id, report_id = await _submit(client, 2500)  # three batches of the cursor
    store: Store = client.app[STORE]
    await store.queue.cancel(request_id, T0)
    response, body = await _get(client, f"/report/{report_id}")
    assert response.status == 200
    assert body == await _old_body(client, request_id, report_id)
    assert len(json.loads(body)["records"]) == 2500


async def test_pages_follow_next_links_to_the_end_and_add_up_to_the_report(client):
    _, report_id = await _finished_report(client)
    _, whole = await _get(client, f"/report/{report_id}")
    everything = json.loads(whole)["records"]
    seen, link, pages = [], f"/report/{report_id}?limit=4", 0
    while link is not None:
        response, body = await _get(client, link)
        page = json.loads(body)
        assert response.status == 200 and page["report_status"] == "ready"
        assert len(page["records"]) <= 4
        seen.extend(page["records"])
        link = page["next"]
        assert (response.headers.get("Link") is None) is (link is None)
        pages += 1
    assert seen == everything and pages == 3  # 9 records: 4, 4, 1
    response, body = await _get(client, f"/report/{report_id}?limit=9")
    assert json.loads(body)["next"] is None and "Link" not in response.headers


async def test_filters_select_by_result_answered_and_sip_code_and_pages_keep_them(client):
    _, report_id = await _finished_report(client)

    async def records(query: str) -> list[dict]:
        response, body = await _get(client, f"/report/{report_id}?{query}")
        assert response.status == 200, body
        return json.loads(body)["records"]

    answered = await records("answered=true")
    assert [r["disconnect_cause_code"] for r in answered] == ["200"] * 4
    assert all(r["answered"] for r in answered)
    assert {r["result"] for r in await records("result=failed,cancelled")} == {
        "failed", "cancelled"}
    assert len(await records("result=failed,cancelled")) == 2
    busy = await records("sip_code=486")
    assert [(r["to"], r["attempt"]) for r in busy] == [
        ("sip:u1@127.0.0.1:5070", 1), ("sip:u7@127.0.0.1:5070", 1)]
    assert len(await records("sip_code=none")) == 2
    assert len(await records("sip_code=404,none&answered=false")) == 3
    assert await records("result=pending") == []
    # A page of a filtered view links to the next page of the same view.
    _, body = await _get(client, f"/report/{report_id}?answered=false&limit=2")
    first = json.loads(body)
    assert "answered=false" in first["next"] and "limit=2" in first["next"]
    _, body = await _get(client, first["next"])
    assert [r["answered"] for r in json.loads(body)["records"]] == [False, False]


@pytest.mark.parametrize("how", ["query", "accept"])
async def test_csv_and_ndjson_exports_hold_the_same_records_as_json(client, how):
    _, report_id = await _finished_report(client)
    _, whole = await _get(client, f"/report/{report_id}")
    expected = json.loads(whole)["records"]

    async def export(kind: str, media_type: str) -> tuple[str, str]:
        if how == "query":
            response, body = await _get(client, f"/report/{report_id}?format={kind}")
        else:
            response, body = await _get(client, f"/report/{report_id}",
                                        Accept=f"text/html;q=0.9, {media_type}")
        assert response.status == 200
        assert response.headers["Content-Type"].startswith(media_type)
        return body.decode(), response.headers["Content-Disposition"]

    ndjson, disposition = await export("ndjson", "application/x-ndjson")
    assert [json.loads(line) for line in ndjson.splitlines()] == expected
    assert disposition == f'attachment; filename="report-{report_id}.ndjson"'
    text, _ = await export("csv", "text/csv")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert tuple(rows[0]) == CSV_FIELDS
    assert len(rows) == len(expected)
    for row, record in zip(rows, expected, strict=True):
        assert row["id"] == record["id"] and row["to"] == record["to"]
        assert row["answered"] == ("true" if record["answered"] else "false")
        assert row["disconnect_cause_code"] == (record["disconnect_cause_code"] or "")
        assert row["duration"] == str(record["duration"])
        assert json.loads(row["playback"]) == record["playback"]
        assert row["connect_time"] == (record.get("connect_time") or "")


async def test_exports_of_a_page_carry_the_next_link_in_a_header(client):
    _, report_id = await _finished_report(client)
    response, body = await _get(client, f"/report/{report_id}?format=ndjson&limit=5")
    assert len(body.decode().splitlines()) == 5
    link = response.headers["Link"]
    assert link.startswith(f"</report/{report_id}?") and link.endswith('>; rel="next"')
    _, rest = await _get(client, link[1:link.index(">")])
    assert len(rest.decode().splitlines()) == 4


async def test_the_summary_counts_what_the_records_say(client):
    _, report_id = await _finished_report(client)
    _, whole = await _get(client, f"/report/{report_id}")
    records = json.loads(whole)["records"]
    response, body = await _get(client, f"/report/{report_id}/summary")
    answer = json.loads(body)
    assert response.status == 200 and answer["report_status"] == "ready"
    summary = answer["summary"]
    assert summary["records"] == len(records) == 9
    assert summary["by_result"] == {"cancelled": 1, "completed": 7, "failed": 1}
    assert summary["by_sip_code"] == {"200": 4, "404": 1, "486": 2, "none": 2}
    answered = [r for r in records if r["answered"]]
    assert summary["answered"] == len(answered) == 4
    assert summary["answer_rate"] == round(4 / 9, 4)
    # Durations 3.4 -> 3, 7.6 -> 8, 0.4 -> 0, 2.0 -> 2: the records' own rounding.
    assert [r["duration"] for r in answered] == [3, 2, 8, 0]
    assert summary["mean_duration"] == round(13 / 4, 2)
    _, body = await _get(client, f"/report/{report_id}/summary?sip_code=486")
    busy = json.loads(body)["summary"]
    assert busy["records"] == 2 and busy["answered"] == 0
    assert busy["answer_rate"] == 0.0 and busy["mean_duration"] is None


async def test_a_pending_report_keeps_its_founding_answer_and_refuses_exports(client):
    _, report_id = await _submit(client, 3)
    _, body = await _get(client, f"/report/{report_id}")
    answer = json.loads(body)
    assert answer["report_status"] == "pending" and answer["records"] == []
    assert "next" not in answer
    _, body = await _get(client, f"/report/{report_id}?limit=2")
    assert json.loads(body)["next"] is None
    response, body = await _get(client, f"/report/{report_id}?format=csv")
    assert response.status == 409 and json.loads(body)["error"] == "report_pending"
    _, body = await _get(client, f"/report/{report_id}/summary")
    summary = json.loads(body)["summary"]
    assert summary["by_result"] == {"pending": 3} and summary["answer_rate"] is None


@pytest.mark.parametrize(("query", "field"), [
    ("limit=0", "limit"), ("limit=10001", "limit"), ("limit=ten", "limit"), ("limit=", "limit"),
    ("after=abc", "after"), ("after=1", "after"), ("result=done", "result"),
    ("result=failed,", "result"), ("answered=yes", "answered"), ("sip_code=99", "sip_code"),
    ("sip_code=700", "sip_code"), ("format=xml", "format"), ("colour=red", "colour"),
    ("limit=2&limit=3", "limit"),
])
async def test_bad_parameters_are_a_400_naming_them(client, query, field):
    _, report_id = await _finished_report(client)
    # limit, after and format are not the summary's parameters: refused there all the same.
    for path in (f"/report/{report_id}", f"/report/{report_id}/summary"):
        response, body = await _get(client, f"{path}?{query}")
        answer = json.loads(body)
        assert response.status == 400, (path, query)
        assert answer["error"] == "invalid_request" and answer["code"] == 1001
        assert answer["details"][0]["field"] == field
        assert answer["message"].startswith(f"{field}: ")


async def test_a_bad_parameter_is_refused_before_the_report_is_looked_up(client):
    response, body = await _get(client, "/report/00000000-0000-0000-0000-000000000000?limit=0")
    assert response.status == 400 and json.loads(body)["details"][0]["field"] == "limit"


async def test_a_failure_after_the_answer_began_cuts_the_body_short(client, monkeypatch):
    request_id, report_id = await _submit(client, 2500)
    await client.app[STORE].queue.cancel(request_id, T0)
    from app.api import report_output

    real = report_output.call_record
    shaped = 0

    def failing_after_a_while(call):
        nonlocal shaped
        shaped += 1
        if shaped > 1500:  # the second batch: the status line and 1,000 records are out
            raise RuntimeError("planted: the database went away")
        return real(call)

    monkeypatch.setattr(report_output, "call_record", failing_after_a_while)
    response = await client.get(f"/report/{report_id}", headers=AUTH)
    assert response.status == 200
    with pytest.raises(ClientPayloadError):
        await response.read()
