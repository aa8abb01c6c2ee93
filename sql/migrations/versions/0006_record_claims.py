"""record_claims: which process is working on a record (the SQLite claim; PostgreSQL uses
advisory locks)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 19:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "record_claims",
        sa.Column("agency_code", sa.String(length=32), nullable=False),
        sa.Column("record_id", sa.String(length=128), nullable=False),
        sa.Column("holder", sa.String(length=255), nullable=False),
        sa.Column("claimed_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("agency_code", "record_id"),
    )


def downgrade() -> None:
    op.drop_table("record_claims")
