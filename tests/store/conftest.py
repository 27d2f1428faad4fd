import os
import uuid

import asyncpg
import pytest

from app.adapters.db.store import ReportStore

PG_DSN = os.environ.get("VOXCAST_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request, tmp_path):
    if request.param == "sqlite":
        opened = await ReportStore.open(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}")
        yield opened
        await opened.close()
        return
    name = f"voxcast_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(PG_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base = PG_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    opened = await ReportStore.open(f"{base}/{name}")
    yield opened
    await opened.close()
    admin = await asyncpg.connect(PG_DSN)
    try:
        await admin.execute(f'DROP DATABASE "{name}"')
    finally:
        await admin.close()
