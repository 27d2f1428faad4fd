"""The schema check: create missing tables; refuse a database whose tables lack columns we need."""

from __future__ import annotations

from sqlalchemy import Connection, inspect
from sqlalchemy.ext.asyncio import AsyncEngine

from app.adapters.db.tables import Base


class SchemaMismatch(RuntimeError):
    """The database's tables do not have the columns this version needs."""


def _missing_columns(connection: Connection) -> list[str]:
    inspector = inspect(connection)
    missing: list[str] = []
    for table in Base.metadata.sorted_tables:
        present = {column["name"] for column in inspector.get_columns(table.name)}
        missing.extend(f"{table.name}.{column.name}" for column in table.columns
                       if column.name not in present)
    return missing


async def check_schema(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
        missing = await connection.run_sync(_missing_columns)
    if missing:
        raise SchemaMismatch(
            "the database was made by an older Voxcast and lacks "
            f"{', '.join(missing[:8])}; nothing migrates it yet, so move it aside "
            "(or point VOXCAST_DATABASE_URL elsewhere)")
