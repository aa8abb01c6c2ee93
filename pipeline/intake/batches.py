"""Which batch a folder is: the same batch seen again, or a new batch in a folder name used before.

A batch is identified by its agency and its ``batch_id``, unique in the warehouse. The first
batch dropped as ``REUSE`` gets ``REUSE``; once it is done (moved to ``done/``, or finished where
it lies with other content now), a new folder ``REUSE`` gets ``REUSE~2``: its own ``batches``
row, its own ``done/`` and quarantine folders, its own Airflow run. A folder in the inbox that is
not done yet is the same batch however often it is read (the clerk fixes a row, replaces a scan).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from sqlalchemy import Connection, func, select

from pipeline.models import BatchPlan
from pipeline.store import archive, warehouse


def content_sha256(plan: BatchPlan) -> str:
    """One hash over the manifest and every scan (name and SHA-256), in name order."""
    digest = hashlib.sha256(f"manifest\0{plan.manifest_sha256}\n".encode())
    for name, source in sorted(plan.files.items()):
        digest.update(f"{name}\0{source.sha256}\n".encode())
    return digest.hexdigest()


def resolve_batch_id(conn: Connection, agency_code: str, name: str, batch_dir: Path,
                     content: str | None = None) -> str:
    """The ``batch_id`` of the folder ``batch_dir`` named ``name``: an existing batch's when the
    folder is that batch (its mark from the move to ``done/``; the same folder not done yet; the
    same folder done, with the same ``content`` when it is given), else a new, unused one."""
    b = warehouse.batches
    mark = archive.batch_mark(batch_dir)
    if mark and mark.get("agency_code") == agency_code:
        marked = conn.execute(select(b.c.batch_id).where(
            b.c.id == mark.get("batch_pk"), b.c.agency_code == agency_code)).scalar()
        if marked:
            return str(marked)
    rows = conn.execute(select(b.c.batch_id, b.c.status, b.c.source_dir, b.c.content_sha256)
                        .where(b.c.agency_code == agency_code,
                               func.coalesce(b.c.folder_name, b.c.batch_id) == name)
                        .order_by(b.c.id)).all()
    for row in rows:
        same_content = content is None or row.content_sha256 in (None, content)
        if row.source_dir == str(batch_dir) and (row.status != "done" or same_content):
            return str(row.batch_id)
    if not rows:
        return name
    n = len(rows) + 1
    # a folder may itself be called "REUSE~2": skip ids taken that way
    while warehouse.pk_of(conn, b, agency_code=agency_code, batch_id=f"{name}~{n}") is not None:
        n += 1
    return f"{name}~{n}"


def located(conn: Connection, batch_dir: Path, done_dir: Path) -> Path:
    """Where the batch registered from ``batch_dir`` is now, once it left the inbox for
    ``done/``: a run killed right after the move (the warehouse still says the inbox), or after
    the warehouse heard of it but before the run ended, is rerun there (the newest batch of that
    folder name)."""
    if batch_dir.is_dir():
        return batch_dir
    b = warehouse.batches
    for pk, agency, batch_id in conn.execute(
            select(b.c.id, b.c.agency_code, b.c.batch_id)
            .where((b.c.source_dir == str(batch_dir.resolve()))
                   | ((b.c.agency_code == batch_dir.parent.name)
                      & (func.coalesce(b.c.folder_name, b.c.batch_id) == batch_dir.name)))
            .order_by(b.c.id.desc())):
        moved = archive.moved_batch(done_dir, agency, batch_id, pk)
        if moved is not None:
            return moved
    return batch_dir
