"""validation_runs (the batch's great-expectations result and Data Docs), records.warnings,
pages.phash

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 17:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "validation_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("batch_pk", sa.Integer(), nullable=False),
        sa.Column("success", sa.Boolean(), nullable=False),
        sa.Column("evaluated", sa.Integer(), nullable=False),
        sa.Column("unsuccessful", sa.Integer(), nullable=False),
        sa.Column("result_json", sa.Text(), nullable=False),
        sa.Column("docs_url", sa.Text(), nullable=True),
        sa.Column("validated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["batch_pk"], ["batches.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("batch_pk", name="uq_validation_runs_batch"),
    )
    with op.batch_alter_table("records") as batch:
        batch.add_column(sa.Column("warnings", sa.Text(), nullable=True))
    with op.batch_alter_table("pages") as batch:
        batch.add_column(sa.Column("phash", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("pages") as batch:
        batch.drop_column("phash")
    with op.batch_alter_table("records") as batch:
        batch.drop_column("warnings")
    op.drop_table("validation_runs")
