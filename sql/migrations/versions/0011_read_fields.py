"""records.read_fields: the manifest fields read off the first page by the watcher's draft and
left as read, as opposed to typed by a person (issue 19)

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30 19:30:00

Records archived before were all typed: NULL, as for any typed manifest.
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # add_column needs no table rebuild on either dialect, so the views that read records stay
    op.add_column("records", sa.Column("read_fields", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("records", "read_fields")
