"""ký số: each record's and each archived version's signature state (unsigned is NULL), and
the index the report counts signed records by

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 13:00:00

Records archived before this revision are unsigned: ``digitize sign`` signs them, each signed
file a new version of the record beside the unsigned one.
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # add_column needs no table rebuild on either dialect, so the views that read records stay
    op.add_column("records", sa.Column("signature_level", sa.String(length=8), nullable=True))
    op.add_column("records", sa.Column("signed_by", sa.String(length=255), nullable=True))
    op.add_column("records", sa.Column("signed_at", sa.DateTime(), nullable=True))
    op.create_index("ix_records_signed", "records", ["status", "signed_at", "agency_code", "issued_on",
                                                    "updated_at"])
    # which archived versions carry a signature: the fixity audit verifies those
    op.add_column("record_versions",
                  sa.Column("signature_level", sa.String(length=8), nullable=True))


def downgrade() -> None:
    op.drop_column("record_versions", "signature_level")
    op.drop_index("ix_records_signed", table_name="records")
    for column in ("signed_at", "signed_by", "signature_level"):
        op.drop_column("records", column)
