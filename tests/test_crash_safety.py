"""Crash safety: `digitize run` killed with SIGKILL at 20 random moments, rerun each time.

Whatever moment the kill hits (start-up, registration, cleanup, OCR, the archive copy, the
load), rerunning ends in exactly the state of an uninterrupted run: the same warehouse rows, the
same archived files byte for byte, no temp files, and the scans untouched.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import import_reference
from sqlalchemy import select

from pipeline import samples, warehouse

AGENCY = "000.00.12.H12"
KILLS = 20
# Every run makes its PDFs at this moment (pipeline.ocr._source_date): the archived bytes then
# depend on the scans alone, and two runs can be compared by SHA-256.
SOURCE_DATE_EPOCH = "1700000000"
pytestmark = pytest.mark.slow


def start(data: Path, batch_dir: Path) -> subprocess.Popen[bytes]:
    """``digitize run`` in the background; its log goes beside the data folder (not into it)."""
    env = {**os.environ, "DIGITIZE_DATA_DIR": str(data), "SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH}
    env.pop("DIGITIZE_DB_URL", None)
    # a session of its own: the kill takes OCRmyPDF's child and Tesseract with it
    with data.with_suffix(".log").open("ab") as log:
        return subprocess.Popen([sys.executable, "-m", "pipeline.cli", "run", str(batch_dir),
                                 "--json", "--jobs", "1"], env=env, stdout=subprocess.DEVNULL,
                                stderr=log, start_new_session=True)


def finish(data: Path, batch_dir: Path) -> None:
    assert start(data, batch_dir).wait(timeout=900) == 0, log_tail(data)


def log_tail(data: Path) -> str:
    return data.with_suffix(".log").read_text(encoding="utf-8", errors="replace")[-3000:]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def outcome(data: Path) -> dict[str, object]:
    """What a run leaves behind, minus what legitimately differs between two data folders
    (surrogate keys, timestamps, the data folder's own path)."""
    url = f"sqlite:///{(data / 'warehouse.sqlite').resolve()}"
    root = str(data.resolve())
    r, p, f, b = warehouse.records, warehouse.pages, warehouse.files, warehouse.batches
    e, v = warehouse.events, warehouse.validation_results
    with warehouse.engine_for(url).connect() as conn:
        records = [
            {**row._asdict(), "pdf_path": (row.pdf_path or "").replace(root, "DATA")}
            for row in conn.execute(select(*(c for c in r.c if c.name not in ("id", "batch_pk",
                                                                            "updated_at")))
                                    .order_by(r.c.record_id))]
        pages = conn.execute(select(r.c.record_id, *(c for c in p.c if c.name not in (
            "id", "record_pk"))).join(r, r.c.id == p.c.record_pk)
            .order_by(r.c.record_id, p.c.page_no)).all()
        files = conn.execute(select(f.c.sha256, f.c.name, f.c.size, f.c.page_count)
                             .order_by(f.c.sha256)).all()
        batches = conn.execute(select(*(c for c in b.c if c.name not in (
            "id", "registered_at", "finished_at")))).all()
        events = [(rid, stage, result, detail.replace(root, "DATA")) for rid, stage, result, detail
                  in conn.execute(select(e.c.record_id, e.c.stage, e.c.outcome, e.c.detail)
                                  .order_by(e.c.record_id, e.c.stage))]
        problems = conn.execute(select(v.c.record_id, v.c.rule, v.c.field, v.c.message)
                                .order_by(v.c.record_id, v.c.rule)).all()
        claims = conn.execute(select(warehouse.record_claims)).all()
    warehouse.dispose(url)
    archived = {str(path.relative_to(data)): sha256(path)
                for path in sorted(data.glob("archive/**/*")) if path.is_file()}
    held = sorted(str(path.relative_to(data)) for path in data.glob("quarantine/**/*"))
    return {"records": records, "pages": pages, "files": files, "batches": batches,
            "events": events, "validation": problems, "claims": claims, "archive": archived,
            "quarantine": held}


def leftovers(data: Path) -> list[str]:
    """Temp files of atomic writes, and anything in the per-record work folders."""
    return sorted(str(p) for p in data.rglob("*")
                  if p.is_file() and (p.name.endswith(".tmp") or "work" in p.relative_to(data).parts))


def test_sigkill_at_random_moments_then_rerun_ends_as_an_uninterrupted_run(tmp_path: Path) -> None:
    batch = samples.generate_batch(tmp_path / "scans" / AGENCY / "B-KILL", agency_code=AGENCY,
                                   batch_id="B-KILL", n_records=2, seed=5)
    scans = {p.name: sha256(p) for p in batch.batch_dir.iterdir()}

    reference = tmp_path / "uninterrupted"
    import_reference(reference)
    started = time.monotonic()
    finish(reference, batch.batch_dir)
    duration = time.monotonic() - started
    expected = outcome(reference)
    assert len(expected["archive"]) == len(batch.records) and not expected["quarantine"]

    rng = random.Random(20261123)
    kills = completions = 0
    data = tmp_path / "crashed-0"
    import_reference(data)
    for attempt in range(4 * KILLS):
        if kills == KILLS:
            break
        run = start(data, batch.batch_dir)
        try:
            run.wait(timeout=rng.uniform(0.5, duration))
        except subprocess.TimeoutExpired:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()
            kills += 1
            continue
        # The batch finished before the kill: check it, then crash a fresh data folder again,
        # so that the kills keep landing in the middle of real work.
        assert run.returncode == 0, log_tail(data)
        assert outcome(data) == expected and not leftovers(data)
        completions += 1
        data = tmp_path / f"crashed-{attempt + 1}"
        import_reference(data)
    assert kills == KILLS, f"only {kills} runs were killed while running"

    finish(data, batch.batch_dir)
    assert outcome(data) == expected
    assert leftovers(data) == []
    assert {p.name: sha256(p) for p in batch.batch_dir.iterdir()} == scans
    print(f"{kills} SIGKILLs survived, {completions} interim completions checked, "
          f"uninterrupted run {duration:.1f} s")
