"""Baseline: the schema of Voxcast 0.1.0.

Revision ID: 0001
Revises: none
"""

from alembic import op

from app.adapters.db.migrations.schema_0_1_0 import SCHEMA_0_1_0

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    SCHEMA_0_1_0.create_all(op.get_bind())


def downgrade() -> None:
    SCHEMA_0_1_0.drop_all(op.get_bind())
