"""progress views (sql/views/*.sql) and the index the quarterly report reads records by

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 18:00:00

The views' SQL lives in ``sql/views/`` (``<view>.<dialect>.sql`` where SQLite and PostgreSQL
differ); ``pipeline.store.warehouse.create_views`` runs it. A view changed later gets a new migration
that drops and creates the views again. On SQLite, a later migration that alters ``records``,
``events`` or ``inventory`` with ``batch_alter_table`` must drop the views first (SQLite cannot
rebuild a table that a view reads) and create them after.
"""

from alembic import op

from pipeline.store import warehouse

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


# PostgreSQL cannot guess how many (agency, issue year) groups the report has, guesses 100,000,
# and sorts 1,000,000 records on disk instead of hashing ~10,000 groups in memory (0.7 s instead
# of 0.2 s). The expression is the one of sql/views/progress_records.postgresql.sql.
AGENCY_YEAR_STATISTICS = (
    "CREATE STATISTICS IF NOT EXISTS st_records_agency_issue_year (ndistinct) "
    "ON agency_code, (CAST(EXTRACT(YEAR FROM issued_on) AS INTEGER)) FROM records")


def upgrade() -> None:
    op.create_index("ix_records_progress", "records",
                    ["status", "updated_at", "agency_code", "issued_on", "page_count"])
    warehouse.create_views(op.get_bind())
    if op.get_bind().dialect.name == "postgresql":
        op.execute(AGENCY_YEAR_STATISTICS)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP STATISTICS IF EXISTS st_records_agency_issue_year")
    warehouse.drop_views(op.get_bind())
    op.drop_index("ix_records_progress", table_name="records")
