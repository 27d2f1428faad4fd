"""Two nodes sharing one PostgreSQL database split a broadcast; nobody is dialled twice."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from pathlib import Path

import asyncpg
import pytest

from app.adapters.db.store import Store
from app.settings import Settings
from tests.e2e.conftest import MediaPlane
from tests.store.conftest import PG_DSN
from tests.support.service import running_service

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]


@pytest.fixture
async def postgres_url():
    name = f"voxcast_e2e_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(PG_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base = PG_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    yield f"{base}/{name}"
    admin = await asyncpg.connect(PG_DSN)
    try:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def two_nodes(media_plane: MediaPlane, tmp_path: Path, postgres_url: str,
              calls_per_second: float) -> tuple[Settings, Settings]:
    """Two services on one database and one Asterisk, each with its node id and Stasis app."""
    common = media_plane.settings.with_overrides(database_url=postgres_url,
                                                 calls_per_second=calls_per_second)
    return (common.with_overrides(runtime_dir=tmp_path / "a", node_id="node-a", ari_app="vox-a"),
            common.with_overrides(runtime_dir=tmp_path / "b", node_id="node-b", ari_app="vox-b"))


async def test_two_nodes_share_one_broadcast(media_plane: MediaPlane, tmp_path: Path,
                                             postgres_url: str) -> None:
    users = [f"node{i}" for i in range(60)]
    first, second = two_nodes(media_plane, tmp_path, postgres_url, calls_per_second=15)
    async with running_service(first) as node_a, running_service(second):
        status, accepted = await node_a.post("/voice/call/play", {
            "recipients": [{"to": media_plane.uri("answer", user=u)} for u in users],
            "from": "me", "playlist": [{"pause": 1}]})
        assert status == 200
        report = await node_a.wait_for_report(accepted["request_id"], limit=60)
    records = report["records"]
    assert len(records) == len(users) and all(r["playback"] == ["done"] for r in records)
    invites = media_plane.far_ends["answer"].invites_by_user()
    assert [invites[u] for u in users] == [1] * len(users)
    store = await Store.open(postgres_url)
    try:
        by_node = Counter(row.claimed_by
                          for row in await store.reports.records(accepted["request_id"]))
    finally:
        await store.close()
    assert set(by_node) == {"node-a", "node-b"}, by_node  # both nodes did part of the work
    print(f"two nodes on PostgreSQL: {dict(by_node)}")


async def test_cancel_through_one_node_stops_the_other(media_plane: MediaPlane, tmp_path: Path,
                                                       postgres_url: str) -> None:
    users = [f"xnode{i}" for i in range(60)]
    first, second = two_nodes(media_plane, tmp_path, postgres_url, calls_per_second=10)
    ring = media_plane.far_ends["ring"]
    async with running_service(first) as node_a, running_service(second):
        status, accepted = await node_a.post("/voice/call/play", {
            "recipients": [{"to": media_plane.uri("ring", user=u)} for u in users],
            "from": "me", "playlist": [{"pause": 1}]})
        assert status == 200
        await asyncio.sleep(1.5)
        async with node_a.http.delete(
                f"{node_a.base}/voice/call/{accepted['request_id']}") as response:
            assert response.status == 200
        report = await node_a.wait_for_report(accepted["request_id"], limit=10)
        dialled_at_end = sum(ring.invites_by_user()[u] for u in users)
        await asyncio.sleep(2.0)  # nothing more may be dialled by either node
        assert sum(ring.invites_by_user()[u] for u in users) == dialled_at_end
    records = report["records"]
    cancelled = [r for r in records if r["result"] == "cancelled"]
    hung_up = [r for r in records if r["result"] == "completed"]
    assert len(cancelled) + len(hung_up) == len(users) and cancelled
    assert all(r["disconnect_cause_code"] == "487" for r in hung_up)
    assert dialled_at_end == len(hung_up)
