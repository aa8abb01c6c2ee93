"""Migration 0008 on a warehouse and an archive as the code before it left them: PDFs named after
the record id (``HS/001`` and ``HS_001`` in one file, the first paper lost), events upserted per
stage. The files get collision-free names in place, each record a version row, the old paths are
kept in the history, and the record whose file was lost is found by the fixity audit."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import select, text

from pipeline.config import load_settings
from pipeline.store import archive, fixity, warehouse

AGENCY = "000.00.12.H12"


def _upgrade(url: str, revision: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(warehouse.MIGRATIONS))
    with warehouse.engine_for(url).begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def _old_warehouse(url: str, year_dir: Path) -> dict[str, str]:
    """Revision 0007 with rows as the code before 0008 wrote them; returns record id -> the
    content its archived PDF had."""
    _upgrade(url, "0007")
    year_dir.mkdir(parents=True)
    contents = {"HS/001": "%PDF-1.7 first paper", "HS_001": "%PDF-1.7 second paper",
                "HS-002": "%PDF-1.7 third paper"}
    # the old name: unsafe characters replaced by "_", so HS/001 and HS_001 shared one file and
    # the second write replaced the first
    (year_dir / "HS_001.pdf").write_text(contents["HS_001"])
    (year_dir / "HS-002.pdf").write_text(contents["HS-002"])
    sha = {rid: hashlib.sha256(c.encode()).hexdigest() for rid, c in contents.items()}
    with warehouse.engine_for(url).begin() as conn:
        conn.execute(text("INSERT INTO agencies (code, name, level) VALUES (:a, 'UBND', 'huyen')"),
                     {"a": AGENCY})
        conn.execute(text(
            "INSERT INTO batches (agency_code, batch_id, source_dir, manifest_sha256, status, "
            "record_count, archived_count, quarantined_count, registered_at) VALUES "
            "(:a, 'B-OLD', '/nowhere/B-OLD', 'x', 'done', 3, 3, 0, CURRENT_TIMESTAMP)"), {"a": AGENCY})
        for line, rid in enumerate(contents, start=2):
            old = year_dir / f"{rid.replace('/', '_')}.pdf"
            conn.execute(text(
                "INSERT INTO records (agency_code, record_id, batch_pk, manifest_line, status, "
                "pdf_path, pdf_sha256, page_count, issued_on, updated_at) VALUES "
                "(:a, :r, 1, :l, 'archived', :p, :s, 1, :d, CURRENT_TIMESTAMP)"),
                {"a": AGENCY, "r": rid, "l": line, "p": str(old), "s": sha[rid], "d": "2015-03-15"})
            conn.execute(text(
                "INSERT INTO events (batch_pk, record_id, stage, outcome, detail, at) VALUES "
                "(1, :r, 'archive', 'archived', :p, CURRENT_TIMESTAMP)"), {"r": rid, "p": str(old)})
    return contents


@pytest.mark.parametrize("warehouse_url", ["sqlite", "postgresql"], indirect=True)
def test_the_old_archive_is_renamed_versioned_and_the_lost_paper_is_reported(
        tmp_path: Path, warehouse_url: str) -> None:
    url = warehouse_url
    data = tmp_path / "var"
    year_dir = data / "archive" / AGENCY / "2015"
    contents = _old_warehouse(url, year_dir)
    warehouse.migrate(url)  # to head, as any command does

    r, v, e = warehouse.records, warehouse.record_versions, warehouse.events
    with warehouse.engine_for(url).connect() as conn:
        records = {row.record_id: row for row in conn.execute(select(r))}
        versions = {row.record_pk: row for row in conn.execute(select(v))}
        moves = {row.record_id: (row.outcome, row.detail) for row in conn.execute(
            select(e).where(e.c.stage == "migrate"))}
    for rid in contents:
        new = year_dir / f"{archive.record_name(AGENCY, rid)}_v1.pdf"
        row = records[rid]
        assert (Path(row.pdf_path), row.version) == (new, 1)
        assert (versions[row.id].version, versions[row.id].pdf_path) == (1, str(new))
        assert moves[rid][1] == f"{year_dir / (rid.replace('/', '_') + '.pdf')} -> {new}"
    # the two papers that survived are under their new names, byte for byte; no old name is left
    assert sorted(p.name for p in year_dir.iterdir()) == sorted(
        f"{archive.record_name(AGENCY, rid)}_v1.pdf" for rid in ("HS_001", "HS-002"))
    for rid in ("HS_001", "HS-002"):
        assert Path(records[rid].pdf_path).read_text() == contents[rid]
        assert moves[rid][0] == "renamed"
    assert moves["HS/001"][0] == "file_missing"
    # history is append-only from now on: the same stage of the same record twice is two rows
    with warehouse.engine_for(url).begin() as conn:
        for _ in range(2):
            conn.execute(e.insert().values(batch_pk=1, record_id="HS-002", stage="archive",
                                           outcome="already_archived", detail="",
                                           at=warehouse.now()))
    settings = load_settings(data_dir=data, db_url=url)
    audit = fixity.audit(settings)
    assert [(m.record_id, m.kind) for m in audit.missing] == [("HS/001", "archive")]
    assert not audit.changed and not audit.unexpected
    warehouse.migrate(url)  # again: nothing to do, nothing moved twice
    assert sorted(p.name for p in year_dir.iterdir()) == sorted(
        f"{archive.record_name(AGENCY, rid)}_v1.pdf" for rid in ("HS_001", "HS-002"))
