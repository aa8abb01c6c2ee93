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
from conftest import QUICK_DPIS, MigrateAirflow, edit_manifest
from conftest import digitize as run_digitize
from sqlalchemy import select

from pipeline.batch import run_batch
from pipeline.cli import airflow_env
from pipeline.config import Settings
from pipeline.demo import samples
from pipeline.models import BatchSummary, RecordStatus
from pipeline.store import fixity, warehouse

AGENCY = "000.00.12.H12"


def digitize(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DIGITIZE_DATA_DIR": str(settings.data_dir)}
    env.pop("DIGITIZE_DB_URL", None)
    return run_digitize(*args, env=env)


def _flip_one_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _found(report: fixity.FixityReport) -> set[tuple[str, str, str]]:
    return {(e.problem, e.kind, e.path) for e in report.entries}


def _archived_batch(settings: Settings, batch_id: str, n_records: int, seed: int,
                    tmp_path: Path) -> BatchSummary:
    """A sample batch dropped in the inbox and run through to done/, every record archived."""
    inbox = settings.dir("inbox") / AGENCY / batch_id
    samples.generate_batch(inbox, agency_code=AGENCY, batch_id=batch_id, n_records=n_records,
                           seed=seed, truth_path=tmp_path / f"{batch_id}.truth.json", dpis=QUICK_DPIS)
    summary = run_batch(settings, inbox)
    assert [r.status for r in summary.records] == [RecordStatus.archived] * n_records
    assert summary.moved_to == str(settings.dir("done") / AGENCY / batch_id)
    return summary


def _scans_used_by(settings: Settings, record_id: str) -> list[str]:
    """The names of the source scans the archived record's pages come from, per the warehouse."""
    r, p, f = warehouse.records, warehouse.pages, warehouse.files
    with warehouse.engine_for(settings.warehouse_url).connect() as conn:
        return sorted(set(conn.execute(
            select(f.c.name).join(p, p.c.file_sha256 == f.c.sha256).join(r, r.c.id == p.c.record_pk)
            .where(r.c.agency_code == AGENCY, r.c.record_id == record_id)).scalars()))


def _users_of(settings: Settings, scan: str) -> list[str]:
    """The archived records whose pages come from the scan named ``scan``."""
    r, p, f = warehouse.records, warehouse.pages, warehouse.files
    with warehouse.engine_for(settings.warehouse_url).connect() as conn:
        return sorted(set(conn.execute(
            select(r.c.record_id).join(p, p.c.record_pk == r.c.id)
            .join(f, f.c.sha256 == p.c.file_sha256).where(f.c.name == scan)).scalars()))


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
                           truth_path=tmp_path / "truth.json", dpis=QUICK_DPIS)
    summary = run_batch(settings, inbox)
    assert [r.status for r in summary.records] == [RecordStatus.archived] * 3
    done = Path(summary.moved_to or "")
    assert done == settings.dir("done") / AGENCY / "B-FIX"

    clean = fixity.audit(settings)
    # the batch mark (.digitize-batch.json) is the pipeline's, not a scan
    scans = sorted(p for p in done.iterdir() if p.name != "manifest.csv" and not p.name.startswith("."))
    assert clean.ok and clean.entries == []
    assert clean.archived_checked == 3 and clean.sources_checked == len(scans)

    corrupted, deleted, _ = (Path(r.pdf_path or "") for r in summary.records)
    assert corrupted.name.endswith("_v1.pdf")
    _flip_one_byte(corrupted)
    deleted.unlink()
    stray = corrupted.parent / "HS-KHONG-RO.pdf"
    shutil.copyfile(corrupted, stray)
    _flip_one_byte(scans[0])
    lost_scan = scans[1]
    lost_scan.unlink()
    # not problems: a write in progress, and a second copy of a scan the warehouse knows
    (corrupted.parent / f".{corrupted.name}.tmp").write_bytes(b"%PDF-")
    shutil.copyfile(scans[-1], done / f"copy-of-{scans[-1].name}")

    report = fixity.audit(settings)
    assert _found(report) == {
        ("changed", "archive", str(corrupted)),
        ("missing", "archive", str(deleted)),
        ("unexpected", "archive", str(stray)),
        ("changed", "source", str(scans[0])),
        ("missing", "source", str(lost_scan)),
    }
    (changed_pdf,) = [e for e in report.changed if e.kind == "archive"]
    assert (changed_pdf.record_id, changed_pdf.version) == (summary.records[0].record_id, 1)
    assert changed_pdf.expected_sha256 == summary.records[0].pdf_sha256 != changed_pdf.actual_sha256
    # a scan deleted from done/ names the archived records that were made from it
    (missing_scan,) = [e for e in report.missing if e.kind == "source"]
    assert missing_scan.record_ids == _users_of(settings, lost_scan.name) != []
    assert (missing_scan.batch_id, missing_scan.agency_code) == ("B-FIX", AGENCY)
    assert any(missing_scan.record_ids[0] in line and str(lost_scan) in line
               for line in fixity.summary_lines(report))

    # the command: exit 3, the same findings as JSON and in the files, Vietnamese for people
    out = digitize(settings, "fixity", "--json", "--out", str(tmp_path / "audit.json"))
    assert out.returncode == 3, out.stderr
    printed = json.loads(out.stdout)
    assert printed["ok"] is False
    assert {(e["problem"], e["kind"], e["path"])
            for key in ("missing", "changed", "unexpected", "shared")
            for e in printed[key]} == _found(report)
    assert json.loads((tmp_path / "audit.json").read_text(encoding="utf-8"))["changed"] == printed["changed"]
    with (tmp_path / "audit.csv").open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert sorted(r["Đường dẫn"] for r in rows) == sorted(p for *_, p in _found(report))
    people = digitize(settings, "fixity")
    assert people.returncode == 3
    assert "PHÁT HIỆN VẤN ĐỀ: 2 mất tệp, 2 bị thay đổi, 1 tệp lạ, 0 tệp dùng chung" in " ".join(
        people.stdout.split())
    assert list(settings.dir("reports").glob("fixity-*.json"))
    # each audit of the command is kept in the warehouse
    a = warehouse.fixity_audits
    with warehouse.engine_for(settings.warehouse_url).connect() as conn:
        audits = conn.execute(select(a.c.missing, a.c.changed, a.c.unexpected, a.c.report_path)
                              .order_by(a.c.id)).all()
    assert [tuple(row[:3]) for row in audits] == [(2, 2, 1), (2, 2, 1)]
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
        reference_settings: Settings, tmp_path: Path, migrate_airflow: MigrateAirflow) -> None:
    settings = reference_settings
    inbox = settings.dir("inbox") / AGENCY / "B-DAG"
    samples.generate_batch(inbox, agency_code=AGENCY, batch_id="B-DAG", n_records=1, seed=5,
                           truth_path=tmp_path / "truth.json", dpis=QUICK_DPIS)
    (record,) = run_batch(settings, inbox).records
    pdf = Path(record.pdf_path or "")
    (scan,) = (p for p in (settings.dir("done") / AGENCY / "B-DAG").iterdir()
               if p.name != "manifest.csv" and not p.name.startswith("."))
    _flip_one_byte(pdf)
    scan.unlink()

    env = airflow_env(settings)
    airflow = str(Path(sys.executable).with_name("airflow"))
    migrate_airflow(env)
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
    assert lines[1].startswith("PHÁT HIỆN VẤN ĐỀ: 1 mất tệp, 1 bị thay đổi, 0 tệp lạ, 0 tệp dùng chung, "
                               "0 chữ ký số không hợp lệ.")
    assert sorted(lines[2:4]) == sorted([
        f"- mất tệp: tệp quét gốc {scan} (lô {AGENCY}/B-DAG, hồ sơ {record.record_id})",
        f"- nội dung bị thay đổi: bản lưu trữ PDF/A {pdf} (hồ sơ {record.record_id}, phiên bản 1)"])
    (written,) = settings.dir("reports").glob("fixity-*.json")
    assert lines[4].startswith(f"Báo cáo: {written} ")
    assert json.loads(written.read_text(encoding="utf-8"))["ok"] is False


@pytest.mark.slow
def test_two_records_whose_versions_claim_one_file_are_reported_shared(
        reference_settings: Settings, tmp_path: Path) -> None:
    """The old bug: two records archived to one path, the second file written over the first.
    Keyed by path, the last row won and the lost record went unseen."""
    settings = reference_settings
    first, second = _archived_batch(settings, "B-SHARED", 2, 31, tmp_path).records
    kept, lost = Path(first.pdf_path or ""), Path(second.pdf_path or "")
    r, v = warehouse.records, warehouse.record_versions
    engine = warehouse.engine_for(settings.warehouse_url)
    with engine.begin() as conn:
        lost_pk = warehouse.pk_of(conn, r, agency_code=AGENCY, record_id=second.record_id)
        conn.execute(v.update().where(v.c.record_pk == lost_pk).values(pdf_path=str(kept)))
        conn.execute(r.update().where(r.c.id == lost_pk).values(pdf_path=str(kept)))
    lost.unlink()

    report = fixity.audit(settings)
    assert not report.ok
    assert _found(report) == {("shared", "archive", str(kept)), ("changed", "archive", str(kept))}
    (shared,) = report.shared
    assert sorted(shared.record_ids) == sorted([first.record_id, second.record_id])
    assert shared.actual_sha256 == first.pdf_sha256
    # the file is the first record's: only the second one's version is reported, by its own hash
    (changed,) = report.changed
    assert (changed.record_id, changed.version) == (second.record_id, 1)
    assert (changed.expected_sha256, changed.actual_sha256) == (second.pdf_sha256, first.pdf_sha256)
    assert report.archived_checked == 2

    lines = fixity.summary_lines(report)
    assert "0 tệp lạ, 1 tệp dùng chung" in lines[1]
    assert any(line.startswith(f"- nhiều hồ sơ trỏ cùng một tệp: bản lưu trữ PDF/A {kept} (hồ sơ ")
               and first.record_id in line and second.record_id in line for line in lines)
    paths = fixity.write_report(settings, report, tmp_path / "shared.json")
    written = json.loads(Path(paths["json"]).read_text(encoding="utf-8"))
    assert written["ok"] is False and written["shared"][0]["record_ids"] == shared.record_ids
    with Path(paths["csv"]).open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(row["Vấn đề"], row["Mã hồ sơ"]) for row in rows if row["Phiên bản"] == ""] == [
        ("nhiều hồ sơ trỏ cùng một tệp", "; ".join(shared.record_ids))]
    assert [(row["Mã hồ sơ"], row["Phiên bản"]) for row in rows if row["Phiên bản"]] == [
        (second.record_id, "1")]


@pytest.mark.slow
def test_every_version_is_checked_on_its_own(reference_settings: Settings, tmp_path: Path) -> None:
    """Version 1 damaged, the batch run again: version 2 is archived beside it, and the audit
    still reports version 1, which the records row no longer names."""
    settings = reference_settings
    summary = _archived_batch(settings, "B-VER", 1, 41, tmp_path)
    (v1,) = summary.records
    v1_path = Path(v1.pdf_path or "")
    _flip_one_byte(v1_path)
    (again,) = run_batch(settings, Path(summary.moved_to or "")).records
    assert (again.status, again.version) == (RecordStatus.archived, 2)
    v2_path = Path(again.pdf_path or "")
    assert v2_path.name.endswith("_v2.pdf") and v1_path.name.endswith("_v1.pdf")
    assert v2_path.parent == v1_path.parent

    report = fixity.audit(settings)
    assert _found(report) == {("changed", "archive", str(v1_path))}
    (changed,) = report.changed
    assert (changed.record_id, changed.version, changed.expected_sha256) == (v1.record_id, 1,
                                                                             v1.pdf_sha256)
    assert report.archived_checked == 2


@pytest.mark.slow
def test_a_scan_no_archived_record_uses_may_be_gone(reference_settings: Settings,
                                                    tmp_path: Path) -> None:
    """A held record's scan removed by the clerk (to be scanned again) is no loss; the scans of
    the archived record in the same batch are still checked."""
    settings = reference_settings
    inbox = settings.dir("inbox") / AGENCY / "B-HELD"
    batch = samples.generate_batch(inbox, agency_code=AGENCY, batch_id="B-HELD", n_records=2,
                                   seed=51, vietnamese_headers=False,
                                   truth_path=tmp_path / "truth.json", dpis=QUICK_DPIS)
    edit_manifest(inbox, {1: {"procedure_code": "9.999999"}})  # not in the catalogue: held
    held, archived = batch.records[1].record_id, batch.records[0].record_id
    statuses = {r.record_id: r.status for r in run_batch(settings, inbox).records}
    assert statuses == {archived: RecordStatus.archived, held: RecordStatus.quarantined}
    needed = _scans_used_by(settings, archived)
    registered = {p.name for p in inbox.iterdir() if p.name != "manifest.csv" and not p.name.startswith(".")}
    unused = sorted(registered - set(needed))
    assert needed and unused

    for name in unused:
        (inbox / name).unlink()
    report = fixity.audit(settings)
    assert report.ok, fixity.summary_lines(report)
    assert report.sources_checked == len(needed)

    (inbox / needed[0]).unlink()
    report = fixity.audit(settings)
    (missing,) = report.entries
    assert (missing.problem, missing.kind, missing.path) == ("missing", "source", str(inbox / needed[0]))
    assert missing.record_ids == [archived]


@pytest.mark.slow
def test_two_batches_in_one_folder_and_a_record_without_versions(reference_settings: Settings,
                                                                  tmp_path: Path) -> None:
    settings = reference_settings
    summary = _archived_batch(settings, "B-ONE", 1, 61, tmp_path)
    done = Path(summary.moved_to or "")
    b = warehouse.batches
    engine = warehouse.engine_for(settings.warehouse_url)
    # the old bug: a batch folder name used again was registered onto the done batch's folder
    with engine.begin() as conn:
        conn.execute(b.insert().values(agency_code=AGENCY, batch_id="B-ONE~2", folder_name="B-ONE",
                                       source_dir=str(done), manifest_sha256="0" * 64,
                                       status="done"))
    report = fixity.audit(settings)
    assert not report.ok
    assert _found(report) == {("shared", "source", str(done))}
    (shared,) = report.shared
    assert (shared.agency_code, shared.batch_ids) == (AGENCY, ["B-ONE", "B-ONE~2"])
    assert f"- nhiều hồ sơ trỏ cùng một tệp: thư mục lô {done} (lô {AGENCY}/B-ONE, " \
           f"lô {AGENCY}/B-ONE~2)" in fixity.summary_lines(report)
    with engine.begin() as conn:
        conn.execute(b.delete().where(b.c.batch_id == "B-ONE~2"))

    # a warehouse from before versions: the records row says where the PDF is and its hash
    with engine.begin() as conn:
        conn.execute(warehouse.record_versions.delete())
    clean = fixity.audit(settings)
    assert clean.ok and clean.archived_checked == 1
    (record,) = summary.records
    _flip_one_byte(Path(record.pdf_path or ""))
    (changed,) = fixity.audit(settings).entries
    assert (changed.problem, changed.record_id, changed.version) == ("changed", record.record_id, 1)
