"""Alembic's entry point: migrate over the connection `schema.py` hands in, in its transaction."""

from alembic import context

from app.adapters.db.tables import Base

context.configure(connection=context.config.attributes["connection"],
                  target_metadata=Base.metadata)
with context.begin_transaction():
    context.run_migrations()
