"""reference data: procedure catalogue columns, agency parent, inventory (kiểm đếm)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 17:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("procedures") as batch:
        batch.add_column(sa.Column("levels", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("field", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("implementing_agency", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("valid_from", sa.Date(), nullable=True))
        batch.add_column(sa.Column("valid_to", sa.Date(), nullable=True))
    with op.batch_alter_table("agencies") as batch:
        batch.add_column(sa.Column("parent_code", sa.String(length=32), nullable=True))
    op.create_table("inventory",
    sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
    sa.Column("agency_code", sa.String(length=32), nullable=False),
    sa.Column("issue_year", sa.Integer(), nullable=False),
    sa.Column("procedure_code", sa.String(length=32), nullable=False),
    sa.Column("still_valid_count", sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(["agency_code"], ["agencies.code"], ),
    sa.ForeignKeyConstraint(["procedure_code"], ["procedures.code"], ),
    sa.PrimaryKeyConstraint("id"),
    sa.UniqueConstraint("agency_code", "issue_year", "procedure_code", name="uq_inventory_key")
    )


def downgrade() -> None:
    op.drop_table("inventory")
    with op.batch_alter_table("agencies") as batch:
        batch.drop_column("parent_code")
    with op.batch_alter_table("procedures") as batch:
        batch.drop_column("valid_to")
        batch.drop_column("valid_from")
        batch.drop_column("implementing_agency")
        batch.drop_column("field")
        batch.drop_column("levels")
