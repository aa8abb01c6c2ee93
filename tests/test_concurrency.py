"""The same batch started twice at once: each record is archived exactly once, by claim."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import QUICK_DPIS, import_reference
from sqlalchemy import func, select

from pipeline.demo import samples
from pipeline.store import warehouse

AGENCY = "000.00.12.H12"
pytestmark = pytest.mark.slow


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str | None:
    return None if request.param == "sqlite" else request.getfixturevalue("pg_url")


def test_two_runs_of_one_batch_archive_each_record_once(tmp_path: Path, db_url: str | None) -> None:
    data = tmp_path / "var"
    url = import_reference(data, db_url)
    batch_dir = data / "inbox" / AGENCY / "B-TWICE"
    batch = samples.generate_batch(batch_dir, agency_code=AGENCY, batch_id="B-TWICE", n_records=3,
                                   seed=5, dpis=QUICK_DPIS)
    env = {**os.environ, "DIGITIZE_DATA_DIR": str(data)}
    env.pop("DIGITIZE_DB_URL", None)
    if db_url:
        env["DIGITIZE_DB_URL"] = db_url
    runs = [subprocess.Popen([sys.executable, "-m", "pipeline.cli", "run", str(batch_dir), "--json",
                              "--jobs", "1"], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [run.communicate(timeout=900) for run in runs]

    ids = {r.record_id for r in batch.records}
    fresh: list[str] = []
    for run, (out, err) in zip(runs, outputs, strict=True):
        assert run.returncode == 0, err[-3000:]  # neither run crashes nor quarantines
        results = [json.loads(line) for line in out.splitlines()]
        assert {r["record_id"] for r in results} == ids
        assert all(r["status"] == "archived" for r in results)
        fresh += [r["record_id"] for r in results if not r["already_archived"]]
    assert sorted(fresh) == sorted(ids)  # OCR'd and archived by exactly one of the two runs

    r, p, e = warehouse.records, warehouse.pages, warehouse.events
    with warehouse.engine_for(url).connect() as conn:
        rows = conn.execute(select(r.c.record_id, r.c.status, r.c.pdf_path, r.c.pdf_sha256)).all()
        pages = conn.execute(select(func.count()).select_from(p)).scalar_one()
        events = conn.execute(select(e.c.record_id, e.c.stage, e.c.outcome)).all()
        claims = conn.execute(select(func.count()).select_from(warehouse.record_claims)).scalar_one()
    assert sorted(row.record_id for row in rows) == sorted(ids)
    assert pages == sum(len(rec.pages) for rec in batch.records)
    # one "archived" event per record, by the run that won its claim; the other run's attempt is
    # in the append-only history too, as "already_archived" (and the winner's cross-check
    # warning, if OCR misread the number or date on the first page)
    assert sorted(rid for rid, _, outcome in events if outcome == "archived") == sorted(ids)
    assert {(stage, outcome) for _, stage, outcome in events} <= {
        ("archive", "archived"), ("archive", "already_archived"), ("crosscheck", "warning"),
        ("sign", "unsigned")}
    assert claims == 0
    pdfs = sorted(p for p in (data / "archive").rglob("*") if p.is_file())
    assert pdfs == sorted(Path(row.pdf_path) for row in rows)
    for row in rows:
        assert row.status == "archived"
        assert hashlib.sha256(Path(row.pdf_path).read_bytes()).hexdigest() == row.pdf_sha256
    assert not batch_dir.exists() and (data / "done" / AGENCY / "B-TWICE" / "manifest.csv").is_file()
    assert not [p for p in data.rglob("*.tmp")]
