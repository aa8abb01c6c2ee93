"""`digitize run` on generated batches, end to end on real Tesseract, OCRmyPDF and databases."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import subprocess
from pathlib import Path

import pikepdf
import pytest
from conftest import digitize as run_digitize
from conftest import import_reference
from sqlalchemy import select

from pipeline.demo import samples
from pipeline.demo.quality import cer
from pipeline.store import archive, warehouse

AGENCY = "000.00.12.H12"
pytestmark = pytest.mark.slow


def digitize(data_dir: Path, db_url: str | None, *args: str) -> subprocess.CompletedProcess[str]:
    import_reference(data_dir, db_url)
    env = {**os.environ, "DIGITIZE_DATA_DIR": str(data_dir)}
    env.pop("DIGITIZE_DB_URL", None)
    if db_url:
        env["DIGITIZE_DB_URL"] = db_url
    return run_digitize(*args, env=env)


def pdf_text(pdf: Path) -> str:
    """The PDF's text layer in its own order (-raw): the order OCR read the page in."""
    return subprocess.run(["pdftotext", "-raw", str(pdf), "-"], capture_output=True, text=True,
                          check=True).stdout


def snapshot(data_dir: Path) -> dict[str, str]:
    """Every file under the data folder with its SHA-256, but the live database files and the
    Data Docs, which render each validation run with its time."""
    docs = data_dir / "reports" / "validation"
    return {str(p.relative_to(data_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(data_dir.rglob("*"))
            if p.is_file() and not p.name.startswith("warehouse.sqlite") and docs not in p.parents}


def records_table(url: str) -> list[tuple[object, ...]]:
    r = warehouse.records
    with warehouse.engine_for(url).connect() as conn:
        return [tuple(row) for row in conn.execute(select(r).order_by(r.c.record_id))]


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str | None:
    return None if request.param == "sqlite" else request.getfixturevalue("pg_url")


def test_batch_is_archived_as_searchable_pdfa_and_rerun_changes_nothing(
    tmp_path: Path, db_url: str | None
) -> None:
    data = tmp_path / "var"
    batch = samples.generate_batch(tmp_path / "scans" / AGENCY / "B-E2E", agency_code=AGENCY,
                                   batch_id="B-E2E", n_records=3, seed=5,
                                   truth_path=tmp_path / "truth.json")
    assert any(len(r.pages) > 1 for r in batch.records)
    assert any(p.rotation for r in batch.records for p in r.pages)
    truth = batch.ground_truth()

    run = digitize(data, db_url, "run", str(batch.batch_dir), "--json")
    assert run.returncode == 0, run.stderr[-3000:]
    results = {o["record_id"]: o for o in map(json.loads, run.stdout.splitlines())}
    assert set(results) == {r.record_id for r in batch.records}
    url = db_url or f"sqlite:///{(data / 'warehouse.sqlite').resolve()}"
    with warehouse.engine_for(url).connect() as conn:
        r, p = warehouse.records, warehouse.pages
        stored = {row.record_id: row for row in conn.execute(select(r))}
        page_rows = conn.execute(select(p)).all()
    assert len(page_rows) == sum(len(rec.pages) for rec in batch.records)

    for record in batch.records:
        out = results[record.record_id]
        assert out["status"] == "archived" and out["pages"] == len(record.pages)
        # the turn applied by the "scanner" is undone: clockwise rotation back to upright
        assert out["rotation"] == [(360 - page.rotation) % 360 for page in record.pages]
        for found, page in zip(out["skew"], record.pages, strict=True):
            assert abs(found - page.skew) < 0.3
        assert out["ocr_mean_confidence"] > 70
        pdf = Path(out["pdf"])
        assert pdf == archive.archive_path(data.resolve() / "archive", AGENCY,
                                           record.issued_on.year, record.record_id, 1)
        with pikepdf.open(pdf) as doc:
            meta = doc.open_metadata()
            assert (meta["pdfaid:part"], meta["pdfaid:conformance"]) == ("2", "B")
            assert "/OutputIntents" in doc.Root
            assert meta["dc:identifier"] == record.record_id
            assert len(doc.pages) == len(record.pages)
        assert cer(truth[record.record_id], pdf_text(pdf)) < 0.02
        row = stored[record.record_id]
        assert (row.status, row.page_count, row.procedure_code, row.issued_on) == (
            "archived", len(record.pages), record.procedure_code, record.issued_on)
        assert row.pdf_sha256 == hashlib.sha256(pdf.read_bytes()).hexdigest()
        assert cer(truth[record.record_id], row.text) < 0.02

    before_files, before_rows = snapshot(data), records_table(url)
    before_counts = warehouse.row_counts(url)
    again = digitize(data, db_url, "run", str(batch.batch_dir), "--json")
    assert again.returncode == 0, again.stderr[-3000:]
    assert all(json.loads(line)["already_archived"] for line in again.stdout.splitlines())
    assert snapshot(data) == before_files
    assert records_table(url) == before_rows
    # history is append-only: the rerun adds one "already archived" event per record, nothing else
    after_counts = warehouse.row_counts(url)
    assert after_counts.pop("events") == before_counts.pop("events") + len(batch.records)
    assert after_counts == before_counts


def test_bad_rows_are_quarantined_with_reasons_and_the_rest_archived(tmp_path: Path) -> None:
    data = tmp_path / "var"
    batch_dir = data / "inbox" / AGENCY / "B-BAD"
    batch = samples.generate_batch(batch_dir, agency_code=AGENCY, batch_id="B-BAD", n_records=3,
                                   seed=8, truth_path=tmp_path / "truth.json")
    manifest = batch_dir / "manifest.csv"
    with manifest.open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.reader(fh))
    rows[1][3] = "05.03.2019"                      # line 2: unknown date format
    rows[2][7] = "khong-co-tep.tif"                # line 3: missing file
    with manifest.open("w", encoding="utf-8-sig", newline="") as fh:
        csv.writer(fh).writerows(rows)
    bad_date, missing_file, good = batch.records

    run = digitize(data, None, "run", str(batch_dir), "--json")
    assert run.returncode == 3, run.stderr[-3000:]
    results = {o["record_id"]: o for o in map(json.loads, run.stdout.splitlines())}
    assert results[good.record_id]["status"] == "archived"
    for record, reason, text in ((bad_date, "manifest_row_invalid", "Dòng 2 của manifest.csv: "
                                  "Ngày ban hành '05.03.2019' không đọc được"),
                                 (missing_file, "file_missing", "Dòng 3 của manifest.csv: không "
                                  "tìm thấy tệp 'khong-co-tep.tif'")):
        assert results[record.record_id]["status"] == "quarantined"
        name = archive.record_name(AGENCY, record.record_id)
        note = data / "quarantine" / AGENCY / "B-BAD" / f"{name}.json"
        info = json.loads(note.read_text(encoding="utf-8"))
        assert info["reason"] == reason == results[record.record_id]["reason"]
        assert any(m.startswith(text) for m in info["messages"]), info["messages"]
        assert "*" in info["manifest_row"]["holder_id"] or not info["manifest_row"]["holder_id"]
        assert (note.with_suffix(".txt")).read_text(encoding="utf-8").startswith(
            f"Hồ sơ: {record.record_id}")
    # scans stay in the inbox until every record is archived; nothing was modified
    assert all((batch_dir / p.file).is_file() for r in batch.records for p in r.pages
               if p.file != "khong-co-tep.tif")
