"""Calls through SIP trunks: the trunk a recipient named, the one that carried it, and the
trunks it failed over from.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("calls") as calls:
        calls.add_column(sa.Column("requested_trunk", sa.String(40), nullable=True))
        calls.add_column(sa.Column("trunk", sa.String(40), nullable=True))
        calls.add_column(sa.Column("failed_over_from", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("calls") as calls:
        calls.drop_column("failed_over_from")
        calls.drop_column("trunk")
        calls.drop_column("requested_trunk")
