"""Fixity audit: a real archived batch hashed again; damage to the archive and to the source scans
is reported exactly, through the function, the command, the report files and the monthly DAG."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from pipeline import fixity, runner, samples, warehouse
from pipeline.cli import airflow_env
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


def _task_log(output: str, task_id: str) -> list[tuple[str, str]]:
    """(level, message) of each event the task itself logged in ``airflow dags test`` output:
    what follows the close of Airflow's own "Pre Execute" group, as the UI shows it."""
    events: list[tuple[str, str]] = []
    for line in output.splitlines():
        head = re.match(r"^\d{4}-\d\d-\d\dT\S+ \[(\w+)\s*\] (.*)$", line)
        if head:
            events.append((head[1], head[2]))
        elif events:  # a message of several lines
            events[-1] = (events[-1][0], f"{events[-1][1]}\n{line}")
    start = next(i for i, (_, m) in enumerate(events) if f"starting task_id={task_id}" in m)
    opened = next(i for i in range(start, len(events)) if events[i][1].startswith("::endgroup::"))
    return events[opened + 1:]


@pytest.mark.slow
@pytest.mark.airflow
def test_the_monthly_dag_fails_at_once_with_the_findings_first_in_its_log(
        reference_settings: Settings, tmp_path: Path) -> None:
    settings = reference_settings
    inbox = settings.dir("inbox") / AGENCY / "B-DAG"
    samples.generate_batch(inbox, agency_code=AGENCY, batch_id="B-DAG", n_records=1, seed=5,
                           truth_path=tmp_path / "truth.json")
    (record,) = runner.run_batch(settings, inbox).records
    pdf = Path(record.pdf_path or "")
    (scan,) = (p for p in (settings.dir("done") / AGENCY / "B-DAG").iterdir()
               if p.name != "manifest.csv")
    _flip_one_byte(pdf)
    scan.unlink()

    env = airflow_env(settings)
    airflow = str(Path(sys.executable).with_name("airflow"))
    subprocess.run([airflow, "db", "migrate"], env=env, check=True, capture_output=True)
    run = subprocess.run([airflow, "dags", "test", "digitize_fixity", "2024-03-01T02:00:00+00:00"],
                         env=env, capture_output=True, text=True, timeout=600)
    output = run.stdout + run.stderr
    assert run.returncode != 0, output[-3000:]
    with sqlite3.connect(Path(env["AIRFLOW_HOME"]) / "airflow.db") as conn:
        (state, tries), = conn.execute("select state, try_number from task_instance "
                                       "where dag_id = 'digitize_fixity' and task_id = 'audit'")
    # failed, not up for retry: hashing again cannot bring a file back
    assert (state, tries) == ("failed", 1), output[-3000:]

    level, summary = _task_log(run.stdout, "audit")[0]
    assert level == "error", summary
    lines = summary.splitlines()
    assert lines[0] == ("Kiểm tra toàn vẹn: 1 bản lưu trữ PDF/A và 1 tệp quét gốc đã được băm lại.")
    assert lines[1].startswith("PHÁT HIỆN VẤN ĐỀ: 1 mất tệp, 1 bị thay đổi, 0 tệp lạ.")
    assert sorted(lines[2:4]) == sorted([
        f"- mất tệp: tệp quét gốc {scan} (lô {AGENCY}/B-DAG)",
        f"- nội dung bị thay đổi: bản lưu trữ PDF/A {pdf} (hồ sơ {record.record_id})"])
    (written,) = settings.dir("reports").glob("fixity-*.json")
    assert lines[4].startswith(f"Báo cáo: {written} ")
    assert json.loads(written.read_text(encoding="utf-8"))["ok"] is False
