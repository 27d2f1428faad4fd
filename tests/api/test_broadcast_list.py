"""`GET /voice/calls`: finding a tenant's broadcasts, with progress, filters and cursor pages.

No Asterisk: calls stay queued; running and ended calls are made by writing their state as the
dialer would, so each status is seen on demand.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import update

from app.adapters.db.tables import BroadcastRow, CallRow
from app.main import STORE, create_app
from tests.support.tenants import ACME, GLOBEX, bearer, two_tenants

THREE = {"recipients": [{"to": f"sip:{name}@127.0.0.1:5070"} for name in ("a", "b", "c")],
         "from": "me", "playlist": [{"pause": 1}]}
FIRST = datetime(2026, 3, 1, tzinfo=UTC)
MINUTES = itertools.count()


@pytest.fixture
async def client(aiohttp_client, tmp_path: Path) -> TestClient:
    settings = two_tenants(tmp_path)
    return await aiohttp_client(create_app(settings))


async def submit(client: TestClient, key: str = ACME) -> str:
    """A broadcast, created a minute after the previous one (the service keeps whole seconds,
    and several made within one second are listed in id order)."""
    response = await client.post("/voice/call/play", json=THREE, headers=bearer(key))
    assert response.status == 200, await response.text()
    request_id = str((await response.json())["request_id"])
    await set_created(client, request_id, FIRST + timedelta(minutes=next(MINUTES)))
    return request_id


async def get(client: TestClient, path: str, key: str = ACME, status: int = 200) -> dict:
    response = await client.get(path, headers=bearer(key))
    answer = await response.json()
    assert response.status == status, answer
    return answer


async def set_calls(client: TestClient, request_id: str, positions: list[int],
                    **values: object) -> None:
    """Write call rows as the dialer would (state, connect time)."""
    engine = client.server.app[STORE].engines.writer
    async with engine.begin() as connection:
        await connection.execute(update(CallRow).where(
            CallRow.broadcast_id == request_id, CallRow.position.in_(positions)).values(**values))


async def set_created(client: TestClient, request_id: str, at: datetime) -> None:
    engine = client.server.app[STORE].engines.writer
    async with engine.begin() as connection:
        await connection.execute(update(BroadcastRow).where(BroadcastRow.id == request_id)
                                 .values(created_at=at))


async def test_lists_broadcasts_newest_first_with_progress_and_a_usable_report_location(client):
    first, second = await submit(client), await submit(client)
    now = datetime.now(UTC)
    await set_calls(client, second, [0], state="answered", connect_time=now)
    await set_calls(client, second, [1], state="ended", result="completed", connect_time=now,
                    disconnect_time=now)
    listed = (await get(client, "/voice/calls"))["broadcasts"]
    assert [item["request_id"] for item in listed] == [second, first]
    newest = listed[0]
    assert newest["progress"] == {"total": 3, "queued": 1, "in_progress": 1, "completed": 1}
    assert newest["answered"] == 2 and newest["status"] == "running"
    assert newest["from"] == "me" and newest["cancelled"] is False
    assert listed[1]["status"] == "queued" and listed[1]["answered"] == 0
    # The location is a path this service answers, and the report names its request.
    report = await get(client, newest["report"]["location"])
    assert report["request_id"] == newest["report"]["id"]
    assert report["report_request_id"] == second
    status = await get(client, f"/voice/call/status/{second}")
    assert status["report"]["location"] == newest["report"]["location"] == \
        f"/report/{newest['report']['id']}"


async def test_cursor_pages_visit_every_broadcast_once_and_keep_the_filters(client):
    made = [await submit(client) for _ in range(5)]
    for request_id in made[:2]:  # two running, so the filtered pages differ from the rest
        await set_calls(client, request_id, [0], state="dialing")
    seen: list[str] = []
    path: str | None = "/voice/calls?limit=2"
    pages = 0
    while path is not None and pages < 10:
        page = await get(client, path)
        seen += [item["request_id"] for item in page["broadcasts"]]
        path, pages = page["next"], pages + 1
    assert seen == list(reversed(made)) and pages == 3
    running = await get(client, "/voice/calls?status=running&limit=1")
    assert running["next"] is not None and "status=running" in running["next"]
    following = await get(client, running["next"])
    assert [running["broadcasts"][0]["request_id"],
            following["broadcasts"][0]["request_id"]] == [made[1], made[0]]
    assert following["next"] is None


async def test_status_and_time_filters(client):
    queued, running, ready = await submit(client), await submit(client), await submit(client)
    await set_calls(client, running, [2], state="ringing")
    cancelled = await client.delete(f"/voice/call/{ready}", headers=bearer(ACME))
    assert cancelled.status == 200
    for status, expected in (("queued", [queued]), ("running", [running]), ("ready", [ready])):
        listed = (await get(client, f"/voice/calls?status={status}"))["broadcasts"]
        assert [item["request_id"] for item in listed] == expected, status
        assert all(item["status"] == status for item in listed)
    assert (await get(client, "/voice/calls?status=ready"))["broadcasts"][0]["cancelled"]
    await set_created(client, queued, datetime(2026, 1, 1, 10, 0, tzinfo=UTC))
    await set_created(client, running, datetime(2026, 1, 2, 10, 0, tzinfo=UTC))
    await set_created(client, ready, datetime(2026, 1, 3, 10, 0, tzinfo=UTC))
    window = ("/voice/calls?created_after=2026-01-01T12:00:00%2B02:00"
              "&created_before=2026-01-03T09:59:59Z")
    listed = (await get(client, window))["broadcasts"]
    assert [item["request_id"] for item in listed] == [running]
    assert listed[0]["created_time"] == "2026-01-02 10:00:00"
    # 12:00+02:00 is 10:00 UTC: `after` is exclusive, so the first is left out at 10:00:00Z.
    exact = (await get(client, "/voice/calls?created_after=2026-01-01T12:00:00%2B02:00"))
    assert queued not in [item["request_id"] for item in exact["broadcasts"]]


async def test_tenants_see_only_their_own_broadcasts(client):
    mine = await submit(client, ACME)
    theirs = await submit(client, GLOBEX)
    assert [b["request_id"] for b in (await get(client, "/voice/calls"))["broadcasts"]] == [mine]
    assert [b["request_id"] for b in (await get(client, "/voice/calls", GLOBEX))["broadcasts"]] \
        == [theirs]
    # Another tenant's id as a cursor is as unknown as an id nobody has.
    foreign = await get(client, f"/voice/calls?after={mine}", GLOBEX, status=404)
    unknown = await get(client, "/voice/calls?after=00000000-0000-4000-8000-000000000000",
                        GLOBEX, status=404)
    assert foreign["message"] == unknown["message"] == "after: no request with that id"
    assert (await client.get("/voice/calls")).status == 401


@pytest.mark.parametrize(("query", "field"), [
    ("limit=0", "limit"), ("limit=101", "limit"), ("limit=1.5", "limit"), ("limit=%C2%B2", "limit"),
    ("status=done", "status"), ("created_after=yesterday", "created_after"),
    ("created_before=2026-01-01", "created_before"),
    ("created_after=2026-02-30T00:00:00Z", "created_after"),
    ("created_after=1700000000", "created_after"), ("after=12345", "after"),
])
async def test_malformed_parameters_are_a_400_naming_the_parameter(client, query, field):
    answer = await get(client, f"/voice/calls?{query}", status=400)
    assert answer["error"] == "invalid_request"
    assert answer["details"] == [{"field": field, "message": answer["message"].split(": ", 1)[1]}]


async def test_a_leap_second_and_far_offsets_are_accepted(client):
    await submit(client)
    for value in ("2016-12-31T23:59:60Z", "0001-01-01T00:00:00%2B01:00",
                  "9999-12-31T23:59:59-01:00", "2026-01-01t00:00:00.123456789z"):
        await get(client, f"/voice/calls?created_after={value}")
