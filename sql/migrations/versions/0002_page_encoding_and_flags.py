"""pages.encoding and pages.flags: how each page is stored, and its quality flags

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 15:05:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("pages") as batch:
        batch.add_column(sa.Column("encoding", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("flags", sa.String(length=128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("pages") as batch:
        batch.drop_column("flags")
        batch.drop_column("encoding")
