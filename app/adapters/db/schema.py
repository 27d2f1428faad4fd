"""The schema check: the database is brought to the newest migration before it is used.

A new database is created by the migrations. One made by Voxcast 0.1.0 (its tables, but no
`alembic_version`) is recognised as the baseline, stamped, and upgraded. A database newer than
this code, or holding tables of ours that are not 0.1.0's, is refused with a clear error.
Nodes starting together take a lock first (PostgreSQL: an advisory lock; SQLite: its write
lock), so one migrates and the others find the work done.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import BigInteger, Connection, MetaData, func, inspect, literal, select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.adapters.db.migrations.schema_0_1_0 import SCHEMA_0_1_0
from app.adapters.db.tables import Base

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
BASELINE = "0001"  # the schema of Voxcast 0.1.0
SCHEMA_LOCK = 0x766F7863617374  # "voxcast": the advisory lock held while migrating
UPGRADE_COMMAND = "python -m app db upgrade"


class SchemaError(RuntimeError):
    """This version of Voxcast cannot use the database's schema."""


@dataclass(frozen=True, slots=True)
class SchemaState:
    current: str | None  # None: empty, or made by 0.1.0 (see `unversioned`)
    head: str  # the newest revision this code knows
    unversioned: bool = False  # Voxcast 0.1.0 tables without alembic_version

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head

    def describe(self) -> str:
        if self.unversioned:
            return "made by Voxcast 0.1.0, not yet versioned"
        return "empty" if self.current is None else f"at revision {self.current}"


def _config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def _lock(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(select(func.pg_advisory_xact_lock(literal(SCHEMA_LOCK, BigInteger))))
    elif connection.dialect.name == "sqlite":
        # The write lock now, not at the first write: a second node waits here, then sees
        # the finished schema instead of racing to create the same tables.
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _state(connection: Connection) -> SchemaState:
    head = ScriptDirectory.from_config(_config(connection)).get_current_head()
    assert head is not None  # noqa: S101 - the baseline always exists
    current = MigrationContext.configure(connection).get_current_revision()
    unversioned = current is None and bool(
        set(inspect(connection).get_table_names()) & set(SCHEMA_0_1_0.tables))
    return SchemaState(current, head, unversioned)


def _refuse_unknown(connection: Connection, state: SchemaState) -> None:
    if state.current is None:
        return
    try:
        ScriptDirectory.from_config(_config(connection)).get_revision(state.current)
    except CommandError as error:
        raise SchemaError(
            f"the database is at revision {state.current}, made by a newer Voxcast than this "
            f"one (which knows up to {state.head}): run the newer version, or restore a "
            "backup made before it upgraded") from error


def _missing(connection: Connection, schema: MetaData) -> list[str]:
    """The tables and columns of `schema` the database does not have."""
    inspector = inspect(connection)
    present = set(inspector.get_table_names())
    missing: list[str] = []
    for table in schema.sorted_tables:
        if table.name not in present:
            missing.append(table.name)
            continue
        columns = {column["name"] for column in inspector.get_columns(table.name)}
        missing.extend(f"{table.name}.{column.name}" for column in table.columns
                       if column.name not in columns)
    return missing


def _check_0_1_0(connection: Connection) -> None:
    """Tables of ours without a version must be exactly what 0.1.0 made, or we stop."""
    missing = _missing(connection, SCHEMA_0_1_0)
    if missing:
        raise SchemaError(
            "the database has Voxcast tables but not the schema of any Voxcast release (it "
            f"lacks {', '.join(missing[:8])}); move it aside or point VOXCAST_DATABASE_URL "
            "elsewhere")


def _check_head(connection: Connection, state: SchemaState) -> None:
    """At the newest revision, every table and column this code uses must be there: one
    changed by hand would otherwise fail request by request."""
    missing = _missing(connection, Base.metadata)
    if missing:
        raise SchemaError(
            f"the database is at revision {state.head} but lacks {', '.join(missing[:8])} "
            "(changed by hand?); restore a backup, or move it aside")


def schema_state(connection: Connection) -> SchemaState:
    """Where the database stands, changing nothing."""
    state = _state(connection)
    _refuse_unknown(connection, state)
    return state


def upgrade_to_head(connection: Connection) -> SchemaState:
    """Bring the schema to the newest revision (in the caller's transaction); return where
    it stood before."""
    _lock(connection)
    before = schema_state(connection)
    if before.up_to_date:
        _check_head(connection, before)
        return before
    config = _config(connection)
    if before.unversioned:
        _check_0_1_0(connection)
        command.stamp(config, BASELINE)
    command.upgrade(config, "head")
    _check_head(connection, before)
    if before.unversioned:
        log.info("database made by Voxcast 0.1.0: stamped as revision %s, upgraded to %s",
                 BASELINE, before.head)
    elif before.current is None:
        log.info("database schema created at revision %s", before.head)
    else:
        log.info("database schema upgraded from revision %s to %s", before.current,
                 before.head)
    return before


async def bring_to_head(engine: AsyncEngine) -> SchemaState:
    async with engine.begin() as connection:
        return await connection.run_sync(upgrade_to_head)


async def current_state(engine: AsyncEngine) -> SchemaState:
    async with engine.connect() as connection:
        return await connection.run_sync(schema_state)
