"""Nothing overwritten: append-only events, record versions, batches kept apart by content,
archived PDFs renamed from their record id to a collision-free name

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 04:00:00

Before this revision an archived PDF was named after its record id with unsafe characters
replaced (``HS/001`` and ``HS_001`` both became ``HS_001.pdf``). Each archived record's file is
renamed here to :func:`pipeline.store.archive.record_name` version 1 in the same folder, only when its
content is the record's (of two records that shared a file, the one whose hash it has); the old
path is kept in an event (stage ``migrate``). A record whose file was lost that way keeps its
status: ``digitize fixity`` reports it missing and a rerun of its batch archives it again.
"""

import hashlib
import logging
import os
from pathlib import Path

import sqlalchemy as sa
from alembic import op

from pipeline.store import archive, warehouse

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

log = logging.getLogger(__name__)


def _sha256(path: Path) -> str | None:
    try:
        with path.open("rb") as fh:
            return hashlib.file_digest(fh, "sha256").hexdigest()
    except OSError:
        return None


def _rename_archived_files(conn: sa.Connection) -> None:
    r, v, e = warehouse.records, warehouse.record_versions, warehouse.events
    rows = conn.execute(sa.select(r.c.id, r.c.agency_code, r.c.record_id, r.c.batch_pk,
                                  r.c.pdf_path, r.c.pdf_sha256)
                        .where(r.c.status == "archived", r.c.pdf_path.is_not(None))
                        .order_by(r.c.id)).all()
    for pk, agency, record_id, batch_pk, old_path, sha in rows:
        old = Path(old_path)
        new = old.with_name(f"{archive.record_name(agency, record_id)}_v1.pdf")
        if new.is_file() and _sha256(new) == sha:
            outcome = "renamed"  # a migration interrupted after the rename: done already
        elif not new.exists() and _sha256(old) == sha:
            os.link(old, new)
            os.unlink(old)
            archive.fsync_dir(new.parent)
            outcome = "renamed"
        else:
            outcome = "file_missing"
            log.warning("record %s/%s: %s does not hold its archived PDF (sha256 %s); the fixity "
                        "audit reports it missing, a rerun of its batch archives it again",
                        agency, record_id, old, sha)
        conn.execute(r.update().where(r.c.id == pk).values(pdf_path=str(new), version=1))
        conn.execute(v.insert().values(record_pk=pk, version=1, batch_pk=batch_pk,
                                       pdf_path=str(new), pdf_sha256=sha, reason="migrated",
                                       created_at=warehouse.now()))
        conn.execute(e.insert().values(batch_pk=batch_pk, record_id=record_id, stage="migrate",
                                       outcome=outcome, detail=f"{old} -> {new}",
                                       at=warehouse.now()))


def upgrade() -> None:
    conn = op.get_bind()
    warehouse.drop_views(conn)  # SQLite cannot rebuild a table a view reads
    with op.batch_alter_table("events") as batch:
        batch.drop_constraint("uq_events_key", type_="unique")
        batch.add_column(sa.Column("duration_s", sa.Float(), nullable=True))
    op.create_index("ix_events_record", "events", ["record_id", "batch_pk"])
    with op.batch_alter_table("batches") as batch:
        batch.add_column(sa.Column("folder_name", sa.String(length=128), nullable=True))
        batch.add_column(sa.Column("content_sha256", sa.String(length=64), nullable=True))
    op.execute("UPDATE batches SET folder_name = batch_id")
    with op.batch_alter_table("records") as batch:
        batch.add_column(sa.Column("version", sa.Integer(), nullable=True))
    with op.batch_alter_table("fixity_audits") as batch:
        batch.add_column(sa.Column("shared", sa.Integer(), nullable=True))
    op.create_table(
        "record_versions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("record_pk", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("batch_pk", sa.Integer(), nullable=False),
        sa.Column("pdf_path", sa.Text(), nullable=False),
        sa.Column("pdf_sha256", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["record_pk"], ["records.id"]),
        sa.ForeignKeyConstraint(["batch_pk"], ["batches.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("record_pk", "version", name="uq_record_versions_key"),
    )
    _rename_archived_files(conn)
    warehouse.create_views(conn)


def downgrade() -> None:
    # The renamed files keep their new names: a downgrade must not move archived files again.
    # Columns are dropped natively (SQLite >= 3.35), not by rebuilding the tables, which other
    # tables' foreign keys refer to.
    conn = op.get_bind()
    warehouse.drop_views(conn)
    op.drop_table("record_versions")
    op.drop_column("fixity_audits", "shared")
    op.drop_column("records", "version")
    op.drop_column("batches", "content_sha256")
    op.drop_column("batches", "folder_name")
    op.drop_index("ix_events_record", table_name="events")
    # back to one row per (batch, record, stage): the last attempt, as the old upserts kept
    op.execute("DELETE FROM events WHERE id NOT IN "
               "(SELECT MAX(id) FROM events GROUP BY batch_pk, record_id, stage)")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("duration_s")
        batch.create_unique_constraint("uq_events_key", ["batch_pk", "record_id", "stage"])
    warehouse.create_views(conn)
