"""Fixity audit: a real archived batch hashed again; damage to the archive and to the source scans
is reported exactly, through the function, the command and the report files."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from pipeline import fixity, runner, samples, warehouse
from pipeline.config import Settings
from pipeline.models import RecordStatus

AGENCY = "000.00.12.H12"


def digitize(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DIGITIZE_DATA_DIR": str(settings.data_dir)}
    env.pop("DIGITIZE_DB_URL", None)
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], capture_output=True,
                          text=True, env=env, timeout=300)


def _flip_one_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _found(report: fixity.FixityReport) -> set[tuple[str, str, str]]:
    return {(e.problem, e.kind, e.path) for e in report.entries}


def test_an_empty_warehouse_is_clean_and_the_report_is_written(settings: Settings) -> None:
    out = digitize(settings, "fixity")
    assert out.returncode == 0, out.stderr
    assert "Không phát hiện vấn đề nào." in out.stdout
    (written,) = settings.dir("reports").glob("fixity-*.json")
    with warehouse.engine_for(settings.warehouse_url).connect() as conn:
        assert conn.execute(select(warehouse.fixity_audits.c.report_path)).scalars().all() == [
            str(written)]
    assert json.loads(written.read_text(encoding="utf-8"))["ok"] is True
    assert written.with_suffix(".csv").read_text(encoding="utf-8-sig").startswith("Loại,Vấn đề,")


@pytest.mark.slow
def test_damage_to_the_archive_and_the_scans_is_reported_exactly(reference_settings: Settings,
                                                                  tmp_path: Path) -> None:
    settings = reference_settings
    inbox = settings.dir("inbox") / AGENCY / "B-FIX"
    samples.generate_batch(inbox, agency_code=AGENCY, batch_id="B-FIX", n_records=3, seed=11,
                           truth_path=tmp_path / "truth.json")
    summary = runner.run_batch(settings, inbox)
    assert [r.status for r in summary.records] == [RecordStatus.archived] * 3
    done = Path(summary.moved_to or "")
    assert done == settings.dir("done") / AGENCY / "B-FIX"

    clean = fixity.audit(settings)
    scans = sorted(p for p in done.iterdir() if p.name != "manifest.csv")
    assert clean.ok and clean.entries == []
    assert clean.archived_checked == 3 and clean.sources_checked == len(scans)

    corrupted, deleted, _ = (Path(r.pdf_path or "") for r in summary.records)
    _flip_one_byte(corrupted)
    deleted.unlink()
    stray = corrupted.parent / "HS-KHONG-RO.pdf"
    shutil.copyfile(corrupted, stray)
    _flip_one_byte(scans[0])
    # not problems: a write in progress, and a second copy of a scan the warehouse knows
    (corrupted.parent / f".{corrupted.name}.tmp").write_bytes(b"%PDF-")
    shutil.copyfile(scans[-1], done / f"copy-of-{scans[-1].name}")

    report = fixity.audit(settings)
    assert _found(report) == {
        ("changed", "archive", str(corrupted)),
        ("missing", "archive", str(deleted)),
        ("unexpected", "archive", str(stray)),
        ("changed", "source", str(scans[0])),
    }
    (changed_pdf,) = [e for e in report.changed if e.kind == "archive"]
    assert changed_pdf.record_id == summary.records[0].record_id
    assert changed_pdf.expected_sha256 == summary.records[0].pdf_sha256 != changed_pdf.actual_sha256

    # the command: exit 3, the same findings as JSON and in the files, Vietnamese for people
    out = digitize(settings, "fixity", "--json", "--out", str(tmp_path / "audit.json"))
    assert out.returncode == 3, out.stderr
    printed = json.loads(out.stdout)
    assert printed["ok"] is False
    assert {(e["problem"], e["kind"], e["path"]) for key in ("missing", "changed", "unexpected")
            for e in printed[key]} == _found(report)
    assert json.loads((tmp_path / "audit.json").read_text(encoding="utf-8"))["changed"] == printed["changed"]
    with (tmp_path / "audit.csv").open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert sorted(r["Đường dẫn"] for r in rows) == sorted(p for *_, p in _found(report))
    people = digitize(settings, "fixity")
    assert people.returncode == 3
    assert "PHÁT HIỆN VẤN ĐỀ: 1 mất tệp, 2 bị thay đổi, 1 tệp lạ" in " ".join(people.stdout.split())
    assert list(settings.dir("reports").glob("fixity-*.json"))
    # each audit of the command is kept in the warehouse
    a = warehouse.fixity_audits
    with warehouse.engine_for(settings.warehouse_url).connect() as conn:
        audits = conn.execute(select(a.c.missing, a.c.changed, a.c.unexpected, a.c.report_path)
                              .order_by(a.c.id)).all()
    assert [tuple(row[:3]) for row in audits] == [(1, 2, 1), (1, 2, 1)]
    assert audits[0].report_path == str(tmp_path / "audit.json")
