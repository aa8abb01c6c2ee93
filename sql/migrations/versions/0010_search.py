"""search and the holder's store: each record's holder id as digits, the search index (FTS5 on
SQLite; unaccent, pg_trgm, the configuration digitize_vi and GIN indexes on PostgreSQL), the
access log and the read API's tokens

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 14:00:00

The index is built here for every record archived before (``pipeline.store.search_index.build``),
and each holder id already loaded gets its key (``pipeline.access.holders.holder_key``).
"""

import sqlalchemy as sa
from alembic import op

from pipeline.access.holders import holder_key
from pipeline.store import search_index as index

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

# holder ids read and their keys written at a time
CHUNK = 5000


def _fill_holder_keys(conn: sa.Connection) -> None:
    records = sa.table("records", sa.column("id", sa.Integer), sa.column("holder_id", sa.String),
                       sa.column("holder_key", sa.String))
    rows = conn.execute(sa.select(records.c.id, records.c.holder_id)
                        .where(records.c.holder_id.is_not(None)).order_by(records.c.id)).all()
    keyed = [{"pk": pk, "key": key} for pk, holder_id in rows
             if (key := holder_key(holder_id)) is not None]
    update = (records.update().where(records.c.id == sa.bindparam("pk"))
              .values(holder_key=sa.bindparam("key")))
    for start in range(0, len(keyed), CHUNK):
        conn.execute(update, keyed[start:start + CHUNK])


def upgrade() -> None:
    # add_column needs no table rebuild on either dialect, so the views that read records stay
    op.add_column("records", sa.Column("holder_key", sa.String(length=13), nullable=True))
    op.create_index("ix_records_holder", "records", ["holder_key", "agency_code"])
    op.create_table(
        "access_log",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("caller", sa.String(length=128), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("agency_code", sa.String(length=32), nullable=True),
        sa.Column("record_id", sa.String(length=128), nullable=True),
        sa.Column("purpose", sa.Text(), nullable=False),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(length=64), nullable=False, unique=True),
        sa.Column("token_sha256", sa.String(length=64), nullable=False, unique=True),
        sa.Column("agencies", sa.Text(), nullable=True),
        sa.Column("personal_data", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
    )
    conn = op.get_bind()
    _fill_holder_keys(conn)
    index.build(conn)


def downgrade() -> None:
    index.drop(op.get_bind())
    op.drop_table("api_tokens")
    op.drop_table("access_log")
    op.drop_index("ix_records_holder", table_name="records")
    op.drop_column("records", "holder_key")
