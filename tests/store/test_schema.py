"""Migrations: a new database is made by them; one made by 0.1.0 is upgraded with all intact."""

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

from app.adapters.db.schema import MIGRATIONS_DIR, SchemaError, current_state
from app.adapters.db.store import Store
from app.adapters.db.tables import Base
from app.api.records import call_record, progress_object
from tests.store.conftest import new_postgres_database

FIXTURES = Path(__file__).parent / "fixtures" / "voxcast-0.1.0"
REPOSITORY = Path(__file__).resolve().parents[2]


def _differences(connection) -> list:
    return compare_metadata(MigrationContext.configure(connection), Base.metadata)


async def _schema_differences(store: Store) -> list:
    async with store.engines.writer.connect() as connection:
        return await connection.run_sync(_differences)


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_0_1_0(request, tmp_path):
    """(kind, URL) of a database loaded from the SQL a Voxcast 0.1.0 database dumped."""
    dump = (FIXTURES / f"{request.param}.sql").read_text(encoding="utf-8")
    if request.param == "sqlite":
        path = tmp_path / "voxcast-0.1.0.db"
        with sqlite3.connect(path) as connection:
            connection.executescript(dump)
        connection.close()
        yield request.param, f"sqlite+aiosqlite:///{path}"
        return
    async with new_postgres_database() as (dsn, url):
        connection = await asyncpg.connect(dsn)
        try:
            await connection.execute(dump)
        finally:
            await connection.close()
        yield request.param, url


async def test_a_new_database_is_made_by_the_migrations_exactly_as_the_tables_say(store):
    assert await _schema_differences(store) == []
    state = await current_state(store.engines.writer)
    assert state.up_to_date and state.current == state.head


# Record fields added since 0.1.0: empty for the calls it made.
ADDED_SINCE_0_1_0 = ("media_server", "trunk", "failed_over_from")


def _as_0_1_0(record: dict) -> dict:
    for name in ADDED_SINCE_0_1_0:
        assert record.pop(name) is None, (name, record)
    return record


async def test_a_0_1_0_database_is_upgraded_with_every_request_and_record_intact(
        database_0_1_0):
    kind, url = database_0_1_0
    expected = json.loads((FIXTURES / f"{kind}.expected.json").read_text(encoding="utf-8"))
    store = await Store.open(url)
    try:
        assert (await current_state(store.engines.writer)).up_to_date
        assert await _schema_differences(store) == []
        for request in expected["broadcasts"]:
            summary = await store.reports.broadcast(request["id"], request["tenant"])
            assert summary is not None and summary.report_id == request["report_id"]
            by_report = await store.reports.broadcast_by_report(request["report_id"],
                                                                request["tenant"])
            assert by_report == summary
            progress = await store.reports.progress(summary.id)
            assert progress_object(progress) == request["progress"]
            records = await store.reports.records(summary.id)
            assert [_as_0_1_0(call_record(record)) for record in records] == request["records"]
            for record in request["records"]:
                one = await store.reports.call(record["id"], request["tenant"])
                assert one is not None and _as_0_1_0(call_record(one)) == record
        in_flight = await store.queue.in_flight_calls("node-1")
        assert sorted(item.call.call_id for item in in_flight) == sorted(
            call_id for request in expected["broadcasts"]
            for call_id in request["in_flight_node_1"])

        idempotency = expected["idempotency"]
        replay = await store.intake.idempotent_replay(
            idempotency["tenant"], idempotency["key"], idempotency["body_hash"])
        assert replay is not None and replay.id == idempotency["broadcast_id"]
        upload = expected["upload"]
        assert await store.uploads.has_upload(upload["tenant"], upload["content_hash"])
        assert await store.keys.tenant_for(expected["api_key"]["key"]) == "acme"
        revoked = {info.id: info.revoked_at for info in await store.keys.list()}
        assert revoked[expected["api_key"]["id"]] is None
        assert revoked[expected["revoked_key_id"]] is not None

        # The queue goes on where 0.1.0 left it: the queued call and the queued retry.
        queued = {record["id"] for request in expected["broadcasts"]
                  for record in request["records"] if record["state"] == "queued"}
        assert len(queued) == 2
        assert {call.call_id for call in await store.queue.claim_calls("node-3", 10)} == queued
    finally:
        await store.close()


async def test_nodes_starting_together_on_an_empty_database_both_start(database_url):
    stores = await asyncio.gather(*(Store.open(database_url) for _ in range(3)))
    try:
        assert await _schema_differences(stores[0]) == []
    finally:
        await asyncio.gather(*(store.close() for store in stores))


async def test_tables_that_are_not_a_voxcast_release_are_refused_clearly(tmp_path):
    path = tmp_path / "odd.db"
    with sqlite3.connect(path) as odd:
        odd.execute("CREATE TABLE calls (id VARCHAR(36) PRIMARY KEY)")
    odd.close()
    with pytest.raises(SchemaError, match=r"not the schema of any Voxcast release.*calls\."
                                          r"broadcast_id"):
        await Store.open(f"sqlite+aiosqlite:///{path}")


async def _stamp_a_future_revision(url: str) -> None:
    store = await Store.open(url)
    try:
        async with store.engines.writer.begin() as connection:
            await connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    finally:
        await store.close()


async def test_a_database_newer_than_the_code_is_refused_clearly(database_url):
    await _stamp_a_future_revision(database_url)
    with pytest.raises(SchemaError, match="revision 9999, made by a newer Voxcast"):
        await Store.open(database_url)


def _run_app(runtime: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith("VOXCAST_")}
    environment["VOXCAST_RUNTIME_DIR"] = str(runtime)
    return subprocess.run([sys.executable, "-m", "app", *arguments], cwd=REPOSITORY,
                          env=environment, capture_output=True, text=True, timeout=60,
                          check=False)


def _head() -> str:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


def test_operators_see_and_upgrade_the_schema_from_the_command_line(tmp_path):
    head = _head()
    before = _run_app(tmp_path, "db", "current")
    assert before.returncode == 0, before.stderr
    assert before.stdout.startswith(f"database empty; this version's newest revision is {head}")
    assert "python -m app db upgrade" in before.stdout
    upgraded = _run_app(tmp_path, "db", "upgrade")
    assert (upgraded.returncode, upgraded.stdout) == (0, "database was empty; now at "
                                                         f"revision {head}\n")
    after = _run_app(tmp_path, "db", "current")
    assert after.stdout == f"database at revision {head}; this version's newest revision is " \
        f"{head}\n"


async def test_the_service_refuses_to_start_on_a_newer_database(tmp_path):
    await _stamp_a_future_revision(f"sqlite+aiosqlite:///{tmp_path / 'voxcast.db'}")
    for command in (("serve",), ("db", "current"), ("db", "upgrade")):
        refused = await asyncio.to_thread(_run_app, tmp_path, *command)
        assert refused.returncode == 2, (command, refused.stdout, refused.stderr)
        assert "revision 9999, made by a newer Voxcast" in refused.stderr, refused.stderr
